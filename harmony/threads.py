"""torch's intra-op thread count, set for a block and given back.

Tiny tensors (a few hundred 128-D rows) gain nothing from a second torch thread on a small, shared
machine: it only adds synchronisation (15 ms instead of 1 ms per linear layer on 2 busy cores).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
