"""The data set registry: every data set itl knows, by name (paper Section 3: ImageNet as the
source, PASCAL and SUN as targets; at the smoke and small scales, their stand-ins).

Each entry (`entry.Dataset`) says what its data set is: name, kind (classification or
detection), the shards and original archives it is prepared from with their published checksums,
its splits, its classes (WordNet ids or names), the metric it is scored with; its kind says how it
is prepared, verified and read. Adding a data set means adding one module here that declares its
`ENTRIES` (a subclass of its kind where it reads a layout of its own) and naming that module in
`_MODULES` below.

The modules beside the data sets hold what they share: `images` (ImageSet, DataError, reading an
image or a cache), `checksums` (SHA256SUMS, archive md5), `sources` (what `--from PATH` may be),
`staging` (build, then rename into place), `records` (source.json, the caches and their
fingerprints), `shards` (a set too large for memory, as shard files that stream), `identity`
(is a source the data set it is offered as?), `content` (is its content sound: split lists,
train/test leakage, boxes, decodable images, and the digests that bind what was installed),
`layouts` (reading unpacked class folders). None of them imports this registry, nor any data set
module.
"""
from __future__ import annotations

from pathlib import Path

from itl.datasets import (bccd, cifar10, imagenet1k, imagenet64, planned, records, scene15, smoke,
                          sun397, tiny_imagenet, voc2007, voc2007_cls, voc2012_action,
                          voc_cifar)
from itl.datasets.entry import GENERATED, PREPARED, Dataset
from itl.datasets.images import DataError

_MODULES = (smoke, tiny_imagenet, cifar10, scene15, bccd, voc_cifar, imagenet1k, imagenet64,
            voc2007, voc2007_cls, sun397, voc2012_action, planned)


def _registry() -> dict[str, Dataset]:
    out: dict[str, Dataset] = {}
    for module in _MODULES:
        for e in module.ENTRIES:
            if e.name in out:
                raise ValueError(f"two data sets are named {e.name!r} ({module.__name__})")
            out[e.name] = e
    return out


REGISTRY: dict[str, Dataset] = _registry()


def get(name: str) -> Dataset:
    if name not in REGISTRY:
        raise DataError(f"unknown data set {name!r}: known are {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def names(origin: str | None = None) -> list[str]:
    """The registry's names (those of one origin: PREPARED, GENERATED or PLANNED)."""
    return [n for n, e in REGISTRY.items() if origin is None or e.origin == origin]


def prepare(name: str, source: Path, size: int | None = None) -> Path:
    """`itl data prepare NAME --from SOURCE` (at `size` px, None: the data set's default, and
    every size of records.SIZES): returns the prepared folder."""
    entry = REGISTRY.get(name)
    if entry is None or entry.origin == GENERATED:
        why = "" if entry is None else f" ({name} is generated on first use)"
        raise DataError(f"unknown data set {name!r} to prepare{why}: choose one of "
                        f"{', '.join(names(PREPARED))}")
    return entry.prepare(Path(source)) if size is None else entry.prepare(Path(source), size)
