"""Images for pre-training and transfer, held as uint8 tensors (paper Section 3: ImageNet source,
PASCAL / SUN targets; here at each scale's stand-ins), by name.

A data set is an `ImageSet` per split: uint8 images N x 3 x H x W, int64 labels, and the class
wnids (or names) the labels index. `load` and `fingerprint` take a registry name
(`itl.datasets`), "a+b" (both, classes of a first) or "name:view" (a class view,
`itl.labels.view_leaves`). Sets are cached under `ITL_DATA`, so training never decodes an image.
Augmentation (random crop with padding, horizontal flip) runs on whole batches, drawn from an
explicit generator.
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


def augment_params(n: int, pad: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Crop offsets (rows, columns) and flips for n images, drawn from `g` (on the CPU, so the
    same draws on every device)."""
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    return oy, ox, flip


def apply_augment(x: torch.Tensor, pad: int, oy: torch.Tensor, ox: torch.Tensor,
                  flip: torch.Tensor) -> torch.Tensor:
    """Random crop of the original size from a zero-padded image, and a horizontal flip, for a
    whole uint8 batch at once on its own device (no per-image Python)."""
    n, c, h, w = x.shape
    oy, ox, flip = oy.to(x.device), ox.to(x.device), flip.to(x.device)
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        rows = (oy[:, None] + ar_h)[:, None, :, None]  # n,1,h,1
        cols = (ox[:, None] + ar_w)[:, None, None, :]  # n,1,1,w
        x = xp[torch.arange(n, device=x.device)[:, None, None, None],
               torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    return apply_augment(x, pad, *augment_params(len(x), pad, g))
