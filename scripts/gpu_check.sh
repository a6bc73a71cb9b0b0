#!/usr/bin/env bash
# GPU check, for a machine with a CUDA GPU (runs in a few minutes): the needs_cuda tests, then
# the pre-training throughput benchmark (itl's loop beside ImageFolder + DataLoader) at small
# scale, or at smoke scale while the small-scale data is not prepared. Results go to
# reports/benchmarks/ (and to $OUT when set, as on the lent device machine).
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
scale=small
"$py" -c "from itl import data; data.load('tiny-imagenet-200', 'train')" 2>/dev/null || {
  echo "small-scale data not prepared: benchmarking at smoke scale"; scale=smoke; }
"$py" -m itl.bench --scale "$scale" --steps 100 --workers 8
if [ -n "${OUT:-}" ]; then cp reports/benchmarks/* "$OUT"/; fi
exit "$tests_rc"
