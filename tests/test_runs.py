import json
import multiprocessing as mp
import os
import shutil
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


def _finish(cfg, payload=b"weights"):
    def fn(d):
        (d / "checkpoint.pt").write_bytes(payload)
        (d / "log.jsonl").write_text('{"epoch": 1}\n')
        return {"x": 1}
    return runs.get_or_run("k", cfg, fn)


def test_finished_run_records_the_hash_of_every_file_it_is_trusted_by():
    m = _finish({"c": 10})
    assert set(m["files"]) == {"config.json", "checkpoint.pt", "log.jsonl"}
    assert {"cpu", "cpu_capability", "threads"} <= set(m["hardware"])


@pytest.mark.parametrize("damage", ["truncate_checkpoint", "delete_log", "garble_metrics",
                                    "edit_a_number", "copied_from_another_run"])
def test_a_corrupt_finished_run_is_set_aside_named_and_retrained(damage):
    cfg = {"c": damage}
    _finish(cfg)
    d = runs.run_dir("k", cfg)
    if damage == "truncate_checkpoint":
        (d / "checkpoint.pt").write_bytes(b"weig")
    elif damage == "delete_log":
        (d / "log.jsonl").unlink()
    elif damage == "garble_metrics":
        (d / "metrics.json").write_text('{"x": ')
    elif damage == "edit_a_number":
        m = json.loads((d / "metrics.json").read_text())
        (d / "metrics.json").write_text(json.dumps({**m, "x": 99}))
    else:  # another run's folder copied under this run's name
        other = runs.run_dir("k", {"c": "other"})
        _finish({"c": "other"})
        shutil.rmtree(d)
        shutil.copytree(other, d)
    with pytest.warns(RuntimeWarning, match=str(d)):
        assert runs.finished("k", cfg) is None  # a lookup never uses it, and writes nothing
    assert d.exists()
    calls = []
    with pytest.warns(RuntimeWarning, match="moved to"):
        runs.get_or_run("k", cfg, lambda d: calls.append(1) or {"x": 2})  # trained again
    aside = [p for p in d.parent.iterdir() if p.name.startswith(f"{d.name}.corrupt-")]
    assert len(aside) == 1 and calls == [1] and runs.finished("k", cfg)["x"] == 2


def test_lookups_work_on_a_read_only_store(tmp_path, monkeypatch):
    _finish({"c": 11})
    store = Path(os.environ["ITL_RUNS"])
    for p in [store, *store.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        assert runs.finished("k", {"c": 11})["x"] == 1
        assert runs.get_or_run("k", {"c": 12}, None) is None
    finally:
        for p in [store, *store.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_files_are_created_group_readable_under_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        paths.atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o664


def test_a_full_disk_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(paths.StoreError, match=f"cannot write {tmp_path}.*No space left"):
        paths.atomic_write_text(tmp_path / "metrics.json", "{}")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_resumed_run_records_the_seconds_of_all_its_attempts():
    m = runs.get_or_run("k", {"c": 13}, lambda d: {"earlier_seconds": 100.0})
    assert m["seconds"] >= 100.0 and "earlier_seconds" not in m


def test_a_run_gets_exactly_the_threads_its_protocol_fixes():
    import torch
    before = torch.get_num_threads()
    seen = runs.get_or_run("k", {"c": 14}, lambda d: {"t": torch.get_num_threads()}, threads=1)
    assert seen["t"] == 1 and seen["hardware"]["threads"] == 1
    assert torch.get_num_threads() == before
