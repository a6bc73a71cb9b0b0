"""Images as itl holds them (paper Section 3's data sets, at every scale): an `ImageSet` per split,
uint8 images N x 3 x H x W, int64 labels, and the class wnids (or names) the labels index; the
one error a missing, corrupt or unknown data set raises; reading an image file or a cache file.

The images are a tensor in memory, or, for a set too large for memory (ImageNet-1k at 256 px,
about 252 GB), `DiskImages`: shard files mapped into memory, read only where indexed, so that
choosing a subset (`relabel`, `concat`) reads nothing and a training step reads its batch.

Every other module of `itl.datasets` builds on this one, and it imports none of them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision


class DataError(RuntimeError):
    """A data set is missing, corrupt or unknown."""


class DiskImages:
    """uint8 images N x 3 x H x W kept in shards on disk (memory-mapped tensors n_i x 3 x H x W),
    indexed as a tensor is where a training loop indexes it: `x[i]`, `x[a:b]`, `x[idx]` read
    and return those rows as a tensor; `pick(idx)` is a view of some rows that reads nothing;
    `shape`, `len`, `numel`, `dtype`, `device`; `to(device)` reads every row."""
    dtype = torch.uint8
    device = torch.device("cpu")
    ndim = 4

    def __init__(self, shards, index: torch.Tensor | None = None):
        self.shards = tuple(shards)
        if not self.shards or len({tuple(s.shape[1:]) for s in self.shards}) != 1 or \
                any(s.dtype != torch.uint8 or s.ndim != 4 for s in self.shards):
            raise ValueError("DiskImages takes one or more uint8 shards of one image shape")
        sizes = torch.tensor([len(s) for s in self.shards])
        self.starts = torch.cumsum(sizes, 0) - sizes  # row of the whole where each shard starts
        self.rows = int(sizes.sum())
        self.index = torch.arange(self.rows) if index is None else index.to(torch.int64)
        self.shape = torch.Size((len(self.index), *self.shards[0].shape[1:]))

    def __len__(self) -> int:
        return len(self.index)

    def numel(self) -> int:
        return self.shape.numel()

    def pick(self, key) -> DiskImages:
        """The rows at `key` (indices, a slice or a mask), read when they are indexed."""
        return DiskImages(self.shards, self.index[_key(key)])

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, int):
            return self._read(self.index[key].reshape(1))[0]
        return self._read(self.index[_key(key)].reshape(-1))

    def _read(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.empty((len(rows), *self.shape[1:]), dtype=torch.uint8)
        shard = torch.searchsorted(self.starts, rows, right=True) - 1
        for s in shard.unique().tolist():
            at = shard == s
            out[at] = self.shards[s][rows[at] - self.starts[s]]
        return out

    def to(self, device, non_blocking: bool = False) -> torch.Tensor:
        return self[:].to(device, non_blocking=non_blocking)

    @staticmethod
    def cat(parts) -> DiskImages:
        """One DiskImages of several (DiskImages or tensors), in order."""
        shards, index, base = [], [], 0
        for p in parts:
            p = p if isinstance(p, DiskImages) else DiskImages([p])
            shards += p.shards
            index.append(p.index + base)
            base += p.rows
        return DiskImages(shards, torch.cat(index))


def _key(key):
    return torch.as_tensor(key) if isinstance(key, (list, tuple)) else key


def take(x, idx: torch.Tensor):
    """Rows `idx` of a tensor, or a view of them (nothing read) of DiskImages."""
    return x.pick(idx) if isinstance(x, DiskImages) else x[idx]


@dataclass(frozen=True)
class ImageSet:
    x: torch.Tensor | DiskImages  # uint8, N x 3 x H x W
    y: torch.Tensor  # int64, N
    classes: tuple[str, ...]  # y indexes this

    def __len__(self) -> int:
        return len(self.y)


# torchvision 0.29 announces that its JPEG/PNG codecs will move to TorchCodec; they work, and
# itl decodes each image once, so the notice is noise here.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities",
                        category=DeprecationWarning)


def decode_rgb(f: Path) -> torch.Tensor:
    """An image file as uint8 RGB (3 x H x W); an unreadable file is a DataError naming it."""
    try:
        return torchvision.io.decode_image(str(f), mode=torchvision.io.ImageReadMode.RGB)
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable image
        raise DataError(f"unreadable image {f}: {e}") from e


def read_cache(f: Path, remedy: str) -> ImageSet:
    """An ImageSet saved by itl (torch file of x, y, classes); unreadable or of another shape
    (not uint8 N x 3 x H x W images with N int64 labels and a list of class names): one
    DataError naming the file and `remedy`."""
    try:
        blob = torch.load(f, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable cache is the same problem
        raise DataError(f"corrupt data cache {f} ({e}); {remedy}") from e
    x, y, classes = (blob.get(k) if isinstance(blob, dict) else None
                     for k in ("x", "y", "classes"))
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
            and isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)
            and x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 3
            and y.dtype == torch.int64 and y.ndim == 1 and len(y) == len(x)):
        what = (f"{x.dtype} images of {tuple(x.shape)} and {y.dtype} labels of {tuple(y.shape)}"
                if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
                else f"keys {sorted(blob) if isinstance(blob, dict) else type(blob).__name__}")
        raise DataError(f"data cache {f} is not an itl image cache (uint8 N x 3 x H x W images, "
                        f"N int64 labels, class names): it holds {what}; {remedy}")
    return ImageSet(x, y, tuple(classes))


def relabel(images: ImageSet, label_of: dict[str, str], classes: list[str],
            indices: list[int] | None = None) -> ImageSet:
    """The images (all, or those at `indices`) whose class is in `label_of`, labelled by the
    position of label_of[class] in `classes`."""
    lut = torch.full((len(images.classes),), -1, dtype=torch.int64)
    for leaf, merged in label_of.items():
        lut[images.classes.index(leaf)] = classes.index(merged)
    idx = torch.arange(len(images)) if indices is None else torch.tensor(indices,
                                                                          dtype=torch.int64)
    y = lut[images.y[idx]]
    keep = y >= 0
    return ImageSet(take(images.x, idx[keep]), y[keep], tuple(classes))


def concat(sets: list[ImageSet]) -> ImageSet:
    """One image set holding several, their class lists one after the other."""
    offsets = [0]
    for s in sets[:-1]:
        offsets.append(offsets[-1] + len(s.classes))
    disk = any(isinstance(s.x, DiskImages) for s in sets)
    xs = [s.x for s in sets]
    return ImageSet(DiskImages.cat(xs) if disk else torch.cat(xs),
                    torch.cat([s.y + o for s, o in zip(sets, offsets)]),
                    tuple(c for s in sets for c in s.classes))
