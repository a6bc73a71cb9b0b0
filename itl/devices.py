"""Where training runs: CPU or CUDA, one GPU per pytest-xdist worker, several GPUs per run under
`torchrun` (paper scale: AlexNet on ImageNet-1k, as the authors trained on GPUs).

The device is chosen automatically (CUDA when present). On CUDA the hot loop runs in bf16
autocast with channels_last tensors; on CPU in float32, so CPU results are bit-reproducible.

Under torchrun every rank takes an equal slice of each global batch, with the same images and
augmentation draws one process would use, and DDP averages the gradients, so a run on several
GPUs follows the one-GPU run up to floating-point noise (batch norm is synchronised on CUDA).
One exception: each rank draws its own dropout masks (AlexNet), so with dropout the runs agree
in distribution, not number for number. tests/test_devices.py checks the equivalence on CPU
(gloo) with dropout off.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Accel:
    device: torch.device
    bf16: bool  # autocast matmuls/convolutions to bfloat16
    channels_last: bool  # NHWC memory format for convolutions


def accel() -> Accel:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return Accel(torch.device("cuda", local % torch.cuda.device_count()), True, True)
    return Accel(torch.device("cpu"), False, False)


def worker_gpu(worker_id: str, visible: str | None, n_gpus: int) -> str | None:
    """The CUDA_VISIBLE_DEVICES value pinning xdist worker `gw<k>` to one GPU (round robin over
    the GPUs visible to the parent), or None when there is nothing to pin."""
    if not worker_id.startswith("gw") or n_gpus < 1:
        return None
    gpus = [g for g in (visible or "").split(",") if g.strip()] or [str(i) for i in range(n_gpus)]
    return gpus[int(worker_id[2:]) % len(gpus)]


def pin_xdist_worker() -> None:
    """Give this pytest-xdist worker one GPU of its own (before CUDA is initialised)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    gpu = worker_gpu(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


# ---------------------------------------------------------------- torchrun (DDP)


def distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed() -> None:
    if distributed() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(
        os.environ.get("RANK", "0"))


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    if world() == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()
