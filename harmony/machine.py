"""What this machine can run: the CPU cores this process may use and its CUDA GPUs.

Training (``train.devices``) and backfills (``--devices``) refuse a launch the machine cannot
hold before anything is written; both ask here, so "how many cores" has one answer (the
scheduler's affinity mask, which containers and ``taskset`` narrow, not the host's count).
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cuda_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def lacks(processes: int, gpu: bool) -> str | None:
    """None when ``processes`` processes fit (one GPU each, or one CPU core each); else what the
    machine has, for the error message (``"1 CUDA GPU(s)"``, ``"2 CPU core(s)"``)."""
    have = cuda_gpus() if gpu else usable_cpus()
    if processes <= have:
        return None
    return f"{have} CUDA GPU(s)" if gpu else f"{have} CPU core(s)"
