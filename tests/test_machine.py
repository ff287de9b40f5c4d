"""One answer to "can this machine hold N processes": training and backfills both ask harmony.machine."""

import os

import torch

from harmony.machine import cuda_gpus, lacks, usable_cpus


def test_usable_cpus_follows_the_affinity_mask():
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() == len(os.sched_getaffinity(0))


def test_lacks_names_what_the_machine_has():
    assert lacks(1, gpu=False) is None
    assert lacks(usable_cpus() + 1, gpu=False) == f"{usable_cpus()} CPU core(s)"
    assert cuda_gpus() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert lacks(cuda_gpus() + 1, gpu=True) == f"{cuda_gpus()} CUDA GPU(s)"
