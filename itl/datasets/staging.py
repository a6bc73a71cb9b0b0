"""Staging folders: every preparation builds in a folder of its own under ITL_DATA and renames
the result into place only when it is complete, so a wrong checksum, a truncated archive or an
unreadable image leaves nothing that looks prepared. A preparation that was killed leaves its
staging folder behind; the next one removes it (once its owner is gone, or it is a day old).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING = ".staging-"  # prefix of the folders a preparation builds in, under ITL_DATA
OWNER = "owner.json"  # inside a staging folder: the pid and host building it
STALE_AFTER_S = 24 * 3600  # a staging folder this old is abandoned, whoever made it


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but another user's
        return True
    return True


def _stale(folder: Path, now: float) -> bool:
    """A staging folder whose preparation is over: its owner (pid on this host) is gone, or it
    is older than STALE_AFTER_S. One without an owner record (an older itl's) only by age."""
    try:
        owner = json.loads((folder / OWNER).read_text())
        started, pid, host = float(owner["started"]), int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return now - folder.stat().st_mtime > STALE_AFTER_S
        except OSError:
            return False
    if now - started > STALE_AFTER_S:
        return True
    return host == socket.gethostname() and not _pid_alive(pid)


def rmtree(folder: Path) -> None:
    def retry(fn, path, _exc):  # a read-only folder unpacked from an archive
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            fn(path)
        except OSError:
            pass
    shutil.rmtree(folder, onerror=retry)  # onerror: Python 3.11 (3.12 also takes onexc)


def remove_stale_staging(top: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders under `top` that a killed preparation left; returns them."""
    now = time.time() if now is None else now
    gone = []
    for d in sorted(top.glob(f"{STAGING}*")):
        if d.is_dir() and _stale(d, now):
            rmtree(d)
            gone.append(d)
    return gone


def _new(top: Path, name: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"{STAGING}{name}-", dir=top))
    (d / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": time.time()}) + "\n")
    return d


@contextmanager
def building(top: Path, name: str) -> Iterator[Path]:
    """A staging folder under `top` for preparing `name` (stale ones removed first), removed
    with whatever is left in it at the end, however the preparation ends."""
    remove_stale_staging(top)
    staging = _new(top, name)
    try:
        yield staging
    finally:
        rmtree(staging)


def install(built: Path, final: Path, staging: Path) -> Path:
    """Rename `built` to `final`, the one step that makes a data set look prepared (a folder
    already there goes into `staging`, removed with it)."""
    if final.exists():
        os.replace(final, staging / "old")
    os.replace(built, final)
    return final
