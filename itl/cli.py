"""`itl ...`: thin commands over the library -- parse, call, print.

  itl reproduce [--scale S] [-k EXPR] [-n N]    run the experiment tests and render reports/
  itl pretrain --subset RULE --seed N [--scale S]   train (or reuse) one run; prints its folder
  itl report [--scale S] [--runs] [--readme R]  render reports/<scale>/ from the run store
  itl labels DATASET (--scheme down-up|up-down --classes N | --without TARGET | --list |
                      --describe)
  itl subsets RULE --seed N [--scale S]         write one subset manifest; prints its path
  itl data prepare NAME --from PATH             verify, unpack and cache a real data set
  itl wordnet build [--wordnet DIR]             regenerate the compact WordNet 3.0 hierarchy
"""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from itl import claims, data, labels, paths, pipeline, report, scales, subsets, wordnet

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def _scale(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="smoke", help="smoke (default) | small | paper")


def cmd_reproduce(a: argparse.Namespace) -> int:
    import pytest

    if not EXPERIMENTS.is_dir():
        raise FileNotFoundError(f"experiment tests not found at {EXPERIMENTS}: run itl from a "
                                "checkout of the repository (pip install -e .)")
    scales.get(a.scale)
    args = [str(EXPERIMENTS), "--scale", a.scale, "-p", "no:cacheprovider"]
    if a.k:
        args += ["-k", a.k]
    if a.n != "0":
        args += ["-n", a.n]
    return pytest.main(args)


def cmd_pretrain(a: argparse.Namespace) -> int:
    m = pipeline.pretrain(a.scale, a.subset, a.seed)
    print(f"source top-1 {m['source_top1']:.2f}% ({m['classes']} classes, "
          f"{m['train_images']} images, {m['steps']} steps)")
    print(paths.runs_dir() / m["run"])
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    if a.readme:
        report.update_readme(Path(a.readme))
        print(a.readme)
        return 0
    sections = [report.write_section(c, a.scale) for c in claims.CLAIMS.values()]
    path = report.write_summary(a.scale, sections, None)
    if a.runs:
        print(report.export_runs(a.scale))
    for s in sections:
        print(f"{s['claim'].id}: " + (f"{s['verdict']} {s['estimate']}"
                                      if report.has_results(s) else "not run"))
    print(path)
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


def cmd_data(a: argparse.Namespace) -> int:
    from itl import prepare
    out = prepare.prepare(a.name, Path(a.source), a.size)
    for split in ("train", "test"):
        if a.name == "bccd":  # detection: VOC files, no image cache
            from itl import detection
            anns = detection.read_voc(out, split)
            print(f"{a.name} {split}: {len(anns)} images, "
                  f"{sum(len(x.labels) for x in anns)} boxes")
            continue
        images = prepare.load(a.name, split, a.size)
        print(f"{a.name} {split}: {len(images)} images, {len(images.classes)} classes, "
              f"{tuple(images.x.shape[1:])}")
    print(out)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="itl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reproduce", help="run the experiment tests, render reports/")
    _scale(r)
    r.add_argument("-k", default="", help="pytest -k expression, e.g. section4")
    r.add_argument("-n", default="2", help="pytest-xdist workers (0: none)")
    r.set_defaults(fn=cmd_reproduce)
    t = sub.add_parser("pretrain", help="train (or reuse) one pre-training run")
    _scale(t)
    t.add_argument("--subset", default="full", help="full | images-per-class=N")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(fn=cmd_pretrain)
    o = sub.add_parser("report", help="render reports/<scale>/ from the run store")
    _scale(o)
    o.add_argument("--readme", help="instead, rewrite the results table of this README from "
                   "reports/")
    o.add_argument("--runs", action="store_true", help="also copy every run's config, metrics "
                   "and log (no checkpoints) to reports/<scale>/runs/, to commit with the report")
    o.set_defaults(fn=cmd_report)
    lb = sub.add_parser("labels", help="WordNet label sets of a data set")
    lb.add_argument("dataset")
    lb.add_argument("--scheme", choices=list(wordnet.SCHEMES))
    lb.add_argument("--classes", type=int)
    lb.add_argument("--without", help="keep the classes under none of a target's synsets: "
                    + ", ".join(labels.TARGET_SYNSETS))
    lb.add_argument("--list", action="store_true")
    lb.add_argument("--describe", action="store_true",
                    help="levels, the analogues of the paper's sets, and the 50/50 splits")
    lb.set_defaults(fn=cmd_labels)
    s = sub.add_parser("subsets", help="write one subset manifest")
    _scale(s)
    s.add_argument("rule", help=" | ".join(subsets.RULES))
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_subsets)
    dp = sub.add_parser("data", help="prepare a real data set (small scale)")
    dp.add_argument("action", choices=["prepare"])
    dp.add_argument("name", help="tiny-imagenet-200 | 15-scene | cifar-10")
    dp.add_argument("--from", dest="source", required=True,
                    help="a folder of shards with SHA256SUMS, the original archive, or a folder")
    dp.add_argument("--size", type=int, default=64, help="cached image size in pixels")
    dp.set_defaults(fn=cmd_data)
    w = sub.add_parser("wordnet", help="regenerate the compact WordNet 3.0 hierarchy")
    w.add_argument("action", choices=["build"])
    w.add_argument("--wordnet", default=str(wordnet.default_wordnet_dir()))
    w.add_argument("--out")
    w.set_defaults(fn=cmd_wordnet)
    return p


EXPECTED = (data.DataError, subsets.SubsetError, paths.StoreError, ValueError, KeyError,
            FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        return a.fn(a)
    except EXPECTED as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"itl: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
