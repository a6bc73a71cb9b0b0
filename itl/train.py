"""Pre-training on a subset of the source (paper Section 3: AlexNet on ImageNet subsets).

The budget of a subset is a named choice (`PretrainConfig.budget`, `schedule`). ITERATIONS (the
default): the number of SGD *iterations* is held fixed across conditions. A subset with half the
images is seen twice as often, so every condition gets the same optimisation (same steps, same
learning-rate drops) and differs only in its data. EPOCHS: every subset gets as many epochs of
its own images as the full source gets, so a 50-images-per-class model takes 20x fewer steps,
and its lower accuracy mixes "less data" with "less training". The paper does not say which it
held fixed (docs/paper-protocol.md, "Subset schedules").

Data order and augmentation are pure functions of (seed, step): the images of step s are positions
[sB, (s+1)B) of an endless stream of seeded permutations of the subset, and the crops and flips of
step s come from a generator seeded by (seed, s) (`itl.batches`, which also reads them). So a run
resumed from its checkpoint (model, optimizer, scheduler, RNG state, step) replays exactly what
an uninterrupted run does.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from torch.nn.parallel import DistributedDataParallel

from itl import batches, data, devices, models, paths, rng, runs
from itl.data import ImageSet


@dataclass(frozen=True)
class PretrainConfig:
    model: str = "small_cnn"
    epochs: int = 8  # epochs over the FULL source; a subset gets the same number of steps
    batch_size: int = 64  # images per step
    lr: float = 0.05  # per step of batch_size images
    momentum: float = 0.9
    weight_decay: float = 5e-4  # AlexNet's (Krizhevsky et al. 2012)
    lr_drops: tuple[float, ...] = (0.5, 0.75)  # fractions of all steps where lr is divided by 10
    crop_pad: int = 4  # pixels of zero padding for the random crop
    dropout: float | None = None  # None: the model's own (AlexNet 0.5, paper Section 3)
    bf16: bool | None = None  # bf16 autocast + channels_last; None: the device's default
    # (CUDA on, CPU off); True on a CPU with AVX-512 BF16 trains 2-3x faster (itl.bench)
    # Added with the paper's CaffeNet (docs/caffe-alexnet.md); at their defaults they leave a
    # config's run-store key as it was (config_dict):
    steps: int | None = None  # SGD steps of the run (Caffe's max_iter), in place of epochs;
    # lr_drops are then fractions of these steps
    crop: int | None = None  # side in px of a random square crop (Caffe's crop_size), from the
    # image padded by crop_pad; evaluation takes the central crop; None: the image's own size
    caffe_param_groups: bool = False  # Caffe's rule: biases at 2 x lr, no weight decay on them
    # (lr_mult 2, decay_mult 0 in the BVLC prototxts; models.param_groups)
    budget: str = "iterations"  # a subset's schedule (BUDGETS): "iterations", the full
    # source's steps whatever the subset's size; "epochs", the full source's epochs of the
    # subset's own images (its steps scaled by subset / full)

    def __post_init__(self):
        for name in ("steps", "crop"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"PretrainConfig {name}={value}: give a positive number, or "
                                 "None")
        if self.budget not in BUDGETS:
            raise ValueError(f"PretrainConfig budget={self.budget!r}: choose one of "
                             f"{', '.join(BUDGETS)}")


ITERATIONS, EPOCHS = "iterations", "epochs"  # PretrainConfig.budget
BUDGETS = (ITERATIONS, EPOCHS)
CHECKPOINT = "checkpoint.pt"  # a pre-training run's network and SGD state
ADDED = ("steps", "crop", "caffe_param_groups", "budget")  # fields newer than the run store's
# first runs


def config_dict(cfg: PretrainConfig) -> dict:
    """`cfg` as plain data for the run store's key: every field, except the ADDED ones that
    still hold their default, so that the runs stored before those fields existed keep their
    hashes (tests/test_train.py pins them)."""
    return runs.key_settings(cfg, ADDED)


@dataclass(frozen=True)
class Schedule:
    steps: int  # SGD steps of the whole run
    steps_per_epoch: int  # steps between log lines / checkpoints
    milestones: tuple[int, ...]  # steps where the learning rate drops


def schedule(cfg: PretrainConfig, full_images: int, subset_images: int | None = None) -> Schedule:
    """The schedule of a subset of `subset_images` images (None: the full source) of a source
    with `full_images` training images. The full source's is its epochs in steps (or
    `cfg.steps`); a subset gets the same steps (budget ITERATIONS) or the same epochs of its
    own images, the full source's steps scaled by subset / full (EPOCHS); the learning rate
    drops at the same fractions of a run's steps."""
    per_epoch = math.ceil(full_images / cfg.batch_size)
    steps = cfg.epochs * per_epoch if cfg.steps is None else cfg.steps
    if cfg.budget == EPOCHS and subset_images is not None:
        steps = max(1, round(steps * subset_images / full_images))
        per_epoch = math.ceil(subset_images / cfg.batch_size)
    return Schedule(steps, per_epoch, tuple(round(f * steps) for f in cfg.lr_drops))


