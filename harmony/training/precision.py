"""``train.precision: auto``: bf16 autocast where the hardware runs it natively, fp32 elsewhere.

On CPUs with AMX or AVX512-BF16 a bf16-mixed step of the tiny CNNs takes about half the fp32
time (bench/results/capacity.json); on CPUs without them bf16 is emulated and slower than fp32,
so a fixed ``bf16-mixed`` would make the same recipe fast on one laptop and slow on the next.
"""

from __future__ import annotations

import torch

AUTO = "auto"


def cpu_has_native_bf16() -> bool:
    cpu = torch.cpu
    return any(bool(getattr(cpu, name, lambda: False)()) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """A Lightning precision string; ``auto`` picks bf16-mixed only where it is native."""
    if precision != AUTO:
        return precision
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if cuda:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    if accelerator == "mps":
        return "32-true"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
