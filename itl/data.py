"""Images for pre-training and transfer, held as uint8 tensors (paper Section 3: ImageNet source,
PASCAL / SUN targets; here at each scale's stand-ins), by name.

A data set is an `ImageSet` per split: uint8 images N x 3 x H x W, int64 labels, and the class
wnids (or names) the labels index. `load` and `fingerprint` take a registry name
(`itl.datasets`), "a+b" (both, classes of a first) or "name:view" (a class view,
`itl.labels.view_leaves`). Sets are cached under `ITL_DATA`, so training never decodes an image.
Augmentation (random crop with padding, or a smaller random crop as Caffe's crop_size;
horizontal flip) runs on whole batches, drawn from an explicit generator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from itl import datasets, labels
from itl.datasets.images import DataError, ImageSet, concat, relabel  # relabel: subsets'


def fingerprint(name: str, size: int | None = None) -> str:
    """What identifies a data set's content (at `size` px; None: its own size) in a run's
    config."""
    if "+" in name:
        return "+".join(fingerprint(n, size) for n in name.split("+"))
    if ":" in name:
        base, _, view = name.partition(":")
        return f"{fingerprint(base, size)}:{view}"
    if name in datasets.REGISTRY:
        return datasets.REGISTRY[name].fingerprint(size)
    return name


def load(name: str, split: str, size: int | None = None) -> ImageSet:
    """Split `split` ("train" or "test") of data set `name` ("a+b": both, classes of a first),
    at `size` px (None: the data set's own; prepared real data has 64- and 32-px caches)."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} of {name}: choose train or test")
    if "+" in name:
        return concat([load(n, split, size) for n in name.split("+")])
    if ":" in name:  # a class view: name:main / name:extra (labels.view_leaves)
        base, _, view = name.partition(":")
        full = load(base, split, size)
        keep = labels.view_leaves(base, view, list(full.classes))
        return relabel(full, {c: c for c in keep}, keep)
    return datasets.get(name).load(split, size)


# ---------------------------------------------------------------- batches

MEAN, STD = 0.45, 0.25  # one normalisation for every scale's uint8 images


def to_input(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> normalised float input."""
    return (x.float() / 255 - MEAN) / STD


def crop_room(h: int, w: int, pad: int, crop: int | None) -> tuple[int, int] | None:
    """The largest crop offsets (rows, columns) of a random `crop` x `crop` crop from h x w
    images padded by `pad` (Caffe's crop_size: offsets 0..H-crop); None for no crop (a crop of
    the original size from the padded image, offsets 0..2 pad)."""
    if crop is None:
        return None
    if not 0 < crop <= min(h, w) + 2 * pad:
        raise ValueError(f"crop {crop} px does not fit the {h}x{w} px images (padded by {pad}): "
                         f"choose a crop between 1 and {min(h, w) + 2 * pad}, or None")
    return h + 2 * pad - crop, w + 2 * pad - crop


def augment_params(n: int, pad: int, g: torch.Generator,
                   room: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
    """Crop offsets (rows, columns) and flips for n images, drawn from `g` (on the CPU, so the
    same draws on every device). Offsets lie in 0..room (crop_room; None: 0..2 pad)."""
    ry, rx = (2 * pad, 2 * pad) if room is None else room
    oy = torch.randint(0, ry + 1, (n,), generator=g)
    ox = torch.randint(0, rx + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    return oy, ox, flip


def apply_augment(x: torch.Tensor, pad: int, oy: torch.Tensor, ox: torch.Tensor,
                  flip: torch.Tensor, crop: int | None = None) -> torch.Tensor:
    """Random crop (of the original size, or `crop` px square) from a zero-padded image, and a
    horizontal flip, for a whole uint8 batch at once on its own device (no per-image Python)."""
    n, c, h, w = x.shape
    oy, ox, flip = oy.to(x.device), ox.to(x.device), flip.to(x.device)
    if pad or crop is not None:
        ch, cw = (h, w) if crop is None else (crop, crop)
        xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
        ar_h, ar_w = torch.arange(ch, device=x.device), torch.arange(cw, device=x.device)
        rows = (oy[:, None] + ar_h)[:, None, :, None]  # n,1,ch,1
        cols = (ox[:, None] + ar_w)[:, None, None, :]  # n,1,1,cw
        x = xp[torch.arange(n, device=x.device)[:, None, None, None],
               torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, pad: int, g: torch.Generator, crop: int | None = None
            ) -> torch.Tensor:
    room = crop_room(x.shape[-2], x.shape[-1], pad, crop)
    return apply_augment(x, pad, *augment_params(len(x), pad, g, room), crop=crop)


def center_crop(x: torch.Tensor, crop: int | None) -> torch.Tensor:
    """The central `crop` x `crop` pixels of a batch, as Caffe's TEST phase takes them (offset
    (H - crop) // 2); the batch itself for None."""
    if crop is None:
        return x
    h, w = x.shape[-2:]
    crop_room(h, w, 0, crop)
    top, left = (h - crop) // 2, (w - crop) // 2
    return x[..., top:top + crop, left:left + crop]
