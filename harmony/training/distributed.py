"""Training across processes (DDP): who owns the registry, mining over the global batch, global
BatchNorm, and the devices a recipe may ask for.

Every rank runs the same command line (Lightning's ``strategy: ddp`` re-executes it in its
children; torchrun and SLURM start it N times), so the rank is read from the environment
(``launch_from_env``) before any registry is opened: rank 0 alone opens the DuckDB file, writes
the run folder and registers; the other ranks train and exit.

Global-batch mining (the pattern of pytorch-metric-learning's distributed loss wrapper): each rank
embeds its share of the P x K batch, ``gather_with_grad`` all-gathers the embeddings and puts the
local tensor back in its slot, so every rank mines over the whole batch while gradients reach only
its own rows; ``scale_for_ddp_average`` multiplies those gradients by the world size, so DDP's
averaging yields the single-process gradient. BatchNorm: the single-process reference normalises
over the global batch, so ``GlobalBatchNorm`` (a ``LayerSync`` plugin, ``train.sync_batchnorm``)
reduces batch statistics over all ranks, on CPU (gloo) as on GPU (NCCL); torch's own
SyncBatchNorm refuses CPU tensors.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.plugins import LayerSync
from torch import nn

from harmony.errors import HarmonyError, InvalidInput
from harmony.machine import cuda_gpus, lacks, usable_cpus
from harmony.recipe import TrainSpec, requested_processes

DIE_AT_STEP = "HARMONY_TEST_DIE_AT_STEP"  # test hook: rank 1 exits at this global step (a rank that dies)
HANDOFF = "ddp-handoff.pt"  # what rank 0 hands the other ranks in the run folder


@dataclass(frozen=True)
class Launch:
    """How this process was started. ``rank`` is exact under torchrun, SLURM and a single-node
    Lightning launch, and > 0 for every process that is not the global rank 0 elsewhere;
    ``world_size`` is 1 where the environment does not say (a Lightning parent before it starts
    its children)."""

    rank: int
    world_size: int
    launcher: str  # "none", "lightning", "torchrun" or "slurm"

    @property
    def is_zero(self) -> bool:
        return self.rank == 0


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch:
    """The rank of this process, read before any process group exists."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE") or 1)
    if "RANK" in env:  # torchrun / torch.distributed.run
        return Launch(int(env["RANK"]), world, "torchrun")
    if int(env.get("SLURM_NTASKS") or 1) > 1 and "SLURM_PROCID" in env:
        return Launch(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), "slurm")
    if "LOCAL_RANK" in env or "NODE_RANK" in env:  # a Lightning child (or a node of a multi-node launch)
        local, node = int(env.get("LOCAL_RANK") or 0), int(env.get("NODE_RANK") or 0)
        return Launch(local + node * max(world, 1) if node else local, world, "lightning")
    return Launch(0, 1, "none")


def launch_token(env: Mapping[str, str] | None = None) -> str:
    """What every rank of one torchrun or SLURM launch shares; "" under Lightning, which starts the
    other ranks only once rank 0 is inside ``fit`` (so they never need to wait for it). A torchrun
    launch is told apart from the previous one by its rendezvous id and port (``--standalone``
    makes both unique)."""
    env = os.environ if env is None else env
    launcher = launch_from_env(env).launcher
    if launcher == "torchrun":
        return ":".join(env.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT",
                                                  "TORCHELASTIC_RESTART_COUNT"))
    if launcher == "slurm":
        return f"slurm:{env.get('SLURM_JOB_ID', '')}.{env.get('SLURM_STEP_ID', '')}"
    return ""


