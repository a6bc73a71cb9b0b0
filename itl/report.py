"""Results beside the paper's: per-section tables (tabulate), figure-style plots (matplotlib)
with their data as CSV (for `dvc plots show`), a summary of verdicts, and the numbers as JSON:
`<section>.json` with every seed's results, `metrics/<section>.json` one concise record per
claim (for `dvc metrics show`).

`reports/<scale>/` is a pure function of the run store (never training), so pytest, the CLI and
DVC render the same thing: a section whose conditions do not all have results for every seed
of the scale has no files, and a stale one is removed. The same reports can be re-derived from
the run records committed beside them (`reports/<scale>/runs/`, `export_runs`) without the data
or the store (`sections_from_records`), which is how CI checks the committed verdicts; those
records are never deleted, and a section the store lacks results of is rendered from them
where they hold them all. A scale's reports are written all or nothing (`writing`), and the
README's table only from complete inputs (`update_readme`). Paper values come from
`itl/resources/paper_values.json`, each with its source; a value the paper does not give
stays blank.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import warnings
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tabulate import tabulate  # noqa: E402

from itl import claims, forest, labels, paths, pipeline, runs, scales, wordnet  # noqa: E402


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


def section(claim: claims.Claim, scale: scales.Scale, results: dict) -> dict:
    """Verdict and table of one claim from {condition: {seed: metrics}}."""
    metric = pipeline.primary_metric(scale)
    est, verdict = claim.verdict(results, scale)
    cols = _metrics(claim, scale)
    pv = paper_values().get(claim.id, {})
    conds = claim.conditions(scale)
    rows = []
    for cond in conds + (pipeline.RANDOM,):
        per_seed = results.get(cond, {})
        row = [cond if cond != pipeline.RANDOM else "random init (no pre-training)",
               len(per_seed)]
        for key, _ in cols:
            row.append(claims.mean_std([m[key] for m in per_seed.values() if key in m]))
        row.append(_paper_cell(pv.get("values", []), cond))
        rows.append(row)
    headers = ["condition", "seeds"] + [c[1] for c in cols] + ["paper"]
    second = claims.secondary_metric(scale) if claim.uses_target else None
    beside = {}  # Section 4 at fewer images per class: reported, never judged
    if claim.id == claims.SECTION4.id:
        for ipc in claims.SECTION4_BESIDE:
            values = claims.section4_at(ipc)(results, scale, metric)
            if values and not any(math.isnan(v) for v in values):
                beside[ipc] = claims.estimate(values)
    return {"claim": claim, "scale": scale, "conditions": conds, "metric": metric,
            "estimate": est, "verdict": verdict,
            "at_margin": {f: claim.verdict(results, scale, f)[1] for f in claims.FACTORS},
            "beside": beside,
            "secondary": (second, *claim.verdict(results, scale, metric=second))
            if second else None,
            "table": tabulate(rows, headers, tablefmt="github"),
            "paper": pv, "results": results}


def _skipped_detection(scale: scales.Scale) -> tuple[str, ...]:
    """The scale's detection targets left unrun by ITL_DETECTION=off."""
    return tuple(t for t in scales.SCALES[scale.name].detection if t not in scale.detection)


def _replicates(scale: scales.Scale) -> str:
    if scale.replicate == scales.PRETRAINING:
        return "a pre-training of its own and its transfers"
    return (f"another fine-tuning of each condition's one pre-training, seed "
            f"{scale.pretrain_seeds[0]}'s")


def _markdown(s: dict) -> str:
    c: claims.Claim = s["claim"]
    scale: scales.Scale = s["scale"]
    lines = [f"# {c.id}: {c.question}", "",
             f"Scale `{scale.name}`: source `{scale.source}`, model `{scale.pretrain.model}`, "
             f"seeds {list(scale.seeds)} (each seed {_replicates(scale)}). Cells are "
             "mean ± std over seeds (top-1 %).", ""]
    for t in scale.targets + scale.detection:
        lines.append(f"- `{t}` stands in for the paper's {scale.paper_task.get(t, t)}.")
    lines += [f"- `{t}` (the paper's {scale.paper_task.get(t, t)}) was not run "
              f"(`ITL_DETECTION=off`)." for t in _skipped_detection(scale)]
    lines += ["", s["table"], "",
              f"**Paper:** {c.statement}", ""]
    for st in s["paper"].get("statements", []):
        lines.append(f"> {st['text']} — {st['source']}")
    side = "above" if c.direction == "above" else "below"
    at = "; ".join(f"{f:g}x ({c.margin * f:g}): {v}" for f, v in s["at_margin"].items())
    lines += ["", f"**Statistic:** {c.statistic}. Primary transfer metric: `{s['metric']}`.",
              f"**Rule:** the paper's claim holds when the 95% interval lies {side} the margin "
              f"{c.margin:g}: {c.why}", "",
              f"**Measured:** {s['estimate']} → **{s['verdict']}** (spread over seeds: "
              f"{c.variance(scale)})", "",
              f"**At half, once and twice the margin:** {at}."]
    for ipc, est in s.get("beside", {}).items():
        lines += ["", f"Beside it (reported, never judged), the statistic at {ipc} images per "
                  f"class instead of 500: {est}."]
    lines += _own_labels(s)
    if s.get("secondary"):
        name, est2, v2 = s["secondary"]
        lines += ["", f"Secondary target (reported, never judged): `{name}`: {est2} → {v2}."]
    if scale.name == "smoke":
        lines += ["", "Smoke scale checks the machinery on generated data; its verdicts are "
                  "reported, not asserted, and are not evidence about the paper."]
    return "\n".join(lines) + "\n"


