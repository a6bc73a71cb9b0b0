"""Classification data sets prepared into uint8 caches (the small scale's Tiny ImageNet-200 as the
source "ImageNet", 15-Scene and CIFAR-10 as stand-ins for the paper's SUN-CLS and PASCAL targets):
verify, unpack, check, decode once, cache.

Whatever the source (`sources`), it must be the data set it is called: the entry's classes and
images per class per split are checked on the unpacked source before any image is decoded
(`identity`). Every image is then decoded once into uint8 tensors at each cache size
(`cache-<size>-<split>.pt`) that training reads, with their fingerprints and `source.json`
(`records`), all in a staging folder renamed into place when complete (`staging`). A data set
folder that an itl without records prepared is adopted: its caches are checked against the
entry and their fingerprint files and recorded, never rebuilt.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from itl import paths
from itl.datasets import content, layouts, records, sources, staging
from itl.datasets.entry import Dataset
from itl.datasets.identity import (compare_classes, compare_counts, compare_image_size,
                                   mismatch, remedy)
from itl.datasets.images import DataError, ImageSet, read_cache
from itl.datasets.layouts import Split

SIZE, SIZES = records.SIZE, records.SIZES


@dataclass(frozen=True, kw_only=True)
class CachedSet(Dataset):
    """A classification set that `itl data prepare` turns into uint8 caches."""
    per_class: dict[str, int | tuple[int, ...] | None]  # split -> images per class (int:
    # every class; None: not known to the entry, the source's own are recorded)
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)  # folder name -> class
    examples_share_images: ClassVar[bool] = False  # several examples cut from one image
    test_in_train: int | None = 0  # test images byte-identical to a training image that the
    # published data holds (more is refused: train/test leakage); None: not checked

    def __post_init__(self) -> None:
        if set(self.per_class) != set(self.splits):
            raise ValueError(f"{self.name}: per_class names splits {sorted(self.per_class)}, "
                             f"not its splits {sorted(self.splits)}")

    def counts(self, split: str) -> tuple[int, ...] | None:
        n = self.per_class[split]
        if n is None:
            return None
        return (n,) * len(self.classes) if isinstance(n, int) else tuple(n)

    def label_counts(self, y: torch.Tensor, num_classes: int) -> list[int] | None:
        """Images per class of a split's labels (None: a label out of range); a multi-label
        set overrides it."""
        return records.label_counts(y, num_classes)

    def decoded(self, part: Split, size: int, what: str):
        """A split's images at `size` px and the sizes the originals had; a set whose examples
        are regions of images overrides it."""
        return layouts.decoded(part, size, what)

    # ------------------------------------------------------------ reading a source

    def read(self, unpacked: Path, source: Path) -> dict[str, Split]:
        """The source's splits as laid out (nothing decoded): train/ and test/ folders of class
        folders. A data set with a layout of its own overrides this."""
        root, layout = layouts.layout_root(unpacked)
        if layout == "split":
            return layouts.split_folders(root, self.name, self.aliases)
        everything = layouts.class_folders(root, self.name, self.aliases)
        compare_classes(self, everything.classes, source, f"the class folders of {root}")
        return self.split_unsplit(root, everything)

    def split_unsplit(self, root: Path, everything: Split) -> dict[str, Split]:
        """The splits of a source of class folders without a split (15-Scene draws its
        standard one); by default, refused."""
        raise DataError(f"{root}: {self.name} needs train/ and test/ folders; {remedy(self)}")

    def opened(self, source: Path, stage: Path) -> tuple[Path, dict]:
        """The source's files (verified, unpacked into `stage`) and where they came from; a set
        distributed as several archives overrides it."""
        return sources.opened(self, source, stage)

    def index(self, unpacked: Path, source: Path) -> dict[str, Split]:
        """The splits of the source (files and labels, nothing decoded), checked against the
        entry: its splits, class names and images per class."""
        index = self.read(unpacked, source)
        if set(index) != set(self.per_class):
            raise mismatch(self, source, f"found splits {', '.join(sorted(index))}, expected "
                                         f"{', '.join(sorted(self.per_class))}")
        for split, part in index.items():
            compare_classes(self, part.classes, source, f"its {split} split")
            compare_counts(self, split, part.counts(), source, "")
        content.check_listed(self.name, index, remedy(self), self.examples_share_images)
        return index

    def leaked(self, index: dict[str, Split]) -> int | None:
        """Test images byte-identical to training images (`content.check_leaks`; more than
        `test_in_train` is refused); None: not checked."""
        if self.test_in_train is None:
            return None
        return content.check_leaks(self.name, index["train"], index["test"], self.test_in_train,
                                   remedy(self))

    def extra_files(self) -> dict[str, str]:
        """Files written beside the caches (name -> text)."""
        return {}

    # ------------------------------------------------------------ preparing

    def prepare(self, source: Path, size: int = SIZE) -> Path:
        """Verify/unpack `source`, check it is this data set, and build its uint8 caches with
        their record; returns its folder."""
        name = self.name
        source, top = sources.checked(name, source)
        with staging.building(top, name) as stage:
            if sources.is_cache_folder(source):
                return self._adopt(source, top, stage)
            unpacked, origin = self.opened(source, stage)
            index = self.index(unpacked, source)
            leaked = self.leaked(index)
            built = stage / name
            built.mkdir()
            sizes, seen = {}, set()
            for n, px in enumerate(dict.fromkeys((size,) + SIZES)):
                files = {}
                for split, part in index.items():
                    images, shapes = self.decoded(part, px, f"{name} {split}")
                    if n == 0:  # the originals' sizes, once
                        compare_image_size(self, shapes, source, f"{split} images")
                        seen |= shapes
                    f = built / f"cache-{px}-{split}.pt"
                    torch.save({"x": images.x, "y": images.y, "classes": list(images.classes)},
                               f)
                    files[f.name] = f.stat().st_size
                    del images
                sizes[str(px)] = records.size_record(built, name, px, index, files)
                (built / records.fingerprint_file(px)).write_text(
                    f"{sizes[str(px)]['fingerprint']}\n")
            for f, text in self.extra_files().items():
                (built / f).write_text(text)
            records.write(built, name, origin, self.classes,
                          {s: index[s].counts() for s in index},
                          list(next(iter(seen))) if len(seen) == 1 else None, sizes,
                          {} if leaked is None else {"test_in_train": leaked})
            return staging.install(built, top / name, stage)

    def _adopt(self, source: Path, top: Path, stage: Path) -> Path:
        """A data set folder that an itl prepared: every cache is checked against the entry and
        its fingerprint file (hashed once, here), then the record is written (in place, or on a
        copy installed under ITL_DATA)."""
        name = self.name
        again = f"prepare {name} again from its shards or original archive ({remedy(self)})"
        sizes, counts = {}, {}
        for fp in sorted(source.glob("fingerprint*")):
            px = SIZE if fp.name == "fingerprint" else int(fp.name.removeprefix("fingerprint-"))
            files = {}
            for split in sorted(self.per_class):
                f = source / f"cache-{px}-{split}.pt"
                if not f.is_file():
                    raise DataError(f"{source} has {fp.name} but no {f.name}; {again}")
                images = read_cache(f, again)
                compare_classes(self, images.classes, source, f"{f}")
                if tuple(images.x.shape[1:]) != (3, px, px) or images.x.dtype != torch.uint8:
                    raise DataError(f"{f} holds {images.x.dtype} images of "
                                    f"{tuple(images.x.shape[1:])}, not uint8 (3, {px}, {px}); "
                                    f"{again}")
                counts[split] = self.label_counts(images.y, len(images.classes))
                compare_counts(self, split, counts[split], source, f"{f}")
                files[f.name] = f.stat().st_size
            sizes[str(px)] = records.size_record(source, name, px, self.per_class, files)
            fingerprint = sizes[str(px)]["fingerprint"]
            if fp.read_text().strip() != fingerprint:
                raise DataError(f"{fp} says {fp.read_text().strip()} but the caches beside it "
                                f"hash to {fingerprint}: changed since they were prepared; "
                                f"{again}")
        origin = records.origin(source, "adopted", note="caches built by an itl that wrote no "
                                "record, checked against the identity and their fingerprint "
                                "files")
        original_size, checks = None, {}  # not known from a cache
        old = source / records.RECORD
        if old.is_file():  # a folder prepared with a record (here or elsewhere): keep what it says
            try:
                rec = json.loads(old.read_text())
                origin, original_size = dict(rec["source"]), rec["original_image_size"]
                checks = dict(rec.get("checks") or {})
            except (OSError, ValueError, KeyError, TypeError):
                pass
        if source.resolve() == (top / name).resolve():
            records.write(source, name, origin, self.classes, counts, original_size, sizes,
                          checks)
            return top / name
        built = stage / name
        shutil.copytree(source, built)
        records.write(built, name, origin, self.classes, counts, original_size, sizes, checks)
        return staging.install(built, top / name, stage)

    # ------------------------------------------------------------ reading

    def load(self, split: str, size: int | None = None) -> ImageSet:
        return records.load(self, split, size or SIZE)

    def fingerprint(self, size: int | None = None) -> str:
        return records.fingerprint(self.name, size)

    def present(self) -> bool:
        return all(records.cache_path(self.name, s, SIZE).is_file() for s in self.splits)

    def verify(self) -> str | None:
        """The checks reading makes before it reads a cache, for every split and cache size:
        the record, byte sizes, fingerprint files, and the sha256 of every cache against the
        record (`records.checked_content`: hashed once per process, so reading after it hashes
        nothing again)."""
        try:
            rec = records.read(self)
            for px in sorted({*SIZES, *(int(s) for s in rec["sizes"] if str(s).isdigit())}):
                for split in self.splits:
                    f, rec, again = records.checked_file(self, split, px)
                    records.checked_content(self, f, rec, split, px)
        except DataError as e:
            return str(e)
        return None

    def summary(self) -> str:
        rec = json.loads((paths.data_dir() / self.name / records.RECORD).read_text())
        images = " and ".join(f"{sum(rec['images'][s]):,} {s}" for s in self.splits)
        px = " and ".join(sorted((s for s in rec["sizes"] if s.isdigit()), key=int, reverse=True))
        src = rec["source"]
        return (f"{images} images, {len(self.classes)} classes, at {px} px "
                f"(from {src.get('kind')} {src.get('path')})")
