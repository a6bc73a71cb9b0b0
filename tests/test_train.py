import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from itl import batches, data, paths, subsets, train
from itl.train import PretrainConfig


def test_schedule_holds_steps_fixed_whatever_the_subset():
    cfg = PretrainConfig(epochs=12, batch_size=64, lr_drops=(0.5, 0.75))
    s = train.schedule(cfg, full_images=1280)
    assert (s.steps, s.steps_per_epoch, s.milestones) == (240, 20, (120, 180))
    assert train.schedule(PretrainConfig(epochs=1, batch_size=64), 65).steps == 2


def test_batch_indices_walk_seeded_permutations():
    first = torch.cat([batches.batch_indices(10, s, 5, seed=1) for s in range(2)])
    assert sorted(first.tolist()) == list(range(10))  # one pass over the data in 2 steps
    assert torch.equal(batches.batch_indices(10, 7, 4, 1), batches.batch_indices(10, 7, 4, 1))
    assert not torch.equal(batches.batch_indices(10, 0, 10, 1), batches.batch_indices(10, 0, 10, 2))


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
    from itl import pipeline, scales
    before = torch.get_num_threads()
    got = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            monkeypatch.setenv("ITL_RUNS", str(tmp_path / f"store{threads}"))
            m = pipeline.pretrain(scales.get("smoke"), "images-per-class=50", 0)
            got.append((m["run"], m["source_top1"], m["hardware"]["threads"]))
    finally:
        torch.set_num_threads(before)
    assert got[0] == got[1] and got[0][2] == 1


def test_settings_added_later_leave_every_stored_runs_hash_as_it_was(tmp_path, monkeypatch):
    """Run-store keys computed on main at 970f42d, before PretrainConfig had steps, crop and
    caffe_param_groups: at their defaults the new fields are left out of the key. (The smoke
    scale's schedule was 8 epochs then; it is 4 since the first run had to fit in 5 minutes.)"""
    import dataclasses

    from itl import pipeline, runs, scales
    monkeypatch.setenv("ITL_DATA", str(tmp_path / "no-data"))  # the small source unprepared
    smoke_then = dataclasses.replace(scales.get("smoke"), pretrain=PretrainConfig(
        model="small_cnn", epochs=8, batch_size=64, lr=0.05))

    def key(scale: str | scales.Scale, subset: str, seed: int) -> str:
        return runs.config_hash(pipeline.pretrain_key(scales.get(scale), subset, seed))

    assert key(smoke_then, "images-per-class=50", 0) == "71bcd353041436eea662"
    assert key(smoke_then, "full", 1) == "82a43730c52ca4ad068e"
    assert key("small-v2", "full", 1) == "f7d098e65525e8c0edda"
    plain = train.config_dict(PretrainConfig())
    assert runs.config_hash({"pretrain": plain}) == "6f81af7b0ffe98ba87e1"
    for change in ({"steps": 10}, {"crop": 28}, {"caffe_param_groups": True},
                   {"budget": train.EPOCHS}):
        assert train.config_dict(PretrainConfig(**change)) == {**plain, **change}


def test_a_step_budget_stands_for_caffes_max_iter():
    cfg = PretrainConfig(steps=450_000, batch_size=256, lr_drops=(2 / 9, 4 / 9, 6 / 9, 8 / 9))
    for full in (1_281_167, 640_000):  # whatever the source's size
        s = train.schedule(cfg, full)
        assert (s.steps, s.milestones) == (450_000, (100_000, 200_000, 300_000, 400_000))
    assert train.schedule(cfg, 1_281_167).steps_per_epoch == 5005
    with pytest.raises(ValueError, match="PretrainConfig steps=0: give a positive number"):
        PretrainConfig(steps=0)


