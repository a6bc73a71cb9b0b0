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

from itl import claims, paths, pipeline, runs, scales  # noqa: E402


def paper_values() -> dict:
    text = resources.files("itl.resources").joinpath("paper_values.json").read_text()
    return json.loads(text)


def _metrics(scale: scales.Scale) -> list[tuple[str, str]]:
    cols = [("source_top1", f"source top-1 ({scale.source})")]
    for t in scale.targets:
        for m in pipeline.METHODS:
            cols.append((f"{t}/{m}", f"{t} {m} top-1"))
    return cols


def _paper_cell(values: list[dict], condition: str) -> str:
    hits = [v for v in values if v["condition"] == condition]
    return "; ".join(f"{v['task']} {v['metric']} {v['value']} [{v['source']}]" for v in hits)


def section(claim: claims.Claim, scale_name: str, results: dict) -> dict:
    """Verdict and table of one claim from {condition: {seed: metrics}}."""
    scale = scales.get(scale_name)
    metric = pipeline.primary_metric(scale_name)
    est, verdict = claim.verdict(results, metric)
    cols = _metrics(scale)
    pv = paper_values().get(claim.id, {})
    rows = []
    for cond in claim.conditions + (pipeline.RANDOM,):
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


def _markdown(s: dict) -> str:
    c: claims.Claim = s["claim"]
    scale: scales.Scale = s["scale"]
    lines = [f"# {c.id}: {c.question}", "",
             f"Scale `{scale.name}`: source `{scale.source}`, model `{scale.pretrain.model}`, "
             f"seeds {list(scale.seeds)}. Cells are mean ± std over seeds (top-1 %).", ""]
    for t in scale.targets:
        lines.append(f"- `{t}` stands in for the paper's {scale.paper_task.get(t, t)}.")
    lines += ["", s["table"], "",
              f"**Paper:** {c.statement}", ""]
    for st in s["paper"].get("statements", []):
        lines.append(f"> {st['text']} — {st['source']}")
    lines += ["", f"**Statistic:** {c.statistic}, on `{s['metric']}`.",
              f"**Threshold:** {c.threshold:g}. {c.why}", "",
              f"**Measured:** {s['estimate']} → **{s['verdict']}**"]
    if scale.name == "smoke":
        lines += ["", "Smoke scale checks the machinery on generated data; its verdicts are "
                  "reported, not asserted, and are not evidence about the paper."]
    return "\n".join(lines) + "\n"


def _plot_images_per_class(s: dict, path: Path) -> None:
    """Laid out like the paper's Figure 1: performance against images per class."""
    scale: scales.Scale = s["scale"]
    res = s["results"]
    conds = [c for c in s["claim"].conditions if c in res]
    xs = [int(c.split("=")[1]) for c in conds]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in _metrics(scale):
        if key.endswith("/knn"):
            continue
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
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("pre-training images per class (paper's units; 1000 = full source)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{s['claim'].id} at {scale.name} scale: {s['verdict']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.ensure_writable(path.parent)
    fig.savefig(path, dpi=120)
    plt.close(fig)


PLOTS = {"section4": ("figure1_images_per_class.png", _plot_images_per_class)}


def write_section(claim: claims.Claim, scale_name: str) -> dict:
    """Render reports/<scale>/<section>.md (+ plot, + JSON) from the run store."""
    res = pipeline.results(scale_name, claim.conditions, compute=False)
    s = section(claim, scale_name, res)
    out = paths.ensure_writable(paths.reports_dir() / scale_name)
    paths.atomic_write_text(out / f"{claim.id}.md", _markdown(s))
    if claim.id in PLOTS and res:
        name, plot = PLOTS[claim.id]
        plot(s, out / name)
    est = s["estimate"]
    paths.atomic_write_json(out / f"{claim.id}.json", {
        "claim": claim.id, "verdict": s["verdict"], "metric": s["metric"],
        "statistic": {"mean": est.mean, "lo": est.lo, "hi": est.hi, "n": est.n},
        "results": {c: {str(k): v for k, v in r.items()} for c, r in res.items()}})
    return s


def write_summary(scale_name: str, sections: list[dict], wall_seconds: float) -> Path:
    out = paths.ensure_writable(paths.reports_dir() / scale_name)
    rows = [[s["claim"].id, s["claim"].question, s["verdict"], str(s["estimate"])]
            for s in sections]
    dev = runs.provenance()["device"]
    text = (f"# itl summary, scale `{scale_name}`\n\n"
            + tabulate(rows, ["claim", "question", "verdict", "statistic (95% CI)"],
                       tablefmt="github")
            + f"\n\nHardware: {dev}, {os.cpu_count()} cores, {platform.platform()}. "
            f"Wall time of this pytest session: {wall_seconds:.0f} s.\n")
    paths.atomic_write_text(out / "summary.md", text)
    return out / "summary.md"
