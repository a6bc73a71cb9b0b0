"""The benchmark prints figures (it asserts no speed): here only that it runs, on synthetic
images too, and writes its table with the projected seconds of a whole pre-training."""
from itl import bench, paths


def test_synthetic_benchmark_writes_its_table(monkeypatch):
    monkeypatch.setitem(bench.SOURCE_SHAPES, "small", (256, 4))  # tiny stand-in
    images = bench.synthetic("small")
    assert images.x.shape == (256, 3, 32, 32) and len(images.classes) == 4
    assert bench.main(["--scale", "small", "--synthetic", "--steps", "1", "--warmup", "1",
                       "--workers", "0"]) == 0
    text = (paths.reports_dir() / "benchmarks" / "throughput-small-synthetic-cpu.md").read_text()
    assert "(synthetic)" in text and "pre-training (32 steps)" in text  # 2 steps x 16 epochs
    assert "x float32" in text and "bf16 + channels_last" in text
