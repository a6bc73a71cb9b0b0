"""The small scale v3 pilot (issue 21): the full network and random init only, seed 0, on
VOC-CLS (PASCAL VOC 2007 classification, train -> val), to choose the fine-tuning recipe that
protocol v3 then fixes for every condition. Every run it makes carries "pilot": true in its key,
so none is ever read by a claim.

    python scripts/pilot_small_v3.py pretrain            # the full network, seed 0
    python scripts/pilot_small_v3.py sweep --part random  # fine-tunings of random init
    python scripts/pilot_small_v3.py sweep --part full    # ... of the pre-trained network
    python scripts/pilot_small_v3.py table               # what the run store holds, as a table
    python scripts/pilot_small_v3.py detect --part full  # VOC-DET (docs/claims-v3.md's rule)

The grid of recipes is written here before any of it ran: SGD momentum 0.9, weight decay 5e-4,
batch 64, flip + 4 px crop, lr dropped by 10 at 1/2 and 3/4 (itl's fine-tuning schedule), at
lr 0.01 and 0.04, for 25, 50, 100, 200 epochs at 32 px (the pre-training's size), and the
shortest at 64 px; one fine-tuning each (repeat 0); the chosen recipe then gets 3 repeats.
What ran: all of it for random init; for the full network, lr 0.01 at 25, 50 and 100 epochs
(its 200-epoch and 64-px runs were stopped: 0.01 trailed 0.04 on both sides at every length),
every lr 0.04 recipe, and 3 repeats of lr 0.04 x 50 epochs on both networks.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

from itl import pipeline, scales
from itl.transfer import FinetuneConfig

SEED = 0
LRS = (0.01, 0.04)
EPOCHS = (25, 50, 100, 200)


def pilot_scale(cfg: FinetuneConfig | None = None, size: int = 32) -> scales.Scale:
    small = scales.get("small")
    finetune_for = {scales.VOC_CLS: cfg} if cfg else small.finetune_for
    return dataclasses.replace(small, pilot=True, detection=(), size=size,
                               finetune_for=finetune_for)


def recipes() -> list[tuple[int, FinetuneConfig]]:
    out = [(32, FinetuneConfig(epochs=e, batch_size=64, lr=lr, bf16=False))
           for lr in LRS for e in EPOCHS]
    out += [(64, FinetuneConfig(epochs=EPOCHS[0], batch_size=64, lr=lr, bf16=False))
            for lr in LRS]
    return out


def full_run() -> str:
    return pipeline.pretrain(pilot_scale(), "full", SEED)["run"]


def sweep(part: str, repeats: int, lr: float | None = None, epochs: int | None = None,
          size: int | None = None) -> None:
    run = pipeline.RANDOM if part == "random" else full_run()
    for px, cfg in sorted(recipes(), key=lambda sc: sc[1].epochs * sc[0] ** 2):
        if ((lr is not None and cfg.lr != lr) or (epochs is not None and cfg.epochs != epochs)
                or (size is not None and size != px)):
            continue
        for r in range(repeats):
            t = time.time()
            m = pipeline.transfer_one(pilot_scale(cfg, px), run, scales.VOC_CLS, "finetune",
                                      SEED, repeat=r)
            print(json.dumps({"part": part, "size": px, "lr": cfg.lr, "epochs": cfg.epochs,
                              "repeat": r, "mAP": round(m["top1"], 2),
                              "seconds": round(time.time() - t, 1)}), flush=True)


def detect(part: str) -> None:
    """One VOC-DET transfer (the small scale's DetectConfig, VOC 2007 train -> val) of the full
    network or random init, seed 0: the measurement docs/claims-v3.md's VOC-DET rule reads
    (its gain and its seconds on one core; CPU seconds stand for an idle core's)."""
    run = pipeline.RANDOM if part == "random" else full_run()
    t, cpu = time.time(), time.process_time()
    m = pipeline.transfer_one(pilot_scale(), run, "voc2007", "detect", SEED)
    print(json.dumps({"part": part, "mAP": round(m["top1"], 2), "run": m["run"],
                      "seconds": round(time.time() - t, 1),
                      "cpu_seconds": round(time.process_time() - cpu, 1)}), flush=True)


def table() -> str:
    """The pilot's fine-tunings in the run store: per recipe, the full network's and random
    init's mAP (mean over the repeats run), their gain, and seconds per fine-tuning."""
    from tabulate import tabulate
    rows = []
    full = full_run()
    for size, cfg in recipes():
        got = {}
        for part, run in (("full", full), ("random", pipeline.RANDOM)):
            ms = []
            for r in range(3):
                m = pipeline.transfer_one(pilot_scale(cfg, size), run, scales.VOC_CLS,
                                          "finetune", SEED, compute=False, repeat=r)
                if m is not None:
                    ms.append(m)
            got[part] = ms
        if not got["full"] or not got["random"]:
            continue
        f = [m["top1"] for m in got["full"]]
        r = [m["top1"] for m in got["random"]]
        secs = [m.get("seconds", float("nan")) for m in got["full"] + got["random"]]
        rows.append([size, cfg.lr, cfg.epochs, cfg.epochs * -(-2500 // cfg.batch_size),
                     _mean(f, len(f)), _mean(r, len(r)), f"{sum(f) / len(f) - sum(r) / len(r):.1f}",
                     f"{sum(secs) / len(secs):.0f}"])
    return tabulate(rows, ["px", "lr", "epochs", "steps", "full (mAP)", "random init (mAP)",
                           "gain", "s per fine-tuning"], tablefmt="github")


def _mean(values: list[float], n: int) -> str:
    text = f"{sum(values) / n:.1f}"
    return text if n == 1 else f"{text} ({n} repeats: " + ", ".join(f"{v:.1f}" for v in values) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("pretrain", "sweep", "table", "detect"))
    ap.add_argument("--part", choices=("random", "full"), default="full")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--lr", type=float, help="only the recipes at this rate")
    ap.add_argument("--epochs", type=int, help="only the recipes of this many epochs")
    ap.add_argument("--size", type=int, help="only the recipes at this input size (px)")
    args = ap.parse_args()
    if args.what == "pretrain":
        print(json.dumps(pipeline.pretrain(pilot_scale(), "full", SEED)))
    elif args.what == "detect":
        detect(args.part)
    elif args.what == "sweep":
        sweep(args.part, args.repeats, args.lr, args.epochs, args.size)
    else:
        print(table())


if __name__ == "__main__":
    main()
