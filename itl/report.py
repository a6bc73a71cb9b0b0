"""Results beside the paper's: per-section tables (tabulate), figure-style plots (matplotlib),
a summary of verdicts, and the same numbers as JSON for DVC metrics.

Reports are rendered from the run store alone (never training), so pytest, the CLI and DVC
render the same thing. Paper values come from `itl/resources/paper_values.json`, each with its
source; a value the paper does not give stays blank.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tabulate import tabulate  # noqa: E402

from itl import claims, labels, paths, pipeline, runs, scales  # noqa: E402


def paper_values() -> dict:
    text = resources.files("itl.resources").joinpath("paper_values.json").read_text()
    return json.loads(text)


def _shown(target: str) -> str:
    """A target as a table shows it: `name[rule]` (a '|' would split a markdown table cell)."""
    name, _, rule = target.partition("|")
    return f"{name}[{rule}]" if rule else name


def _metrics(claim: claims.Claim, scale: scales.Scale) -> list[tuple[str, str]]:
    cols = [("source_top1", "source top-1 (own labels)")]
    for t in scale.targets:
        for m in pipeline.METHODS:
            cols.append((f"{t}/{m}", f"{_shown(t)} {m}"))
    for t in scale.detection:
        cols.append((f"{t}/detect", f"{t} detection mAP"))
    for t, m in claim.probes(scale):
        cols.append((f"{t}/{m}", f"{_shown(t)} {m}"))
    return cols


def _paper_cell(values: list[dict], condition: str) -> str:
    hits = [v for v in values if v["condition"] == condition]
    return "; ".join(f"{v['task']} {v['metric']} {v['value']} [{v['source']}]" for v in hits)


def section(claim: claims.Claim, scale_name: str, results: dict) -> dict:
    """Verdict and table of one claim from {condition: {seed: metrics}}."""
    scale = scales.get(scale_name)
    metric = pipeline.primary_metric(scale_name)
    est, verdict = claim.verdict(results, scale)
    cols = _metrics(claim, scale)
    pv = paper_values().get(claim.id, {})
    rows = []
    for cond in claim.conditions(scale) + (pipeline.RANDOM,):
        per_seed = results.get(cond, {})
        row = [cond if cond != pipeline.RANDOM else "random init (no pre-training)",
               len(per_seed)]
        for key, _ in cols:
            row.append(claims.mean_std([m[key] for m in per_seed.values() if key in m]))
        row.append(_paper_cell(pv.get("values", []), cond))
        rows.append(row)
    headers = ["condition", "seeds"] + [c[1] for c in cols] + ["paper"]
    return {"claim": claim, "scale": scale, "metric": metric, "estimate": est,
            "verdict": verdict, "table": tabulate(rows, headers, tablefmt="github"),
            "paper": pv, "results": results}


def _skipped_detection(scale: scales.Scale) -> tuple[str, ...]:
    """The scale's detection targets left unrun by ITL_DETECTION=off."""
    return tuple(t for t in scales.SCALES[scale.name].detection if t not in scale.detection)


def _markdown(s: dict) -> str:
    c: claims.Claim = s["claim"]
    scale: scales.Scale = s["scale"]
    lines = [f"# {c.id}: {c.question}", "",
             f"Scale `{scale.name}`: source `{scale.source}`, model `{scale.pretrain.model}`, "
             f"seeds {list(scale.seeds)}. Cells are mean ± std over seeds (top-1 %).", ""]
    for t in scale.targets + scale.detection:
        lines.append(f"- `{t}` stands in for the paper's {scale.paper_task.get(t, t)}.")
    lines += [f"- `{t}` (the paper's {scale.paper_task.get(t, t)}) was not run "
              f"(`ITL_DETECTION=off`)." for t in _skipped_detection(scale)]
    lines += ["", s["table"], "",
              f"**Paper:** {c.statement}", ""]
    for st in s["paper"].get("statements", []):
        lines.append(f"> {st['text']} — {st['source']}")
    side = "above" if c.direction == "above" else "below"
    lines += ["", f"**Statistic:** {c.statistic}. Transfer metric: `{s['metric']}`.",
              f"**Threshold:** the paper's claim holds when the 95% interval lies {side} "
              f"{c.threshold:g}: {c.why}", "",
              f"**Measured:** {s['estimate']} → **{s['verdict']}**"]
    if scale.name == "smoke":
        lines += ["", "Smoke scale checks the machinery on generated data; its verdicts are "
                  "reported, not asserted, and are not evidence about the paper."]
    return "\n".join(lines) + "\n"


