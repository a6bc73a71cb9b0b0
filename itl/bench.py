"""Pre-training throughput (the cost of every condition of the paper's grid): itl's loop -- uint8
images held as one tensor (on the GPU when it fits), crops and flips drawn for the whole batch --
beside a plain torchvision `ImageFolder` + `DataLoader` loop on the same model, data, optimiser
and precision. Prints a table and writes it to `reports/benchmarks/`.

    python -m itl.bench --scale smoke [--steps 60] [--workers 2]
    python -m itl.bench --scale small --synthetic   # random images of Tiny ImageNet's shape

It also projects the seconds of one whole pre-training of the scale (its schedule's steps at
the measured rate). `--synthetic` times a machine the prepared data cannot reach (a lent GPU):
random uint8 images in the shape of the scale's source, the same work per step.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from tabulate import tabulate
from torchvision import transforms

from itl import data, devices, models, paths, pipeline, runs, scales, subsets, train


def _model(scale: scales.Scale, n_classes: int, acc: devices.Accel,
           compile_: bool = False) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = models.build(scale.pretrain.model, n_classes, 0).to(acc.device)
    if acc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=scale.pretrain.lr, momentum=0.9)
    return (torch.compile(net) if compile_ else net), opt


@dataclass(frozen=True)
class Variant:
    """One way to run itl's training step: precision, compilation and CPU threads."""
    bf16: bool  # bf16 autocast + channels_last
    compile: bool = False  # torch.compile (inductor)
    threads: int | None = None  # intra-op CPU threads (None: as the process has)

    def __str__(self) -> str:
        parts = ["bf16 + channels_last" if self.bf16 else "float32"]
        if self.compile:
            parts.append("torch.compile")
        if self.threads and not torch.cuda.is_available():
            parts.append(f"{self.threads} thread{'s' if self.threads > 1 else ''}")
        return ", ".join(parts)


def itl_loop(scale: scales.Scale, images: data.ImageSet, steps: int, warmup: int,
             variant: Variant | None = None) -> float:
    """Images per second of itl's own training step (train.train_one_epoch)."""
    v = variant or Variant(bf16=bool(devices.accel(scale.pretrain.bf16).bf16))
    pin = devices.cpu_threads(v.threads) if v.threads else contextlib.nullcontext()
    with pin:
        acc = devices.accel(v.bf16)
        net, opt = _model(scale, len(images.classes), acc, v.compile)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        images = train._on_device(images, acc)
        cfg = scale.pretrain
        train.train_one_epoch(net, opt, sched, images, 0, warmup, cfg.batch_size, cfg.crop_pad, 0,
                              bf16=v.bf16)
        _sync()
        t = time.perf_counter()
        train.train_one_epoch(net, opt, sched, images, warmup, steps, cfg.batch_size,
                              cfg.crop_pad, 0, bf16=v.bf16)
        _sync()
        return steps * cfg.batch_size / (time.perf_counter() - t)


def _image_folder(images: data.ImageSet, root: Path) -> None:
    for k, c in enumerate(images.classes):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(images.x, images.y.tolist())):
        torchvision.io.write_png(x, str(root / images.classes[y] / f"{i}.png"))


def folder_loop(scale: scales.Scale, images: data.ImageSet, steps: int, warmup: int,
                workers: int) -> float:
    """Images per second of the textbook loop: PNG files, ImageFolder, DataLoader workers, in
    float32 (torchvision's reference default) on the CPU, bf16 autocast on CUDA."""
    acc = devices.accel()
    cfg = scale.pretrain
    size = images.x.shape[-1]
    with tempfile.TemporaryDirectory() as d:
        _image_folder(images, Path(d))
        tf = transforms.Compose([transforms.RandomCrop(size, padding=cfg.crop_pad),
                                 transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                 transforms.Normalize([data.MEAN] * 3, [data.STD] * 3)])
        loader = torch.utils.data.DataLoader(
            torchvision.datasets.ImageFolder(d, transform=tf), batch_size=cfg.batch_size,
            shuffle=True, num_workers=workers, pin_memory=acc.device.type == "cuda",
            drop_last=True, persistent_workers=workers > 0)
        net, opt = _model(scale, len(images.classes), acc)
        net.train()

        def batches():
            while True:
                yield from loader

        it = batches()
        t = 0.0
        for step in range(warmup + steps):
            if step == warmup:
                _sync()
                t = time.perf_counter()
            x, y = next(it)
            x = x.to(acc.device, non_blocking=True)
            if acc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(acc.device.type, torch.bfloat16, enabled=acc.bf16):
                loss = F.cross_entropy(net(x).float(), y.to(acc.device, non_blocking=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync()
        return steps * cfg.batch_size / (time.perf_counter() - t)


# (images, classes) of each scale's full source, for --synthetic: Tiny ImageNet's 160-class main
# set at small (itl.scales); the pixels are the scale's
SOURCE_SHAPES = {"small": (80_000, 160)}


def synthetic(scale_name: str, seed: int = 0) -> data.ImageSet:
    """Random uint8 images and labels in the shape of the scale's full source."""
    if scale_name not in SOURCE_SHAPES:
        raise ValueError(f"no synthetic source for scale {scale_name!r}: choose one of "
                         f"{', '.join(SOURCE_SHAPES)}")
    n, c = SOURCE_SHAPES[scale_name]
    px = scales.get(scale_name).size or 64
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g),
                         torch.arange(n) % c, tuple(f"class{k:03d}" for k in range(c)))


