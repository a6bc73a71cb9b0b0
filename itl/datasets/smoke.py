"""The smoke scale's generated data sets (`smoke`, `smoke-target`, `smoke-extra`): drawn by
`itl.smoke` from their specs on first use and cached under ITL_DATA/smoke, so every paper
question runs end to end on 2 CPU cores without any download. Their fingerprint is the digest of
the spec: the same spec gives the same bytes. Beside each cache, `<cache>.sha256` holds the sha256
its generation wrote; reading re-checks it (once per process), and so does `itl data status`, so
an edited cache (its labels permuted) is refused, never trained on under the spec's fingerprint.
A cache without that file (generated before it was written) is generated again.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from itl import labels, paths, smoke, wordnet
from itl.datasets import content
from itl.datasets.entry import (CLASSIFICATION, FAILING, GENERATED, GENERATED_ON_USE, TOP1,
                                Dataset, Status)
from itl.datasets.images import DataError, ImageSet, read_cache


def spec_hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class GeneratedSet(Dataset):
    """A classification set generated from `spec` (itl.smoke) on first use."""
    spec: smoke.SmokeSpec

    origin: ClassVar[str] = GENERATED

    def _check_size(self, size: int | None) -> None:
        if size is not None and size != self.spec.size:
            raise DataError(f"generated data set {self.spec.name} exists at {self.spec.size} px "
                            f"only, not {size}")

    def _cache(self, split: str) -> Path:
        spec = self.spec
        return paths.data_dir() / "smoke" / f"{spec.name}-{spec_hash(asdict(spec))}-{split}.pt"

    @staticmethod
    def _sums(cache: Path) -> Path:
        """The file beside a cache holding the sha256 its generation wrote."""
        return cache.with_name(cache.name + ".sha256")

    def _changed(self, cache: Path) -> str | None:
        """Why a generated cache may not be read (its sha256 is not the one its generation
        recorded beside it), or None."""
        sums = self._sums(cache)
        if content.sha256_of(cache) == sums.read_text().strip():
            return None
        return (f"generated data cache {cache} changed since it was generated (its sha256 is "
                f"not the one {sums.name} records): {self._fix(cache)}")

    def _fix(self, cache: Path) -> str:
        return f"delete it and {self._sums(cache).name} to generate it again"

    def load(self, split: str, size: int | None = None) -> ImageSet:
        self._check_size(size)
        spec = self.spec
        cache = self._cache(split)
        sums = self._sums(cache)
        if cache.exists() and sums.exists():
            if problem := self._changed(cache):
                raise DataError(problem)
            return read_cache(cache, self._fix(cache))
        x, y = smoke.generate(spec, split, wordnet.load(), labels.imagenet1k_wnids())
        paths.ensure_writable(cache.parent)
        paths.atomic_torch_save(cache, {"x": x, "y": y, "classes": list(spec.classes)})
        paths.atomic_write_text(sums, paths.sha256_file(cache) + "\n")
        return ImageSet(x, y, spec.classes)

    def fingerprint(self, size: int | None = None) -> str:
        self._check_size(size)
        return f"smoke-{spec_hash(asdict(self.spec))}"

    def present(self) -> bool:
        return True  # generated whenever it is read

    def status(self) -> Status:
        """Generated on first use; the caches generated so far are re-checked as reading checks
        them (a changed one is a failing verification, named)."""
        made = [c for c in map(self._cache, self.splits)
                if c.exists() and self._sums(c).exists()]
        for cache in made:
            if problem := self._changed(cache):
                return Status(FAILING, problem)
        return Status(GENERATED_ON_USE, f"{self.spec.n_train} train and {self.spec.n_test} test "
                                        f"images per class, {len(self.classes)} classes, "
                                        f"{self.spec.size} px, cached under "
                                        f"{paths.data_dir() / 'smoke'} ({len(made)} of "
                                        f"{len(self.splits)} splits generated and verified)")


ENTRIES = tuple(GeneratedSet(name=s.name, kind=CLASSIFICATION, metric=TOP1, classes=s.classes,
                             class_ids="wnid", image_size=(s.size, s.size), spec=s)
                for s in (smoke.SOURCE, smoke.TARGET, smoke.EXTRA))
