import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from itl import data, paths, subsets, train
from itl.train import PretrainConfig


def test_schedule_holds_steps_fixed_whatever_the_subset():
    cfg = PretrainConfig(epochs=12, batch_size=64, lr_drops=(0.5, 0.75))
    s = train.schedule(cfg, full_images=1280)
    assert (s.steps, s.steps_per_epoch, s.milestones) == (240, 20, (120, 180))
    assert train.schedule(PretrainConfig(epochs=1, batch_size=64), 65).steps == 2


def test_batch_indices_walk_seeded_permutations():
    first = torch.cat([train.batch_indices(10, s, 5, seed=1) for s in range(2)])
    assert sorted(first.tolist()) == list(range(10))  # one pass over the data in 2 steps
    assert torch.equal(train.batch_indices(10, 7, 4, 1), train.batch_indices(10, 7, 4, 1))
    assert not torch.equal(train.batch_indices(10, 0, 10, 1), train.batch_indices(10, 0, 10, 2))


def _tiny():
    src, te = data.load("smoke", "train"), data.load("smoke", "test")
    m = subsets.build("images-per-class=125", src, "smoke", 0)
    return subsets.apply(m, src), te


class Killed(Exception):
    pass


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_resume_from_checkpoint_is_exact(tmp_path, monkeypatch, bf16):
    tr, te = _tiny()
    cfg = PretrainConfig(epochs=3, batch_size=32, bf16=bf16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = train.pretrain(cfg, tr, te, 160, 0, tmp_path / "a")
    # an interrupted run: killed right after its first checkpoint is written
    save = paths.atomic_torch_save

    def save_then_die(path, obj):
        save(path, obj)
        raise Killed

    monkeypatch.setattr(paths, "atomic_torch_save", save_then_die)
    with pytest.raises(Killed):
        train.pretrain(cfg, tr, te, 160, 0, tmp_path / "b")
    monkeypatch.setattr(paths, "atomic_torch_save", save)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 5
    torch.manual_seed(1234)  # whatever the global RNG holds, the checkpoint restores it
    resumed = train.pretrain(cfg, tr, te, 160, 0, tmp_path / "b")
    assert resumed["source_top1"] == whole["source_top1"]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def _itl(*args, env):
    return subprocess.Popen([sys.executable, "-m", "itl", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_rerun_ends_with_the_uninterrupted_metrics(tmp_path):
    args = ("pretrain", "--scale", "smoke", "--subset", "images-per-class=50", "--seed", "5")
    env_a = {**os.environ, "ITL_RUNS": str(tmp_path / "a")}
    env_b = {**os.environ, "ITL_RUNS": str(tmp_path / "b")}
    out, _ = _itl(*args, env=env_a).communicate(timeout=600)
    run_a = Path(out.strip().splitlines()[-1])
    p = _itl(*args, env=env_b)
    deadline = time.time() + 300
    while not list((tmp_path / "b").glob("pretrain/*/checkpoint.pt")):
        assert time.time() < deadline and p.poll() is None, "no checkpoint appeared"
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    run_b = next(p for p in (tmp_path / "b").glob("pretrain/*") if p.is_dir())
    assert run_b.name == run_a.name  # same config, same run id
    assert not (run_b / "metrics.json").exists(), "a killed run must not look finished"
    out, _ = _itl(*args, env=env_b).communicate(timeout=600)
    assert Path(out.strip().splitlines()[-1]) == run_b
    ma = json.loads((run_a / "metrics.json").read_text())
    mb = json.loads((run_b / "metrics.json").read_text())
    assert ma["source_top1"] == mb["source_top1"]
    la = [json.loads(x)["test_top1"] for x in (run_a / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["test_top1"] for x in (run_b / "log.jsonl").read_text().splitlines()]
    assert la == lb
    # re-running a finished run returns at once, with the same run
    t = time.time()
    out, _ = _itl(*args, env=env_b).communicate(timeout=120)
    assert Path(out.strip().splitlines()[-1]) == run_b and time.time() - t < 30


def test_an_unreadable_checkpoint_restarts_the_run_cleanly(tmp_path):
    tr, te = _tiny()
    cfg = PretrainConfig(epochs=2, batch_size=32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = train.pretrain(cfg, tr, te, 160, 0, tmp_path / "a")
    (tmp_path / "b" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint .*checkpoint.pt"):
        again = train.pretrain(cfg, tr, te, 160, 0, tmp_path / "b")
    assert again["source_top1"] == whole["source_top1"] and again["earlier_seconds"] == 0


def test_a_runs_numbers_do_not_depend_on_the_callers_threads(tmp_path, monkeypatch):
    """`dvc repro` (one process, 2 threads) and `pytest -n 2` (1 thread per worker) fill the
    same run-store keys: the run pins its own threads, so they get the same numbers."""
    from itl import pipeline
    before = torch.get_num_threads()
    got = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            monkeypatch.setenv("ITL_RUNS", str(tmp_path / f"store{threads}"))
            m = pipeline.pretrain("smoke", "images-per-class=50", 0)
            got.append((m["run"], m["source_top1"], m["hardware"]["threads"]))
    finally:
        torch.set_num_threads(before)
    assert got[0] == got[1] and got[0][2] == 1
