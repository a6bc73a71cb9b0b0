import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from itl import data, devices, subsets, train
from itl.train import PretrainConfig

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("worker,visible,n,expected", [
    ("gw0", None, 2, "0"), ("gw1", None, 2, "1"), ("gw3", None, 2, "1"),
    ("gw1", "4,6", 2, "6"), ("gw0", None, 0, None), ("master", None, 4, None),
])
def test_each_xdist_worker_gets_one_gpu(worker, visible, n, expected):
    assert devices.worker_gpu(worker, visible, n) == expected


def test_cpu_without_cuda_runs_float32():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    a = devices.accel()
    assert a.device.type == "cpu" and not a.bf16 and not a.channels_last


def test_batch_shards_cover_the_global_batch_with_the_same_augmentation():
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    params = data.augment_params(8, 2, torch.Generator().manual_seed(3))
    whole = data.apply_augment(x, 2, *params)
    halves = [data.apply_augment(x[lo:hi], 2, *(p[lo:hi] for p in params))
              for lo, hi in ((0, 4), (4, 8))]
    assert torch.equal(torch.cat(halves), whole)


def test_torchrun_two_processes_match_one_process(tmp_path):
    """Two ranks, each reading its slice of every batch from shards, train as one process
    holding the images in memory."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    one = subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(HERE / "ddp_worker.py"),
                          str(tmp_path / "two"), "shards"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5)
    assert [r["train_loss"] for r in a["log"]] == pytest.approx(
        [r["train_loss"] for r in b["log"]], rel=1e-4)


@pytest.mark.needs_cuda
def test_cuda_pretrain_keeps_data_on_gpu_and_learns():
    src, te = data.load("smoke", "train"), data.load("smoke", "test")
    m = subsets.build("full", src, "smoke", 0)
    acc = devices.accel()
    assert acc.device.type == "cuda" and acc.bf16 and acc.channels_last
    assert train._on_device(src, acc).x.device.type == "cuda"
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        r = train.pretrain(PretrainConfig(epochs=3), subsets.apply(m, src),
                           subsets.apply(m, te, chosen_only=False), len(src), 0, Path(d))
    assert r["source_top1"] > 100 / 16 * 2
