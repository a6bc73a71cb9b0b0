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
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from tabulate import tabulate
from torchvision import transforms

from itl import data, devices, models, paths, pipeline, runs, scales, subsets, train


def _model(scale: scales.Scale, n_classes: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    acc = devices.accel()
    net = models.build(scale.pretrain.model, n_classes, 0).to(acc.device)
    if acc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=scale.pretrain.lr, momentum=0.9)
    return net, opt


def itl_loop(scale: scales.Scale, images: data.ImageSet, steps: int, warmup: int) -> float:
    """Images per second of itl's own training step (train.train_one_epoch)."""
    net, opt = _model(scale, len(images.classes))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    images = train._on_device(images, devices.accel())
    cfg = scale.pretrain
    train.train_one_epoch(net, opt, sched, images, 0, warmup, cfg.batch_size, cfg.crop_pad, 0)
    _sync()
    t = time.perf_counter()
    train.train_one_epoch(net, opt, sched, images, warmup, steps, cfg.batch_size, cfg.crop_pad, 0)
    _sync()
    return steps * cfg.batch_size / (time.perf_counter() - t)


def _image_folder(images: data.ImageSet, root: Path) -> None:
    for k, c in enumerate(images.classes):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(images.x, images.y.tolist())):
        torchvision.io.write_png(x, str(root / images.classes[y] / f"{i}.png"))


def folder_loop(scale: scales.Scale, images: data.ImageSet, steps: int, warmup: int,
                workers: int) -> float:
    """Images per second of the textbook loop: PNG files, ImageFolder, DataLoader workers."""
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
        net, opt = _model(scale, len(images.classes))
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


# (images, pixels, classes) of each scale's full source, for --synthetic: Tiny ImageNet's
# 160-class main set at small (itl.scales)
SOURCE_SHAPES = {"small": (80_000, 64, 160)}


def synthetic(scale_name: str, seed: int = 0) -> data.ImageSet:
    """Random uint8 images and labels in the shape of the scale's full source."""
    if scale_name not in SOURCE_SHAPES:
        raise ValueError(f"no synthetic source for scale {scale_name!r}: choose one of "
                         f"{', '.join(SOURCE_SHAPES)}")
    n, px, c = SOURCE_SHAPES[scale_name]
    g = torch.Generator().manual_seed(seed)
    return data.ImageSet(torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g),
                         torch.arange(n) % c, tuple(f"class{k:03d}" for k in range(c)))


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
    ap.add_argument("--synthetic", action="store_true",
                    help="random images in the shape of the scale's source (SOURCE_SHAPES)")
    a = ap.parse_args(argv)
    scale = scales.get(a.scale)
    if a.synthetic:
        images = synthetic(a.scale)
    else:
        src = data.load(scale.source, "train")
        images = subsets.apply(pipeline.manifest(scale, "full", 0), src)
    dev = runs.provenance()["device"]
    ips = itl_loop(scale, images, a.steps, a.warmup)
    rows = [["itl (uint8 tensor, batched augmentation)", round(ips)]]
    if a.workers > 0:
        rows.append([f"ImageFolder + DataLoader ({a.workers} workers)",
                     round(folder_loop(scale, images, a.steps, a.warmup, a.workers))])
    table = tabulate(rows, ["pre-training loop", "images/s"], tablefmt="github")
    steps = train.schedule(scale.pretrain, len(images)).steps
    head = (f"Scale `{a.scale}`, model `{scale.pretrain.model}`, batch "
            f"{scale.pretrain.batch_size}, {tuple(images.x.shape[1:])} images"
            f"{' (synthetic)' if a.synthetic else ''}, {a.steps} timed steps after {a.warmup} "
            f"warm-up; device: {dev}. One whole pre-training ({steps} steps) at the itl rate: "
            f"{steps * scale.pretrain.batch_size / ips:.0f} s of training steps (projected; "
            f"per-epoch evaluation and start-up not included).")
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
