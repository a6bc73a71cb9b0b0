"""The run store: every pre-training and transfer result the paper's tables need, trained once.

A run is `ITL_RUNS/<kind>/<hash of its full config>/` holding `config.json`, a per-epoch
`log.jsonl`, `checkpoint.pt` and, last, `metrics.json` (metrics plus git revision, package
versions, device and seconds). `metrics.json` is written atomically and only when the run is done,
so it is the mark of a finished run: a crash leaves a run that resumes, never one that looks
finished. Two processes asking for the same run train it once: the second waits on a file lock
and then reads the first one's metrics.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
from filelock import FileLock

from itl import devices, paths


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


def run_dir(kind: str, config: dict) -> Path:
    return paths.runs_dir() / kind / config_hash(config)


def finished(kind: str, config: dict) -> dict | None:
    """The metrics of a finished run, or None."""
    f = run_dir(kind, config) / "metrics.json"
    return json.loads(f.read_text()) if f.exists() else None


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
    dev = (torch.cuda.get_device_name() if torch.cuda.is_available()
           else f"cpu ({platform.processor() or platform.machine()}, "
                f"{torch.get_num_threads()} threads)")
    return {"git_rev": _git_rev(), "versions": versions, "device": dev,
            "python": platform.python_version()}


def get_or_run(kind: str, config: dict, fn: Callable[[Path], dict] | None) -> dict | None:
    """The metrics of run (kind, config): read if finished, else `fn(run_dir)` computes them
    (resuming whatever a killed attempt left), under a lock so it runs once. With fn None,
    an unfinished run gives None (look up, never train)."""
    d = run_dir(kind, config)
    done = d / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    if fn is None:
        return None
    paths.ensure_writable(d.parent)
    if devices.distributed() and devices.rank() != 0:  # under torchrun rank 0 records the run
        d.mkdir(exist_ok=True)
        return fn(d)
    with FileLock(str(d.parent / f"{d.name}.lock")):
        if done.exists():  # another process finished it while we waited
            return json.loads(done.read_text())
        d.mkdir(exist_ok=True)
        paths.atomic_write_json(d / "config.json", config)
        t0 = time.perf_counter()
        metrics = fn(d)
        metrics = {**metrics, "run": f"{kind}/{d.name}", "seconds": time.perf_counter() - t0,
                   **provenance()}
        paths.atomic_write_json(done, metrics)
    return metrics
