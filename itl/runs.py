"""The run store: every pre-training and transfer result the paper's tables need, trained once.

A run is `ITL_RUNS/<kind>/<hash of its full config>/` holding `config.json`, a per-epoch
`log.jsonl`, `checkpoint.pt` and, last, `metrics.json` (metrics plus git revision, package
versions, the hardware it ran on and seconds). `metrics.json` is written atomically and only when
the run is done, so it is the mark of a finished run: a crash leaves a run that resumes, never
one that looks finished. Two processes asking for the same run train it once: the second waits
on a file lock and then reads the first one's metrics.

`metrics.json` records the sha256 of every other file of the run. A finished run is trusted only
after those files check out (once per process and file version); one that fails is reported with
its path; a caller about to train moves it aside to `<hash>.corrupt-<time>` and trains it again,
a lookup (reports) treats it as absent. Reading never writes, so reports and lookups work on a
read-only store.

A store can also go on from run records (`report.export_runs`: config, metrics and log, no
checkpoints): `import_records` copies them in, marked `.imported`, so a fresh store (a clean clone,
a new machine) answers every lookup they cover and trains only what they lack. An imported run is
verified like any other, except for the files the records leave out; a step that needs one (a new
transfer from an imported pre-training needs its network) says so, naming the run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from filelock import FileLock, SoftFileLock

from itl import devices, paths


HASH_CHARS = 20  # hex characters of a config's sha256 that name its run folder
KINDS = ("pretrain", "transfer")  # the kinds of run the pipeline stores
RECORD_FILES = ("config.json", "metrics.json", "log.jsonl")  # what exported run records keep
IMPORTED = ".imported"  # marks a run copied in from records (import_records)


def key_settings(cfg, added: tuple[str, ...]) -> dict:
    """Settings dataclass `cfg` as plain data for a run's key: every field, except those in
    `added` (fields newer than the store's first runs) while they hold their default, so that
    runs stored before those fields existed keep their hashes (tests pin them)."""
    default = {f.name: f.default for f in dataclasses.fields(cfg)}
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in added or v != default[k]}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:HASH_CHARS]


def run_dir(kind: str, config: dict) -> Path:
    return paths.runs_dir() / kind / config_hash(config)


class RunError(RuntimeError):
    """A run in the store is corrupt or cannot be used."""


def file_hashes(d: Path) -> dict[str, str]:
    """sha256 of every file a finished run is trusted by (all but metrics.json and temporaries)."""
    return {f.name: paths.sha256_file(f) for f in sorted(d.iterdir())
            if f.is_file() and f.name != "metrics.json" and not f.name.startswith(".")}


_VERIFIED: set[tuple] = set()


def is_run_name(name: str) -> bool:
    """A run folder's name: its config's hash (a folder set aside as corrupt is not one)."""
    return len(name) == HASH_CHARS and all(c in "0123456789abcdef" for c in name)


def _digest(metrics: dict) -> str:
    body = {k: v for k, v in metrics.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_record(d: Path, kind: str) -> tuple[dict, dict]:
    """(config, metrics) of the finished run in folder `d`, checked as far as a record without
    its checkpoint can be (exported records): the config hashes to the folder's name, the
    metrics name this run and match the digest written with them. A RunError otherwise."""
    try:
        cfg = json.loads((d / "config.json").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        raise RunError(f"run {d}: unreadable record ({e})") from e
    if not isinstance(cfg, dict) or not isinstance(metrics, dict):
        raise RunError(f"run {d}: config.json or metrics.json is not a JSON object")
    if config_hash(cfg) != d.name:
        raise RunError(f"run {d}: config.json hashes to {config_hash(cfg)}, not to its "
                       "folder's name (moved or edited)")
    if metrics.get("run") != f"{kind}/{d.name}" or metrics.get("digest") != _digest(metrics):
        raise RunError(f"run {d}: metrics.json was edited or belongs to another run")
    return cfg, metrics


def verify(d: Path) -> dict:
    """The metrics of finished run `d` after checking its record and every file it recorded;
    a RunError naming the path and the file otherwise."""
    _, metrics = read_record(d, d.parent.name)
    recorded = metrics.get("files")
    if not isinstance(recorded, dict):
        raise RunError(f"run {d}: metrics.json records no file hashes (written by an older "
                       "itl, or damaged)")
    imported = (d / IMPORTED).is_file()
    for name, digest in recorded.items():
        f = d / name
        try:
            st = f.stat()
        except OSError:
            if imported and name not in RECORD_FILES:
                continue  # left out of the records it came from (needs() says so if asked)
            raise RunError(f"run {d}: {name} is missing") from None
        key = (str(f), st.st_size, st.st_mtime_ns, digest)
        if key in _VERIFIED:
            continue
        if paths.sha256_file(f) != digest:
            raise RunError(f"run {d}: {name} does not match the sha256 recorded when the run "
                           "finished (truncated or modified)")
        _VERIFIED.add(key)
    return metrics


def needs(d: Path, name: str) -> Path:
    """File `name` of finished run `d`, for a step that cannot go on without it; a RunError
    naming the run and the way out where the run was imported from records that lack it."""
    f, marker = d / name, d / IMPORTED
    if not f.exists() and marker.is_file():
        raise RunError(f"run {d} was imported from run records ({marker.read_text().strip()}), "
                       f"which hold no {name}, and this step needs it: copy {name} in from "
                       f"the store that trained the run, or delete {d} to train it again")
    return f


def _checked_record(d: Path, kind: str) -> dict:
    """The config of the run record in folder `d`; a RunError unless it is a whole run record
    of `kind`: read_record's checks, and every file it holds matching the hash its metrics
    recorded."""
    cfg, metrics = read_record(d, kind)
    recorded = metrics.get("files")
    if not isinstance(recorded, dict):
        raise RunError(f"run record {d}: metrics.json records no file hashes")
    for f in sorted(d.iterdir()):
        if f.name == "metrics.json":
            continue
        if f.name not in recorded or paths.sha256_file(f) != recorded[f.name]:
            raise RunError(f"run record {d}: {f.name} is not the file its run recorded "
                           "(modified, or not part of the run)")
    missing = [n for n in RECORD_FILES if n in recorded and not (d / n).is_file()]
    if missing:
        raise RunError(f"run record {d}: {', '.join(missing)} missing")
    return cfg


def import_records(folder: Path, scale=None,
                   names: dict[tuple, str] | None = None) -> tuple[list[str], list[str]]:
    """Copy the runs recorded under `folder` (`<kind>/<hash>/`, as report.export_runs writes
    them) into the run store, each marked IMPORTED: ([imported], [already in the store]) as
    "kind/hash". Every record is checked before anything is written (a RunError naming the
    first bad one, and nothing imported), and with `scale` (an itl.scales.Scale) must be a run
    of that scale and protocol (`names`, {(key, protocol): scale name}, names the scale a
    record is of instead: itl.scales imports this module, not the other way); a run the store
    already has a folder for (finished, or in progress and about to resume) is left as it is."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no run records at {folder}: give the folder `itl report "
                                "--runs` wrote (reports/<scale>/runs)")
    found = [(kind, d) for kind in KINDS for d in sorted((folder / kind).glob("*"))
             if is_run_name(d.name) and d.is_dir()]
    if not found:
        raise FileNotFoundError(f"no run records under {folder} (expected pretrain/<hash>/ and "
                                "transfer/<hash>/ folders with config.json and metrics.json)")
    for kind, d in found:
        cfg = _checked_record(d, kind)
        got = (cfg.get("scale"), cfg.get("protocol"))
        if scale is not None and got != (scale.key, scale.protocol):
            other = (names or {}).get(got) or f"{got[0]!r} (protocol {got[1]})"
            raise RunError(f"run record {d} is of scale {other}, not {scale.name}: import "
                           f"{folder} with --scale {other}, or give --from the records of "
                           f"{scale.name} (reports/{scale.name}/runs); nothing imported")
    done, there = [], []
    for kind, d in found:
        dest = paths.ensure_writable(paths.runs_dir() / kind) / d.name
        with lock(dest.parent / f"{dest.name}.lock"):
            if dest.exists():
                there.append(f"{kind}/{d.name}")
                continue
            tmp = dest.with_name(f".{d.name}.import-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(d, tmp)
            (tmp / IMPORTED).write_text(f"from {folder.resolve() / kind / d.name}, "
                                        f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            os.replace(tmp, dest)
        done.append(f"{kind}/{d.name}")
    return done, there


def _set_aside(d: Path, why: RunError) -> None:
    """Report a corrupt run and move it out of the way (if the store is writable)."""
    aside = d.with_name(f"{d.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        os.replace(d, aside)
        where = f"moved to {aside}"
    except OSError as e:
        where = f"left in place ({e.strerror})"
    warnings.warn(f"itl: {why}; not used, {where}", RuntimeWarning, stacklevel=3)


def _trusted(d: Path, set_aside: bool = False) -> dict | None:
    """Metrics of a finished, verified run at `d`; None if unfinished or corrupt (reported,
    and moved aside when `set_aside`: only a caller about to train it again writes)."""
    if not (d / "metrics.json").exists():
        return None
    try:
        return verify(d)
    except RunError as e:
        if set_aside:
            _set_aside(d, e)
        else:
            warnings.warn(f"itl: {e}; not used", RuntimeWarning, stacklevel=3)
        return None


def finished(kind: str, config: dict) -> dict | None:
    """The metrics of a finished, verified run, or None."""
    return _trusted(run_dir(kind, config))


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    versions = {}
    for pkg in ("itl", "torch", "torchvision", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    hw = devices.hardware()
    dev = hw.get("gpu") or f"cpu ({hw['cpu']}, {hw['cpu_capability']}, {hw['threads']} threads)"
    return {"git_rev": _git_rev(), "versions": versions, "device": dev, "hardware": hw,
            "python": platform.python_version()}


LOCKS = ("flock", "soft")


def lock(path: Path) -> FileLock | SoftFileLock:
    """The lock beside a run: an flock() lock (filelock's FileLock; released by the kernel when
    its holder dies, but it needs a file system whose locks hold across nodes: NFSv4 or NFSv3
    with lockd, Lustre with -o flock), or with `ITL_LOCK=soft` a lock file created exclusively
    (SoftFileLock: any file system). The soft lock file holds its holder's pid and host: one
    left by a process killed on this machine is taken over, one left on another node (or empty,
    as filelock before 3.22 left it) blocks that run until it is deleted by hand
    (tests/test_reliability.py). The README, "Running the grid", says more."""
    value = os.environ.get("ITL_LOCK", "flock")
    if value not in LOCKS:
        raise ValueError(f"ITL_LOCK={value!r} is neither flock nor soft: set ITL_LOCK=soft for a "
                         "file system without working locks, or unset it")
    return (SoftFileLock if value == "soft" else FileLock)(str(path))


def get_or_run(kind: str, config: dict, fn: Callable[[Path], dict] | None,
               threads: int | None = None) -> dict | None:
    """The metrics of run (kind, config): read if finished (and verified), else `fn(run_dir)`
    computes them (resuming whatever a killed attempt left), under a lock so it runs once, with
    exactly `threads` CPU threads when given. With fn None, an unfinished run gives None (look up,
    never train). `fn` may return `earlier_seconds` (time spent by killed attempts), which is
    added to this attempt's."""
    d = run_dir(kind, config)
    metrics = _trusted(d, set_aside=fn is not None)
    if metrics is not None or fn is None:
        return metrics
    paths.ensure_writable(d.parent)
    pin = devices.cpu_threads(threads) if threads else contextlib.nullcontext()
    if devices.distributed() and devices.rank() != 0:  # under torchrun rank 0 records the run
        d.mkdir(exist_ok=True)
        with pin:
            return fn(d)
    with lock(d.parent / f"{d.name}.lock"):
        metrics = _trusted(d, set_aside=True)  # another process may have finished it
        if metrics is not None:
            return metrics
        d.mkdir(exist_ok=True)
        paths.atomic_write_json(d / "config.json", config)
        t0 = time.perf_counter()
        with pin:
            metrics = fn(d)
            hw = provenance()  # inside: the threads the run used
        earlier = metrics.pop("earlier_seconds", 0.0)
        metrics = {**metrics, "run": f"{kind}/{d.name}",
                   "seconds": earlier + time.perf_counter() - t0, **hw,
                   "files": file_hashes(d)}
        metrics["digest"] = _digest(metrics)  # an edited number is caught on reading
        paths.atomic_write_json(d / "metrics.json", metrics)
    return metrics
