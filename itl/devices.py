"""Where training runs: CPU or CUDA, one GPU per pytest-xdist worker, several GPUs per run under
`torchrun` (paper scale: AlexNet on ImageNet-1k, as the authors trained on GPUs).

The device is chosen automatically (CUDA when present). On CUDA the hot loop runs in bf16
autocast with channels_last tensors; on CPU in float32 unless the scale's protocol asks for bf16
(small scale: CPUs with AVX-512 BF16 train 2-3x faster). On CPU, results are bit-reproducible for
a fixed number of threads, which every run fixes (`cpu_threads`).

Under torchrun every rank takes an equal slice of each global batch, with the same images and
augmentation draws one process would use, and DDP averages the gradients, so a run on several
GPUs follows the one-GPU run up to floating-point noise (batch norm is synchronised on CUDA).
One exception: each rank draws its own dropout masks (AlexNet), so with dropout the runs agree
in distribution, not number for number. tests/test_devices.py checks the equivalence on CPU
(gloo) with dropout off.
"""
from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Accel:
    device: torch.device
    bf16: bool  # autocast matmuls/convolutions to bfloat16
    channels_last: bool  # NHWC memory format for convolutions


def accel(bf16: bool | None = None) -> Accel:
    """The device, and whether to autocast to bf16 with channels_last: `bf16` None is the
    device's default (on for CUDA, off for CPU); a protocol that sets it gets it on either.
    On a CPU, `bf16=False` said explicitly is float32 with channels_last tensors (small scale
    v3: 25% faster than NCHW on an AVX2-only EPYC, where bf16 autocast is emulated and 8x
    slower than float32); None keeps NCHW, as every earlier run had it."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        on = True if bf16 is None else bf16
        return Accel(torch.device("cuda", local % torch.cuda.device_count()), on, on)
    on = bool(bf16)
    return Accel(torch.device("cpu"), on, on or bf16 is False)


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run with exactly `n` intra-op CPU threads, then restore the caller's number. CPU kernels
    split reductions by thread, so the same run on 1 or 2 threads differs in its last bits and,
    after thousands of SGD steps, in its reported numbers: a protocol fixes `n`."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """What a run's numbers depend on besides its config: the CPU (model, torch's kernel
    capability such as AVX512, threads) and the GPU, if one is used."""
    out = {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    return out


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
