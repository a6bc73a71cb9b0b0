"""The benchmark prints figures (it asserts no speed): here only that it runs, on synthetic
images too, and writes its table with the projected seconds of a whole pre-training."""
import json

import pytest
import torch

from itl import bench, paths, scales
from itl.datasets import imagenet1k


def test_synthetic_benchmark_writes_its_table(monkeypatch):
    monkeypatch.setitem(bench.SOURCE_SHAPES, "small", (256, 4))  # tiny stand-in
    images = bench.synthetic(scales.get("small"))
    assert images.x.shape == (256, 3, 32, 32) and len(images.classes) == 4
    assert bench.main(["--scale", "small", "--synthetic", "--steps", "1", "--warmup", "1",
                       "--workers", "0"]) == 0
    text = (paths.reports_dir() / "benchmarks" / "throughput-small-synthetic-cpu.md").read_text()
    assert "(synthetic)" in text and "pre-training (32 steps)" in text  # 2 steps x 16 epochs
    assert "x float32" in text and "bf16 + channels_last" in text


def test_paper_input_paths_side_by_side_write_table_and_record(tmp_path):
    """At a scale that crops as Caffe does, the input paths are compared on generated photos;
    the shards hold those very JPEGs warped as itl prepares ImageNet-1k; the record that
    `itl grid` reads has the scale's rate and projection."""
    images, jpeg = bench.paper_source(tmp_path / "src", 6, 3)
    files = sorted(jpeg.rglob("*.JPEG"), key=lambda f: f.name)
    assert len(files) == 6 and images.x.shape == (6, 3, 256, 256)
    assert images.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.equal(images.x[4], imagenet1k.warp(files[4].read_bytes(), files[4].name))
    assert bench.main(["--scale", "paper", "--synthetic", "--batch", "2", "--steps", "1",
                       "--warmup", "1", "--images", "6", "--workers", "0"]) == 0
    out = paths.reports_dir() / "benchmarks"
    text = (out / "throughput-paper-synthetic-cpu.md").read_text()
    for row in ("itl: shards read ahead", "itl: shards read in the loop",
                "torchvision ImageFolder + DataLoader", "NVIDIA DALI", "nvJPEG"):
        assert row in text
    assert "needs CUDA" in text and "450,000 steps of 256" in text
    rec = json.loads((out / "throughput-paper-synthetic-cpu.json").read_text())
    assert rec["scale"] == "paper" and rec["model"] == "caffenet" and rec["batch"] == 2
    assert rec["images_per_s"] > 0 and rec["pretrain_steps"] == 450_000
    assert rec["pretrain_seconds"] == pytest.approx(450_000 * 256 / rec["images_per_s"])