def test_a_subset_s_schedule_is_a_named_choice_of_fixed_iterations_or_fixed_epochs():
    """docs/paper-protocol.md section 11: ITERATIONS gives every subset the full source's steps
    and drops; EPOCHS the full source's epochs of its own images (steps scaled by subset /
    full, drops at the same fractions, an epoch of its own images between checkpoints)."""
    cfg = PretrainConfig(steps=450_000, batch_size=256, lr_drops=(2 / 9, 4 / 9, 6 / 9, 8 / 9))
    full, ipc50 = 1_281_167, 50_000
    assert train.schedule(cfg, full, ipc50) == train.schedule(cfg, full)
    assert round(train.epochs(cfg, full, ipc50), 1) == 2304.0
    ep = PretrainConfig(**{**cfg.__dict__, "budget": train.EPOCHS})
    s = train.schedule(ep, full, ipc50)
    assert (s.steps, s.steps_per_epoch, s.milestones) == (17_562, 196, (3903, 7805, 11708, 15611))
    assert round(train.epochs(ep, full, ipc50), 1) == round(train.epochs(ep, full, full), 1) == 89.9
    assert train.schedule(ep, full, full) == train.schedule(cfg, full)  # the full source: alike
    assert train.schedule(PretrainConfig(epochs=12, batch_size=64, budget=train.EPOCHS),
                          1280, 320).steps == 60  # 12 epochs of 320 images
    with pytest.raises(ValueError, match="budget='weeks': choose one of iterations, epochs"):
        PretrainConfig(budget="weeks")


def test_without_a_crop_the_augmentation_draws_what_it_always_drew():
    got = data.augment_params(16, 4, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    want = (torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g),
            torch.rand(16, generator=g) < 0.5)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_random_crop_is_a_window_of_the_image_and_the_test_crop_its_centre():
    x = torch.randint(0, 256, (64, 3, 12, 10), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    room = data.crop_room(12, 10, 0, 7)
    assert room == (5, 3) and data.crop_room(8, 8, 2, 10) == (2, 2)
    oy, ox, flip = data.augment_params(64, 0, torch.Generator().manual_seed(1), room)
    # every offset 0..H-crop can be drawn (Caffe: Rand(H - crop + 1)), and nothing else
    assert set(oy.tolist()) == set(range(6)) and set(ox.tolist()) == set(range(4))
    out = data.apply_augment(x, 0, oy, ox, flip, crop=7)
    for i in range(64):
        window = x[i, :, oy[i]:oy[i] + 7, ox[i]:ox[i] + 7]
        assert torch.equal(out[i], window.flip(2) if flip[i] else window)
    assert torch.equal(data.center_crop(x, 7), x[..., 2:9, 1:8])  # Caffe: (H - crop) / 2
    assert data.center_crop(x, None) is x
    with pytest.raises(ValueError, match="crop 11 px does not fit the 12x10 px images"):
        data.crop_room(12, 10, 0, 11)


def test_pretrain_with_caffes_settings_sees_crops_and_doubles_the_biases_rate(tmp_path,
                                                                             monkeypatch):
    from itl import models
    tr, te = _tiny()
    sizes = set()
    build = models.build

    def recording_build(*args, **kw):
        net = build(*args, **kw)
        net.register_forward_pre_hook(lambda m, inp: sizes.add(tuple(inp[0].shape[-2:])))
        return net

    monkeypatch.setattr(models, "build", recording_build)
    cfg = PretrainConfig(steps=3, batch_size=16, crop=24, caffe_param_groups=True)
    m = train.pretrain(cfg, tr, te, 10_000, 0, tmp_path)
    assert m["steps"] == 3 and sizes == {(24, 24)}  # training crops and evaluation centres
    assert {k: m["config"][k] for k in train.ADDED if k in m["config"]} == {
        "steps": 3, "crop": 24, "caffe_param_groups": True}  # budget at its default: left out
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(2 * groups[0]["lr"])
    assert groups[0]["weight_decay"] == cfg.weight_decay and groups[1]["weight_decay"] == 0.0
