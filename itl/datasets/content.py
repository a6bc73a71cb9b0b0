"""What a data set's content must be before itl calls it prepared, in one place (issue 23:
nothing silently wrong). `identity` says whether a source is the data set it is offered as
(classes, images per class, image size); this module says whether its content is sound:

- split lists (VOC's `ImageSets/Main/<split>.txt`, VOC 2012's `ImageSets/Action`): no id twice in
  a list, a training list and the list it is scored on share no id (the devkit's train / val /
  trainval / test: Everingham et al., VOC 2007 devkit, Section 3), trainval is train and val;
- the images themselves: no test image byte-identical to a training image beyond what the
  published data holds (`leaks`: a test folder filled with training images is train/test
  leakage that no list shows);
- boxes: inside the image their annotation's <size> gives, in the devkit's 1-based inclusive
  pixels, and of non-zero area unless the entry names the image (`box_problem`);
- every listed image decodes, at the size its annotation gives (`decoded_size`); classification
  sets decode every image when their caches are built (`layouts.decoded`).

A preparation writes its record only once all of these hold, and the record holds the digests
of what it installed (`records` for caches, `manifest` for a VOC-format folder): reading and
`itl data status` re-check those digests, so an edit made after preparing is caught there.
"""
from __future__ import annotations

import functools
import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from itl import paths
from itl.datasets import checksums
from itl.datasets import images as _images
from itl.datasets.images import DataError

# (training list, the list scored against it): VOC's devkit lists, each pair disjoint
DISJOINT = (("train", "val"), ("trainval", "test"), ("train", "test"), ("val", "test"))


# ---------------------------------------------------------------- split lists


def split_lists(folder: Path, splits: Iterable[str], remedy: str) -> dict[str, list[str]]:
    """Split -> ids of every `folder/<split>.txt` present, checked as the VOC devkit defines the
    lists: no id twice in a file, each pair of DISJOINT disjoint, trainval is train and val
    together. Each failure is one DataError naming the file, the first id, and `remedy`."""
    lists = {}
    for split in dict.fromkeys(splits):
        f = folder / f"{split}.txt"
        if not f.is_file():
            continue
        lists[split] = f.read_text().split()
        twice = next((i for i, n in Counter(lists[split]).items() if n > 1), None)
        if twice is not None:
            raise DataError(f"{f} lists {twice} twice: a split file lists each image once; "
                            f"{remedy}")
    for a, b in DISJOINT:
        both = sorted(set(lists.get(a, ())) & set(lists.get(b, ())))
        if both:
            raise DataError(f"{folder / f'{b}.txt'} lists {both[0]}, which {a}.txt lists too "
                            f"({len(both)} shared): {a} and {b} are disjoint (an image trained "
                            f"on is never scored); {remedy}")
    if {"train", "val", "trainval"} <= set(lists):
        parts, whole = set(lists["train"]) | set(lists["val"]), set(lists["trainval"])
        if parts != whole:
            odd = min(parts ^ whole)
            where = ("trainval.txt but in neither train.txt nor val.txt" if odd in whole
                     else "train.txt or val.txt but not in trainval.txt")
            raise DataError(f"{folder / 'trainval.txt'} is not train.txt and val.txt together: "
                            f"{odd} is in {where}; {remedy}")
    return lists


# ---------------------------------------------------------------- train / test leakage


def check_listed(name: str, index: dict, remedy: str, repeats_ok: bool = False) -> None:
    """The files of a classification source's splits (`layouts.Split`): none listed twice in a
    split (unless `repeats_ok`: several examples cut from one image), none in two splits."""
    where: dict[Path, str] = {}
    for split, part in index.items():
        seen: set[Path] = set()
        for f in part.files:
            f = Path(f)
            if f in seen and not repeats_ok:
                raise DataError(f"the {name} {split} split lists {f} twice: each image is "
                                f"listed once; {remedy}")
            seen.add(f)
            if where.get(f, split) != split:
                raise DataError(f"{f} is in both the {where[f]} and the {split} split of "
                                f"{name}: an image trained on is never scored; {remedy}")
            where[f] = split


def _item_digests(part) -> list[tuple[str, str]]:
    """(digest, what) of each distinct image of a split (`layouts.Split`): the bytes of its file,
    or, for images given decoded (CIFAR's batches), its pixels."""
    if part.x is not None:
        return [(hashlib.sha256(row.numpy().tobytes()).hexdigest(), f"image {i}")
                for i, row in enumerate(part.x)]
    return [(hashlib.sha256(f.read_bytes()).hexdigest(), str(f))
            for f in dict.fromkeys(part.files)]


