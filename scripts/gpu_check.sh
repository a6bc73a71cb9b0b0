#!/usr/bin/env bash
# GPU check, for a machine with a CUDA GPU (runs in a few minutes): the needs_cuda tests, then
# the pre-training throughput benchmark (itl's loop beside ImageFolder + DataLoader) at smoke
# scale and at small scale -- on the prepared data, or on random images of its shape where the
# data is not there (a lent GPU machine: the data cannot travel to it) -- with the projected
# seconds of one small-scale pre-training. Results go to reports/benchmarks/ (and to $OUT when
# set, as on the lent device machine).
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
if [ -n "${OUT:-}" ]; then cp reports/benchmarks/* "$OUT"/; fi
exit "$tests_rc"