def variants(compile_: bool) -> list[Variant]:
    """What is compared: on a CPU float32 and bf16 at 1 thread and at every core, and compiled;
    on CUDA float32, bf16 and compiled bf16."""
    if torch.cuda.is_available():
        out = [Variant(False), Variant(True)]
        return out + [Variant(True, True)] if compile_ else out
    cores = os.cpu_count() or 1
    out = [Variant(False, threads=1), Variant(True, threads=1)]
    if cores > 1:
        out += [Variant(False, threads=cores), Variant(True, threads=cores)]
    return out + [Variant(True, True, threads=1)] if compile_ else out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m itl.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="smoke")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers (0: skip the "
                    "ImageFolder loop)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--synthetic", action="store_true",
                    help="random images in the shape of the scale's source (SOURCE_SHAPES)")
    a = ap.parse_args(argv)
    scale = scales.get(a.scale)
    if a.synthetic:
        images = synthetic(a.scale)
    else:
        src = data.load(scale.source, "train", scale.size)
        images = subsets.apply(pipeline.manifest(scale, "full", 0), src)
    dev = runs.provenance()["device"]
    rows, base = [], None
    for v in variants(a.compile):
        ips = itl_loop(scale, images, a.steps, a.warmup, v)
        base = base or ips  # the first variant: float32 (1 thread on a CPU)
        rows.append([f"itl loop, {v}", round(ips), f"{ips / base:.2f}"])
        print(rows[-1], flush=True)
    if a.workers > 0:
        plain = folder_loop(scale, images, a.steps, a.warmup, a.workers)
        rows.append([f"torchvision ImageFolder + DataLoader ({a.workers} workers), "
                     f"{'bf16' if torch.cuda.is_available() else 'float32'}, "
                     f"{torch.get_num_threads()} threads", round(plain), f"{plain / base:.2f}"])
        for r in rows:
            r.append(f"{r[1] / plain:.2f}")
    table = tabulate(rows, ["pre-training loop", "images/s", "x float32",
                            "x torchvision loop"][:len(rows[0])], tablefmt="github")
    proto = devices.accel(scale.pretrain.bf16)
    ips = itl_loop(scale, images, a.steps, a.warmup,
                   Variant(proto.bf16, threads=None if torch.cuda.is_available()
                           else scale.cpu_threads))
    steps = train.schedule(scale.pretrain, len(images)).steps
    head = (f"Scale `{a.scale}`, model `{scale.pretrain.model}`, batch "
            f"{scale.pretrain.batch_size}, {tuple(images.x.shape[1:])} images"
            f"{' (synthetic)' if a.synthetic else ''}, {a.steps} timed steps after {a.warmup} "
            f"warm-up; device: {dev}. All rows measured in this one run. One whole "
            f"pre-training ({steps} steps) in the scale's own setting "
            f"({'bf16' if proto.bf16 else 'float32'}"
            f"{'' if torch.cuda.is_available() else f', {scale.cpu_threads} thread(s)'}): "
            f"{ips:.0f} img/s, {steps * scale.pretrain.batch_size / ips:.0f} s of training "
            f"steps (projected; per-epoch evaluation and start-up not included).")
    print(head)
    print(table)
    out = paths.ensure_writable(paths.reports_dir() / "benchmarks")
    tag = "cuda" if torch.cuda.is_available() else "cpu"
    name = f"throughput-{a.scale}{'-synthetic' if a.synthetic else ''}-{tag}.md"
    paths.atomic_write_text(out / name,
                            f"# Pre-training throughput\n\n{head}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