def _own_labels(s: dict) -> list[str]:
    """For a section whose conditions relabel the source (`labels=SCHEME:K`): how many of the
    targets' classes keep a label of their own at each level, beside the paper's counts for the
    set each level stands for (issue 21: a coarse level can merge the very classes a target
    tells apart)."""
    levels = [c.removeprefix("labels=").split(":") for c in s["conditions"]
              if c.startswith("labels=")]
    if not levels:
        return []
    try:
        leaves = labels.dataset_leaves(s["scale"].source)
    except FileNotFoundError as e:
        return ["", f"Target classes with a label of their own: not counted here ({e})."]
    rows = labels.own_label_rows(wordnet.load(), leaves, [(sc, int(k)) for sc, k in levels])
    return ["", "Target classes that keep a training label of their own at each level (no label "
            "holds leaves of two of them; `itl.labels.own_labels`), of those with leaves in the "
            "source:", "", tabulate(rows, labels.OWN_LABEL_HEADERS, tablefmt="github")]


def _figure_images_per_class(s: dict) -> dict:
    """Laid out like the paper's Figure 1: performance against images per class."""
    scale: scales.Scale = s["scale"]
    conds = sorted((c for c in s["conditions"] if c in s["results"]),
                   key=lambda c: int(c.split("=")[1]))
    keys = [("source_top1", "source top-1"), (s["metric"], s["metric"])]
    keys += [(f"{t}/linear", f"{_shown(t)} linear probe") for t in scale.targets]
    return {"conds": conds, "xs": [int(c.split("=")[1]) for c in conds], "keys": keys,
            "x": "images_per_class",
            "xlabel": "pre-training images per class (paper's units; 1000 = full source)"}


def _figure_classes(s: dict) -> dict:
    """Laid out like the paper's Figure 2: performance against the number of classes."""
    scale: scales.Scale = s["scale"]
    n_full = len(labels.dataset_leaves(scale.source))
    count = {c: (n_full if c == claims.FULL else int(c.rsplit(":", 1)[1]))
             for c in s["conditions"] if c in s["results"]}
    conds = sorted(count, key=count.get)
    keys = [(f"{claims.fine_probe(scale)}/linear", "source, fine classes (last layer re-trained)"),
            (s["metric"], s["metric"])]
    keys += [(f"{t}/linear", f"{_shown(t)} linear probe") for t in scale.targets]
    return {"conds": conds, "xs": [count[c] for c in conds], "keys": keys, "x": "classes",
            "xlabel": f"pre-training classes (WordNet levels of the {n_full} source classes)"}


