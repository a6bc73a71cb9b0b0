"""Images as itl holds them (paper Section 3's data sets, at every scale): an `ImageSet` per split,
uint8 images N x 3 x H x W, int64 labels, and the class wnids (or names) the labels index; the
one error a missing, corrupt or unknown data set raises; reading an image file or a cache file.

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


@dataclass(frozen=True)
class ImageSet:
    x: torch.Tensor  # uint8, N x 3 x H x W
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
    return ImageSet(images.x[idx[keep]], y[keep], tuple(classes))


def concat(sets: list[ImageSet]) -> ImageSet:
    """One image set holding several, their class lists one after the other."""
    offsets = [0]
    for s in sets[:-1]:
        offsets.append(offsets[-1] + len(s.classes))
    return ImageSet(torch.cat([s.x for s in sets]),
                    torch.cat([s.y + o for s, o in zip(sets, offsets)]),
                    tuple(c for s in sets for c in s.classes))
