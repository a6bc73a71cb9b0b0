"""Pre-training throughput (the cost of every condition of the paper's grid): itl's loop -- uint8
images held as one tensor (on the GPU when it fits), crops and flips drawn for the whole batch --
beside a plain torchvision `ImageFolder` + `DataLoader` loop on the same model, data, optimiser
and precision. Prints a table and writes it to `reports/benchmarks/`.

    python -m itl.bench --scale smoke [--steps 60] [--workers 2]
    python -m itl.bench --scale small --synthetic   # random images of Tiny ImageNet's shape
    python -m itl.bench --scale paper --synthetic   # the paper's input: 227 px of 256 px
    python -m itl.bench --scale paper --transfer    # the paper's transfer steps, one at a time

It also projects the seconds of one whole pre-training of the scale (its schedule's steps at
the measured rate). `--synthetic` times a machine the prepared data cannot reach (a lent GPU):
random uint8 images in the shape of the scale's source, the same work per step.

At a scale that crops as Caffe does (paper: random 227 px crops of 256 px images, CaffeNet) it
compares input paths instead (`input_candidates`): generated photo-like JPEGs, written once as
ImageNet ships them (an ImageFolder tree) and once as itl prepares them (warped to 256 px into
memory-mapped shards), then itl's path (`itl.batches`: shards read ahead by threads, crops on the
device; with the images held on the device as the model's ceiling), torchvision's plain loop
(PIL decoding, Resize, RandomCrop, flip in DataLoader workers) and, on CUDA, nvJPEG decoding on
the GPU. Beside the table it writes a JSON record (`images_per_s` of the scale's own setting)
that `itl grid` reads for its GPU-hour estimate.

`--transfer` times, at the scale's own settings, each kind of step a grid job takes after its
pre-training (`transfer_steps`): one SGD step of the detection fine-tuning (Faster R-CNN on two
VOC-sized photos, itl.detection), of each classification target's fine-tuning (the target's
batch, crop and loss), the probes' feature pass (a batch of the network's frozen features) and
one evaluation of the linear probe's L-BFGS objective, beside a pre-training step. Every row
runs with the scale's CPU threads (`Scale.cpu_threads`, as its runs are pinned). It writes
`transfer-<scale>-<cpu|cuda>.{md,json}`, which `itl grid` reads for the transfers' cost.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from tabulate import tabulate
from torchvision import transforms

from itl import (batches, data, datasets, detection, devices, errors, metrics, models, paths,
                 pipeline, runs, scales, subsets, train, transfer)
from itl.datasets import imagenet1k, shards
from itl.datasets.entry import TOP1


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
        if warmup:  # (no step at all: train_one_epoch's averages would divide by zero)
            train.train_one_epoch(net, opt, sched, images, 0, warmup, cfg.batch_size,
                                  cfg.crop_pad, 0, bf16=v.bf16)
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
    cfg = scale.pretrain
    size = images.x.shape[-1]
    with tempfile.TemporaryDirectory() as d:
        _image_folder(images, Path(d))
        tf = transforms.Compose([transforms.RandomCrop(size, padding=cfg.crop_pad),
                                 transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                 transforms.Normalize([data.MEAN] * 3, [data.STD] * 3)])
        return plain_loop(scale, Path(d), len(images.classes), tf, steps, warmup,
                          cfg.batch_size, workers)


def plain_loop(scale: scales.Scale, root: Path, n_classes: int, tf: Callable, steps: int,
               warmup: int, batch: int, workers: int) -> float:
    """Images per second of torchvision's ImageFolder over `root` with transforms `tf` in
    `workers` DataLoader workers, training the scale's model (bf16 autocast on CUDA)."""
    acc = devices.accel()
    loader = torch.utils.data.DataLoader(
        torchvision.datasets.ImageFolder(str(root), transform=tf), batch_size=batch,
        shuffle=True, num_workers=workers, pin_memory=acc.device.type == "cuda",
        drop_last=True, persistent_workers=workers > 0)
    net, opt = _model(scale, n_classes, acc)
    net.train()

    def endless():
        while True:
            yield from loader

    return _timed(endless(), _sgd_step(net, opt, acc), steps, warmup, batch)


