"""Data sets itl will support, declared so that `itl data status` and a scale's errors can say what
each expects (none today: ImageNet-1k, VOC 2007, VOC 2012 action and SUN397 have their own
modules). The module that supports one replaces its entry here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from itl.datasets import records
from itl.datasets.entry import NOT_SUPPORTED, PLANNED, Dataset, Status
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


ENTRIES: tuple[Planned, ...] = ()
