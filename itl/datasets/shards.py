"""A prepared set too large for memory, as shard files that stream (paper Section 3: AlexNet
pre-trained on ImageNet-1k's 1.28 million images at 256 px, about 252 GB): each split is decoded
once into raw uint8 shards `<split>-NNN.u8` of at most SHARD images (3 x H x W each, row after
row), its labels `<split>-labels.pt` (int64) and its images' original names `<split>-files.txt`,
in the order of the set's canonical listing. Reading maps the shards into memory
(`images.DiskImages`): nothing is read until a batch is indexed.

`source.json` records per split every shard's image count, byte size and sha256 (hashed as it was
written) and the labels file's; the fingerprint is the digest of those digests. Reading checks
the shards against the record (present, byte sizes, the labels' counts per class) and the labels
file against its sha256 (once per process: labels permuted in place are refused). The image
shards themselves are checked by byte size only: hashing 252 GB on every read is not affordable;
`sha256sum` against the record's sums checks them when wanted.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

import itl
from itl import paths
from itl.datasets import content
from itl.datasets.entry import prepare_command
from itl.datasets.identity import short_list
from itl.datasets.images import DataError, DiskImages, ImageSet

SHARD = 8192  # images per shard file: 1.6 GB at 256 px (157 train shards for ImageNet-1k)
RECORD = "source.json"


class Writer:
    """Appends the images of one split, in order, to its shards in `folder`, hashing as it
    writes."""

    def __init__(self, folder: Path, split: str, shape: tuple[int, int, int]):
        self.folder, self.split, self.shape = folder, split, tuple(shape)
        self.shards: list[dict] = []
        self.labels: list[int] = []
        self.names: list[str] = []
        self._file = None

    def add(self, image: torch.Tensor, label: int, name: str) -> None:
        if tuple(image.shape) != self.shape or image.dtype != torch.uint8:
            raise ValueError(f"{name}: {image.dtype} {tuple(image.shape)}, not uint8 "
                             f"{self.shape}")
        if self._file is None or self.shards[-1]["images"] == SHARD:
            self._close_shard()
            f = f"{self.split}-{len(self.shards):03d}.u8"
            self._file, self._hash = (self.folder / f).open("wb"), hashlib.sha256()
            self.shards.append({"file": f, "images": 0})
        data = image.contiguous().numpy().tobytes()
        self._file.write(data)
        self._hash.update(data)
        self.shards[-1]["images"] += 1
        self.labels.append(label)
        self.names.append(name)

    def _close_shard(self) -> None:
        if self._file is not None:
            self._file.close()
            self.shards[-1].update(bytes=(self.folder / self.shards[-1]["file"]).stat().st_size,
                                   sha256=self._hash.hexdigest())
            self._file = None

    def close(self, classes: int) -> dict:
        """Finish the split: its record (shards, labels, images per class)."""
        self._close_shard()
        if not self.labels:
            raise DataError(f"no images for the {self.split} split")
        y = torch.tensor(self.labels, dtype=torch.int64)
        labels = self.folder / f"{self.split}-labels.pt"
        torch.save(y, labels)
        (self.folder / f"{self.split}-files.txt").write_text("\n".join(self.names) + "\n")
        return {"image_shape": list(self.shape), "shards": self.shards,
                "labels": {"file": labels.name, "bytes": labels.stat().st_size,
                           "sha256": paths.sha256_file(labels)},
                "images": torch.bincount(y, minlength=classes).tolist()}


def digest(name: str, splits: dict[str, dict]) -> str:
    """The fingerprint of shards as recorded: NAME-, then the first 16 hex digits of the sha256
    of every shard's and labels file's sha256, split by split in name order."""
    h = hashlib.sha256()
    for split in sorted(splits):
        for s in splits[split]["shards"]:
            h.update(s["sha256"].encode())
        h.update(splits[split]["labels"]["sha256"].encode())
    return f"{name}-{h.hexdigest()[:16]}"


def write_record(folder: Path, name: str, origin: dict, classes, splits: dict[str, dict],
                 fingerprint_file: str) -> str:
    fingerprint = digest(name, splits)
    (folder / fingerprint_file).write_text(fingerprint + "\n")
    paths.atomic_write_json(folder / RECORD, {
        "dataset": name, "source": origin, "classes": list(classes), "splits": splits,
        "fingerprint": fingerprint, "itl_version": itl.__version__,
        "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return fingerprint


def again(name: str) -> str:
    return f"prepare it again: run `{prepare_command(name)}`"


def read_record(folder: Path, name: str, classes: tuple[str, ...], per_class: dict[str, int],
                fingerprint_file: str) -> dict:
    """The record of shards prepared in `folder`, checked against the data set (its name,
    classes, test images per class) and its fingerprint file, nothing hashed."""
    f = folder / RECORD
    if not f.is_file():
        raise DataError(f"data set {name!r} is not prepared under {folder.parent} (ITL_DATA): "
                        f"run `{prepare_command(name)}`")
    try:
        rec = json.loads(f.read_text())
        found = rec["dataset"], tuple(rec["classes"]), rec["splits"], rec["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"unreadable record {f} ({e!r}); {again(name)}") from e
    if found[0] != name or found[1] != classes:
        raise DataError(f"{f} records {found[0]!r} with {len(found[1])} classes "
                        f"({short_list(found[1])}), not {name} ({len(classes)} classes); "
                        f"{again(name)}")
    for split, n in per_class.items():
        if split not in found[2] or (n and found[2][split]["images"] != [n] * len(classes)):
            raise DataError(f"{f} records no {split} split of {n} images per class; "
                            f"{again(name)}")
    fp = folder / fingerprint_file
    if not fp.is_file() or fp.read_text().strip() != found[3] or \
            digest(name, found[2]) != found[3]:
        raise DataError(f"{fp} does not hold the fingerprint {found[3]} that {f} records; "
                        f"{again(name)}")
    return rec


def checked_files(folder: Path, name: str, rec: dict, split: str) -> None:
    """Every shard and the labels file of `split` present at their recorded byte sizes."""
    part = rec["splits"][split]
    row = int(np.prod(part["image_shape"]))
    for s in part["shards"] + [part["labels"]]:
        f = folder / s["file"]
        size = f.stat().st_size if f.is_file() else None
        want = s["bytes"] if "images" not in s else s["images"] * row
        if size != want or size != s["bytes"]:
            raise DataError(f"{f} " + ("is missing" if size is None else
                                       f"has {size:,} bytes where {folder / RECORD} records "
                                       f"{s['bytes']:,}") + f"; {again(name)}")


def open_split(folder: Path, name: str, rec: dict, split: str) -> ImageSet:
    """A prepared split: its shards mapped into memory (nothing read), its labels in memory."""
    checked_files(folder, name, rec, split)
    part = rec["splits"][split]
    shape = tuple(part["image_shape"])
    shards = [torch.from_numpy(np.memmap(folder / s["file"], dtype=np.uint8, mode="c",
                                         shape=(s["images"], *shape)))
              for s in part["shards"]]
    f = folder / part["labels"]["file"]
    if content.sha256_of(f) != part["labels"]["sha256"]:
        raise DataError(f"labels {f} changed since they were prepared: their sha256 is not the "
                        f"one {folder / RECORD} records (same byte size: edited in place, e.g. "
                        f"permuted); {again(name)}")
    try:
        y = torch.load(f, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable labels file is the same problem
        raise DataError(f"unreadable labels {f} ({e}); {again(name)}") from e
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or \
            torch.bincount(y, minlength=len(rec["classes"])).tolist() != part["images"]:
        raise DataError(f"{f} does not hold the labels {folder / RECORD} records; "
                        f"{again(name)}")
    x = DiskImages(shards)
    if len(x) != len(y):
        raise DataError(f"{folder} holds {len(x):,} {split} images and {len(y):,} labels; "
                        f"{again(name)}")
    return ImageSet(x, y, tuple(rec["classes"]))
