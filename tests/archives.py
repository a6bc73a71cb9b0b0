"""Fabricated archives for the data tests: tars (gzipped when the name says .gz) and a shards
folder with its SHA256SUMS, as `../shared/data` lays them out."""
import hashlib
import io
import tarfile
from pathlib import Path


def _add_all(t: tarfile.TarFile, files: dict[str, bytes]) -> None:
    for name, blob in files.items():  # in the given order: some tests want it unsorted
        info = tarfile.TarInfo(name)
        info.size = len(blob)
        t.addfile(info, io.BytesIO(blob))


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    """A tar of `files` (member name -> bytes) at `path`, gzipped when its name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as t:
        _add_all(t, files)
    return path


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files`, in memory (a tar inside a tar)."""
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w") as t:
        _add_all(t, files)
    return blob.getvalue()


def write_shards(folder: Path, archives: dict[str, dict[str, bytes]]) -> Path:
    """`folder` holding one tar per entry of `archives` (relative path -> files) and a
    SHA256SUMS naming each by its checksum."""
    lines = []
    for rel, files in archives.items():
        f = write_tar(folder / rel, files)
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  ./{rel}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return folder
