"""CIFAR-10 (Krizhevsky 2009): at small scale it plays PASCAL's role (paper Sections 3 and 5.6a:
an object classification target whose classes can be removed from the source), and its test
images are the objects of the generated detection set `voc-cifar`. 10 classes, 5,000 training
and 1,000 test images each, 32x32.

Besides train/ and test/ class folders (the shards' layout), it reads the original python
distribution, `cifar-10-python.tar.gz`: pickled batches of 32x32 images.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, SHARDS_FOLDER, TOP1, Archive
from itl.datasets.images import DataError
from itl.datasets.layouts import Split
from itl.datasets.sources import find

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")  # batches.meta's label_names (already in sorted order)


def read_batches(root: Path) -> dict[str, Split]:
    """CIFAR-10's python distribution: pickled batches of 32x32 images."""
    def unpickle(f: Path) -> dict:
        try:
            with f.open("rb") as fh:
                d = pickle.load(fh, encoding="bytes")
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise DataError(f"unreadable CIFAR-10 batch {f}: {e}") from e
        if not isinstance(d, dict):
            raise DataError(f"{f} is not a CIFAR-10 batch (a pickled dict)")
        return d

    def load(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in files:
            d = unpickle(root / name)
            try:
                x = torch.as_tensor(d[b"data"]).reshape(-1, 3, 32, 32)
                y = torch.as_tensor(d[b"labels"])
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise DataError(f"{root / name} is not a CIFAR-10 batch (data: N x 3072 uint8, "
                                f"labels: N): {e}") from e
            if x.dtype != torch.uint8 or y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{root / name} is not a CIFAR-10 batch: {tuple(x.shape)} "
                                f"{x.dtype} images, {tuple(y.shape)} labels")
            xs.append(x)
            ys.append(y.long())
        return torch.cat(xs), torch.cat(ys)

    meta = unpickle(root / "batches.meta")
    try:
        names = tuple(n.decode() for n in meta[b"label_names"])
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{root / 'batches.meta'} has no label_names: {e}") from e
    out = {}
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]),
                         ("test", ["test_batch"])):
        x, y = load(files)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{root}: {split} labels outside the {len(names)} classes of "
                            "batches.meta")
        out[split] = Split(names, y, x=x)
    return out


@dataclass(frozen=True, kw_only=True)
class Cifar10(CachedSet):
    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        root = find(unpacked, "batches.meta")
        return read_batches(root) if root is not None else super().read(unpacked, source)


CIFAR10 = Cifar10(
    name="cifar-10", kind=CLASSIFICATION, metric=TOP1,
    classes=CIFAR_CLASSES, class_ids="name", per_class={"train": 5000, "test": 1000},
    image_size=(32, 32),
    shards="cifar-10", shard_files=("cifar-10-train.tar.gz", "cifar-10-test.tar.gz"),
    archives=(Archive("cifar-10-python.tar.gz",
                      md5="c58f30108f718f92721af3b95e74349a"),),  # torchvision's CIFAR10
    fix=f"{SHARDS_FOLDER} or Krizhevsky's cifar-10-python.tar.gz")
ENTRIES = (CIFAR10,)
