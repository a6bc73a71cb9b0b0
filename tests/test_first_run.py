"""The README's main job, `itl reproduce`: it runs the smoke experiments without the grid-as-jobs
check (CI runs that, .ci/run) and ends by printing its verdicts beside the committed small-scale
ones, each column with the file it comes from."""
import json
import re
from pathlib import Path

import pytest
from tabulate import tabulate

from itl import claims, cli, paths, report

ROOT = Path(__file__).resolve().parents[1]
SMOKE = {"section4": "inconclusive", "section5_1": "not reproduced", "section6": "reproduced"}


def _write_smoke_summary() -> Path:
    """A summary.md of the smoke scale in ITL_REPORTS, laid out as report.write_summary lays it
    out, judging three claims."""
    rows = [[cid, claims.CLAIMS[cid].question, v, "+1.00 [+0.50, +1.50] (n=2)", "above 5",
             "x / x / x", claims.CLAIMS[cid].statement] for cid, v in SMOKE.items()]
    out = paths.reports_dir() / "smoke"
    out.mkdir(parents=True)
    (out / "summary.md").write_text("# itl summary, scale `smoke`\n\n"
                                    + tabulate(rows, report.SUMMARY_HEADERS, tablefmt="github")
                                    + "\n\nNot run at this scale yet: section5_2.\n")
    return out / "summary.md"


def _committed(scale_name: str) -> dict[str, str]:
    """The committed verdicts of a scale, read from its section files (not its summary)."""
    folder = ROOT / "reports" / scale_name
    return {cid: json.loads((folder / f"{cid}.json").read_text())["verdict"]
            for cid in claims.CLAIMS if (folder / f"{cid}.json").is_file()}


def _table(text: str) -> dict[str, dict[str, str]]:
    """{column: {claim: cell}} of the printed table."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]
    head = rows[0]
    return {col: {r[0]: r[i] for r in rows[2:]} for i, col in enumerate(head) if i}


def test_the_verdicts_of_this_run_stand_beside_the_committed_small_scale_ones():
    summary = _write_smoke_summary()
    text = report.verdicts_beside("smoke")
    got = _table(text)
    assert list(got) == ["smoke", "small-v2", "small"]
    assert all(list(col) == list(claims.CLAIMS) for col in got.values())
    assert got["smoke"] == {cid: SMOKE.get(cid, "not run") for cid in claims.CLAIMS}
    small_v2 = _committed("small-v2")
    assert len(small_v2) == len(claims.CLAIMS)  # protocol v2 judged every claim
    assert got["small-v2"] == small_v2
    assert got["small"] == {cid: _committed("small").get(cid, "not run")
                            for cid in claims.CLAIMS}
    # where each column comes from: this run's summary, the committed ones
    assert f"smoke: {summary} (this run" in text
    for name in ("small-v2", "small"):
        assert f"{name}: {ROOT / 'reports' / name / 'summary.md'} (committed" in text
    assert "no evidence about the paper" in text


def test_a_scale_without_a_summary_is_not_run_and_said_absent(tmp_path):
    text = report.verdicts_beside("smoke")  # this run rendered nothing
    assert set(_table(text)["smoke"].values()) == {"not run"}
    assert re.search(r"^smoke: .*summary\.md \(this run; absent\)$", text, flags=re.M)
    assert report.summary_verdicts(tmp_path / "none.md") == {}


def test_reproduce_leaves_out_the_grid_check_and_ends_with_the_table(monkeypatch, capsys):
    seen = []

    def fake_pytest(args):
        seen.append(args)
        _write_smoke_summary()  # what the experiments' session renders at its end
        return 0

    monkeypatch.setattr(pytest, "main", fake_pytest)
    assert cli.main(["reproduce", "--scale", "smoke"]) == 0
    [args] = seen
    assert cli.GRID_CHECK.is_file()  # a renamed check would make the --ignore a no-op
    assert args[args.index("--ignore") + 1] == str(cli.GRID_CHECK)
    assert args[args.index("-n") + 1] == "2"  # both workers: the conditions side by side
    out = capsys.readouterr().out
    assert out.rstrip().endswith(report.verdicts_beside("smoke").rstrip())
    assert _table(out)["smoke"]["section6"] == "reproduced"


def test_ci_runs_the_main_job_and_the_grid_check_it_leaves_out():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    main_job = re.search(r"itl reproduce --scale smoke", readme)
    assert main_job and "itl reproduce --scale smoke" in ci
    assert re.search(r"^run pytest experiments/test_grid_local\.py --scale smoke", ci, flags=re.M)
