import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from itl import paths, runs


def test_config_hash_is_stable_and_order_free():
    assert runs.config_hash({"a": 1, "b": [1, 2]}) == runs.config_hash({"b": [1, 2], "a": 1})
    assert runs.config_hash({"a": 1}) == "f9d86028c6e0d64e2251"
    assert runs.config_hash({"a": 1}) != runs.config_hash({"a": 2})


def test_finished_run_is_reused_not_retrained():
    calls = []
    fn = lambda d: calls.append(d) or {"x": 1}  # noqa: E731
    a = runs.get_or_run("k", {"c": 1}, fn)
    b = runs.get_or_run("k", {"c": 1}, fn)
    assert len(calls) == 1 and a == b and a["x"] == 1
    assert {"git_rev", "versions", "device", "seconds", "run"} <= set(a)
    d = runs.run_dir("k", {"c": 1})
    assert json.loads((d / "config.json").read_text()) == {"c": 1}
    assert runs.get_or_run("k", {"c": 2}, None) is None  # look up only


def test_crash_leaves_no_finished_run():
    def boom(d):
        (d / "checkpoint.pt").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runs.get_or_run("k", {"c": 3}, boom)
    assert runs.finished("k", {"c": 3}) is None
    assert runs.get_or_run("k", {"c": 3}, lambda d: {"resumed_from": (d / "checkpoint.pt")
                                                      .read_text()})["resumed_from"] == "partial"


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    f = tmp_path / "m.json"
    paths.atomic_write_json(f, {"v": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        paths.atomic_write_json(f, {"v": Unserialisable()})
    assert json.loads(f.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp files left


def _worker(store: str, marker: str) -> None:
    os.environ["ITL_RUNS"] = store

    def train(d):
        with open(marker, "a") as f:
            f.write("trained\n")
        import time
        time.sleep(1.0)
        return {"ok": True}

    runs.get_or_run("k", {"same": True}, train)


def test_two_processes_train_the_same_run_once(tmp_path):
    marker = tmp_path / "marker"
    ctx = mp.get_context("spawn")
    ps = [ctx.Process(target=_worker, args=(str(tmp_path / "store"), str(marker)))
          for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert marker.read_text() == "trained\n"


def test_unwritable_store_is_named(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file instead
        ro = tmp_path / "file"
        ro.write_text("")
    monkeypatch.setenv("ITL_RUNS", str(Path(ro) / "runs"))
    with pytest.raises(paths.StoreError, match="cannot write"):
        runs.get_or_run("k", {"c": 9}, lambda d: {})
