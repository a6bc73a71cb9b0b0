"""How an unpacked classification source is laid out, read before any image is decoded: `Split`
(the files and labels of one split), the common layouts (train/ and test/ folders of class
folders; or one folder per class, no split), and decoding a split once into uint8 images at a
cache size. A data set with a layout of its own (Tiny ImageNet's wnids.txt, CIFAR-10's pickled
batches) reads it in its own module into the same `Split`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from itl.datasets import images as _images
from itl.datasets.images import DataError, ImageSet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Split:
    """One split of a source before any image is decoded: what the identity checks read."""
    classes: tuple[str, ...]
    y: torch.Tensor  # int64 labels
    files: list[Path] = dataclasses.field(default_factory=list)  # the images to decode, or
    x: torch.Tensor | None = None  # CIFAR's python batches: the 32x32 images themselves

    def counts(self) -> list[int]:
        return torch.bincount(self.y, minlength=len(self.classes)).tolist()


def decode(f: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """An image at size x size px, and the (height, width) it had."""
    img = _images.decode_rgb(f)
    shape = tuple(img.shape[-2:])
    if shape != (size, size):
        img = F.interpolate(img[None].float(), size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)[0].round().clamp(0, 255)
        img = img.to(torch.uint8)
    return img, shape


def resized(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 images at size x size px (bilinear; antialiased when shrinking), `chunk` images at
    a time so that a million images never exist as floats at once; `x` itself at its own size."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    out = torch.empty((len(x), x.shape[1], size, size), dtype=torch.uint8)
    shrink = size < min(x.shape[-2:])
    for i in range(0, len(x), chunk):
        out[i:i + chunk] = F.interpolate(
            x[i:i + chunk].float(), size=(size, size), mode="bilinear", align_corners=False,
            **({"antialias": True} if shrink else {})).round().clamp(0, 255).to(torch.uint8)
    return out


def decoded(part: Split, size: int, what: str) -> tuple[ImageSet, set[tuple[int, int]]]:
    """The split's images at `size` px, and the sizes the originals had."""
    if part.x is not None:  # images already decoded (CIFAR-10's 32 px, ImageNet64's 64 px)
        return ImageSet(resized(part.x, size), part.y, part.classes), \
            {tuple(part.x.shape[-2:])}
    if not part.files:
        raise DataError(f"no images found for {what}")
    xs, shapes = [], set()
    for f in tqdm(part.files, desc=what, unit="img", leave=False, mininterval=2.0):
        img, shape = decode(f, size)
        xs.append(img)
        shapes.add(shape)
    return ImageSet(torch.stack(xs), part.y, part.classes), shapes


def class_folders(root: Path, what: str, aliases: dict[str, str]) -> Split:
    """One folder per class under `root` (a folder named in `aliases` holds that class)."""
    folders: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if p.is_dir():
            c = aliases.get(p.name, p.name)
            if c in folders:
                raise DataError(f"{root}: folders {folders[c].name} and {p.name} both hold "
                                f"class {c}")
            folders[c] = p
    classes = sorted(folders)
    files, ys = [], []
    for k, c in enumerate(classes):
        got = sorted(f for f in folders[c].iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        files += got
        ys += [k] * len(got)
    if not files:
        raise DataError(f"no images found for {what} under {root}")
    return Split(tuple(classes), torch.tensor(ys), files)


def split_folders(root: Path, name: str, aliases: dict[str, str]) -> dict[str, Split]:
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root}: the {split}/ split of {name} is missing")
    return {s: class_folders(root / s, f"{name} {s}", aliases) for s in ("train", "test")}


def layout_root(unpacked: Path) -> tuple[Path, str]:
    """The shallowest folder holding train/ or test/ ("split" layout), else the shallowest one
    whose subfolders all hold images ("classes" layout: one folder per class, no split)."""
    dirs = [unpacked] + sorted((p for p in unpacked.rglob("*") if p.is_dir()),
                               key=lambda p: (len(p.parts), str(p)))
    for d in dirs:
        if (d / "train").is_dir() or (d / "test").is_dir():
            return d, "split"
    for d in dirs:
        subs = [p for p in d.iterdir() if p.is_dir()]
        if subs and all(any(f.suffix.lower() in IMAGE_SUFFIXES for f in s.iterdir())
                        for s in subs):
            return d, "classes"
    raise DataError(f"no known layout under {unpacked}: expected train/ and test/ folders of "
                    "class folders (or pass the shards folder holding SHA256SUMS, or the "
                    "original archive)")
