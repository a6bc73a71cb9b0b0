"""Where itl keeps things, and how it writes them so that a crash never leaves a half-written file.

`ITL_DATA` holds data sets and their uint8 caches (default `./data`), `ITL_RUNS` the run store
(default `./runs`), `ITL_REPORTS` the rendered reports (default `./reports`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import torch


def _folder(var: str, default: str) -> Path:
    """The folder an `ITL_*` variable names (`~` expanded), or `default` when it is unset. Set
    but empty is a mistake, not the current folder: itl would scatter its files there."""
    value = os.environ.get(var)
    if value is None:
        return Path(default)
    if not value.strip():
        raise ValueError(f"{var} is set but empty: set it to a folder, or unset it for the "
                         f"default ./{default}")
    try:
        return Path(value).expanduser()
    except RuntimeError as e:  # ~user of no such user
        raise ValueError(f"{var}={value!r}: cannot expand ~ ({e}): give a full path") from e


def data_dir() -> Path:
    return _folder("ITL_DATA", "data")


def runs_dir() -> Path:
    return _folder("ITL_RUNS", "runs")


def reports_dir() -> Path:
    return _folder("ITL_REPORTS", "reports")


class StoreError(RuntimeError):
    """A folder itl must write to cannot be written."""


def ensure_writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise StoreError(f"cannot write to {folder} ({e.strerror}): set ITL_RUNS / ITL_DATA / "
                         "ITL_REPORTS to a writable folder") from e
    return folder


def sha256_file(f: Path) -> str:
    """The sha256 of a file, read in blocks (caches and checkpoints run to gigabytes)."""
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`. The file gets
    the permissions any new file gets under the process's umask (mkstemp's own are owner-only),
    so a team sharing one store with umask 002 can all read and write it. A full disk or a
    read-only folder is one StoreError naming the folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise StoreError(f"cannot write to {path.parent} ({e.strerror}): free space or "
                         "permissions, or point ITL_RUNS / ITL_DATA / ITL_REPORTS elsewhere") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StoreError(f"cannot write {path} ({e.strerror}): free space or permissions "
                             f"of {path.parent}") from e
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def environment(**env: str) -> Iterator[None]:
    """os.environ with `env` set, restored afterwards."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
