"""CI re-derives the committed verdicts: for each scale whose reports are committed with their
run records (reports/<scale>/runs/), every section is rebuilt from the records alone (no data,
no run store, no training) with claims.CLAIMS[...].verdict, and must agree with
reports/<scale>/summary.md and reports/<scale>/<section>.json to the printed precision."""
import json
import math
import shutil
from pathlib import Path

import pytest

from itl import report, scales

REPORTS = Path(__file__).resolve().parents[1] / "reports"
COMMITTED = sorted(d.name for d in REPORTS.iterdir() if (d / "runs").is_dir())


def _printed(x: float) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:+.2f}"


def _summary_rows(text: str) -> dict[str, list[str]]:
    """{claim: row cells} of the summary's verdict table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == len(report.SUMMARY_HEADERS) and cells[0].startswith("section"):
            rows[cells[0]] = cells
    return rows


def disagreements(folder: Path, scale_name: str) -> list[str]:
    """Where the reports under `folder` differ from what their run records give."""
    problems = []
    summary = _summary_rows((folder / "summary.md").read_text())
    derived = report.sections_from_records(scales.get(scale_name), folder / "runs")
    for s in derived:
        cid, est, verdict = s["claim"].id, s["estimate"], s["verdict"]
        f = folder / f"{cid}.json"
        if not report.has_results(s):
            problems += [f"{cid}: {f.name} committed, the records lack some of its results"
                         ] if f.exists() else []
            problems += [f"{cid}: in summary.md, the records lack some of its results"
                         ] if cid in summary else []
            continue
        if not f.exists() or cid not in summary:
            problems.append(f"{cid}: the records have all its results, the reports do not")
            continue
        got = json.loads(f.read_text())
        stat = got["statistic"]
        for key, want in (("mean", est.mean), ("lo", est.lo), ("hi", est.hi)):
            if _printed(stat[key]) != _printed(want):
                problems.append(f"{cid}.json statistic {key} {stat[key]} != {want:+.2f}")
        if stat["n"] != est.n:
            problems.append(f"{cid}.json n {stat['n']} != {est.n}")
        if got["verdict"] != verdict:
            problems.append(f"{cid}.json verdict {got['verdict']!r} != {verdict!r}")
        if got["metric"] != s["metric"]:
            problems.append(f"{cid}.json metric {got['metric']!r} != {s['metric']!r}")
        rebuilt = {c: {str(k): v for k, v in r.items()} for c, r in s["results"].items()}
        if got["results"] != rebuilt:
            problems.append(f"{cid}.json results differ from the records' results")
        if summary[cid][2:4] != [verdict, str(est)]:
            problems.append(f"{cid}: summary.md says {summary[cid][2:4]}, "
                            f"the records give {[verdict, str(est)]}")
    known = {s["claim"].id for s in derived}
    problems += [f"{cid}: summary.md row of an unknown claim" for cid in summary
                 if cid not in known]
    return problems


@pytest.mark.parametrize("scale_name", COMMITTED)
def test_committed_reports_follow_from_their_run_records(scale_name):
    assert disagreements(REPORTS / scale_name, scale_name) == []


@pytest.mark.parametrize("scale_name", COMMITTED)
def test_a_perturbed_report_or_record_is_caught(scale_name, tmp_path):
    """The check above can fail: a changed printed number, verdict or run record is caught."""
    copy = tmp_path / scale_name
    shutil.copytree(REPORTS / scale_name, copy)
    sections = [s for s in report.sections_from_records(scales.get(scale_name), copy / "runs")
                if report.has_results(s)]
    if not sections:  # a grid in progress: no claim complete yet, its records still checked
        m_file = sorted((copy / "runs" / "pretrain").glob("*/metrics.json"))[0]
        m = json.loads(m_file.read_text())
        m["source_top1"] += 1.0
        m_file.write_text(json.dumps(m))
        with pytest.warns(RuntimeWarning, match=f"{m_file.parent.name}.*not used"):
            report.sections_from_records(scales.get(scale_name), copy / "runs")
        return
    s = sections[0]
    cid = s["claim"].id

    f = copy / f"{cid}.json"
    original = f.read_text()
    got = json.loads(original)
    got["statistic"]["mean"] += 0.01
    f.write_text(json.dumps(got))
    assert any(f"{cid}.json statistic mean" in p for p in disagreements(copy, scale_name))
    got["statistic"]["mean"] -= 0.01
    got["verdict"] = "reproduced" if s["verdict"] != "reproduced" else "inconclusive"
    f.write_text(json.dumps(got))
    assert any(f"{cid}.json verdict" in p for p in disagreements(copy, scale_name))
    f.write_text(original)

    summary = copy / "summary.md"
    text = summary.read_text()
    printed = f"{s['estimate'].mean:+.2f}"
    summary.write_text(text.replace(printed, f"{s['estimate'].mean + 0.01:+.2f}", 1))
    assert any(f"{cid}: summary.md says" in p for p in disagreements(copy, scale_name))
    summary.write_text(text)
    assert disagreements(copy, scale_name) == []

    # a transfer record of the section's primary metric, changed by a point
    seed, first = next(iter(s["results"][s["conditions"][0]].items()))
    method = s["metric"].rsplit("/", 1)[1]
    value = first.get(f"{s['metric']}#0", first[s["metric"]])  # one of repeated fine-tunings
    changed = 0
    for cfg_file in sorted((copy / "runs" / "transfer").glob("*/config.json")):
        cfg = json.loads(cfg_file.read_text())
        m_file = cfg_file.with_name("metrics.json")
        m = json.loads(m_file.read_text())
        if (cfg["pretrain"] == first["pretrain_run"] and cfg["method"] == method
                and cfg["seed"] == seed and m["top1"] == value):
            m["top1"] += 1.0
            m_file.write_text(json.dumps(m))
            changed += 1
            break
    assert changed == 1, "no record of the section's primary metric found to change"
    assert disagreements(copy, scale_name)