def leaks(train, test) -> list[tuple[str, str]]:
    """(test image, training image) for every test image byte-identical to a training image
    (splits as `layouts.Split`: files compared by their bytes, decoded batches by pixels)."""
    seen = {}
    for digest, what in _item_digests(train):
        seen.setdefault(digest, what)
    return [(what, seen[digest]) for digest, what in _item_digests(test) if digest in seen]


def check_leaks(name: str, train, test, allowed: int, remedy: str) -> int:
    """The number of test images byte-identical to a training image; more than `allowed` (what
    the published data holds) is one DataError naming the first pair."""
    found = leaks(train, test)
    if len(found) > allowed:
        test_image, train_image = found[0]
        raise DataError(f"{len(found):,} of the {name} test images are byte-identical to "
                        f"training images (the published data has {allowed}), first "
                        f"{test_image} = {train_image}: test images must not be training "
                        f"images; {remedy}")
    return len(found)


# ---------------------------------------------------------------- boxes and images


def box_problem(box, width: float, height: float, zero_area_ok: bool = False) -> str | None:
    """Why a box (x1, y1, x2, y2; VOC's 1-based inclusive pixels) is not a box of a width x
    height image: outside it, or of zero area (xmin == xmax or ymin == ymax) unless allowed."""
    x1, y1, x2, y2 = box
    text = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if not (1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height):
        return (f"the box {text} outside its {width:g}x{height:g} image (1 <= xmin <= xmax <= "
                "width and 1 <= ymin <= ymax <= height needed)")
    if (x1 == x2 or y1 == y2) and not zero_area_ok:
        return f"the zero-area box {text} (xmin == xmax or ymin == ymax)"
    return None


def decoded_size(f: Path, remedy: str) -> tuple[int, int]:
    """(height, width) of an image file, decoded whole (a file of random bytes, a truncated or
    unreadable one: one DataError naming it and `remedy`)."""
    try:
        return tuple(_images.decode_rgb(f).shape[-2:])
    except DataError as e:
        raise DataError(f"{e}; {remedy}") from None


# ---------------------------------------------------------------- digests of what is installed


@functools.lru_cache(maxsize=1 << 17)  # every file of the full VOC 2007 (about 20,000) fits
def _sha256(path: str, inode: int, mtime_ns: int, size: int) -> str:
    return paths.sha256_file(Path(path))


def sha256_of(f: Path) -> str:
    """The sha256 of a file, hashed once per process and version of the file (its path, inode,
    mtime and byte size): a process that reads a cache many times hashes it once."""
    st = os.stat(f)
    return _sha256(os.path.abspath(f), st.st_ino, st.st_mtime_ns, st.st_size)


MANIFEST = "files.sha256"  # in a VOC-format folder: `sha256sum` lines of what itl reads


def write_manifest(root: Path, files: Iterable[Path]) -> str:
    """`root/MANIFEST`, one `sha256sum` line per file (paths relative to root, sorted); returns
    the manifest's own sha256, for the record."""
    rel = sorted({f.relative_to(root).as_posix() for f in files})
    (root / MANIFEST).write_text("".join(f"{paths.sha256_file(root / r)}  {r}\n" for r in rel))
    return paths.sha256_file(root / MANIFEST)


def manifest_problem(root: Path, want: str | None, remedy: str) -> str | None:
    """Why the files of a VOC-format folder are not the ones it was prepared with (None: they
    are): its manifest missing or not the one the record names (`want`, its sha256), a listed
    file missing or with other bytes (the first one named)."""
    f = root / MANIFEST
    if want is None:
        return (f"{root} was prepared by an itl that recorded no checksums of its files, so "
                f"edits since are not detectable: prepare it again ({remedy})")
    if not f.is_file() or sha256_of(f) != want:
        return (f"{f} is {'missing' if not f.is_file() else 'not the one its record names'}: "
                f"the files of {root} cannot be checked; {remedy}")
    for digest, rel in checksums.read_sums(f):
        g = root / rel
        if not g.is_file():
            return f"{g} is missing (it was there when {root.name} was prepared); {remedy}"
        if sha256_of(g) != digest:
            return (f"{g} changed since {root.name} was prepared (its sha256 is not the one "
                    f"{f.name} records); {remedy}")
    return None
