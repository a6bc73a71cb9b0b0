"""`itl ...`: thin commands over the library -- parse, call, print.

  itl reproduce [--scale S] [-k EXPR] [-n N]    run the experiment tests, render reports/, and
                                                print its verdicts beside the committed ones
  itl pretrain --subset RULE --seed N [--scale S]   train (or reuse) one run; prints its folder
  itl report [--scale S] [--runs] [--readme R]  render reports/<scale>/ from the run store
  itl runs import [--scale S] [--from DIR]      go on from committed run records (no retraining)
  itl labels DATASET (--scheme down-up|up-down --classes N | --without TARGET | --list |
                      --describe)
  itl subsets RULE --seed N [--scale S]         write one subset manifest; prints its path
  itl data prepare NAME --from PATH             verify, unpack and cache a real data set
  itl data status [--scale S]                   which data sets are here, verified, or missing
  itl wordnet build [--wordnet DIR]             regenerate the compact WordNet 3.0 hierarchy
  itl grid [--scale S] [-k CLAIMS] --launcher local|slurm [--partition P] [--gpus-per-job N]
           [--dry-run | --status]                 the whole grid as jobs (submitit; itl.grid)

--scale defaults to ITL_SCALE, else smoke. A user error is one line on stderr,
`itl: error: <what> <the fix>`, and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from importlib import resources
from pathlib import Path

from itl import (claims, data, datasets, errors, labels, paths, pipeline, report, runs,
                 scales, subsets, wordnet)
from itl.datasets import status
from itl.datasets.entry import DETECTION, PREPARED
from itl.datasets.voc import read_voc

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
# the grid-as-jobs check (the whole grid again, through `itl grid`): CI runs it (.ci/run), the
# first run leaves it out, as its cost doubles the smoke grid's
GRID_CHECK = EXPERIMENTS / "test_grid_local.py"


class _Parser(argparse.ArgumentParser):
    """argparse with itl's one-line errors: `itl: error: ...; see itl CMD --help`, exit 2."""

    def error(self, message: str):
        self.exit(2, f"itl: error: {message}; see `{self.prog} --help`\n")


def _scale(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default=None,
                   help="smoke (default, or the ITL_SCALE variable) | small | imagenet64 | paper")