def _plot_images_per_class(s: dict, path: Path) -> None:
    """Laid out like the paper's Figure 1: performance against images per class."""
    scale: scales.Scale = s["scale"]
    res = s["results"]
    conds = [c for c in s["claim"].conditions(scale) if c in res]
    keys = [("source_top1", "source top-1"), (s["metric"], s["metric"])]
    keys += [(f"{t}/linear", f"{_shown(t)} linear probe") for t in scale.targets]
    _plot(s, path, conds, [int(c.split("=")[1]) for c in conds], keys,
          "pre-training images per class (paper's units; 1000 = full source)")


def _plot_classes(s: dict, path: Path) -> None:
    """Laid out like the paper's Figure 2: performance against the number of classes."""
    scale: scales.Scale = s["scale"]
    res = s["results"]
    n_full = len(labels.dataset_leaves(scale.source))
    count = {c: (n_full if c == claims.FULL else int(c.rsplit(":", 1)[1]))
             for c in s["claim"].conditions(scale) if c in res}
    conds = sorted(count, key=count.get)
    keys = [(f"{claims.fine_probe(scale)}/linear", "source, fine classes (last layer re-trained)"),
            (s["metric"], s["metric"])]
    keys += [(f"{t}/linear", f"{_shown(t)} linear probe") for t in scale.targets]
    _plot(s, path, conds, [count[c] for c in conds], keys,
          f"pre-training classes (WordNet levels of the {n_full} source classes)")


