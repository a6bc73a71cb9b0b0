"""SUN397 (Xiao et al., CVPR 2010), the paper's SUN-CLS target (Section 3) at paper scale: 397
scene classes, the official partition 1 (`Training_01.txt` / `Testing_01.txt` of
`Partitions.zip`, 50 training and 50 test images per class), scored by mean per-class accuracy.

It is distributed as two archives, `SUN397.tar.gz` (the images under `SUN397/<letter>/<class>/`,
with `SUN397/ClassName.txt`, lines such as `/a/abbey` or `/a/apartment_building/outdoor`) and
`Partitions.zip` (`Training_NN.txt` / `Testing_NN.txt`, lines such as
`/a/abbey/sun_aaalbzqrimafwbiv.jpg`, paths under `SUN397/`). `itl data prepare sun397 --from
PATH` takes a folder holding both archives (each checked against torchvision's checksums), or a
folder where both are unpacked. Class names follow torchvision's `SUN397`: the ClassName.txt line
without its `/<letter>/`, slashes as underscores (`apartment_building_outdoor`).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from itl.datasets import records, sources
from itl.datasets.cached import CachedSet
from itl.datasets.entry import CLASSIFICATION, MEAN_PER_CLASS, Archive
from itl.datasets.identity import compare_classes, remedy
from itl.datasets.images import DataError
from itl.datasets.layouts import Split

IMAGES, PARTITIONS = "SUN397.tar.gz", "Partitions.zip"
CLASS_FILE = "ClassName.txt"
TRAIN_FILE, TEST_FILE = "Training_01.txt", "Testing_01.txt"  # partition 1 (of 10)


def class_name(line: str) -> str:
    """A ClassName.txt line as torchvision's SUN397 names the class: `/a/apartment_building/
    outdoor` -> `apartment_building_outdoor`."""
    return line.strip()[3:].replace("/", "_")


def class_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# The 397 lines of SUN397's ClassName.txt, in its order (copied from a third party's listing of
# the data set's per-class image counts; a real ClassName.txt that differs is refused by name)
SUN397_LINES = tuple(class_lines(resources.files("itl.resources").joinpath(
    "sun397_ClassName.txt").read_text()))


@dataclass(frozen=True, kw_only=True)
class Sun397(CachedSet):
    def opened(self, source: Path, stage: Path) -> tuple[Path, dict]:
        """A folder holding SUN397.tar.gz and/or Partitions.zip: each archive there verified
        (under its own name, against its published checksums) and unpacked into the staging
        folder, whose files are read before the folder's own; anything else as every cached set
        opens it (one archive, shards, or a folder already unpacked)."""
        here = [source / a.name for a in self.archives] if source.is_dir() else []
        here = [f for f in here if f.is_file()]
        if not here:
            return sources.opened(self, source, stage)
        unpacked = stage / "unpacked"
        unpacked.mkdir()
        digests = {}
        for f in here:
            digests[f.name] = sources.verified_archive(self, f)
            sources.unpack(f, unpacked)
        return unpacked, records.origin(source, "archives", archives=digests)

    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        """The images' root (the folder whose ClassName.txt sits beside the class folders) and
        partition 1's two lists; every listed image must be there."""
        roots = [unpacked] + ([source] if source.is_dir() and source != unpacked else [])
        root = self._image_root(roots, source)
        lines = class_lines((root / CLASS_FILE).read_text())
        compare_classes(self, [class_name(c) for c in lines], source, f"{root / CLASS_FILE}")
        label = {c: k for k, c in enumerate(lines)}
        out = {}
        for split, fname in (("train", TRAIN_FILE), ("test", TEST_FILE)):
            listing = self._find(roots, fname)
            if listing is None:
                raise DataError(f"{source} has no {fname} (SUN397's official partition 1, in "
                                f"{PARTITIONS}): put {IMAGES} and {PARTITIONS} in one folder "
                                f"and pass that folder; {remedy(self)}")
            files, ys = [], []
            for n, line in enumerate(class_lines(listing.read_text()), 1):
                cls = line.rsplit("/", 1)[0]
                if cls not in label:
                    raise DataError(f"{listing} line {n}: {line!r} is not under a class of "
                                    f"{root / CLASS_FILE}; {remedy(self)}")
                f = root / line.lstrip("/")
                if not f.is_file():
                    raise DataError(f"{f} is missing; it is listed in {listing} line {n}; "
                                    f"{remedy(self)}")
                files.append(f)
                ys.append(label[cls])
            out[split] = Split(self.classes, torch.tensor(ys, dtype=torch.int64), files)
        return out

    def _image_root(self, roots: list[Path], source: Path) -> Path:
        for top in roots:
            for f in sorted(top.rglob(CLASS_FILE), key=lambda p: len(p.parts)):
                first = class_lines(f.read_text())[:1]
                if first and (f.parent / first[0].lstrip("/")).is_dir():
                    return f.parent
        raise DataError(f"{source} holds no SUN397 images (a {CLASS_FILE} beside the class "
                        f"folders, as {IMAGES} unpacks to SUN397/); {remedy(self)}")

    @staticmethod
    def _find(roots: list[Path], name: str) -> Path | None:
        for top in roots:
            hit = sources.find(top, name)
            if hit is not None:
                return hit / name
        return None


SUN397 = Sun397(
    name="sun397", kind=CLASSIFICATION, metric=MEAN_PER_CLASS,
    classes=tuple(class_name(c) for c in SUN397_LINES), class_ids="name",
    splits=("train", "test"),  # test: Testing_01 (the paper's own split is unpublished:
    # docs/paper-protocol.md section 3)
    per_class={"train": 50, "test": 50},
    archives=(Archive(IMAGES, md5="8ca2778205c41d23104230ba66911c7a",  # torchvision.datasets.
                      # SUN397's _DATASET_MD5; sha256 from torchvision's prototype sun397.py
                      sha256="f404130965a7ad77bed5ececc71e720ab50f3cc1e1bb257257610d38f3b928ec"),
              Archive(PARTITIONS,  # no published md5; sha256 from torchvision's prototype
                      sha256="e3311ea5f812d4cc6faef194688343d1111f6cd6f70f2c62f393c2b8d6ba1ec9")),
    fix=f"a folder holding {IMAGES} and {PARTITIONS} (or both unpacked)",
    test_in_train=None)  # not measured (no copy here): partition 1's lists are checked by path
ENTRIES = (SUN397,)