def epochs(cfg: PretrainConfig, full_images: int, subset_images: int) -> float:
    """Passes over its own images that a subset of `subset_images` images gets."""
    return schedule(cfg, full_images, subset_images).steps * cfg.batch_size / subset_images


def device() -> torch.device:
    return devices.accel().device


def _input(x: torch.Tensor, acc: devices.Accel) -> torch.Tensor:
    """uint8 images -> normalised float input on the device, in its memory format."""
    x = data.to_input(x.to(acc.device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last) if acc.channels_last else x


@torch.no_grad()
def evaluate(net: torch.nn.Module, images: ImageSet, batch: int = 256,
             bf16: bool | None = None, crop: int | None = None) -> float:
    """Top-1 accuracy (%) on centre (unaugmented) images, or their central `crop` px."""
    was = net.training
    net.eval()
    acc = devices.accel(bf16)
    correct = 0
    for i in range(0, len(images), batch):
        with torch.autocast(acc.device.type, torch.bfloat16, enabled=acc.bf16):
            out = net(_input(data.center_crop(images.x[i:i + batch], crop), acc))
        correct += (out.argmax(1).cpu() == images.y[i:i + batch]).sum().item()
    net.train(was)
    return 100.0 * correct / max(1, len(images))


def train_one_epoch(net: torch.nn.Module, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, train: ImageSet,
                    first_step: int, n_steps: int, batch: int, pad: int, seed: int,
                    bar: tqdm | None = None, bf16: bool | None = None,
                    crop: int | None = None, loss_fn=None,
                    reader: batches.Reader = batches.Reader()) -> dict:
    """Steps [first_step, first_step + n_steps), on random crops of the images padded by `pad`
    (of their own size, or `crop` px) and flips. Under torchrun each rank takes an equal slice
    of every global batch (same images, same augmentation draws as one process would).
    `loss_fn(outputs, labels)` replaces the cross-entropy (a multi-label target's; its
    train_top1 is then NaN). The batches come from `batches.stream`, read by `reader`."""
    net.train()
    acc = devices.accel(bf16)
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in batches.stream(train, first_step, n_steps, batch, pad, seed, acc.device, crop,
                               reader):
        with torch.autocast(acc.device.type, torch.bfloat16, enabled=acc.bf16):
            out = net(_input(x, acc))
            loss = (F.cross_entropy(out.float(), y) if loss_fn is None
                    else loss_fn(out.float(), y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(y)
        correct += (out.argmax(1) == y).sum().item() if loss_fn is None else 0
        seen += len(y)
        if bar is not None:
            bar.update(1)
    loss_sum, correct, seen = devices.all_sum([loss_sum, correct, seen], acc.device)
    return {"train_loss": loss_sum / seen,
            "train_top1": 100.0 * correct / seen if loss_fn is None else float("nan")}


def _checkpoint(net, opt, sched, step, log, seconds) -> dict:
    return {"model": _bare(net).state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "rng": torch.random.get_rng_state(),
            "step": step, "log": log, "seconds": seconds}


def _resume(path: Path, device: torch.device) -> dict | None:
    """The checkpoint an earlier attempt left, or None. One that cannot be read (a crash while
    the disk filled, a truncated copy) is reported and discarded: the run restarts cleanly."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means the same here
        warnings.warn(f"itl: unreadable checkpoint {path} ({e}); restarting this run from "
                      "step 0", RuntimeWarning, stacklevel=2)
        path.unlink(missing_ok=True)
        (path.parent / "log.jsonl").unlink(missing_ok=True)
        return None


def _bare(net: torch.nn.Module) -> torch.nn.Module:
    return net.module if isinstance(net, DistributedDataParallel) else net


def _on_device(images: ImageSet, acc: devices.Accel) -> ImageSet:
    """Keep uint8 images on the GPU when they fit in a quarter of its free memory."""
    if acc.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(acc.device)
        if images.x.numel() < free // 4:
            return ImageSet(images.x.to(acc.device), images.y, images.classes)
    return images


def pretrain(cfg: PretrainConfig, train: ImageSet, test: ImageSet, full_images: int, seed: int,
             run_dir: Path, label: str = "") -> dict:
    """Train `cfg.model` on `train` (labels 0..C-1), checkpointing every epoch into `run_dir`
    and resuming from its checkpoint. Returns the run's metrics. Under torchrun, rank 0 writes."""
    sch = schedule(cfg, full_images, len(train))
    devices.init_distributed()
    acc = devices.accel(cfg.bf16)
    lead = devices.rank() == 0
    net = models.build(cfg.model, len(train.classes), seed, cfg.dropout).to(acc.device)
    if acc.channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(models.param_groups(net, cfg.lr, cfg.weight_decay,
                                              cfg.caffe_param_groups),
                          lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(sch.milestones), gamma=0.1)
    torch.manual_seed(seed)  # dropout (AlexNet) draws from the global generator
    ckpt_path, log = run_dir / CHECKPOINT, []
    step, earlier = 0, 0.0
    ck = _resume(ckpt_path, acc.device)
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.random.set_rng_state(ck["rng"])
        step, log, earlier = ck["step"], ck["log"], ck.get("seconds", 0.0)
    model = net
    if devices.world() > 1:
        if acc.device.type == "cuda":  # batch statistics over the global batch, as one GPU
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = DistributedDataParallel(net, device_ids=[acc.device.index]
                                        if acc.device.type == "cuda" else None)
    train = _on_device(train, acc)
    t0 = time.perf_counter()
    bar = tqdm(total=sch.steps, initial=step, desc=f"pretrain {label}".strip(), unit="step",
               leave=False, dynamic_ncols=True, mininterval=1.0, disable=not lead)
    while step < sch.steps:
        n = min(sch.steps_per_epoch, sch.steps - step)
        tic = time.perf_counter()
        stats = train_one_epoch(model, opt, sched, train, step, n, cfg.batch_size,
                                cfg.crop_pad, seed, bar, cfg.bf16, cfg.crop)
        step += n
        secs = time.perf_counter() - tic
        rec = {"epoch": len(log) + 1, "step": step, "lr": opt.param_groups[0]["lr"], **stats,
               "test_top1": evaluate(model, test, bf16=cfg.bf16, crop=cfg.crop),
               "seconds": secs,
               "images_per_s": n * cfg.batch_size / secs}
        log.append(rec)
        if lead:
            tqdm.write(f"{label} epoch {rec['epoch']:3d} step {step:5d} "
                       f"loss {rec['train_loss']:.3f} train {rec['train_top1']:5.1f}% "
                       f"test {rec['test_top1']:5.1f}% {rec['images_per_s']:.0f} img/s")
            paths.atomic_torch_save(ckpt_path, _checkpoint(
                model, opt, sched, step, log, earlier + time.perf_counter() - t0))
            paths.atomic_write_text(run_dir / "log.jsonl",
                                    "".join(json.dumps(r) + "\n" for r in log))
        devices.barrier()
    bar.close()
    seen = torch.randperm(len(train), generator=rng.generator("train-eval", seed))[:TRAIN_EVAL]
    seen = ImageSet(train.x[seen.to(train.x.device)], train.y[seen], train.classes)
    return {"source_top1": evaluate(model, test, bf16=cfg.bf16, crop=cfg.crop),
            "source_train_top1": evaluate(model, seen, bf16=cfg.bf16, crop=cfg.crop),
            "steps": sch.steps,
            "train_images": len(train), "classes": len(train.classes),
            "train_seconds": earlier + time.perf_counter() - t0, "earlier_seconds": earlier,
            "processes": devices.world(),
            "images_per_s": sum(r["images_per_s"] for r in log) / max(1, len(log)),
            "config": config_dict(cfg)}


TRAIN_EVAL = 10_000  # training images scored (eval mode, centre) for the train/validation gap


def load_trained(run_dir: Path, cfg: PretrainConfig, num_classes: int) -> models.Net:
    net = models.build(cfg.model, num_classes, 0, cfg.dropout)
    f = run_dir / CHECKPOINT
    try:
        ck = torch.load(f, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is the same problem
        raise RuntimeError(f"cannot load the pre-trained network {f} ({e}): delete its run "
                           f"folder {run_dir} to train it again") from e
    return net
