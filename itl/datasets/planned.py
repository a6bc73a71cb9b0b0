"""The paper scale's data sets (paper Section 3: ImageNet-1k as the source; PASCAL VOC 2007
detection as a target), declared so that `itl data status` and the paper scale's
errors can say what each expects. itl cannot prepare or read them yet: the module that supports
one replaces its entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from itl.datasets import records
from itl.datasets.entry import (CLASSIFICATION, NOT_SUPPORTED, PLANNED, TOP1, Archive,
                                Dataset, Status)
from itl.datasets.images import DataError, ImageSet


@dataclass(frozen=True, kw_only=True)
class Planned(Dataset):
    """A data set itl will support, with the files it will expect."""
    origin: ClassVar[str] = PLANNED

    def prepare(self, source: Path, size: int) -> Path:
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
    Planned(name="imagenet-1k", kind=CLASSIFICATION, metric=TOP1,
            classes=None, class_ids="wnid",  # the 1000 of itl.labels.imagenet1k_wnids()
            splits=("train", "test"),  # test: ILSVRC2012's 50,000 validation images
            archives=(  # torchvision.datasets.ImageNet's ARCHIVE_META
                Archive("ILSVRC2012_img_train.tar", md5="1d675b47d978889d74fa0da5fadfb00e"),
                Archive("ILSVRC2012_img_val.tar", md5="29b22e2961454d5413ddabcf34fc5622"),
                Archive("ILSVRC2012_devkit_t12.tar.gz", md5="fa75699e90414af021442c21a62c3abf"))),
)