def _plot(s: dict, fig: dict, path: Path) -> None:
    res = s["results"]
    conds, xs = fig["conds"], fig["xs"]
    f, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label in fig["keys"]:
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
    # turned on end: labels of levels as close as 125, 147 and 160 overlap on a log axis
    ax.set_xticks(sorted(set(xs)), [str(x) for x in sorted(set(xs))], rotation=90, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(fig["xlabel"])
    ax.set_ylabel("top-1 or mAP (%), mean ± std over seeds")
    ax.set_title(f"{s['claim'].id} at {s['scale'].name} scale: {s['verdict']}")
    ax.legend(fontsize=7)
    f.tight_layout()
    png = io.BytesIO()  # savefig writes in place: render first, then write as any file
    f.savefig(png, format="png", dpi=120)
    plt.close(f)
    paths.atomic_write_bytes(path, png.getvalue())


def _mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else ""


def _plot_data(s: dict, fig: dict) -> str:
    """The figure's data for `dvc plots show` (dvc.yaml, top-level `plots:`): one row per
    condition, x then the mean over seeds of the source curve, the transfer metric and the
    transfer metric of a randomly initialised network."""
    res = s["results"]
    (source, _), (metric, _) = fig["keys"][:2]
    rnd = _mean([m[metric] for m in res.get(pipeline.RANDOM, {}).values()])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([fig["x"], "condition", "source", "transfer", "random_init"])
    for cond, x in zip(fig["conds"], fig["xs"]):
        per_seed = res[cond].values()
        w.writerow([x, cond, _mean([m[source] for m in per_seed]),
                    _mean([m[metric] for m in per_seed]), rnd])
    return buf.getvalue()


FIGURES = {"section4": ("figure1_images_per_class", _figure_images_per_class),
           "section5_1": ("figure2_number_of_classes", _figure_classes)}


def has_results(s: dict) -> bool:
    """Whether every condition of the section, and the random-init baseline it is measured
    against, has results for every seed of the scale (the baseline and the full-data condition
    are shared by many sections, so they alone do not count)."""
    seeds = set(s["scale"].seeds)
    return all(seeds <= set(s["results"].get(c, {}))
               for c in s["conditions"] + (pipeline.RANDOM,))


def section_files(claim_id: str) -> tuple[str, ...]:
    """The files of one section under reports/<scale>/, as paths relative to it."""
    out = (f"{claim_id}.md", f"{claim_id}.json", f"metrics/{claim_id}.json")
    if claim_id in FIGURES:
        out += (f"{FIGURES[claim_id][0]}.png", f"{FIGURES[claim_id][0]}.csv")
    return out


def _number(x: float) -> float | None:
    """A statistic as DVC shows it: to the precision the reports print, None for no value."""
    return None if math.isnan(x) else round(x, 2)


def metrics_record(s: dict) -> dict:
    """The claim's concise record for DVC (`reports/<scale>/metrics/<claim>.json`: one row per
    claim in `dvc metrics show`)."""
    est = s["estimate"]
    return {"statistic": _number(est.mean), "lo": _number(est.lo), "hi": _number(est.hi),
            "verdict": s["verdict"], "seeds": est.n, "margin": s["claim"].margin}


# ---------------------------------------------------------------- all or nothing

_WRITING: dict[str, Path] = {}  # scale -> its reports folder, while writing() stages them
_STAGING = ".{}.staging-"  # reports/.<scale>.staging-<pid>-<random>/: a write in progress


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def final(scale_name: str) -> Path:
    """reports/<scale>/ as the user knows it (not the staging copy `writing` writes in), for
    messages."""
    return _WRITING.get(scale_name) or paths.reports_dir() / scale_name


def _recover(out: Path, scale_name: str) -> None:
    """Clear what a writer of reports/<scale>/ (`out`) killed midway left: its staging folder,
    and, if it was killed between the two renames of the swap, the reports put back in place."""
    for stage in out.parent.glob(_STAGING.format(scale_name) + "*"):
        pid = stage.name.removeprefix(_STAGING.format(scale_name)).partition("-")[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue  # another writer, still at work
        if (stage / "old").is_dir() and not out.exists():
            os.rename(stage / "old", out)
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def writing(scale_name: str) -> Iterator[Path]:
    """reports/<scale>/ written all or nothing: inside, ITL_REPORTS points to a staging folder
    beside it that holds a copy of it (run records included), and the copy is swapped into
    place when everything is written; on any error reports/<scale>/ stays as it was and the
    copy is removed. A disk error (a full disk) is one StoreError naming the folder. Nested
    calls for the same scale write into the same copy."""
    if scale_name in _WRITING:
        yield paths.reports_dir() / scale_name
        return
    out = paths.reports_dir() / scale_name
    if out.is_symlink():  # write where it points, and keep the link
        out = out.resolve()
    root = paths.ensure_writable(out.parent)
    try:
        _recover(out, scale_name)
        stage_root = Path(tempfile.mkdtemp(
            prefix=_STAGING.format(scale_name) + f"{os.getpid()}-", dir=root))
    except OSError as e:
        raise paths.StoreError(f"cannot write the {scale_name} reports to {out} "
                               f"({e.strerror or e}): free space or permissions of {root}, "
                               "or set ITL_REPORTS to a writable folder") from e
    stage = stage_root / scale_name
    _WRITING[scale_name] = out
    try:
        try:
            if out.exists():
                shutil.copytree(out, stage, symlinks=True)
            stage.mkdir(exist_ok=True)
            with paths.environment(ITL_REPORTS=str(stage_root)):
                yield stage
            if out.exists():
                os.rename(out, stage_root / "old")
            try:
                os.rename(stage, out)
            except OSError:
                if (stage_root / "old").exists() and not out.exists():
                    os.rename(stage_root / "old", out)
                raise
        except (OSError, paths.StoreError) as e:
            cause = e.__cause__ if isinstance(e, paths.StoreError) else e
            why = (f"{cause.strerror}" + (f": {cause.filename}" if cause.filename else "")
                   if isinstance(cause, OSError) and cause.strerror else str(e))
            failed = cause.args[0] if isinstance(cause, shutil.Error) and cause.args else None
            if isinstance(failed, list) and failed:  # copytree: (src, dst, why) of every file
                why = failed[0][2] + (f"; and {len(failed) - 1} more files" if failed[1:]
                                      else "")
            raise paths.StoreError(
                f"cannot write the {scale_name} reports to {out} ({why}); they are left as "
                f"they were: free space or permissions of {root}, or set ITL_REPORTS to a "
                "writable folder") from e
    finally:
        _WRITING.pop(scale_name, None)
        shutil.rmtree(stage_root, ignore_errors=True)


def write_section(claim: claims.Claim, scale: scales.Scale) -> dict:
    """Render reports/<scale>/<section>.md (+ plot and its data, + JSON, + metrics) from the
    run store, or remove them when the store does not hold all of the section's results."""
    s = store_section(claim, scale)
    write_section_files(s, paths.reports_dir() / scale.name)
    return s


def write_section_files(s: dict, out: Path) -> None:
    """The files of section `s` under `out`; none (stale ones removed) without all results."""
    cid = s["claim"].id
    if not has_results(s):
        for name in section_files(cid):
            (out / name).unlink(missing_ok=True)
        return
    paths.ensure_writable(out)
    paths.atomic_write_text(out / f"{cid}.md", _markdown(s))
    if cid in FIGURES:
        name, figure = FIGURES[cid]
        fig = figure(s)
        _plot(s, fig, out / f"{name}.png")
        paths.atomic_write_text(out / f"{name}.csv", _plot_data(s, fig))
    est = s["estimate"]
    paths.atomic_write_json(out / f"{cid}.json", {
        "claim": cid, "verdict": s["verdict"], "metric": s["metric"],
        "statistic": {"mean": est.mean, "lo": est.lo, "hi": est.hi, "n": est.n},
        "results": {c: {str(k): v for k, v in r.items()} for c, r in s["results"].items()}})
    paths.atomic_write_json(out / "metrics" / f"{cid}.json", metrics_record(s))


def _records(folder: Path, kind: str, scale: scales.Scale) -> list[tuple[dict, dict]]:
    """(config, metrics) of every finished run of `kind` and the scale under `folder` (its
    runs carry the scale's key and protocol; pilots' runs are never a scale's)."""
    out = []
    for f in sorted((folder / kind).glob("*/metrics.json")):
        if not runs.is_run_name(f.parent.name):  # <hash>.corrupt-<time>: set aside, not a run
            continue
        try:
            cfg, m = runs.read_record(f.parent, kind)
        except runs.RunError as e:
            warnings.warn(f"itl: {e}; not used", RuntimeWarning, stacklevel=2)
            continue
        if (cfg.get("scale") == scale.key and cfg.get("protocol") == scale.protocol
                and not cfg.get("pilot")):
            out.append((cfg, m))
    return out


def run_records(scale: scales.Scale) -> list[tuple[str, dict, dict]]:
    """(kind, config, metrics) of every finished run of the scale in the run store."""
    return [(kind, cfg, m) for kind in runs.KINDS
            for cfg, m in _records(paths.runs_dir(), kind, scale)]


def _store_and_committed(scale: scales.Scale) -> list[tuple[str, dict, dict]]:
    """run_records, with the run records committed beside the report of the runs the store
    lacks (what a section rendered from those records is made of)."""
    got = run_records(scale)
    folder = committed_records(scale.name)
    if folder.is_dir():
        have = {m["run"] for _, _, m in got}
        got += [(kind, cfg, m) for kind in runs.KINDS
                for cfg, m in _records(folder, kind, scale) if m["run"] not in have]
    return got


def _timings(records: list[tuple[str, dict, dict]]) -> str:
    """Seconds per run, by kind of run and the device that ran it (from each run's metrics),
    and the sum of all: what the runs cost between them, each on the device it names."""
    groups: dict[tuple[str, str], list[float]] = {}
    for kind, cfg, m in records:
        what = "pre-training" if kind == "pretrain" else f"transfer: {cfg['method']}"
        groups.setdefault((what, m.get("device", "unknown")), []).append(m.get("seconds", 0.0))
    rows = [[what, dev, len(sec), claims.mean_std(sec), f"{max(sec):.0f}", f"{sum(sec):.0f}"]
            for (what, dev), sec in sorted(groups.items())]
    every = [s for sec in groups.values() for s in sec]
    return (tabulate(rows, ["run", "device", "runs", "seconds (mean ± std)", "max", "total"],
                     tablefmt="github")
            + f"\n\nAll {len(every)} runs: {sum(every):.0f} s ({sum(every) / 3600:.1f} h) "
            "between them, as each recorded its own; runs side by side overlap in wall time.")


def _source_top1(sections: list[dict]) -> str:
    """The source network's own numbers: top-1 after full-data pre-training, its train and
    validation top-1 and their gap, and what halving the images per class costs it (Section
    4's premise: a network that is not data-limited cannot answer what more data buys)."""
    out = ""
    for s in sections:
        full = s["results"].get(claims.FULL) or s["results"].get("images-per-class=1000")
        if full:
            top1 = claims.mean_std([r["source_top1"] for r in full.values()])
            out = (f"Source task ({s['scale'].source}, {s['scale'].pretrain.model}) top-1 "
                   f"after full-data pre-training: {top1}% over {len(full)} seeds.")
            tr, va, gap = claims.train_val_gap(s["results"])
            if tr.n:
                out += (f" Train top-1 (10,000 training images, eval mode) {tr.mean:.1f}, "
                        f"validation {va.mean:.1f}: gap {gap}.")
            break
    for s in sections:
        if "images-per-class=500" in s["results"]:
            cost = claims.halving_cost(s["results"])
            if cost.n:
                out += (f" Halving the images per class costs the source {cost} points of "
                        "validation top-1.")
            break
    return out + "\n\n" if out else ""


def _detection_note(scale: scales.Scale) -> str:
    skipped = _skipped_detection(scale)
    if not skipped:
        return ""
    return (f"\n\nDetection ({', '.join(f'`{t}`' for t in skipped)}) not run "
            f"(`ITL_DETECTION=off`): claims are judged on "
            f"`{pipeline.primary_metric(scale)}`.")


def store_section(claim: claims.Claim, scale: scales.Scale) -> dict:
    """Section `claim` from what the run store holds (no files written)."""
    return section(claim, scale, pipeline.results(
        scale, claim.conditions(scale), compute=False, probes=claim.probes(scale)))


def _every_claim(scale: scales.Scale, sections: list[dict]) -> list[dict]:
    """`sections`, completed from the run store with every other claim, in claims.CLAIMS order."""
    given = {s["claim"].id: s for s in sections}
    return [given[c.id] if c.id in given else store_section(c, scale)
            for c in claims.for_scale(scale).values()]


def summary_rows(sections: list[dict]) -> list[list[str]]:
    """The verdict table of the summary: one row per section with results."""
    return [[s["claim"].id, s["claim"].question, s["verdict"], str(s["estimate"]),
             f"{s['claim'].direction} {s['claim'].margin:g}",
             " / ".join(s["at_margin"][f] for f in claims.FACTORS),
             s["claim"].statement] for s in sections if has_results(s)]


SUMMARY_HEADERS = ["claim", "question", "verdict", "statistic (95% CI)", "margin",
                   "at 0.5x / 1x / 2x margin", "the paper's finding"]


def _protocol_label(scale: scales.Scale) -> str:
    return f"{scale.name} (protocol {scale.protocol}, claims v{scale.claims})"


def protocols_beside(scale: scales.Scale, sections: list[dict]) -> dict[str, list[dict]]:
    """{protocol: sections}: each earlier protocol's (scales.earlier), re-derived from the run
    records committed under reports/<earlier>/runs (where there are some), then `sections`,
    this protocol's."""
    root = final(scale.name).parent
    out = {_protocol_label(e): sections_from_records(e, root / e.name / "runs")
           for e in scales.earlier(scale) if (root / e.name / "runs").is_dir()}
    out[_protocol_label(scale)] = sections
    return out


def _verdicts_beside(protocols: dict[str, list[dict]]) -> str:
    """Markdown: each claim's verdict and statistic under every protocol, side by side."""
    table = forest.rows(protocols, has_results)
    order = list(dict.fromkeys(r["claim"] for r in table))
    rows = []
    for cid in order:
        mine = {r["protocol"]: r for r in table if r["claim"] == cid}
        row = [cid]
        for label in protocols:
            s = next((s for s in protocols[label] if s["claim"].id == cid), None)
            r = mine.get(label)
            row.append("no such claim" if r is None else "not run" if r["verdict"] == "not run"
                       else f"{r['verdict']}: {s['estimate']} (margin {s['claim'].margin:g})")
        rows.append(row)
    return ("Verdicts under each protocol of this scale (the earlier ones re-derived from their "
            "committed run records; each judged by its own claims version):\n\n"
            + tabulate(rows, ["claim", *protocols], tablefmt="github") + "\n\n")


def write_forest(scale: scales.Scale, protocols: dict[str, list[dict]], out: Path) -> None:
    """forest.png and its data, forest.csv: every claim's statistic, interval and margin under
    each protocol of the scale (`protocols_beside`)."""
    table = forest.rows(protocols, has_results)
    forest.plot(table, out / "forest.png",
                f"itl, scale {scale.name}: the claims' statistics under "
                + " and ".join(protocols))
    paths.atomic_write_text(out / "forest.csv", forest.to_csv(table))


def write_summary(scale: scales.Scale, sections: list[dict], wall_seconds: float | None) -> Path:
    """reports/<scale>/summary.md: verdicts of the sections that have results, the source
    task's top-1, and the seconds and device of every run they are made of; `wall_seconds` is
    the pytest session's (None when rendered from the run store, as `itl report` and DVC do).
    Claims missing from `sections` are looked up in the run store, so the summary shows what
    the store holds whichever sections a session ran."""
    out = paths.ensure_writable(paths.reports_dir() / scale.name)
    sections = _every_claim(scale, sections)
    ran = [s for s in sections if has_results(s)]
    skipped = [s["claim"].id for s in sections if not has_results(s)]
    protocols = protocols_beside(scale, sections)
    write_forest(scale, protocols, out)
    text = (f"# itl summary, scale `{scale.name}`\n\n"
            + tabulate(summary_rows(sections), SUMMARY_HEADERS, tablefmt="github")
            + (f"\n\nNot run (or not all of their conditions) at this scale yet: "
               f"{', '.join(skipped)}." if skipped else "")
            + _detection_note(scale)
            + "\n\n" + (_verdicts_beside(protocols) if len(protocols) > 1 else "")
            + "The statistics, their intervals and margins: `forest.png` (data: `forest.csv`)."
            + "\n\n" + _source_top1(ran)
            + "Seconds per run, as each run recorded them:\n\n"
            + _timings(_store_and_committed(scale))
            + f"\n\nRendered on {runs.provenance()['device']}, {os.cpu_count()} cores, "
            + f"{platform.platform()}. "
            + (f"Wall time of this pytest session: {wall_seconds:.0f} s.\n"
               if wall_seconds is not None else "Rendered from the run store.\n"))
    paths.atomic_write_text(out / "summary.md", text)
    return out / "summary.md"


def render(scale: scales.Scale, wall_seconds: float | None = None,
           records: bool = False) -> list[dict]:
    """reports/<scale>/ from the run store, written all or nothing (`writing`): every claim's
    section files (written, or removed when neither the store nor the run records committed
    beside the report hold all its results: `_completed`), no files of claims itl no longer
    has, and the summary; with `records`, also the run records they follow from
    (`export_runs`), so that the report and runs/ beside it never disagree."""
    with writing(scale.name) as out:
        if records:
            export_runs(scale)
        judges = claims.for_scale(scale)
        sections = _completed(scale, [store_section(c, scale) for c in judges.values()])
        for s in sections:
            write_section_files(s, out)
        known = {f for c in judges for f in section_files(c)}
        for f in [*out.glob("section*.md"), *out.glob("section*.json"),
                  *out.glob("metrics/*.json")]:
            if f.relative_to(out).as_posix() not in known:
                f.unlink()
        write_summary(scale, sections, wall_seconds)
    return sections


# ---------------------------------------------------------------- committed run records

SETTINGS = "settings.json"  # beside the exported records: the settings the report was made with


def _data_names(scale: scales.Scale) -> set[str]:
    """The data sets (without views or subset rules) a scale's conditions and targets name."""
    names = [scale.source, scale.extra or "", *scale.targets,
             *scales.SCALES[scale.name].detection]
    return {n.partition("|")[0].partition(":")[0] for n in names if n}


def committed_records(scale_name: str) -> Path:
    """Where the run records of a scale are committed beside its report (while `writing`
    stages it, the records as they are, which name the paths a user knows)."""
    return final(scale_name) / "runs"


def _completed(scale: scales.Scale, sections: list[dict]) -> list[dict]:
    """`sections` from the run store, each one the store lacks some results of taken instead
    from the run records committed beside the report where those hold them all (marked
    `from_records`): a run deleted from the store (to train it again) never takes its
    committed section with it."""
    folder = committed_records(scale.name)
    if all(has_results(s) for s in sections) or not folder.is_dir():
        return sections
    recorded = {r["claim"].id: r for r in sections_from_records(scale, folder)}
    out = []
    for s in sections:
        r = recorded.get(s["claim"].id)
        out.append({**r, "from_records": True} if not has_results(s) and r and has_results(r)
                   else s)
    return out


def records_not_in_store(scale: scales.Scale) -> list[str]:
    """The run records committed under reports/<scale>/runs ("kind/hash") of runs the run
    store does not hold (deleted to train them again, or a store that never had them): kept by
    `export_runs`, never deleted."""
    folder = committed_records(scale.name)
    stored = {m["run"] for _, _, m in run_records(scale)}
    return [f"{kind}/{d.name}" for kind in runs.KINDS for d in sorted((folder / kind).glob("*"))
            if runs.is_run_name(d.name) and f"{kind}/{d.name}" not in stored]


def export_runs(scale: scales.Scale) -> Path:
    """reports/<scale>/runs/: the run store's records of the scale, to commit beside the
    report: `<kind>/<hash>/` with config, metrics and per-epoch log of every run (no
    checkpoints); `data/<name>/` with the fingerprint and class list of each prepared data set
    the scale uses (what its conditions and run configs are derived from, a few kB); and
    `settings.json` (ITL_DETECTION). From these alone `sections_from_records` re-derives the
    reports, without data or run store. A committed record is never deleted: one of a run the
    store lacks is kept as it is (`records_not_in_store`), so deleting a run to train it again
    loses nothing; it is refused where the kept records were exported with another
    ITL_DETECTION. Written all or nothing (`writing`)."""
    with writing(scale.name) as staged:
        out = staged / "runs"
        kept = records_not_in_store(scale)
        settings = committed_records(scale.name) / SETTINGS
        if kept and settings.is_file():
            was = json.loads(settings.read_text()).get("detection")
            if was != scales.detection_setting():
                raise ValueError(
                    f"{settings} says the run records were exported with ITL_DETECTION={was}, "
                    f"and {len(kept)} of them ({kept[0]}...) are not in the run store "
                    f"{paths.runs_dir()} to export again: set ITL_DETECTION={was}, or `itl "
                    f"runs import --scale {scale.name}` and train them under "
                    f"ITL_DETECTION={scales.detection_setting()} (nothing written)")
        for _, _, m in run_records(scale):
            d = paths.runs_dir() / m["run"]
            for f in runs.RECORD_FILES:
                if (d / f).exists():
                    paths.atomic_write_text(paths.ensure_writable(out / m["run"]) / f,
                                            (d / f).read_text())
        export_data_records(scale, out)
    return paths.reports_dir() / scale.name / "runs"


def export_data_records(scale: scales.Scale, out: Path) -> None:
    """out/data/<name>/{fingerprint*,wnids.txt} (every size's fingerprint) of the prepared data
    sets of the scale that have them, and out/settings.json."""
    for name in sorted(_data_names(scale)):
        folder = paths.data_dir() / name
        for f in sorted(p.name for p in folder.glob("fingerprint*")) + ["wnids.txt"]:
            src = folder / f
            if src.is_file():
                paths.atomic_write_text(paths.ensure_writable(out / "data" / name) / f,
                                        src.read_text())
    paths.atomic_write_json(out / SETTINGS, {"detection": scales.detection_setting()})


@contextlib.contextmanager
def _reading_records(folder: Path, scale: scales.Scale) -> Iterator[scales.Scale]:
    """ITL_RUNS at the records, ITL_DATA at their data files (if any: smoke's data sets are
    generated and need none) and ITL_DETECTION as recorded, restored afterwards; yields `scale`
    with the detection targets of that setting (scales.with_detection), which its records were
    exported with."""
    settings = folder / SETTINGS
    env = {"ITL_RUNS": str(folder)}
    if (folder / "data").is_dir():
        env["ITL_DATA"] = str(folder / "data")
    if settings.is_file():
        env["ITL_DETECTION"] = json.loads(settings.read_text())["detection"]
    with paths.environment(**env):
        yield scales.with_detection(scale, scales.detection_setting())


def _normal(obj: object) -> object:
    return json.loads(json.dumps(obj))


def _pretrain_record(scale: scales.Scale, pretrains: list[tuple[dict, dict]], cond: str,
                     seed: int) -> dict | None:
    """The metrics of the recorded pre-training of (cond, seed): the record whose config is
    the one pipeline.pretrain_config writes, up to the manifest's digest (computing it needs
    the images), with the recorded data fingerprint standing in for it."""
    want = _normal(pipeline.pretrain_key(scale, cond, seed))
    hits = [m for cfg, m in pretrains if {k: v for k, v in cfg.items() if k != "manifest"} == want]
    if len(hits) > 1:
        raise ValueError(f"{len(hits)} recorded pre-trainings of {cond} seed {seed} differ only "
                         f"in their manifest: {', '.join(m['run'] for m in hits)}")
    return hits[0] if hits else None


def _results_in_records(scale: scales.Scale, conditions: tuple[str, ...],
                        probes: tuple[tuple[str, str], ...]) -> dict:
    """pipeline.results(compute=False) over the records in ITL_RUNS (inside _reading_records,
    with the scale it yields): pre-trainings matched by config (their manifests need the
    images), transfers looked up by pipeline's own keys."""
    pretrains = _records(paths.runs_dir(), "pretrain", scale)
    return pipeline.results(
        scale, conditions, compute=False, probes=probes,
        pretrained=lambda cond, seed: _pretrain_record(scale, pretrains, cond, seed))


def results_from_records(scale: scales.Scale, folder: Path, conditions: tuple[str, ...],
                         probes: tuple[tuple[str, str], ...] = ()) -> dict:
    """{condition: {seed: metrics}} as pipeline.results(compute=False) gives it, from the run
    records under `folder` (`export_runs`) instead of the run store."""
    with _reading_records(folder, scale) as recorded:
        return _results_in_records(recorded, conditions, probes)


def sections_from_records(scale: scales.Scale, folder: Path) -> list[dict]:
    """Every claim's section (statistic, interval, verdict, table), from the run records under
    `folder` alone, with the settings they were exported with."""
    with _reading_records(folder, scale) as recorded:
        return [section(c, recorded, _results_in_records(recorded, c.conditions(recorded),
                                                         c.probes(recorded)))
                for c in claims.for_scale(recorded).values()]


# ---------------------------------------------------------------- README

README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def scale_sections(scale: scales.Scale) -> list[dict]:
    """A scale's sections as the README states them: re-derived from the run records committed
    under reports/<scale>/runs/ where there are some, else from the run store (none when the
    store holds no run of the scale)."""
    records = paths.reports_dir() / scale.name / "runs"
    if records.is_dir():
        return sections_from_records(scale, records)
    if not run_records(scale):
        return []
    return [store_section(c, scale) for c in claims.for_scale(scale).values()]


README_SCALES = ("smoke", "small-v2", "small", "paper")  # the README table's columns, in order
_README_FIXED = ("claim", "the paper's finding", "command")  # its columns that are not scales


def readme_table(scale_names: tuple[str, ...] = README_SCALES) -> str:
    """The README's results table: a column per scale with results (from its committed run
    records, else the run store), a verdict per claim, "not run" where a claim has none."""
    verdicts = {}
    for name in scale_names:
        got = {s["claim"].id: s["verdict"] for s in scale_sections(scales.get(name))
               if has_results(s)}
        if got:
            verdicts[name] = got
    ran = list(verdicts)
    rows = []
    for c in claims.CLAIMS.values():
        row = [f"{c.id}: {c.question}", c.statement]
        row += [verdicts[s].get(c.id, "not run") for s in ran]
        row.append(f"`pytest experiments -k {c.id} --scale {ran[0] if ran else 'smoke'}`")
        rows.append(row)
    return tabulate(rows, ["claim", "the paper's finding", *ran, "command"], tablefmt="github")


def _verdict_cells(table: str) -> dict[str, dict[str, str]]:
    """{scale column: {claim id: cell}} of a results table as readme_table writes it."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("|")]
    if not rows:
        return {}
    head = rows[0]
    return {col: {r[0].partition(":")[0]: r[i] for r in rows[2:] if len(r) == len(head)}
            for i, col in enumerate(head) if col not in _README_FIXED}


def _lost(readme: Path, old: str, new: str) -> str | None:
    """What rewriting the README's results table `old` as `new` would lose, in one line: a
    scale column, or a verdict that would become "not run" (the reports or run records it came
    from are missing here); None when nothing."""
    before, after = _verdict_cells(old), _verdict_cells(new)
    gone = [c for c in before if c not in after]
    fewer = [f"{c} {cid}" for c in before if c in after for cid, v in before[c].items()
             if v != "not run" and after[c].get(cid, "not run") == "not run"]
    if not gone and not fewer:
        return None
    where = ", ".join(f"{committed_records(c)} (or the run store {paths.runs_dir()})"
                      for c in [*gone, *dict.fromkeys(f.split()[0] for f in fewer)])
    what = "; ".join(([f"its column(s) {', '.join(gone)} would be dropped"] if gone else [])
                     + ([f"{', '.join(fewer)} would become 'not run'"] if fewer else []))
    return (f"{readme}: the results table would lose what it states ({what}): the run records "
            f"it was made from are missing or incomplete at {where}; set ITL_REPORTS to the "
            "reports that hold them (or delete the table between the markers to start it "
            "over); nothing written")


def update_readme(readme: Path) -> None:
    """Rewrite the results table between the README's markers, only from complete inputs: a
    column or verdict it holds that the reports here cannot give is a ValueError saying what
    is missing, and nothing is written."""
    text = readme.read_text()
    head, _, rest = text.partition(README_BEGIN)
    old, end, tail = rest.partition(README_END)
    if not rest or not end:
        raise ValueError(f"{readme} needs both {README_BEGIN} and, after it, {README_END} "
                         "around the results table: add the missing marker (nothing written)")
    table = readme_table()
    lost = _lost(readme, old, table)
    if lost:
        raise ValueError(lost)
    paths.atomic_write_text(readme, f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")


# ---------------------------------------------------------------- the first run's closing table

REPOSITORY_REPORTS = Path(__file__).resolve().parent.parent / "reports"  # committed with the code
BESIDE = ("smoke", "small-v2", "small")  # the scales `itl reproduce` ends by showing


def summary_verdicts(summary: Path) -> dict[str, str]:
    """{claim id: verdict} of the verdict table of a summary.md (write_summary); {} when the
    file is absent."""
    if not summary.is_file():
        return {}
    out = {}
    for line in summary.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == len(SUMMARY_HEADERS) and cells[0] in claims.CLAIMS:
            out[cells[0]] = cells[2]
    return out


def verdicts_beside(scale_name: str, scale_names: tuple[str, ...] = BESIDE) -> str:
    """What `itl reproduce` ends with: a table claim | one column per scale, the verdicts of
    `scale_name` from the summary this run rendered (ITL_REPORTS) and every other scale's from
    the summary committed in the repository's reports/, then a line per column saying where it
    comes from. A claim a summary does not judge is "not run"."""
    names = (scale_name,) + tuple(n for n in scale_names if n != scale_name)
    where = {n: (paths.reports_dir() if n == scale_name else REPOSITORY_REPORTS) / n
             / "summary.md" for n in names}
    got = {n: summary_verdicts(f) for n, f in where.items()}
    rows = [[cid] + [got[n].get(cid, "not run") for n in names] for cid in claims.CLAIMS]
    lines = [tabulate(rows, ["claim", *names], tablefmt="github"), ""]
    for n in names:
        what = ("this run" if n == scale_name else "committed; CI re-derives it from the run "
                f"records in {where[n].parent / 'runs'}" if (where[n].parent / "runs").is_dir()
                else "committed")
        lines.append(f"{n}: {where[n]} ({what}" + ("" if where[n].is_file() else "; absent")
                     + ")")
    if "smoke" in names:
        lines.append("smoke data is generated: its verdicts check the machinery and are no "
                     "evidence about the paper; small-v2 and small train on real data "
                     "(README, Scales)")
    return "\n".join(lines)
