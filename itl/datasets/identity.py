"""Is a source the data set it is offered as? Each registry entry says what its data set is
(classes, images per class per split, size of the original images); these checks compare a source
with it before any image is decoded, so 15-Scene offered as CIFAR-10 is refused, with one error
naming the source, what differs, and the `itl data prepare` command that fixes it.
"""
from __future__ import annotations

from pathlib import Path

from itl.datasets.entry import Dataset, prepare_command
from itl.datasets.images import DataError


def short_list(items, k: int = 4) -> str:
    items = list(items)
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(items[:k]) + more


def remedy(entry: Dataset) -> str:
    return f"run `{prepare_command(entry.name)}` with PATH {entry.fix}"


def mismatch(entry: Dataset, source: Path, what: str) -> DataError:
    """The one error of a source that is not the data set it is offered as."""
    return DataError(f"{source} is not {entry.name}: {what}; {remedy(entry)}")


def compare_classes(entry: Dataset, found, source: Path, where: str) -> None:
    found = tuple(found)
    if found == entry.classes:
        return
    missing = [c for c in entry.classes if c not in set(found)]
    extra = [c for c in found if c not in set(entry.classes)]
    detail = "" if len(extra) == len(found) else "".join([  # some in common: which differ
        f"; missing {short_list(missing)}" if missing else "",
        f"; not in {entry.name}: {short_list(extra)}" if extra else ""])
    raise mismatch(entry, source, f"found {len(found)} classes in {where} ({short_list(found)}), "
                                  f"expected {len(entry.classes)} ({short_list(entry.classes)})"
                                  f"{detail}")


def compare_counts(entry, split: str, counts, source: Path, where: str) -> None:
    """Images per class of `split` against entry.counts(split) (a `cached.CachedSet`; None:
    not known to the entry, the source's own are recorded)."""
    counts, want = tuple(counts), entry.counts(split)
    if want is None or counts == want:  # None: the entry does not know its counts
        return
    k = next(i for i, (a, b) in enumerate(zip(counts, want)) if a != b)
    c = entry.classes[k]
    where = f" in {where}" if where else ""
    raise mismatch(entry, source, f"found {sum(counts):,} {split} images{where} "
                                  f"({c}: {counts[k]:,}), expected {sum(want):,} "
                                  f"({c}: {want[k]:,})")


def size_text(hw) -> str:
    return f"{hw[1]}x{hw[0]}"  # width x height, as image sizes are usually written


def compare_image_size(entry: Dataset, shapes, source: Path, what: str) -> None:
    if entry.image_size is None:
        return
    other = sorted({tuple(s) for s in shapes} - {tuple(entry.image_size)})
    if other:
        raise mismatch(entry, source, f"found {what} of {', '.join(map(size_text, other[:3]))}"
                                      f" px, expected {size_text(entry.image_size)}")
