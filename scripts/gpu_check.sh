#!/usr/bin/env bash
# GPU check, for a machine with a CUDA GPU (runs in about 6 minutes on an H100/H200): the
# needs_cuda tests (the input path's GPU batches equal its CPU batches among them), then the
# pre-training throughput benchmark (itl's loop beside ImageFolder + DataLoader) at smoke
# scale and at small scale -- on the prepared data, or on random images of its shape where the
# data is not there (a lent GPU machine: the data cannot travel to it) -- then the paper's input
# paths side by side at 227 px (CaffeNet, batch 256, generated photos: itl's shards read ahead,
# nvJPEG, torchvision's ImageFolder loop), a short CaffeNet pre-training at 227 px through
# train.pretrain, the imagenet64 scale's rate, the paper grid's transfer steps one at a time
# (detection, SUN and ACT fine-tuning, the probes' feature pass and L-BFGS evaluation:
# `itl.bench --transfer`, reports/benchmarks/transfer-paper-cuda.json, which turns the grid's
# "assumed" detection, fine-tuning and feature-pass rates into measured ones), and both grids'
# GPU-hours (`itl grid --dry-run`).
# Results go to reports/benchmarks/ (and to $OUT when set, as on the lent device machine).
#   PYTHONPATH=. bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
mkdir -p reports/benchmarks
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee reports/benchmarks/gpu.txt
"$py" -m pytest -q -p no:cacheprovider -m needs_cuda tests 2>&1 | tee reports/benchmarks/gpu_tests.log
tests_rc=${PIPESTATUS[0]}
# Are CUDA runs bit-reproducible? The same smoke pre-training twice on this GPU.
"$py" - <<'PY' 2>&1 | tee reports/benchmarks/gpu_determinism.txt
import tempfile
from pathlib import Path
import torch
from itl import data, subsets, train
from itl.train import PretrainConfig
src, te = data.load("smoke", "train"), data.load("smoke", "test")
m = subsets.build("full", src, "smoke", 0)
outs = []
for attempt in range(2):
    with tempfile.TemporaryDirectory() as d:
        r = train.pretrain(PretrainConfig(epochs=2), subsets.apply(m, src),
                           subsets.apply(m, te, chosen_only=False), len(src), 0, Path(d))
        w = torch.load(Path(d) / "checkpoint.pt", map_location="cpu")["model"]
        outs.append((r["source_top1"], w))
same = all(torch.equal(outs[0][1][k], outs[1][1][k]) for k in outs[0][1])
print(f"CUDA determinism (smoke pre-training, 2 epochs, twice, {torch.cuda.get_device_name()}): "
      f"top-1 {outs[0][0]:.2f} vs {outs[1][0]:.2f}; weights bit-identical: {same}")
PY
"$py" -m itl.bench --scale smoke --steps 100 --workers 8
small=()
"$py" -c "from itl import data; data.load('tiny-imagenet-200', 'train', 32)" 2>/dev/null || {
  echo "small-scale data not prepared: random images of its shape"; small=(--synthetic); }
"$py" -m itl.bench --scale small --steps 200 --workers 8 --compile "${small[@]}"
workers=$(( $(nproc) < 16 ? $(nproc) : 16 ))
"$py" -m itl.bench --scale paper --synthetic --steps 100 --warmup 10 --workers "$workers" \
  --images 16384
"$py" -m itl.bench --scale imagenet64 --synthetic --steps 200 --workers 0
# The paper grid's transfer steps at the paper's settings (each kind timed alone, a minute in all)
"$py" -m itl.bench --scale paper --transfer --steps 20 --warmup 3
# A short CaffeNet pre-training at 227 px through train.pretrain (the path a paper-scale run
# takes: shards read ahead, crops on the GPU, bf16): does it learn, at what rate.
"$py" - <<'PY' 2>&1 | tee reports/benchmarks/gpu_caffenet_short.txt
import dataclasses, tempfile, time
from pathlib import Path
import torch
from itl import bench, scales, train
from itl.datasets.images import ImageSet
cfg = dataclasses.replace(scales.get("paper").pretrain, steps=300)
with tempfile.TemporaryDirectory() as d:
    images, _ = bench.paper_source(Path(d) / "src", 4096, 8)
    test = ImageSet(images.x.pick(torch.arange(512)), images.y[:512], images.classes)
    t = time.perf_counter()
    r = train.pretrain(cfg, images, test, 1_281_167, 0, Path(d) / "run", label="caffenet")
    log = [__import__("json").loads(l) for l in (Path(d) / "run" / "log.jsonl").open()]
print(f"CaffeNet, 300 steps of {cfg.batch_size} at {cfg.crop} px on 4,096 generated photos in "
      f"8 classes ({torch.cuda.get_device_name()}): train loss {log[-1]['train_loss']:.3f} "
      f"(chance {__import__('math').log(8):.3f}), train top-1 {log[-1]['train_top1']:.1f}%, "
      f"{log[-1]['images_per_s']:.0f} img/s in the loop, {time.perf_counter() - t:.0f} s in all "
      "(4,096 images fit the GPU and are held there; ImageNet-1k's shards are read ahead, "
      "as in the benchmark's first row)")
PY
# The grids' GPU-hours from the rates just measured (itl grid reads the benchmark records)
for s in paper imagenet64; do
  ITL_RUNS="$(mktemp -d)" "$py" -m itl grid --scale "$s" --launcher local --dry-run \
    > "reports/benchmarks/grid-$s-gpu-hours.txt" 2>&1
  grep -E "^(GPU-hours|Detection|Probes):" "reports/benchmarks/grid-$s-gpu-hours.txt"
done
if [ -n "${OUT:-}" ]; then cp reports/benchmarks/* "$OUT"/; fi
exit "$tests_rc"
