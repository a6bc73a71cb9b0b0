"""The record beside a prepared data set's caches, and reading the caches against it.

A prepared classification set is a folder under ITL_DATA holding uint8 caches
(`cache-<size>-<split>.pt`, read by training), a fingerprint file per size (the digest that run
configs are keyed on: `fingerprint` at 64 px, `fingerprint-<size>` at other sizes) and
`source.json`: what the caches were built from (path, sha256 of the shards or md5/sha256 of the
archive), their classes, images per class, original image size, what the content checks found
(`checks`), and per size the fingerprint, the byte size and the sha256 of each cache. Every read
checks the cache against that record and the data set's registry entry, and its bytes against
the recorded sha256 (`checked_content`), so a cache edited after preparing (its labels permuted:
same byte size, same counts per class) is refused, never read under the clean fingerprint.

The fingerprint that run configs are keyed on is unchanged by this: it was always the digest of
the caches' sha256s (`cache_digest`). A record written before the per-cache sha256s were (itl
before issue 23) is checked against that fingerprint instead: every split of the size read is
hashed and the digest recomputed, which catches the same edits; preparing the folder again
(`itl data prepare NAME --from ITL_DATA/NAME`, which rebuilds nothing) records the sha256s.

Cost of the check (hashlib's sha256, once per process and file version, memoized by path, inode,
mtime and byte size in `content.sha256_of`), measured on a 2-core AMD EPYC with SHA extensions
that was busy with a training grid (the check at nice 15): Tiny ImageNet-200's largest cache
(`cache-64-train.pt`, 1.23 GB) 1.1 to 1.8 s of CPU, 10 to 21 s of wall time on that busy machine;
CIFAR-10's 64-px training cache (0.61 GB) 0.9 s of CPU, 5 to 10 s of wall time; its 32-px one
(0.15 GB) 0.15 s of CPU. Reading the same file with torch.load took 4 to 5 s of wall time there.
A record from before (no sha256s) hashes every split at the size read (Tiny ImageNet-200 at 64 px:
1.35 GB). Again in the same process: a stat (under a millisecond).
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import torch

import itl
from itl import paths
from itl.datasets import content
from itl.datasets.entry import prepare_command
from itl.datasets.identity import short_list
from itl.datasets.images import DataError, ImageSet, read_cache

SIZE = 64  # pixels: the default cache (AlexNet needs at least 63)
SIZES = (64, 32)  # every prepared data set gets a cache at each (small scale v2 trains at 32 px,
# CIFAR-10's own size); each is decoded from the original images, not from another cache
RECORD = "source.json"  # beside the caches: what they were built from


def cache_path(name: str, split: str, size: int = SIZE) -> Path:
    return paths.data_dir() / name / cache_name(split, size)


def fingerprint_file(size: int = SIZE) -> str:
    """The file holding the digest of a data set's caches at `size` px (the 64-px one keeps
    its first name, so runs keyed on it stay valid)."""
    return "fingerprint" if size == SIZE else f"fingerprint-{size}"


def fingerprint(name: str, size: int | None = None) -> str:
    """What identifies a prepared data set's content at `size` px in a run's config: the digest
    its preparation wrote (`NAME-unprepared` before it is prepared)."""
    f = paths.data_dir() / name / fingerprint_file(size or SIZE)
    return f.read_text().strip() if f.exists() else f"{name}-unprepared"


def cache_name(split: str, size: int) -> str:
    return f"cache-{size}-{split}.pt"


def fingerprint_of(name: str, sums: dict[str, str]) -> str:
    """The fingerprint of caches whose sha256s are `sums` (split -> sha256): NAME-, then the
    first 16 hex digits of the sha256 of their sha256s, in split-name order. Run stores are keyed
    on it: its formula never changes."""
    digest = hashlib.sha256()
    for split in sorted(sums):
        digest.update(sums[split].encode())
    return f"{name}-{digest.hexdigest()[:16]}"


def cache_digest(folder: Path, name: str, size: int, splits) -> str:
    """The fingerprint of the caches at `size` px in `folder` (`fingerprint_of`)."""
    return fingerprint_of(name, {s: paths.sha256_file(folder / cache_name(s, size))
                                 for s in splits})


def size_record(folder: Path, name: str, size: int, splits, files: dict[str, int]) -> dict:
    """What the record keeps of the caches at `size` px in `folder`: their fingerprint, byte
    sizes (`files`) and sha256s (each file hashed once)."""
    sums = {s: paths.sha256_file(folder / cache_name(s, size)) for s in splits}
    return {"fingerprint": fingerprint_of(name, sums), "files": files,
            "sha256": {cache_name(s, size): d for s, d in sorted(sums.items())}}


def origin(source: Path, kind: str, **digests) -> dict:
    return {"path": str(source.resolve()), "kind": kind, **digests}


def write(folder: Path, name: str, origin: dict, classes, images: dict,
          image_size, sizes: dict, checks: dict | None = None) -> None:
    paths.atomic_write_json(folder / RECORD, {
        "dataset": name,
        "source": origin,  # path given, kind (shards, archive, folder, adopted) and digests
        "classes": list(classes),
        "images": images,  # split -> images per class, in the order of `classes`
        "original_image_size": image_size,  # [height, width]; None: varied or not known
        "checks": checks or {},  # what the content checks found (itl.datasets.content)
        "sizes": sizes,  # px -> fingerprint, byte size and sha256 of each cache file
        "itl_version": itl.__version__,
        "prepared": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })


def prepare_again(name: str, folder: Path) -> str:
    return (f"run `{prepare_command(name)}` (PATH: the shards folder or the "
            f"original archive; or {folder} itself, to check and record caches that an itl "
            "without records built)")


def read(entry) -> dict:
    """The record of a prepared data set, checked against its entry (a `cached.CachedSet`)."""
    name = entry.name
    folder = paths.data_dir() / name
    f = folder / RECORD
    again = prepare_again(name, folder)
    if not f.is_file():
        raise DataError(f"{f} is missing: nothing says what the {name} caches beside it were "
                        f"built from; {again}")
    try:
        rec = json.loads(f.read_text())
        found = (rec["dataset"], tuple(rec["classes"]),
                 {s: tuple(c) for s, c in rec["images"].items()}, dict(rec["sizes"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"unreadable record {f} ({e!r}); {again}") from e
    want = {s: entry.counts(s) for s in entry.per_class}
    if any(w is None for w in want.values()):  # counts the entry does not know: the record's
        want = {s: found[2].get(s) if w is None else w for s, w in want.items()}
    if found[0] != name:
        raise DataError(f"{f} records data set {found[0]!r}, not {name!r}; {again}")
    if found[1] != entry.classes:
        raise DataError(f"{f} records {len(found[1])} classes ({short_list(found[1])}) where "
                        f"{name} has {len(entry.classes)} ({short_list(entry.classes)}); "
                        f"{again}")
    if found[2] != want:
        got = {s: sum(c) for s, c in found[2].items()}
        raise DataError(f"{f} records images per split {got} where {name} has "
                        f"{ {s: sum(c) for s, c in want.items()} } (or other counts per "
                        f"class); {again}")
    return rec


def checked_file(entry, split: str, size: int) -> tuple[Path, dict, str]:
    """A cache file checked against its record without reading it (exists, the record agrees
    with the entry, the byte size and fingerprint are the recorded ones): the file, the record,
    and the remedy to name."""
    name = entry.name
    f = cache_path(name, split, size)
    folder = f.parent
    again = prepare_again(name, folder)
    if not f.is_file():
        what = ("is not prepared" if not folder.is_dir()
                else f"has no {size}-px cache (prepared by an older itl)")
        raise DataError(f"data set {name!r} {what} under {paths.data_dir()} "
                        f"(ITL_DATA): run `{prepare_command(name)}` "
                        "(a folder of shards with SHA256SUMS, or the original archive)")
    rec = read(entry)
    entry_of_size = rec["sizes"].get(str(size)) or {}
    want = (entry_of_size.get("files") or {}).get(f.name)
    st = f.stat()
    if want is None:
        raise DataError(f"{folder / RECORD} records no {f.name}; {again}")
    if st.st_size != want:
        raise DataError(f"data cache {f} has {st.st_size:,} bytes where {folder / RECORD} "
                        f"records {want:,}: changed since it was prepared; {again}")
    fp = folder / fingerprint_file(size)
    if not fp.is_file() or fp.read_text().strip() != entry_of_size.get("fingerprint"):
        raise DataError(f"{fp} does not hold the fingerprint {entry_of_size.get('fingerprint')} "
                        f"that {folder / RECORD} records; {again}")
    return f, rec, again


def checked_content(entry, f: Path, rec: dict, split: str, size: int) -> None:
    """A cache's bytes against its record: its sha256 is the one recorded (and the recorded
    sha256s make the recorded fingerprint); a record without sha256s (an older itl's): the caches
    of every split at `size` px hash to the recorded fingerprint. One DataError naming the file
    and the fix otherwise. Each file is hashed once per process and version."""
    name, folder = entry.name, f.parent
    of_size = rec["sizes"][str(size)]
    want = of_size.get("fingerprint")
    again = (f"prepare it again from its source: run `{prepare_command(name)}` with PATH "
             f"{entry.fix or 'its shards or original archive'} (this replaces {folder})")
    sums = of_size.get("sha256")
    if sums is None:  # recorded before per-cache sha256s: the fingerprint is their digest
        found = fingerprint_of(name, {s: content.sha256_of(folder / cache_name(s, size))
                                      for s in entry.splits})
        if found != want:
            raise DataError(f"the {size}-px caches in {folder} hash to {found} where "
                            f"{folder / RECORD} records the fingerprint {want}: changed since "
                            f"they were prepared (edited in place); {again}")
        return
    split_sums = {s: sums.get(cache_name(s, size)) for s in entry.splits}
    if None in split_sums.values() or fingerprint_of(name, split_sums) != want:
        raise DataError(f"{folder / RECORD} records sha256s of the {size}-px caches that do not "
                        f"make its fingerprint {want}; {again}")
    if content.sha256_of(f) != split_sums[split]:
        raise DataError(f"data cache {f} changed since it was prepared: its sha256 is not the "
                        f"{split_sums[split][:16]}... that {folder / RECORD} records (same byte "
                        f"size: edited in place, e.g. its labels permuted); {again}")


def label_counts(y: torch.Tensor, num_classes: int) -> list[int] | None:
    """Images per class of int64 labels 0..num_classes-1 (None: a label out of range)."""
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        return None
    return torch.bincount(y, minlength=num_classes).tolist()


def check_cache(images: ImageSet, rec: dict, split: str, size: int, f: Path,
                again: str, counts_of=label_counts) -> None:
    """A cache as read against its record: classes, images per class (`counts_of(y, number
    of classes)`: a multi-label set counts its own way), image shape (cheap)."""
    want = rec["images"][split]
    problem = None
    if images.classes != tuple(rec["classes"]):
        problem = (f"classes {short_list(images.classes)} where the record has "
                   f"{short_list(rec['classes'])}")
    elif images.x.dtype != torch.uint8 or tuple(images.x.shape[1:]) != (3, size, size):
        problem = (f"{images.x.dtype} images of {tuple(images.x.shape[1:])} where "
                   f"uint8 (3, {size}, {size}) belong")
    elif images.y.ndim != 1 or len(images.y) != len(images.x) or (
            counts_of(images.y, len(want)) is None):
        problem = f"{len(images.y)} labels for {len(images.x)} images, or labels out of range"
    elif counts_of(images.y, len(want)) != list(want):
        problem = (f"{len(images.y):,} images where the record has {sum(want):,} "
                   "(or other counts per class)")
    if problem:
        raise DataError(f"data cache {f} holds {problem}; {again}")


def load(entry, split: str, size: int = SIZE) -> ImageSet:
    """A prepared cache, checked against the record beside it and the data set's entry
    (classes, images per class, image shape, byte size, fingerprint, sha256)."""
    f, rec, again = checked_file(entry, split, size)
    checked_content(entry, f, rec, split, size)
    st = f.stat()
    images = _read_cache(str(f.resolve()), st.st_mtime_ns, st.st_size, again)
    check_cache(images, rec, split, size, f, again, entry.label_counts)
    return images


@functools.lru_cache(maxsize=4)
def _read_cache(f: str, mtime_ns: int, size: int, again: str) -> ImageSet:
    """One read per cache file and version (Tiny ImageNet's is 1.2 GB): a process that builds
    many manifests or runs reads it once."""
    return read_cache(Path(f), again)