def _sgd_step(net: torch.nn.Module, opt: torch.optim.Optimizer, acc: devices.Accel) -> Callable:
    """One SGD step of the benchmarks' own loops on a float input batch x and labels y."""
    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.to(acc.device, non_blocking=True)
        if acc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(acc.device.type, torch.bfloat16, enabled=acc.bf16):
            loss = F.cross_entropy(net(x).float(), y.to(acc.device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _timed(batches_: Iterator, step: Callable, steps: int, warmup: int, batch: int) -> float:
    """Images per second of `step` over `steps` batches after `warmup` untimed ones."""
    t = 0.0
    for k in range(warmup + steps):
        if k == warmup:
            _sync()
            t = time.perf_counter()
        step(*next(batches_))
    _sync()
    return steps * batch / (time.perf_counter() - t)


# (images, classes) of each scale's full source, for --synthetic: Tiny ImageNet's 160-class main
# set at small (itl.scales), ImageNet-1k at imagenet64 and paper; the pixels are the scale's
SOURCE_SHAPES = {"small": (80_000, 160), "imagenet64": (1_281_167, 1000),
                 "paper": (1_281_167, 1000)}
SYNTHETIC_MAX = 100_000  # images generated at most (the schedule still counts the real source)


def synthetic(scale: scales.Scale, seed: int = 0) -> data.ImageSet:
    """Random uint8 images and labels in the shape of the scale's full source (at most
    SYNTHETIC_MAX of them)."""
    if scale.name not in SOURCE_SHAPES:
        raise ValueError(f"no synthetic source for scale {scale.name!r}: choose one of "
                         f"{', '.join(SOURCE_SHAPES)}")
    n, c = SOURCE_SHAPES[scale.name]
    n = min(n, SYNTHETIC_MAX)
    px = scale.size or 64
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


# ---------------------------------------------------------------- the paper's input (227 of 256 px)

PHOTO = (375, 500)  # rows x columns of a generated photo: a typical ImageNet JPEG's
NOT_MEASURED = {  # candidates no run here can time, and why
    "NVIDIA DALI": "its wheel (several hundred MB) cannot reach the lent GPU machine (64 MiB "
                   "travels, no internet there)",
    "WebDataset tar shards": "they hold the same JPEGs, decoded by the same CPU code as the "
                             "ImageFolder loop; they change how files are fetched from a "
                             "network file system, which generated data on a local disk "
                             "cannot show",
}


def _photo(i: int, seed: int) -> torch.Tensor:
    """A generated photo-like image (smooth colour fields and fine grain, so JPEG compresses it
    about as it does a photo), uint8 3 x PHOTO, a pure function of (seed, i)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + i)
    low = torch.rand(1, 3, 6, 8, generator=g)
    img = F.interpolate(low, size=PHOTO, mode="bicubic", align_corners=False)
    img = img + 0.03 * torch.randn(1, 3, *PHOTO, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)[0]


def paper_source(root: Path, n: int, classes: int, seed: int = 0) -> tuple[data.ImageSet, Path]:
    """`n` generated photos (labels cycling over `classes`) twice, under `root`: as ImageNet
    ships them, JPEG files (quality 90) in an ImageFolder tree `root/jpeg/<class>/`, and as itl
    prepares ImageNet-1k, each JPEG decoded and warped to 256 x 256 (`imagenet1k.warp`) into
    memory-mapped shards (`itl.datasets.shards`). Returns the shards, read as training reads
    them, and the JPEG folder."""
    jpeg, folder = root / "jpeg", root / "shards"
    folder.mkdir(parents=True)
    for c in range(classes):
        (jpeg / f"c{c:04d}").mkdir(parents=True)

    def one(i: int) -> tuple[torch.Tensor, int, str]:
        encoded = torchvision.io.encode_jpeg(_photo(i, seed), quality=90)
        f = jpeg / f"c{i % classes:04d}" / f"{i:07d}.JPEG"
        f.write_bytes(encoded.numpy().tobytes())
        return imagenet1k.warp(f.read_bytes(), f.name), i % classes, f.name

    writer = shards.Writer(folder, "train", (3, imagenet1k.SIZE, imagenet1k.SIZE))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for image, label, name in pool.map(one, range(n)):
            writer.add(image, label, name)
    part = writer.close(classes)
    rec = {"classes": [f"c{c:04d}" for c in range(classes)], "splits": {"train": part}}
    return shards.open_split(folder, "generated photos", rec, "train"), jpeg


def input_loop(scale: scales.Scale, images: data.ImageSet, steps: int, warmup: int, batch: int,
               reader: batches.Reader | None) -> float:
    """Images per second of itl's training step (train.train_one_epoch, the scale's crop) on
    `images` where they are, read by `reader`; None: all moved to the device first (a set that
    fits in its memory), the model's ceiling."""
    cfg = scale.pretrain
    acc = devices.accel(cfg.bf16)
    net, opt = _model(scale, len(images.classes), acc)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if reader is None:
        images = data.ImageSet(images.x.to(acc.device), images.y, images.classes)

    def run(first: int, n: int) -> None:
        train.train_one_epoch(net, opt, sched, images, first, n, batch, cfg.crop_pad, 0,
                              bf16=acc.bf16, crop=cfg.crop, reader=reader or batches.Reader())

    if warmup:
        run(0, warmup)
    _sync()
    t = time.perf_counter()
    run(warmup, steps)
    _sync()
    return steps * batch / (time.perf_counter() - t)


def nvjpeg_loop(scale: scales.Scale, jpeg: Path, steps: int, warmup: int, batch: int) -> float:
    """Images per second with nvJPEG (torchvision.io.decode_jpeg on the GPU, a batch at a
    time): JPEG bytes read by the CPU, decoded, warped to 256 x 256, cropped and flipped on the
    GPU (CUDA only)."""
    cfg = scale.pretrain
    acc = devices.accel(cfg.bf16)
    folder = torchvision.datasets.ImageFolder(str(jpeg))
    files, labels = [f for f, _ in folder.samples], torch.tensor(folder.targets)
    net, opt = _model(scale, len(folder.classes), acc)
    net.train()
    room = data.crop_room(imagenet1k.SIZE, imagenet1k.SIZE, cfg.crop_pad, cfg.crop)

    def endless() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step = 0
        while True:
            idx = batches.batch_indices(len(files), step, batch, 0)
            raw = [torchvision.io.read_file(files[i]) for i in idx.tolist()]
            decoded = torchvision.io.decode_jpeg(raw, device=acc.device)
            x = torch.stack([F.interpolate(im[None].float(), size=(imagenet1k.SIZE,) * 2,
                                           mode="bilinear", antialias=True)[0]
                             for im in decoded]).round().clamp(0, 255).to(torch.uint8)
            params = data.augment_params(batch, cfg.crop_pad, torch.Generator().manual_seed(step),
                                         room)
            x = data.apply_augment(x, cfg.crop_pad, *params, crop=cfg.crop)
            yield data.to_input(x), labels[idx]
            step += 1

    return _timed(endless(), _sgd_step(net, opt, acc), steps, warmup, batch)


def input_candidates(scale: scales.Scale, root: Path, n: int, steps: int, warmup: int,
                     batch: int, workers: int) -> list[list]:
    """[candidate, images/s or None, why not measured] of every input path, on one set of
    generated photos (`paper_source`) under `root`, in this one run."""
    cfg = scale.pretrain
    classes = min(n, 1000)
    images, jpeg = paper_source(root, n, classes)
    rows = []

    def row(name: str, fn: Callable[[], float]) -> None:
        rows.append([name, fn(), ""])
        print(f"{name}: {rows[-1][1]:.0f} img/s", flush=True)

    ahead, cuda = batches.Reader().ahead, torch.cuda.is_available()
    row(f"itl: shards read ahead ({ahead} threads){', pinned' if cuda else ''}, crops on the "
        "device",
        lambda: input_loop(scale, images, steps, warmup, batch, batches.Reader()))
    row("itl: shards read in the loop (no read-ahead)",
        lambda: input_loop(scale, images, steps, warmup, batch, batches.Reader(ahead=0)))
    row(f"itl: images held {'on the GPU' if cuda else 'in memory'} (the model's ceiling; "
        "ImageNet-1k at 256 px does not fit)", lambda: input_loop(scale, images, steps, warmup, batch, None))
    if cuda:
        row("nvJPEG: torchvision.io.decode_jpeg on the GPU, warp and crops on the GPU",
            lambda: nvjpeg_loop(scale, jpeg, steps, warmup, batch))
    else:
        rows.append(["nvJPEG (torchvision.io.decode_jpeg on the GPU)", None, "needs CUDA"])
    tf = transforms.Compose([transforms.Resize((imagenet1k.SIZE, imagenet1k.SIZE)),
                             transforms.RandomCrop(cfg.crop), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(),
                             transforms.Normalize([data.MEAN] * 3, [data.STD] * 3)])
    row(f"torchvision ImageFolder + DataLoader ({workers} workers): PIL JPEG decoding, Resize "
        f"256x256, RandomCrop {cfg.crop}, flip",
        lambda: plain_loop(scale, jpeg, classes, tf, steps, warmup, batch, workers))
    rows += [[name, None, why] for name, why in NOT_MEASURED.items()]
    return rows


# ---------------------------------------------------------------- the transfer steps of a job

LBFGS_IMAGES = 4096  # images of the timed L-BFGS evaluation; its cost grows as images x classes
LBFGS_CLASSES = 1000  # ... at ImageNet-1k's classes (the probes of Sections 5.1 and 5.3)
FEATURE_BATCH = 256  # transfer.features' batch


@dataclass(frozen=True)
class StepTime:
    """One kind of step, timed: `seconds` per step of `batch` images."""
    key: str  # the record's name for it: pretrain, detect, finetune:<target>, features, lbfgs
    what: str  # as the table prints it
    seconds: float  # wall-clock
    batch: int
    cpu_seconds: float | None = None  # the process's CPU time per step: on a busy machine
    # (other processes taking turns on the cores) the time one idle core would take
    macs: float | None = None  # multiply-adds of one step, where counted (lbfgs)


def _seconds(step: Callable[[], None], steps: int, warmup: int) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per call of `step` over `steps` calls after `warmup`
    untimed ones."""
    for _ in range(warmup):
        step()
    _sync()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    _sync()
    return (time.perf_counter() - t) / steps, (time.process_time() - c) / steps


def _step_time(key: str, what: str, step: Callable[[], None], steps: int, warmup: int,
               batch: int, macs: float | None = None) -> StepTime:
    wall, cpu = _seconds(step, steps, warmup)
    return StepTime(key, what, wall, batch, cpu, macs)


def _random_images(n: int, px: int, classes: int, metric: str, seed: int = 0) -> data.ImageSet:
    """`n` random uint8 images of `px` px with labels for `metric` (bit masks for a multi-label
    one): the same work per step as real ones."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g)
    hi = 1 << classes if metric in metrics.MULTI_LABEL else classes
    return data.ImageSet(x, torch.randint(0, hi, (n,), generator=g),
                         tuple(f"c{k}" for k in range(classes)))


def pretrain_step(scale: scales.Scale, steps: int, warmup: int, batch: int) -> StepTime:
    """A pre-training step (train.train_one_epoch at the scale's crop and precision), its
    images held in memory."""
    cfg = scale.pretrain
    acc = devices.accel(cfg.bf16)
    images = _random_images(max(batch, 64), scale.size or 32, 1000, TOP1)
    net, opt = _model(scale, 1000, acc)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    done = [0]

    def step() -> None:
        train.train_one_epoch(net, opt, sched, images, done[0], 1, batch, cfg.crop_pad, 0,
                              bf16=acc.bf16, crop=cfg.crop)
        done[0] += 1

    return _step_time("pretrain", f"pre-training step ({cfg.model}, "
                      f"{cfg.crop or scale.size} px)", step, steps, warmup, batch)


def finetune_step(scale: scales.Scale, target: str, steps: int, warmup: int) -> StepTime:
    """A step of `target`'s fine-tuning as transfer.finetune takes it: a new head drawn as
    the config says, its parameter groups, batch, crop and the target's loss."""
    cfg = scale.finetune_config(target)
    name = target.partition("|")[0]
    metric = pipeline.target_metric(name)
    entry = datasets.REGISTRY.get(name.partition(":")[0])
    classes = len(entry.classes) if entry is not None and entry.classes else 10
    net = transfer.with_new_head(None, scale.pretrain.model, classes, 0)
    if cfg.head_std is not None:
        transfer.gaussian_head(net, cfg.head_std, 0)
    net = net.to(train.device())
    opt = torch.optim.SGD(transfer.finetune_groups(net, cfg), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    images = _random_images(max(cfg.batch_size, 64), scale.size or 32, classes, metric)
    loss_fn = None if metric == TOP1 else partial(metrics.loss, metric)
    done = [0]

    def step() -> None:
        train.train_one_epoch(net, opt, sched, images, done[0], 1, cfg.batch_size, cfg.crop_pad,
                              0, bf16=cfg.bf16, crop=cfg.crop, loss_fn=loss_fn)
        done[0] += 1

    return _step_time(f"finetune:{target}", f"fine-tuning step, {target} ({classes} classes, "
                      f"{cfg.crop or scale.size} px)", step, steps, warmup, cfg.batch_size)


def detect_step(scale: scales.Scale, steps: int, warmup: int) -> StepTime:
    """An SGD step of the scale's detection fine-tuning (detection.detector with its
    DetectConfig: image scaling, anchors, proposals, RoIs, Caffe's parameter groups), float32
    as detection.finetune_detector trains, on `batch_size` generated photos of a VOC image's
    size (500 x 375, scaled by the detector as a VOC image is) with two boxes each."""
    cfg = scale.detect
    dev = train.device()
    net = models.build(scale.pretrain.model, 1000, 0)
    model = detection.detector(net, [f"c{k}" for k in range(20)], max(PHOTO), cfg,
                               torch.Generator().manual_seed(0)).to(dev)
    params = (models.param_groups(model, cfg.lr, cfg.weight_decay, caffe=True)
              if cfg.caffe_param_groups else [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    model.train()
    images = [_photo(i, 0).float().div(255).to(dev) for i in range(cfg.batch_size)]
    targets = [{"boxes": torch.tensor([[40.0, 60.0, 260.0, 330.0], [220.0, 30.0, 480.0, 250.0]],
                                      device=dev),
                "labels": torch.tensor([1 + i % 20, 1 + (i + 7) % 20], device=dev)}
               for i in range(cfg.batch_size)]

    def step() -> None:
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    side = f"{cfg.min_size}/{cfg.max_size} px" if cfg.min_size else f"{max(PHOTO)} px"
    return _step_time("detect", f"detection step (Faster R-CNN, {PHOTO[1]}x{PHOTO[0]} photos "
                      f"at {side}, {cfg.roi_samples} RoIs each)", step, steps, warmup,
                      cfg.batch_size)


def feature_step(scale: scales.Scale, steps: int, warmup: int) -> StepTime:
    """A batch of the probes' feature pass (transfer.features: the frozen backbone in eval
    mode) on the network's input size (the pre-training crop), on this machine's device."""
    net = models.build(scale.pretrain.model, 1000, 0).to(train.device())
    px = scale.pretrain.crop or scale.size or 32
    images = _random_images(FEATURE_BATCH, px, 1000, TOP1)
    return _step_time("features", f"probe feature pass ({px} px, frozen backbone)",
                      lambda: transfer.features(net, images), steps, warmup, FEATURE_BATCH)


def lbfgs_eval(scale: scales.Scale, steps: int, warmup: int) -> StepTime:
    """One evaluation of the linear probe's objective (transfer.linear_probe's closure:
    cross-entropy of a linear head plus its L2 term, and the gradient) on LBFGS_IMAGES features
    of the network's width and LBFGS_CLASSES classes, on the CPU, where the probe optimises
    (its features are moved there): 2 x images x width x classes multiply-adds (the head's
    product and its weight gradient's)."""
    dim = models.build(scale.pretrain.model, 2, 0).head.in_features
    g = torch.Generator().manual_seed(0)
    ftr = torch.randn(LBFGS_IMAGES, dim, generator=g)
    y = torch.randint(0, LBFGS_CLASSES, (LBFGS_IMAGES,), generator=g)
    head = torch.nn.Linear(dim, LBFGS_CLASSES)

    def closure() -> None:
        head.zero_grad()
        loss = F.cross_entropy(head(ftr), y) + scale.probe.l2 * head.weight.pow(2).sum()
        loss.backward()

    return _step_time("lbfgs", f"L-BFGS objective and gradient ({LBFGS_IMAGES:,} x {dim} "
                      f"features, {LBFGS_CLASSES} classes, CPU)", closure, steps, warmup,
                      LBFGS_IMAGES, 2.0 * LBFGS_IMAGES * dim * LBFGS_CLASSES)


KINDS = ("pretrain", "detect", "finetune", "features", "lbfgs")  # what --transfer can time


def transfer_steps(scale: scales.Scale, steps: int, warmup: int, batch: int,
                   only: tuple[str, ...] = KINDS) -> list[StepTime]:
    """Each kind of step in `only` timed in turn, under the scale's CPU threads."""
    out = []

    def add(t: StepTime) -> None:
        out.append(t)
        print(f"{t.what}: {t.seconds:.3f} s ({t.cpu_seconds:.3f} CPU s) per step of {t.batch}",
              flush=True)

    with devices.cpu_threads(scale.cpu_threads):
        if "pretrain" in only:
            add(pretrain_step(scale, steps, warmup, batch))
        if "detect" in only:
            for _ in scale.detection[:1]:
                add(detect_step(scale, steps, warmup))
        if "finetune" in only:
            for t in scale.targets:
                add(finetune_step(scale, t, steps, warmup))
        if "features" in only:
            add(feature_step(scale, steps, warmup))
        if "lbfgs" in only:
            add(lbfgs_eval(scale, steps, warmup))
    return out


def _transfer_main(a: argparse.Namespace, scale: scales.Scale) -> int:
    cuda = torch.cuda.is_available()
    batch = a.batch or (scale.pretrain.batch_size if cuda else 32)
    rows = transfer_steps(scale, a.steps, a.warmup, batch, a.only)
    dev = runs.provenance()["device"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    head = (f"Scale `{a.scale}`, the steps of a grid job at the scale's settings, each timed "
            f"alone: {a.steps} timed steps after {a.warmup} warm-up; {scale.cpu_threads} CPU "
            f"thread(s) (the scale's runs are pinned to it); device: {dev}, CPU "
            f"{devices.cpu_model()}, {os.cpu_count()} cores, load average {load:.1f} when it "
            f"ended. "
            + ("On a GPU the wall-clock seconds count (the CPU waits on the GPU). " if cuda else
               "The process's CPU seconds count: on a busy machine other work takes turns on "
               "the cores and stretches the wall-clock time, not the CPU time one step needs. ")
            + "Random images: the same work per step as real ones.")
    per = (lambda t: t.seconds) if cuda else (lambda t: t.cpu_seconds)
    table = tabulate([[t.what, t.batch, f"{t.seconds:.3f}", f"{t.cpu_seconds:.3f}",
                       f"{t.batch / per(t):,.1f}"] for t in rows],
                     ["step", "batch", "seconds per step (wall)", "CPU seconds per step",
                      "images per second (of the counted time)"], tablefmt="github")
    print(head)
    print(table)
    out = paths.ensure_writable(paths.reports_dir() / "benchmarks")
    name = f"transfer-{a.scale}-{'cuda' if cuda else 'cpu'}"
    paths.atomic_write_text(out / f"{name}.md", f"# Transfer steps\n\n{head}\n\n{table}\n")
    paths.atomic_write_json(out / f"{name}.json", {
        "scale": a.scale, "model": scale.pretrain.model, "threads": scale.cpu_threads,
        "steps": {t.key: {"seconds": t.seconds, "cpu_seconds": t.cpu_seconds, "batch": t.batch,
                          "what": t.what, **({"macs": t.macs} if t.macs else {})}
                  for t in rows},
        "counted": "seconds" if cuda else "cpu_seconds",
        "timed_steps": a.steps, "warmup": a.warmup, "cpu": devices.cpu_model(),
        "load_average": load, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **runs.provenance()})
    return 0


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _kinds(text: str) -> tuple[str, ...]:
    out = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in out if k not in KINDS]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of steps: give some of "
                                         f"{','.join(KINDS)}, comma separated")
    return out


def parser() -> argparse.ArgumentParser:
    from itl.cli import _Parser, _whole  # itl's one-line errors
    ap = _Parser(prog="python -m itl.bench", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="smoke", choices=list(scales.SCALES))
    ap.add_argument("--steps", type=_whole(1, 10**6, "a number of steps"), default=60,
                    help="timed steps per loop")
    ap.add_argument("--warmup", type=_whole(0, 10**6, "a number of steps"), default=10,
                    help="untimed steps first")
    ap.add_argument("--workers", type=_whole(0, 1024, "a number of workers"), default=2,
                    help="DataLoader workers (0: skip the ImageFolder loop)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--synthetic", action="store_true",
                    help="random images in the shape of the scale's source (SOURCE_SHAPES); "
                    "generated photos at a scale that crops as Caffe does")
    ap.add_argument("--batch", type=_whole(1, 1 << 16, "a batch size"),
                    help="images per step (default: the scale's; a CPU times the paper's "
                    "CaffeNet on smaller batches)")
    ap.add_argument("--images", type=_whole(1, 10**7, "a number of images"),
                    help="generated photos for the input paths (default 16384 on CUDA, 512 "
                    "on a CPU)")
    ap.add_argument("--transfer", action="store_true",
                    help="instead, time each kind of step a job takes (transfer_steps)")
    ap.add_argument("--only", type=_kinds, default=KINDS,
                    help=f"with --transfer: these steps only, some of {','.join(KINDS)}")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    a = ap.parse_args(argv)
    scale = scales.get(a.scale)
    if (a.synthetic and not a.transfer and scale.pretrain.crop is None
            and a.scale not in SOURCE_SHAPES):
        ap.error(f"--synthetic has no source shape for scale {a.scale!r}: use it with "
                 f"{', '.join(SOURCE_SHAPES)}, or leave it out")
    try:
        return _main(a, scale)
    except errors.EXPECTED as e:
        print(f"itl: error: {errors.one_line(e)}", file=sys.stderr)
        return 2


def _main(a: argparse.Namespace, scale: scales.Scale) -> int:
    if a.transfer:
        return _transfer_main(a, scale)
    if scale.pretrain.crop is not None:
        return _inputs_main(a, scale)
    if a.synthetic:
        images = synthetic(scale)
        full = SOURCE_SHAPES[a.scale][0]
    else:
        src = data.load(scale.source, "train", scale.size)
        images = subsets.apply(pipeline.manifest(scale, "full", 0), src)
        full = len(images)
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
    steps = train.schedule(scale.pretrain, full).steps
    head = (f"Scale `{a.scale}`, model `{scale.pretrain.model}`, batch "
            f"{scale.pretrain.batch_size}, {tuple(images.x.shape[1:])} images"
            f"{' (synthetic)' if a.synthetic else ''}, {a.steps} timed steps after {a.warmup} "
            f"warm-up; device: {dev}. All rows measured in this one run. One whole "
            f"pre-training ({steps} steps) in the scale's own setting "
            f"({'bf16' if proto.bf16 else 'float32'}"
            f"{'' if torch.cuda.is_available() else f', {scale.cpu_threads} thread(s)'}): "
            f"{ips:.0f} img/s, {steps * scale.pretrain.batch_size / ips:.0f} s of training "
            f"steps (projected; per-epoch evaluation and start-up not included).")
    _write(a, scale, head, table, ips, scale.pretrain.batch_size, steps)
    return 0


def _inputs_main(a: argparse.Namespace, scale: scales.Scale) -> int:
    """The input paths side by side at a scale that crops as Caffe does (`input_candidates`)."""
    cfg, cuda = scale.pretrain, torch.cuda.is_available()
    batch = a.batch or cfg.batch_size
    n = a.images or (16384 if cuda else 512)
    with tempfile.TemporaryDirectory(prefix="itl-bench-") as d:
        rows = input_candidates(scale, Path(d), n, a.steps, a.warmup, batch, a.workers)
    plain = next(r[1] for r in rows if r[0].startswith("torchvision"))
    table = tabulate([[name, "not measured" if ips is None else round(ips),
                       "" if ips is None else f"{ips / plain:.2f}", why]
                      for name, ips, why in rows],
                     ["input path (same model, batch, optimiser)", "images/s",
                      "x torchvision loop", "not measured because"], tablefmt="github")
    ips = rows[0][1]  # the path ImageNet-1k trains on: shards read ahead
    steps = train.schedule(cfg, SOURCE_SHAPES.get(a.scale, (n, 0))[0]).steps
    n_params = sum(p.numel() for p in models.build(cfg.model, 1000, 0).parameters())
    own = "" if batch == cfg.batch_size else f" (the scale trains {cfg.batch_size})"
    precision = ("bf16 autocast + channels_last" if devices.accel(cfg.bf16).bf16
                 else "float32")
    secs = steps * cfg.batch_size / ips
    head = (f"Scale `{a.scale}`, model `{cfg.model}` ({n_params:,} parameters at 1000 "
            f"classes), batch {batch}{own}, random {cfg.crop} px crops and mirrors of 256 px "
            f"images, {precision}; {n:,} generated {PHOTO[0]}x{PHOTO[1]} photos (JPEG quality "
            f"90, and the same warped to 256x256 in itl's shards); {a.steps} timed steps after "
            f"{a.warmup} warm-up; device: {runs.provenance()['device']}; {os.cpu_count()} CPU "
            f"cores. All rows measured in this one run. One whole pre-training ({steps:,} steps "
            f"of {cfg.batch_size}) on itl's path at {ips:.0f} img/s: {secs:,.0f} s = "
            f"{secs / 3600:.1f} h (projected; per-epoch evaluation and start-up not included).")
    _write(a, scale, head, table, ips, batch, steps)
    return 0


def _write(a: argparse.Namespace, scale: scales.Scale, head: str, table: str, ips: float,
           batch: int, steps: int) -> None:
    """The table (markdown) and its record (JSON, read by `itl grid`) in reports/benchmarks/."""
    print(head)
    print(table)
    out = paths.ensure_writable(paths.reports_dir() / "benchmarks")
    tag = "cuda" if torch.cuda.is_available() else "cpu"
    name = f"throughput-{a.scale}{'-synthetic' if a.synthetic else ''}-{tag}"
    paths.atomic_write_text(out / f"{name}.md",
                            f"# Pre-training throughput\n\n{head}\n\n{table}\n")
    paths.atomic_write_json(out / f"{name}.json", {
        "scale": a.scale, "model": scale.pretrain.model, "images_per_s": ips,
        "batch": batch, "pretrain_steps": steps, "pretrain_batch": scale.pretrain.batch_size,
        "pretrain_seconds": steps * scale.pretrain.batch_size / ips,
        "synthetic": a.synthetic, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **runs.provenance()})


if __name__ == "__main__":
    raise SystemExit(main())