def _plot(s: dict, path: Path, conds: list[str], xs: list[int], keys: list[tuple[str, str]],
          xlabel: str) -> None:
    res = s["results"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label in keys:
        ys = [[m[key] for m in res[c].values()] for c in conds]
        ax.errorbar(xs, [statistics.fmean(y) for y in ys],
                    yerr=[statistics.stdev(y) if len(y) > 1 else 0 for y in ys],
                    marker="o", capsize=3, label=label)
    rnd = res.get(pipeline.RANDOM, {})
    if rnd:
        key = s["metric"]
        ax.axhline(statistics.fmean(m[key] for m in rnd.values()), ls="--", color="grey",
                   label=f"{key}, random init")
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(xs)), [str(x) for x in sorted(set(xs))])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 accuracy (%), mean ± std over seeds")
    ax.set_title(f"{s['claim'].id} at {s['scale'].name} scale: {s['verdict']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.ensure_writable(path.parent)
    fig.savefig(path, dpi=120)
    plt.close(fig)


PLOTS = {"section4": ("figure1_images_per_class.png", _plot_images_per_class),
         "section5_1": ("figure2_number_of_classes.png", _plot_classes)}


def has_results(s: dict) -> bool:
    """Whether every condition of the section has results (the random-init baseline and the
    full-data condition are shared by many sections, so one of them alone does not count)."""
    return all(s["results"].get(c) for c in s["claim"].conditions(s["scale"]))


def write_section(claim: claims.Claim, scale_name: str) -> dict:
    """Render reports/<scale>/<section>.md (+ plot, + JSON) from the run store."""
    scale = scales.get(scale_name)
    res = pipeline.results(scale_name, claim.conditions(scale), compute=False,
                           probes=claim.probes(scale))
    s = section(claim, scale_name, res)
    if not has_results(s):
        return s  # nothing run for this claim at this scale: no files to show
    out = paths.ensure_writable(paths.reports_dir() / scale_name)
    paths.atomic_write_text(out / f"{claim.id}.md", _markdown(s))
    if claim.id in PLOTS:
        name, plot = PLOTS[claim.id]
        plot(s, out / name)
    est = s["estimate"]
    paths.atomic_write_json(out / f"{claim.id}.json", {
        "claim": claim.id, "verdict": s["verdict"], "metric": s["metric"],
        "statistic": {"mean": est.mean, "lo": est.lo, "hi": est.hi, "n": est.n},
        "results": {c: {str(k): v for k, v in r.items()} for c, r in res.items()}})
    return s


def run_records(scale_name: str) -> list[tuple[str, dict, dict]]:
    """(kind, config, metrics) of every finished run of the scale in the run store."""
    out = []
    for kind in ("pretrain", "transfer"):
        for f in sorted((paths.runs_dir() / kind).glob("*/metrics.json")):
            cfg = json.loads((f.parent / "config.json").read_text())
            if cfg.get("scale") == scale_name:
                out.append((kind, cfg, json.loads(f.read_text())))
    return out


def _timings(records: list[tuple[str, dict, dict]]) -> str:
    """Seconds per run, by kind of run and the device that ran it (from each run's metrics)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for kind, cfg, m in records:
        what = "pre-training" if kind == "pretrain" else f"transfer: {cfg['method']}"
        groups.setdefault((what, m["device"]), []).append(m["seconds"])
    rows = [[what, dev, len(sec), claims.mean_std(sec), f"{max(sec):.0f}"]
            for (what, dev), sec in sorted(groups.items())]
    return tabulate(rows, ["run", "device", "runs", "seconds (mean ± std)", "max"],
                    tablefmt="github")


def _source_top1(sections: list[dict]) -> str:
    for s in sections:
        full = s["results"].get(claims.FULL)
        if full:
            top1 = claims.mean_std([r["source_top1"] for r in full.values()])
            return (f"Source task ({s['scale'].source}, {s['scale'].pretrain.model}) top-1 "
                    f"after full-data pre-training: {top1}% over {len(full)} seeds.\n\n")
    return ""


def _detection_note(scale_name: str) -> str:
    skipped = _skipped_detection(scales.get(scale_name))
    if not skipped:
        return ""
    return (f"\n\nDetection ({', '.join(f'`{t}`' for t in skipped)}) not run "
            f"(`ITL_DETECTION=off`): claims are judged on "
            f"`{pipeline.primary_metric(scale_name)}`.")


def write_summary(scale_name: str, sections: list[dict], wall_seconds: float | None) -> Path:
    """reports/<scale>/summary.md: verdicts of the sections that have results, the source
    task's top-1, and the seconds and device of every run they are made of; `wall_seconds` is
    the pytest session's (None when rendered from the run store, as `itl report` and DVC do)."""
    out = paths.ensure_writable(paths.reports_dir() / scale_name)
    ran = [s for s in sections if has_results(s)]
    rows = [[s["claim"].id, s["claim"].question, s["verdict"], str(s["estimate"]),
             s["claim"].statement] for s in ran]
    skipped = [s["claim"].id for s in sections if not has_results(s)]
    text = (f"# itl summary, scale `{scale_name}`\n\n"
            + tabulate(rows, ["claim", "question", "verdict", "statistic (95% CI)",
                              "the paper's finding"], tablefmt="github")
            + (f"\n\nNot run (or not all of their conditions) at this scale yet: "
               f"{', '.join(skipped)}." if skipped else "")
            + _detection_note(scale_name)
            + "\n\n" + _source_top1(ran)
            + "Seconds per run, as each run recorded them:\n\n"
            + _timings(run_records(scale_name))
            + f"\n\nRendered on {runs.provenance()['device']}, {os.cpu_count()} cores, "
            + f"{platform.platform()}. "
            + (f"Wall time of this pytest session: {wall_seconds:.0f} s.\n"
               if wall_seconds is not None else "Rendered from the run store.\n"))
    paths.atomic_write_text(out / "summary.md", text)
    return out / "summary.md"


def export_runs(scale_name: str) -> Path:
    """reports/<scale>/runs/<kind>/<hash>/: config, metrics and per-epoch log of every run of
    the scale (no checkpoints), to commit beside the report."""
    out = paths.reports_dir() / scale_name / "runs"
    for kind, cfg, m in run_records(scale_name):
        d = paths.runs_dir() / m["run"]
        for f in ("config.json", "metrics.json", "log.jsonl"):
            if (d / f).exists():
                paths.atomic_write_text(paths.ensure_writable(out / m["run"]) / f,
                                        (d / f).read_text())
    return out


README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def readme_table(scale_names: tuple[str, ...] = ("smoke", "small", "paper")) -> str:
    """The README's results table, from reports/<scale>/<claim>.json of the scales run so far."""
    ran = [s for s in scale_names if (paths.reports_dir() / s).is_dir()]
    rows = []
    for c in claims.CLAIMS.values():
        row = [f"{c.id}: {c.question}", c.statement]
        for s in ran:
            f = paths.reports_dir() / s / f"{c.id}.json"
            row.append(json.loads(f.read_text())["verdict"] if f.exists() else "not run")
        row.append(f"`pytest experiments -k {c.id} --scale {ran[0] if ran else 'smoke'}`")
        rows.append(row)
    return tabulate(rows, ["claim", "the paper's finding", *ran, "command"], tablefmt="github")


def update_readme(readme: Path) -> None:
    text = readme.read_text()
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    if not rest:
        raise ValueError(f"{readme} has no {README_BEGIN} ... {README_END} markers")
    paths.atomic_write_text(readme, f"{head}{README_BEGIN}\n{readme_table()}\n{README_END}{tail}")