def _whole(lo: int, hi: int, what: str):
    """An argparse type: a whole number from lo to hi."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = lo - 1
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}: use a whole number from "
                                             f"{lo} to {hi}")
        return n
    return parse


SEED = _whole(0, 2**32 - 1, "a seed")


def _workers(text: str) -> str:
    if text in ("auto", "logical"):
        return text
    return str(_whole(0, 1024, "a number of workers (or auto)")(text))


def cmd_reproduce(a: argparse.Namespace) -> int:
    import pytest

    from itl import pytest_plugin
    if not EXPERIMENTS.is_dir():
        raise FileNotFoundError(f"experiment tests not found at {EXPERIMENTS}: run itl from a "
                                "checkout of the repository (pip install -e .)")
    why = pytest_plugin.missing_data(scales.get(a.scale))
    if why:  # every experiment would be skipped: say so once, before pytest starts
        raise data.DataError(why)
    args = [str(EXPERIMENTS), "--scale", a.scale, "-p", "no:cacheprovider",
            "--ignore", str(GRID_CHECK)]
    if a.k:
        args += ["-k", a.k]
    if a.n != "0":
        args += ["-n", a.n]
    code = pytest.main(args)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise ValueError(f"-k {a.k!r} selects no experiment: the sections are "
                         f"{', '.join(claims.CLAIMS)} (e.g. -k section4)")
    print("\n" + report.verdicts_beside(a.scale))  # this run's verdicts beside the committed
    return code


def cmd_pretrain(a: argparse.Namespace) -> int:
    m = pipeline.pretrain(scales.get(a.scale), a.subset, a.seed)
    print(f"source top-1 {m['source_top1']:.2f}% ({m['classes']} classes, "
          f"{m['train_images']} images, {m['steps']} steps)")
    print(paths.runs_dir() / m["run"])
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    if a.readme:
        if not Path(a.readme).is_file():
            raise FileNotFoundError(f"--readme {a.readme}: " + (
                "a folder, not a file" if Path(a.readme).is_dir() else "no such file")
                + ": pass the README whose results table to rewrite (e.g. README.md)")
        report.update_readme(Path(a.readme))
        print(a.readme)
        return 0
    scale = scales.get(a.scale)
    out = paths.reports_dir() / scale.name
    with report.writing(scale.name):  # records and report: all written, or none
        kept = report.records_not_in_store(scale) if a.runs else []
        sections = report.render(scale, records=a.runs)
    if a.runs:
        print(out / "runs")
    if kept:
        print(f"kept {len(kept)} run records under {out / 'runs'} that the run store "
              f"{paths.runs_dir()} lacks (committed records are never deleted; `itl runs "
              f"import --scale {a.scale}` copies them back, or delete one by hand to drop "
              f"it): {', '.join(kept[:5])}" + (f" and {len(kept) - 5} more" if len(kept) > 5
                                                else ""))
    for s in sections:
        print(f"{s['claim'].id}: " + (f"{s['verdict']} {s['estimate']}"
                                      if report.has_results(s) else "not run")
              + (f" (from the run records under {out / 'runs'}: the run store lacks some of "
                 "its runs)" if s.get("from_records") else ""))
    print(out / "summary.md")
    return 0


def cmd_runs_import(a: argparse.Namespace) -> int:
    folder = Path(a.source) if a.source else paths.reports_dir() / a.scale / "runs"
    done, there = runs.import_records(folder, scales.get(a.scale), names={
        (s.key, s.protocol): n for n, s in scales.SCALES.items()})
    print(f"imported {len(done)} runs from {folder} into {paths.runs_dir()} "
          f"({len(there)} already there)")
    return 0


def cmd_labels(a: argparse.Namespace) -> int:
    h = wordnet.load()
    leaves = labels.dataset_leaves(a.dataset)
    if a.describe:
        print(labels.describe(h, leaves, a.dataset))
        return 0
    if a.without:
        for w in labels.without_target(h, leaves, a.without):
            print(f"{w}\t{h.lemma(w)}")
        return 0
    schemes = [a.scheme] if a.scheme else list(wordnet.SCHEMES)
    if a.list or a.classes is None:
        for s in schemes:
            print(f"{s}\t" + " ".join(map(str, wordnet.levels(h, leaves, s))))
        return 0
    lv = wordnet.levels(h, leaves, a.scheme or "down-up")
    if a.classes not in lv:
        raise ValueError(f"no {a.scheme or 'down-up'} level of {a.dataset} has {a.classes} "
                         f"classes; available: {', '.join(map(str, lv))}")
    for leaf, merged in lv[a.classes].items():
        print(f"{leaf}\t{merged}\t{h.lemma(merged)}")
    return 0


def cmd_subsets(a: argparse.Namespace) -> int:
    m = pipeline.manifest(scales.get(a.scale), a.rule, a.seed)
    print(subsets.save(m))
    return 0


def cmd_wordnet(a: argparse.Namespace) -> int:
    out = Path(a.out) if a.out else Path(str(resources.files("itl.resources"))) / \
        wordnet.HIERARCHY_FILE
    text = wordnet.format_hierarchy(wordnet.build_hierarchy(labels.hierarchy_wnids(),
                                                            Path(a.wordnet)))
    paths.atomic_write_text(out, text)
    print(out)
    return 0


def cmd_data_prepare(a: argparse.Namespace) -> int:
    if not Path(a.source).exists():
        raise FileNotFoundError(f"--from {a.source}: no such file or folder: pass a folder of "
                                "shards with SHA256SUMS, the original archive, or its unpacked "
                                "folder")
    out = datasets.prepare(a.name, Path(a.source), a.size)
    entry = datasets.get(a.name)
    for split in entry.eval_splits() if entry.kind == DETECTION else ("train", "test"):
        if entry.kind == DETECTION:  # VOC files, no image cache
            anns = read_voc(out, split)
            role = "fine-tuned on" if split == entry.eval_splits()[0] else "scored on"
            print(f"{a.name} {split} ({role}): {len(anns)} images, "
                  f"{sum(len(x.labels) for x in anns)} boxes")
            continue
        images = data.load(a.name, split, a.size)
        print(f"{a.name} {split}: {len(images)} images, {len(images.classes)} classes, "
              f"{tuple(images.x.shape[1:])}")
    print(out)
    return 0


def _rate(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = 0.0
    if not (x > 0 and math.isfinite(x)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a throughput: give images per second "
                                         "of one GPU, a positive finite number (e.g. 10000)")
    return x


def cmd_grid(a: argparse.Namespace) -> int:
    chosen = {scales.SEEDS_VARIABLE: a.seeds, scales.SCHEDULE_VARIABLE: a.schedule}
    # read by scales.get (in _grid) and carried to every job it submits, which resolves its
    # scale again under them
    with paths.environment(**{k: v for k, v in chosen.items() if v is not None}):
        return _grid(a)


def _grid(a: argparse.Namespace) -> int:
    from tabulate import tabulate

    from itl import grid
    ids = grid.select(a.k)
    scale = scales.get(a.scale)  # with cmd_grid's --seeds and --schedule
    if a.status:
        print(f"itl grid, scale {scale.name}: record in {grid.folder(scale.name)}")
        print(tabulate(grid.status(scale, ids), ["condition", "seed", "state", "job",
                                                   "reason"], tablefmt="github"))
        return 0
    launch = grid.Launch(launcher=a.launcher, partition=a.partition,
                         gpus_per_job=a.gpus_per_job, cpus_per_task=a.cpus_per_task,
                         mem_gb=a.mem_gb, timeout_min=a.timeout_min,
                         array_parallelism=a.array_parallelism, parallel=a.jobs)
    if a.dry_run:
        print(grid.plan(scale, launch, ids, a.images_per_second))
        return 0
    subs = grid.submit(scale, launch, ids, echo=lambda line: print(line, flush=True))
    if launch.launcher == "local":
        rows = grid.status(scale, ids)
        left = [r for r in rows if r[2] not in (grid.DONE, "")]
        print(f"itl grid: {len(rows) - len(left)} of {len(rows)} jobs done"
              + (f"; not done: {', '.join(f'{r[0]} seed {r[1]} ({r[2]})' for r in left)}"
                 if left else ""))
        return 1 if left and subs else 0
    return 0


def cmd_data_status(a: argparse.Namespace) -> int:
    if a.only is not None:
        scales.get(a.only)  # an unknown scale is a ValueError naming the scales
    for line in status.lines(a.only):
        print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="itl", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           help=", ".join(["reproduce", "pretrain", "report", "runs",
                                           "labels", "subsets", "data", "wordnet", "grid"]))
    r = sub.add_parser("reproduce", help="run the experiment tests, render reports/")
    _scale(r)
    r.add_argument("-k", default="", help="pytest -k expression, e.g. section4")
    r.add_argument("-n", default="2", type=_workers, help="pytest-xdist workers (0: none)")
    r.set_defaults(fn=cmd_reproduce)
    t = sub.add_parser("pretrain", help="train (or reuse) one pre-training run")
    _scale(t)
    t.add_argument("--subset", default="full", help="full | images-per-class=N")
    t.add_argument("--seed", type=SEED, default=0)
    t.set_defaults(fn=cmd_pretrain)
    o = sub.add_parser("report", help="render reports/<scale>/ from the run store")
    _scale(o)
    o.add_argument("--readme", help="instead, rewrite the results table of this README from "
                   "reports/")
    o.add_argument("--runs", action="store_true", help="also copy every run's config, metrics "
                   "and log (no checkpoints) to reports/<scale>/runs/, to commit with the report "
                   "(records of runs the store lacks are kept, never deleted)")
    o.set_defaults(fn=cmd_report)
    rs = sub.add_parser("runs", help="the run store: import committed run records")
    rsub = rs.add_subparsers(dest="action", required=True, metavar="ACTION", help="import")
    ri = rsub.add_parser("import", help="copy run records (config, metrics, log; no "
                         "checkpoints) into ITL_RUNS, so lookups and claims use them and only "
                         "what they lack is trained")
    _scale(ri)
    ri.add_argument("--from", dest="source", default=None,
                    help="the records' folder (default reports/<scale>/runs); records of "
                    "another scale are refused")
    ri.set_defaults(fn=cmd_runs_import)
    lb = sub.add_parser("labels", help="WordNet label sets of a data set")
    lb.add_argument("dataset")
    lb.add_argument("--scheme", choices=list(wordnet.SCHEMES))
    what = lb.add_mutually_exclusive_group()
    what.add_argument("--classes", type=_whole(1, 10**6, "a class count"))
    what.add_argument("--without", help="keep the classes under none of a target's synsets: "
                      + ", ".join(labels.TARGET_SYNSETS))
    what.add_argument("--list", action="store_true")
    what.add_argument("--describe", action="store_true",
                      help="levels, the analogues of the paper's sets, and the 50/50 splits")
    lb.set_defaults(fn=cmd_labels)
    s = sub.add_parser("subsets", help="write one subset manifest")
    _scale(s)
    s.add_argument("rule", help=" | ".join(subsets.RULES))
    s.add_argument("--seed", type=SEED, default=0)
    s.set_defaults(fn=cmd_subsets)
    d = sub.add_parser("data", help="prepare real data sets; which are here and verified")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION",
                            help="prepare, status")
    dp = dsub.add_parser("prepare", help="verify, unpack and cache a real data set")
    dp.add_argument("name", help=" | ".join(datasets.names(PREPARED)))
    dp.add_argument("--from", dest="source", required=True,
                    help="a folder of shards with SHA256SUMS, the original archive, or a folder")
    dp.add_argument("--size", type=_whole(8, 1024, "an image size"), default=None,
                    help="cached image size in pixels (default 64; imagenet-1k: 256 only)")
    dp.set_defaults(fn=cmd_data_prepare)
    ds = dsub.add_parser("status", help="every data set of every scale: present and verified, "
                         "failing verification, or missing (and how to prepare it)")
    ds.add_argument("--scale", dest="only", default=None,
                    help="only this scale's data sets (smoke | small | paper); default: all")
    ds.set_defaults(fn=cmd_data_status)
    w = sub.add_parser("wordnet", help="regenerate the compact WordNet 3.0 hierarchy")
    w.add_argument("action", choices=["build"])
    w.add_argument("--wordnet", default=str(wordnet.default_wordnet_dir()))
    w.add_argument("--out")
    w.set_defaults(fn=cmd_wordnet)
    g = sub.add_parser("grid", help="the whole grid (each pre-training once, with its "
                       "transfers) as jobs: here or on Slurm (submitit)")
    _scale(g)
    g.add_argument("-k", default="", help="only these claims: parts of their ids, comma "
                   "separated (e.g. section4,section6); default all")
    what = g.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="list every job, its state and "
                      "projected GPU-hours (and the sbatch file); submit nothing")
    what.add_argument("--status", action="store_true", help="what ran, what is running, what "
                      "failed and why, from the grid's record in the run store")
    g.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: this machine, --jobs at once (default); slurm: one job array")
    g.add_argument("--partition", help="Slurm partition (--launcher slurm)")
    g.add_argument("--gpus-per-job", type=_whole(1, 64, "a number of GPUs"), default=1,
                   help="GPUs of one job, one task each (DDP pre-training); default 1")
    g.add_argument("--cpus-per-task", type=_whole(1, 1024, "a number of CPU cores"), default=8,
                   help="Slurm: CPU cores per task (default 8)")
    g.add_argument("--mem-gb", type=_whole(1, 1 << 20, "memory in GB"), default=None,
                   help="Slurm: memory per node in GB (default: the partition's)")
    g.add_argument("--timeout-min", type=_whole(1, 60 * 24 * 365, "minutes"), default=24 * 60,
                   help="wall limit of one attempt (default 1440); a job reaching it requeues "
                   "itself and resumes")
    g.add_argument("--array-parallelism", type=_whole(1, 100_000, "a number of jobs"),
                   default=64, help="Slurm: array jobs running at once (default 64)")
    g.add_argument("--jobs", type=_whole(1, 1024, "a number of jobs"), default=2,
                   help="local: jobs running at once (default 2)")
    g.add_argument("--images-per-second", type=_rate, default=None,
                   help="one GPU's pre-training throughput for --dry-run where no benchmark "
                   "record (reports/benchmarks/throughput-<scale>-cuda.json) is there")
    g.add_argument("--seeds", choices=list(scales.REPLICATES), default=None,
                   help="what a seed replicates (ITL_SEEDS): pre-training (each seed its own "
                   "pre-training) or fine-tuning (one pre-training per condition, each seed "
                   "another fine-tuning of it); default: the scale's (paper: fine-tuning)")
    g.add_argument("--schedule", choices=list(scales.BUDGETS), default=None,
                   help="the subsets' schedule (ITL_SCHEDULE): the full source's iterations, "
                   "or its epochs of each subset's own images; default: the scale's")
    g.set_defaults(fn=cmd_grid)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        if hasattr(a, "scale"):
            a.scale = scales.default_name() if a.scale is None else a.scale
        rc = a.fn(a)
        sys.stdout.flush()  # here, not at exit: a reader that left is a BrokenPipeError below
        return rc
    except errors.EXPECTED as e:
        if isinstance(e, BrokenPipeError):  # `itl labels ... | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        print(f"itl: error: {errors.one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("itl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
