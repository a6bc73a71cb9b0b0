"""What `itl data prepare NAME --from PATH` may be given, and how it is opened: a folder of tar.gz
shards with a SHA256SUMS file, or NAME's own folder in it (`../shared/data` or
`../shared/data/voc2007`; every shard of NAME checked against its sum before anything is
unpacked); the original public distribution's archive (under the original's file name it must
have the published md5); a folder already unpacked; or a data set folder that an itl prepared.
Nothing here touches the network.
"""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from itl import paths
from itl.datasets import checksums, records
from itl.datasets.entry import Dataset
from itl.datasets.identity import mismatch
from itl.datasets.images import DataError


def checked(name: str, source: Path) -> tuple[Path, Path]:
    """`source` as a Path, checked to exist and not to be the folder where itl keeps the prepared
    `name` (preparing replaces that folder) unless it holds caches an itl prepared; and
    ITL_DATA, writable."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source} does not exist")
    top = paths.ensure_writable(paths.data_dir())
    final = (top / name).resolve()
    here = source.resolve()
    if (here == final or final in here.parents) and not is_cache_folder(source):
        raise DataError(f"{source} is where itl keeps the prepared {name} ({top / name}), and "
                        "preparing replaces that folder: move the original images or archive "
                        "elsewhere and pass that path to --from (nothing was changed)")
    return source, top


def is_cache_folder(source: Path) -> bool:
    """A data set folder that an itl prepared (its caches and fingerprint)."""
    return source.is_dir() and (source / records.fingerprint_file()).is_file() and \
        any(source.glob("cache-*-train.pt"))


def unpack(archive: Path, into: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad:
                    raise DataError(f"corrupt member {bad} in {archive}")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"cannot unpack {archive}: {e} (truncated or not an archive?)") from e


def find(root: Path, marker: str) -> Path | None:
    """The folder under root (root included) that holds `marker`."""
    hits = sorted(p.parent for p in root.rglob(marker))
    return min(hits, key=lambda p: len(p.parts)) if hits else None


def verified_archive(entry: Dataset, source: Path) -> dict:
    """{"md5": ..., "sha256": ...} of an archive file; under the name of one of the entry's
    original archives it must have that archive's published checksums."""
    md5, sha = checksums.md5_sha256(source)
    for a in entry.archives:  # the original's name: the original's checksums
        if a.name == source.name and a.md5 and md5 != a.md5:
            raise mismatch(entry, source, f"md5 {md5}, expected {a.md5} (the published md5 "
                                          f"of {a.name})")
        if a.name == source.name and a.sha256 and sha != a.sha256:
            raise mismatch(entry, source, f"sha256 {sha}, expected {a.sha256} (the "
                                          f"published sha256 of {a.name})")
    return {"md5": md5, "sha256": sha}


def sums_folder(entry: Dataset, source: Path) -> Path | None:
    """The folder whose SHA256SUMS lists the shards that `source` offers: `source` itself (the
    shards folder, ../shared/data), or its parent when `source` is the entry's own folder of
    shards in it (../shared/data/voc2007, holding tar.gz shards); None for anything else."""
    if not source.is_dir():
        return None
    if (source / "SHA256SUMS").is_file():
        return source
    here = source.resolve()
    if entry.shards and here.name == entry.shards and (here.parent / "SHA256SUMS").is_file() \
            and any(f.name.endswith(checksums.ARCHIVE_SUFFIXES) for f in here.iterdir()):
        return here.parent
    return None


def bare_shards(entry: Dataset, source: Path) -> list[Path]:
    """The entry's shards in a folder that has no SHA256SUMS to check them against: files named
    in its `shard_files`, or any tar.gz in its shards folder, in `source` or `source/<shards>`."""
    if not entry.shards or not source.is_dir():
        return []
    own = source / entry.shards
    found = [f for d in (source, own) if d.is_dir() for f in sorted(d.iterdir())
             if f.is_file() and (f.name in entry.shard_files or
                                 (d == own and f.name.endswith(".tar.gz")))]
    return list(dict.fromkeys(found))


def opened(entry: Dataset, source: Path, staging: Path) -> tuple[Path, dict]:
    """The source's files, unpacked into `staging` once verified (a folder: as it is), and the
    record of where they came from."""
    unpacked = staging / "unpacked"
    unpacked.mkdir()
    folder = sums_folder(entry, source)
    if folder is not None:
        if not entry.shards:
            raise DataError(f"{source} is a shards folder (SHA256SUMS), but {entry.name} has no "
                            f"shards: pass {entry.fix or 'its original archive'}")
        shards = checksums.verified_shards(folder, entry.shards)
        origin = records.origin(source, "shards", sha256={
            str(f.relative_to(folder)): d for f, d in shards.items()})
        for shard in shards:
            unpack(shard, unpacked)
    elif source.is_file():
        origin = records.origin(source, "archive", **verified_archive(entry, source))
        unpack(source, unpacked)
    elif bare_shards(entry, source):
        found = bare_shards(entry, source)
        where = found[0].parent if found[0].parent != source else source
        names = ", ".join(f.name for f in found[:3]) + (" ..." if len(found) > 3 else "")
        raise DataError(f"{source} holds {entry.name} shards ({names}) but no SHA256SUMS to "
                        f"check them against (looked in {source}"
                        + (f" and {source.resolve().parent}" if where == source else "")
                        + "): itl checks every shard's sha256 before unpacking it; copy "
                        "SHA256SUMS from where the shards came from (../shared/data/SHA256SUMS) "
                        f"beside the {entry.shards}/ folder, or write it there with `sha256sum "
                        f"{entry.shards}/*.tar.gz > SHA256SUMS`")
    else:
        unpacked = source  # a folder already laid out
        origin = records.origin(source, "folder")
    return unpacked, origin
