"""The input path of every training loop (paper Section 3: AlexNet pre-trained on ImageNet-1k,
random 227 px crops and mirrors of 256 px images, 256 images a step, then fine-tuned the same
way): which images a step sees, read where they are kept, copied to the device, cropped and
flipped there.

Images are decoded once, when a data set is prepared (uint8 tensors; memory-mapped shards for
ImageNet-1k at 256 px, `itl.datasets.shards`), so training never decodes an image. The images
of step s are positions [sB, (s+1)B) of an endless stream of seeded permutations of the set, and
its crops and flips are drawn on the CPU from a generator seeded by (seed, s): a batch is a pure
function of (seed, step), the same on a CPU or a GPU, and a run resumed at step s replays what
an uninterrupted run does.

Where the pixels go:
- images already on the device (a set that fits a GPU, `train._on_device`) are gathered there;
- images in host memory or shards are read by `Reader.ahead` background threads that many steps
  ahead of the loop (a gather of a batch's rows; the threads release the GIL while they copy or
  page in), into pinned memory when the device is a GPU, copied without blocking, then cropped
  and flipped on the device: the host does no per-pixel work but the gather;
- on a CPU with the images in memory the loop reads them itself (there is nothing to overlap).
Under torchrun every rank reads only its own slice of each global batch.

`python -m itl.bench --scale paper --synthetic` measures this path beside a plain torchvision
`ImageFolder` + `DataLoader` loop that decodes JPEGs (reports/benchmarks/).
"""
from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import torch

from itl import data, devices, rng
from itl.datasets.images import ImageSet


@functools.lru_cache(maxsize=2)
def _order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The seeded permutation of range(n) of one epoch, drawn once per epoch rather than once
    per step (ImageNet's 1.28 M images: tens of ms a draw, the whole step budget on a GPU).
    Read only: callers slice it."""
    return torch.randperm(n, generator=rng.generator("order", seed, epoch))


def batch_indices(n: int, step: int, batch: int, seed: int) -> torch.Tensor:
    """Positions [step*batch, (step+1)*batch) of the stream of seeded permutations of range(n)."""
    out, pos = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(pos, n)
        perm = _order(n, seed, epoch)
        take = perm[offset: offset + batch - len(out)]
        out.extend(take.tolist())
        pos += len(take)
    return torch.tensor(out)


class Batch(NamedTuple):
    x: torch.Tensor  # uint8 images, cropped and flipped, on the device (this rank's slice)
    y: torch.Tensor  # int64 labels on the device


@dataclass(frozen=True)
class Reader:
    """How a loop's images are read when they are not on its device already."""
    ahead: int = 4  # steps read in advance, one thread each (0: the loop reads each step)
    pin: bool = True  # into page-locked memory when the device is a GPU (asynchronous copies)

    def __post_init__(self):
        if self.ahead < 0:
            raise ValueError(f"Reader ahead={self.ahead}: give 0 (read in the loop) or more")


def stream(images: ImageSet, first_step: int, n_steps: int, batch: int, pad: int, seed: int,
           device: torch.device, crop: int | None = None, reader: Reader = Reader()
           ) -> Iterator[Batch]:
    """The batches of steps [first_step, first_step + n_steps): this rank's share of each
    global batch of `batch` images, randomly cropped (to their own size from the image padded
    by `pad`, or `crop` px square) and mirrored, on `device`."""
    r, w = devices.rank(), devices.world()
    if batch % w:
        raise ValueError(f"batch size {batch} is not divisible by {w} processes")
    lo, hi = r * batch // w, (r + 1) * batch // w
    room = data.crop_room(images.x.shape[-2], images.x.shape[-1], pad, crop)
    # images a tensor on the device's kind already: gathered where they are, by the loop
    on_device = isinstance(images.x, torch.Tensor) and images.x.device.type == device.type
    pin = reader.pin and not on_device and device.type == "cuda"

    def read(step: int):
        idx = batch_indices(len(images), step, batch, seed)
        params = data.augment_params(batch, pad, rng.generator("augment", seed, step), room)
        mine = idx[lo:hi]
        rows = images.x[mine.to(images.x.device)]
        if pin:
            rows = rows.pin_memory()
        return rows, images.y[mine], tuple(p[lo:hi] for p in params)

    def finish(rows: torch.Tensor, y: torch.Tensor, params) -> Batch:
        x = rows.to(device, non_blocking=True)
        return Batch(data.apply_augment(x, pad, *params, crop=crop),
                     y.to(device, non_blocking=True))  # labels are kept on the CPU

    steps = range(first_step, first_step + n_steps)
    threads = 0 if on_device else min(reader.ahead, n_steps)
    if threads == 0:
        for step in steps:
            yield finish(*read(step))
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="itl-read")
    pending: deque[Future] = deque()
    try:
        todo = iter(steps)
        for step in todo:
            pending.append(pool.submit(read, step))
            if len(pending) == threads:
                break
        while pending:
            got = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(read, nxt))
            yield finish(*got)
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