def hand_off(run_dir: Path, tensors: Mapping[str, object] | None = None) -> Path:
    """Rank 0, once the run folder is settled (resumed or started over) and before ``fit``: leave
    what the other ranks need and must not read from the registry (v1's cached embeddings, the
    init model's weights) in ``<run>/ddp-handoff.pt``, tagged with this launch."""
    from harmony.io import fsync_dir

    path = Path(run_dir) / HANDOFF
    tmp = path.with_name(f".{HANDOFF}.tmp-{os.getpid()}")
    torch.save({"token": launch_token(), **(tensors or {})}, tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def take_handoff(run_dir: Path, timeout_s: float = 1800.0) -> dict:
    """A rank other than 0: the hand-off of this launch (waiting for rank 0 under torchrun/SLURM,
    where every rank starts at once; a stale file of an earlier launch is not taken)."""
    path, token = Path(run_dir) / HANDOFF, launch_token()
    deadline = time.monotonic() + timeout_s
    while True:
        if path.is_file():
            got = torch.load(path, map_location="cpu", weights_only=True)
            if not token or got.get("token") == token:
                return got
        if not token:
            raise InvalidInput(f"rank 0 left no {HANDOFF} in {run_dir}", hint="start DDP runs from rank 0's command")
        if time.monotonic() > deadline:
            raise InvalidInput(f"rank 0 did not hand this launch its inputs in {run_dir} within {timeout_s:.0f} s",
                               hint="check rank 0's log: it refused the run or failed before training")
        time.sleep(0.5)


def drop_handoff(run_dir: Path) -> None:
    """Rank 0 after ``fit``: every rank read the hand-off before it could start training."""
    (Path(run_dir) / HANDOFF).unlink(missing_ok=True)


def distributed_recipe(t: TrainSpec) -> bool:
    """Whether a recipe trains with more than one process (or this process is one of several)."""
    return (requested_processes(t.devices, t.num_nodes) or 1) > 1 or launch_from_env().world_size > 1


def world_size() -> int:
    """The size of the running process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_gather(x: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return parts


def gather(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) on every rank -> (world * n, ...) in rank order, without gradients (labels, ids)."""
    return x if world_size() == 1 else torch.cat(_all_gather(x))


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Like ``gather``, but this rank's slot is ``x`` itself, so gradients flow to the local rows
    (the other ranks' rows are constants here; their own backward covers them). Every rank must
    hold the same number of rows (the P x K sampler gives each P / world whole identities)."""
    if world_size() == 1:
        return x
    parts = _all_gather(x)
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def scale_for_ddp_average(x: torch.Tensor) -> torch.Tensor:
    """Multiply the gradient reaching ``x`` by the world size: each rank back-propagates the global
    loss through its own rows only, so the gradients summed over ranks are the single-process
    gradient, and DDP divides that sum by the world size. The loss value itself stays unscaled."""
    w = world_size()
    if w > 1 and x.requires_grad:
        x.register_hook(lambda g: g * w)
    return x


def global_batch(batch: dict, emb: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The global batch seen from one rank: embeddings gathered with gradients for the local rows,
    labels and dataset indices (``idx``: the harmonic loss looks up cached v1 embeddings with it)
    gathered without. The images stay local (nothing downstream of the embedding needs them)."""
    if world_size() == 1:
        return batch, emb
    out = {k: gather(v) for k, v in batch.items() if k in ("y", "idx")}
    return out, gather_with_grad(scale_for_ddp_average(emb))


@contextmanager
def ranks_fail_as_one(t: TrainSpec, run_dir: Path) -> Iterator[None]:
    """A rank that dies mid-run surfaces on rank 0 as a broken collective (gloo: connection closed
    by peer; NCCL: a timeout): say so in one line, with the resume that continues the run."""
    try:
        yield
    except RuntimeError as err:
        if not distributed_recipe(t):
            raise
        text = re.sub(r"\[[^\]]*\]\s*", "", str(err)).strip()  # gloo prefixes its source location
        first = text.splitlines()[0][:160] if text else type(err).__name__
        raise HarmonyError(f"training across processes failed ({first}); nothing was registered",
                           hint=f"re-run the command with --resume: it continues from the last epoch checkpoint in "
                                f"{run_dir}") from err


def trained_by(history: list[dict]) -> int:
    """How many processes trained a run (recorded in the version's meta), from its epoch history."""
    return max((int(h.get("processes", 1)) for h in history), default=1)


def maybe_die(rank: int, step: int) -> None:
    """Test hook: with ``HARMONY_TEST_DIE_AT_STEP=N`` rank 1 exits abruptly at global step N."""
    at = os.environ.get(DIE_AT_STEP)
    if at is not None and rank == 1 and step == int(at):
        os._exit(3)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks with autograd: the gradient of a sum is the sum of every rank's gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class _GlobalBatchNormMixin:
    """BatchNorm over the batch of all ranks: sums and squared deviations are all-reduced with
    autograd (``all_reduce_sum``), so forward and backward equal one process holding the whole
    batch. Eval mode and a single process fall back to the plain layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)  # type: ignore[attr-defined]
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        n_local = torch.tensor([xf.numel() / xf.shape[1]], dtype=xf.dtype, device=xf.device)
        total = all_reduce_sum(torch.cat([xf.sum(dims), n_local]))
        n = total[-1].detach()
        mean = total[:-1] / n
        var = all_reduce_sum(((xf - mean.view(shape)) ** 2).sum(dims)) / n  # biased, as BatchNorm normalises
        if self.track_running_stats:  # type: ignore[attr-defined]
            with torch.no_grad():
                self.num_batches_tracked += 1  # type: ignore[attr-defined]
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)  # type: ignore[attr-defined]
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)  # type: ignore[attr-defined]
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)  # type: ignore[attr-defined]
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)  # type: ignore[attr-defined]
        if self.affine:  # type: ignore[attr-defined]
            y = y * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        return y.to(x.dtype)


_GLOBAL: dict[type, type] = {}


def _global_class(cls: type) -> type:
    if cls not in _GLOBAL:
        _GLOBAL[cls] = type(f"Global{cls.__name__}", (_GlobalBatchNormMixin, cls), {"_plain_class": cls})
    return _GLOBAL[cls]


class GlobalBatchNorm(LayerSync):
    """Lightning plugin: every BatchNorm layer normalises over the global batch while fitting
    (the class of each layer is swapped in place, so parameters, buffers and state-dict keys stay
    the same), and is plain BatchNorm again afterwards."""

    def apply(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, (_GlobalBatchNormMixin,
                                                                                     nn.SyncBatchNorm)):
                m.__class__ = _global_class(type(m))
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        for m in model.modules():
            if isinstance(m, _GlobalBatchNormMixin):
                m.__class__ = type(m)._plain_class  # type: ignore[attr-defined]
        return model


def check_devices(t: TrainSpec) -> None:
    """Refuse, before anything is written, a recipe asking for devices this machine lacks."""
    accelerator, devices = t.accelerator, t.devices
    wants_gpu = accelerator in ("gpu", "cuda")
    if wants_gpu and not torch.cuda.is_available():
        raise InvalidInput(f"recipe key 'train.accelerator' is {accelerator!r} but this machine has no CUDA GPU",
                           hint="set train.accelerator: cpu (or auto), or run on a machine with a GPU")
    per_node = requested_processes(devices, 1)
    if per_node is None:
        return
    gpu = wants_gpu or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        ids = list(devices) if isinstance(devices, (list, tuple)) else list(range(per_node))
        has = lacks(max(int(i) for i in ids) + 1, gpu=True)
        if has:
            raise InvalidInput(f"recipe key 'train.devices' is {devices!r} but this machine has {has}",
                               hint=f"set train.devices to at most {cuda_gpus()} (or auto)")
    elif accelerator in ("cpu", "auto") and (has := lacks(per_node, gpu=False)):
        raise InvalidInput(f"recipe key 'train.devices' asks for {per_node} CPU processes but this machine has {has}",
                           hint=f"set train.devices to at most {usable_cpus()}")


def resolve_sync_batchnorm(t: TrainSpec) -> bool:
    """``train.sync_batchnorm``: None (the default) means on whenever more than one process trains."""
    if t.sync_batchnorm is not None:
        return t.sync_batchnorm
    return distributed_recipe(t)
