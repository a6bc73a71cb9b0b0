"""The paper scale's data sets (paper Section 3: PASCAL VOC 2007 detection and SUN397 as targets;
ImageNet-1k, the source, has its own module), declared so that `itl data status` and the paper
scale's errors can say what each expects. itl cannot prepare or read them yet: the module that
supports one replaces its entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from itl.datasets import records
from itl.datasets.entry import (CLASSIFICATION, DETECTION, MEAN_PER_CLASS, NOT_SUPPORTED,
                                PLANNED, TOP1, VOC07_MAP, Archive, Dataset, Status)
from itl.datasets.images import DataError, ImageSet


@dataclass(frozen=True, kw_only=True)
class Planned(Dataset):
    """A data set itl will support, with the files it will expect."""
    origin: ClassVar[str] = PLANNED

    def prepare(self, source: Path, size: int | None = None) -> Path:
        raise DataError(f"itl cannot prepare {self.name} yet (it expects "
                        f"{self.expects()}): run the smoke or small scale")

    def load(self, split: str, size: int | None = None) -> ImageSet:
        raise DataError(f"data set {self.name!r} (paper scale) has no loader in itl yet: use "
                        "--scale smoke or small")

    def fingerprint(self, size: int | None = None) -> str:
        return records.fingerprint(self.name, size)

    def status(self) -> Status:
        return Status(NOT_SUPPORTED, f"expects {self.expects()}")


ENTRIES = (
    Planned(name="voc2007", kind=DETECTION, metric=VOC07_MAP,
            classes=("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
                     "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
                     "pottedplant", "sheep", "sofa", "train", "tvmonitor"), class_ids="name",
            splits=("trainval", "test"),
            archives=(  # torchvision.datasets.VOCDetection's 2007 and 2007-test
                Archive("VOCtrainval_06-Nov-2007.tar", md5="c52e279531787c972589f7e41ab4ae64"),
                Archive("VOCtest_06-Nov-2007.tar", md5="b6e924de25625d8de591ea690078ad9f"))),
    Planned(name="sun397", kind=CLASSIFICATION, metric=MEAN_PER_CLASS,
            classes=None, class_ids="name",  # the 397 of its ClassName.txt
            splits=("train", "test"),  # the official Partitions' Training_01 / Testing_01
            archives=(Archive("SUN397.tar.gz", md5="8ca2778205c41d23104230ba66911c7a"),  # as
                      # torchvision.datasets.SUN397 checks it
                      Archive("Partitions.zip"))),
)
