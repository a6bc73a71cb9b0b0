"""`itl data status`: for every data set of every scale (paper Section 3's data at the smoke,
small and paper scales), whether it is here and sound, in one line each: present and verified
(its preparation passed the content checks, `itl.datasets.content`, and wrote its source.json
record; the record agrees with its registry entry, and its caches or files have the sha256s it
records, checked as reading checks them), present but failing verification (the first check
that fails), missing (the `itl data prepare` command and the shards and archives it expects),
generated on first use, or not supported yet (the archives it will expect). Hashing makes the
first look at a large set take seconds (Tiny ImageNet-200's caches, 1.7 GB: 2 to 3 s of CPU).
"""
from __future__ import annotations

from itl import datasets, paths, scales
from itl.datasets.entry import FAILING, Dataset, Status
from itl.datasets.images import DataError


def status(entry: Dataset) -> Status:
    """An entry's status; a file that cannot be read on the way is a failing verification."""
    try:
        return entry.status()
    except (DataError, OSError, ValueError, KeyError, TypeError) as e:
        return Status(FAILING, f"{type(e).__name__}: {e}" if not isinstance(e, DataError)
                      else str(e))


def rows(scale: str | None = None) -> list[tuple[str, str, Status]]:
    """(scale, data set, status) for every data set of `scale` (None: of every scale, then the
    registry's data sets that no scale reads, under "-")."""
    chosen = [scales.SCALES[scale]] if scale else list(scales.SCALES.values())
    out, seen = [], set()
    for s in chosen:  # the scales as declared: detection targets listed even if turned off
        for name in s.data_sets():
            out.append((s.name, name, status(datasets.get(name))))
            seen.add(name)
    if scale is None:
        out += [("-", n, status(e)) for n, e in datasets.REGISTRY.items() if n not in seen]
    return out


def lines(scale: str | None = None) -> list[str]:
    paths.data_dir()  # a bad ITL_DATA is one error, not one per line
    table = rows(scale)
    width = max(len(name) for _, name, _ in table)
    return [f"{s:<6} {name:<{width}}  {st}" for s, name, st in table]
