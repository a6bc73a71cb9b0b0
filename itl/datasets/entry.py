"""What one entry of the data set registry says (paper Section 3: the source and target data sets
the questions are asked on, at each scale): a data set's name and kind, the files it is made from
and their published checksums, its splits, its classes (WordNet ids or names), the metric a
transfer to it is scored with, and, through its kind, how itl prepares, verifies and reads it.

An entry is a frozen dataclass of one of a few kinds, each defined in its own module:
`cached.CachedSet` (classification, prepared into uint8 caches), `voc.VocSet` (a prepared
VOC-format detection folder), `smoke.GeneratedSet` and `voc_cifar.GeneratedVoc` (generated on
first use), `planned.Planned` (declared, not supported yet). A data set's own module subclasses
its kind where it reads a layout of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from itl.datasets.images import DataError, ImageSet

CLASSIFICATION, DETECTION = "classification", "detection"  # Dataset.kind

TOP1 = "top-1 accuracy"  # Dataset.metric: what itl scores a transfer to the set with
MEAN_PER_CLASS = "mean per-class accuracy"  # SUN397's standard measure
VOC07_MAP = "mAP (VOC 2007 11-point, IoU 0.5)"  # itl.detection.evaluate
MEAN_AP = "mean AP over classes"  # VOC 2012 action classification
VOC07_CLS = "mAP (VOC 2007 classification, 11-point, difficult ignored)"  # VOC-CLS

PREPARED, GENERATED, PLANNED = "prepared", "generated", "planned"  # Dataset.origin
SHARE, IMAGES = "share", "images"  # Dataset.per_class_unit

# Status.state, as `itl data status` prints it
VERIFIED = "present, verified"
FAILING = "present, failing verification"
MISSING = "missing"
GENERATED_ON_USE = "generated on first use"
NOT_SUPPORTED = "not supported yet"

SHARDS_FOLDER = "the shards folder holding SHA256SUMS (../shared/data)"  # in `fix` texts


@dataclass(frozen=True)
class Archive:
    """A file of a data set's original distribution, with its published checksums."""
    name: str
    md5: str | None = None
    sha256: str | None = None

    def __str__(self) -> str:
        sums = ", ".join(f"{k} {v}" for k, v in (("md5", self.md5), ("sha256", self.sha256))
                         if v)
        return f"{self.name} ({sums})" if sums else self.name


@dataclass(frozen=True)
class Status:
    """Whether a data set is here and sound: one of the states above, and the one-line detail
    (the reason it fails, or the command that prepares it)."""
    state: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def prepare_command(name: str) -> str:
    return f"itl data prepare {name} --from PATH"


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A data set itl knows by name. Its kind (a subclass) supplies prepare / load / root /
    present / verify; this base says what every kind shares."""
    name: str
    kind: str  # CLASSIFICATION or DETECTION
    metric: str  # TOP1, MEAN_PER_CLASS, VOC07_MAP, MEAN_AP, VOC07_CLS
    classes: tuple[str, ...] | None  # in label order; None: read from the data itself
    class_ids: str  # "wnid" (WordNet 3.0 noun ids) or "name"
    splits: tuple[str, ...] = ("train", "test")
    image_size: tuple[int, int] | None = None  # (height, width) of every original; None: varies
    shards: str | None = None  # its folder in a shards folder with SHA256SUMS
    shard_files: tuple[str, ...] = ()  # the shards that folder holds in ../shared/data (any
    # tar.gz in it listed in SHA256SUMS is accepted; these names are for messages)
    archives: tuple[Archive, ...] = ()  # the original distribution's files, as published
    fix: str = ""  # the PATH to give `itl data prepare NAME --from PATH` (error messages)
    train_split: str = "train"  # the split a detection target is fine-tuned on (scored on test)
    per_class_unit: str = "share"  # what `images-per-class=N` counts (itl.subsets): SHARE,
    # N/1000 of its largest class (a stand-in for ImageNet); IMAGES, N images (ImageNet itself)

    origin: ClassVar[str] = PREPARED  # PREPARED by `itl data prepare`, GENERATED, or PLANNED

    def prepare(self, source: Path, size: int | None = None) -> Path:
        """Verify and unpack `source`, check it is this data set, install it under ITL_DATA;
        returns its folder. `size`: px of its caches (leave it out: the kind's default)."""
        raise DataError(f"data set {self.name!r} is not prepared by `itl data prepare`")

    def load(self, split: str, size: int | None = None) -> ImageSet:
        """Split `split` as uint8 images at `size` px (None: the data set's own)."""
        raise DataError(f"data set {self.name!r} is a {self.kind} set (a VOC-format folder, no "
                        "image cache): name it among a scale's detection targets")

    def root(self) -> Path:
        """The folder of a VOC-format detection set."""
        raise DataError(f"data set {self.name!r} is a {self.kind} set, not a VOC-format folder")

    def eval_splits(self) -> tuple[str, str]:
        """(split trained on, split scored on) of a detection set; a prepared VOC-format set
        reads them from its record (voc.VocSet)."""
        return self.train_split, "test"

    def fingerprint(self, size: int | None = None) -> str:
        """What identifies its content in a run's config (a VOC folder: its name)."""
        return self.name

    def present(self) -> bool:
        """Cheap: are the files that reading needs there (nothing is read or hashed)?"""
        return False

    def verify(self) -> str | None:
        """None when what is there agrees with its record (as reading checks it: contents
        hashed once per process), else the one-line reason of the first check that fails."""
        return None

    def needs(self) -> tuple[str, ...]:
        """The data sets it is built from on first use, while it is not built yet."""
        return ()

    def summary(self) -> str:
        return ""

    def expects(self) -> str:
        """The shards and archives `itl data prepare NAME --from PATH` takes, in words."""
        ways = []
        if self.shards:
            files = ", ".join(f"./{self.shards}/{f}" for f in self.shard_files) or \
                f"./{self.shards}/*.tar.gz"
            ways.append(f"PATH/SHA256SUMS listing the shards {files}")
        if self.archives:
            ways.append("the original " + ", ".join(map(str, self.archives)))
        return "; or ".join(ways)

    def status(self) -> Status:
        """Present and verified, present but failing verification (why), or missing (the
        command that prepares it and the files it expects)."""
        if not self.present():
            fix = f" with PATH {self.fix}" if self.fix else ""
            return Status(MISSING, f"run `{prepare_command(self.name)}`{fix}; it expects "
                                   f"{self.expects()}")
        problem = self.verify()
        return Status(FAILING, problem) if problem else Status(VERIFIED, self.summary())
