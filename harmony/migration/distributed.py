"""A backfill across processes (and GPUs, and nodes): fixed shards, one Lightning rank each.

``run_shards`` (called by ``backfill.run_backfill`` when ``launch.world > 1``) splits the pending
items, in the backfill's order, into ``world`` contiguous shards fixed at the start and stored
with the plan (``checkpoint.Shards``). Each rank embeds its shards through Lightning's predict
loop: the rank's DataLoader lists only its own shards' unfinished batches (so no item is repeated
or padded in: ``use_distributed_sampler=False``), and a ``BasePredictionWriter`` commits every
batch to that shard's own cursor. A killed rank resumes only its own unfinished work; finished
shards are not redone. When all are done the parent merges them (one commit) and the backfill
finishes exactly as a one-process one: the same catch-up, index build and state "ready".

Launch: Lightning's DDP strategy with the ``forkserver`` start method (like ``ddp_spawn``, the
parent launches the ranks and waits; gloo on CPU, NCCL on GPUs). The parent, the CLI process, keeps the
registry and the backfill lock; the ranks never open the registry: they read the gallery's item
table from its folder and get the encoder by path (:class:`VersionFiles`, a picklable stand-in for
the registry that knows one version's record and verified artifact), so torch, TorchScript, ONNX
and dlib versions load in each rank as ``FileEmbedder`` loads them in one process.
Across nodes (``--num-nodes M``, as torchrun/SLURM users start jobs): the same command runs once
per node, the node's rank from NODE_RANK (or SLURM_NODEID), the rendezvous from MASTER_ADDR and
MASTER_PORT, gallery and registry on a file system every node sees. Node 0, the only one that opens
the registry, plans, fixes M x N shards, writes ``<registry>/handoffs/<gallery>.json`` (the run id,
the gallery folder, the target's record and verified artifact path, the launch, the split), then
launches its N ranks (global 0..N-1) and, once the shard cursors on the shared folder say every
shard is done, merges and finishes as one node does. Node k waits (bounded: HARMONY_BACKFILL_WAIT_S)
for the hand-off of its run and launches global ranks kN..kN+N-1; Lightning's DDP (num_nodes=M)
forms the process group, and no other communication is needed. Every rank lists all shards and
takes ``k % world == rank``, so a resumed run gives each rank the same shards on every node.
A rank that dies makes the run fail with :class:`RankFailed`; what the ranks committed stays, and
the same command resumes. ``HARMONY_BACKFILL_KILL_RANK=r:n`` (tests; read by the parent when it
launches) makes rank r SIGKILL itself after its n-th commit, with one more batch embedded and not
committed.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmony.errors import HarmonyError, InvalidInput, NotFound
from harmony.gallery.store import GalleryStore
from harmony.io import file_lock, read_json
from harmony.machine import cuda_gpus, lacks, usable_cpus
from harmony.migration.checkpoint import BackfillDir, Cursor, Shards

log = logging.getLogger(__name__)

KILL_HOOK = "HARMONY_BACKFILL_KILL_RANK"
HANDOFFS = "handoffs"  # under the registry root: <gallery>.json, node 0's hand-off to the other nodes
WAIT_ENV = "HARMONY_BACKFILL_WAIT_S"  # how long node k > 0 waits for the hand-off (default WAIT_S)
WAIT_S = 600.0


class RankFailed(HarmonyError):
    """A rank of a distributed backfill died; every batch it committed is kept."""

    code = "rank_failed"


@dataclass(frozen=True)
class Launch:
    """How many processes embed: ``devices`` per node x ``num_nodes``, on ``accelerator`` (cpu|gpu).
    Across nodes: this node's ``node_rank``, the ``run`` every node of one launch shares, and the
    ``handoff`` file (registry root) through which node 0 tells the others what to embed."""

    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "cpu"
    node_rank: int = 0
    run: str = ""
    handoff: Path | None = None

    @property
    def world(self) -> int:
        return self.devices * self.num_nodes

    @property
    def multinode(self) -> bool:
        return self.num_nodes > 1


def node_rank_from_env(num_nodes: int, env: Mapping[str, str] | None = None) -> int:
    """This node's rank (NODE_RANK, as Lightning and torchrun name it, else SLURM_NODEID), refused
    when absent or out of range: every node runs the same command, so the environment tells them apart."""
    env = os.environ if env is None else env
    raw = env.get("NODE_RANK") or env.get("SLURM_NODEID")
    if raw is None:
        raise InvalidInput(f"--num-nodes {num_nodes}: NODE_RANK is not set, so this node does not know which one "
                           "it is", hint="start the same command on every node with NODE_RANK=0..M-1 (0: the "
                           "coordinator), MASTER_ADDR=<node 0's host> and MASTER_PORT=<a free port>")
    try:
        rank = int(raw)
    except ValueError:
        rank = -1
    if not 0 <= rank < num_nodes:
        raise InvalidInput(f"NODE_RANK={raw}: must be 0..{num_nodes - 1} for --num-nodes {num_nodes}",
                           hint="give each node its own NODE_RANK, 0 on the coordinator")
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(key):
            raise InvalidInput(f"--num-nodes {num_nodes}: {key} is not set", hint="set MASTER_ADDR to node 0's "
                               "host and MASTER_PORT to a free port there, the same on every node")
    return rank


def run_id(env: Mapping[str, str] | None = None) -> str:
    """What every node of one launch shares: the SLURM step or torchrun rendezvous
    (training.distributed.launch_token), else MASTER_ADDR:MASTER_PORT."""
    from harmony.training.distributed import launch_token

    env = os.environ if env is None else env
    return launch_token(env) or f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"


def check_launch(devices: int, num_nodes: int = 1, device: str | None = None, registry_root: Path | None = None,
                 gallery: str = "") -> Launch:
    """The launch ``--devices``/``--num-nodes``/``--device`` ask for, refused (InvalidInput naming
    the option) when this machine lacks the devices: GPUs without CUDA, more GPUs or CPU processes
    than it has. ``devices`` counts this node's; with ``num_nodes`` > 1 the node rank and run id
    come from the environment and the hand-off lives under ``registry_root``."""
    import torch

    if devices < 1 or num_nodes < 1:
        raise InvalidInput(f"--devices {devices} --num-nodes {num_nodes}: both must be at least 1",
                           hint="e.g. --devices 2")
    across: dict[str, Any] = {}
    if num_nodes > 1:
        node = node_rank_from_env(num_nodes)
        root = Path("registry") if registry_root is None else Path(registry_root)
        across = {"node_rank": node, "run": run_id(), "handoff": root / HANDOFFS / f"{gallery}.json"}
    want_gpu = device is not None and device.startswith("cuda")
    gpu = want_gpu or (device is None and torch.cuda.is_available())
    if gpu and cuda_gpus() == 0:
        raise InvalidInput(f"--devices {devices} on --device {device}: this machine has no CUDA GPU",
                           hint="pass --device cpu to run the processes on the CPU")
    if has := lacks(devices, gpu):
        raise InvalidInput(f"--devices {devices}: this machine has {has}",
                           hint=f"use --devices {cuda_gpus() if gpu else usable_cpus()} or fewer")
    return Launch(devices, num_nodes, "gpu" if gpu else "cpu", **across)


@dataclass(frozen=True)
class VersionFiles:
    """One version's record and artifact path, verified in the parent: what ``load_encoder`` and
    ``input_pipeline`` read from a Registry, without a database (ranks must not open DuckDB)."""

    version: Any  # harmony.registry.records.Version
    path: Path

    @classmethod
    def of(cls, reg: Any, name: str) -> VersionFiles:
        v = reg.get_version(name)
        return cls(v, reg.artifact_path(v.name, verify=True))

    def get_version(self, name: str) -> Any:
        if name != self.version.name:
            raise NotFound(f"version {name!r} was not passed to this process (only {self.version.name!r})",
                           hint="pass the version the backfill embeds with")
        return self.version

    def artifact_path(self, name: str, verify: bool = True) -> Path:
        from harmony.errors import IntegrityError
        from harmony.registry import artifacts

        self.get_version(name)
        if not self.path.is_file():
            raise IntegrityError(f"artifact {self.path} of version '{name}' is missing", hint="restore it and re-run")
        if verify and artifacts.sha256_file(self.path) != self.version.sha256:
            raise IntegrityError(f"artifact {self.path} of version '{name}' was altered during the backfill",
                                 hint="restore the original file and re-run")
        return self.path


def rank_embedder(embed_fn: Any) -> Any:
    """The embed_fn to send to the ranks: a ``FileEmbedder`` re-bound to :class:`VersionFiles`
    (its registry cannot travel); any other picklable embed_fn as it is."""
    from harmony.models.pipeline import FileEmbedder

    if isinstance(embed_fn, FileEmbedder):
        return FileEmbedder(VersionFiles.of(embed_fn.reg, embed_fn.version),
                            embed_fn.version, batch_size=embed_fn.batch_size, device=embed_fn.device)
    return embed_fn


# -- the split (parent) -----------------------------------------------------------------------

def split_pending(todo_ids: np.ndarray, todo_seqs: np.ndarray, planned: np.ndarray, n_plan: int, cursor: Cursor,
                  n_shards: int) -> Shards:
    """``n_shards`` contiguous shards of the pending entries (in the backfill's order), and where
    the main cursor stands once all are done: the same ``pos`` and ``last_seq`` as a one-process
    backfill of these entries."""
    n = todo_ids.size
    bounds = np.linspace(0, n, n_shards + 1).round().astype(np.int64)
    shard = np.repeat(np.arange(n_shards, dtype=np.int64), np.diff(bounds))
    after = planned < 0
    last_seq = int(todo_seqs[after].max()) if after.any() else -1
    pos = n_plan if after.any() else (int(planned.max()) + 1 if n else cursor.pos)
    return Shards(todo_ids.astype(np.int64), todo_seqs.astype(np.int64), shard, last_seq, pos)


def unfinished(bdir: BackfillDir, cursor: Cursor, shards: Shards) -> list[int]:
    """Shards with entries not yet committed under their own cursor."""
    out = []
    for k in range(cursor.n_shards):
        c = bdir.shard_dir(k).read_cursor()
        if (c.pos if c is not None else 0) < int((shards.shard == k).sum()):
            out.append(k)
    return out


def shard_counts(bdir: BackfillDir, cursor: Cursor) -> tuple[int, int, int]:
    """(embedded, failed, segments) committed under the shard cursors so far."""
    e = f = s = 0
    for k in range(cursor.n_shards):
        c = bdir.shard_dir(k).read_cursor()
        if c is not None:
            e, f, s = e + c.n_embedded, f + c.n_failed, s + c.n_segments
    return e, f, s


# -- the work of one shard (a rank, or the parent when one process finishes a split) ------------

@dataclass(frozen=True)
class ShardBatch:
    shard: int
    stop: int  # the shard's entries done once this batch commits
    ids: np.ndarray  # entries whose item still exists (removed ones are skipped)
    seqs: np.ndarray
    payload: Any  # the reader's output (staged embed_fn), or the sources


def shard_batches(store: GalleryStore, bdir: BackfillDir, shards: Shards, ks: Sequence[int], batch_size: int,
                  writer: ShardWriter) -> list[tuple[int, int, np.ndarray, np.ndarray, list[str]]]:
    """The unfinished batches of shards ``ks`` (claimed by ``writer`` first): (shard, stop, ids,
    seqs, sources), from each shard's cursor on. Sources are read from the gallery's item table."""
    table = store.items()
    out = []
    for k in ks:
        ids, seqs = shards.entries(k)
        c = writer.claim(k)
        for a in range(c.pos, ids.size, batch_size):
            b = min(a + batch_size, ids.size)
            rows = table.rows_of_ids(ids[a:b])
            live = rows >= 0
            out.append((k, b, ids[a:b][live], seqs[a:b][live], [str(s) for s in table.sources[rows[live]]]))
    return out


class ShardWriter:
    """Commits shard batches under their shards' cursors (a rank's only writes). A shard is first
    claimed: its lock (``shard-<k>/.lock``, held until ``close`` or the process ends) makes sure
    no two processes ever write one shard."""

    def __init__(self, bdir: BackfillDir, dim: int, rank: int = 0, kill_hook: str | None = None):
        self.bdir, self.dim, self.rank = bdir, dim, rank
        self.cursors: dict[int, Cursor] = {}
        self.commits = 0
        self._locks = ExitStack()
        hook = os.environ.get(KILL_HOOK, "") if kill_hook is None else kill_hook
        r, _, n = hook.partition(":")
        self.kill_after = int(n) if hook and int(r) == rank else None

    def claim(self, k: int) -> Cursor:
        """Take shard ``k`` for this process; its cursor (orphans past it removed)."""
        if k not in self.cursors:
            sd = self.bdir.shard_dir(k)
            sd.path.mkdir(parents=True, exist_ok=True)
            self._locks.enter_context(file_lock(
                sd.path / ".lock", 0.0, f"shard {k} of the backfill to {self.bdir.target} is being written by "
                "another process", "wait for it to end (a rank of a killed run exits within a second), then re-run"))
            self.cursors[k] = self.bdir.shard_cursor(k, self.dim)
        return self.cursors[k]

    def close(self) -> None:
        self._locks.close()

    def commit(self, batch: ShardBatch, vecs: np.ndarray, ok: np.ndarray) -> Cursor:
        from harmony.migration.backfill import check_output

        if batch.ids.size == 0:  # every item of the batch was removed since the split: nothing to embed
            vecs, ok = np.zeros((0, self.dim), np.float32), np.zeros(0, bool)
        vecs, ok = check_output(vecs, ok, batch.ids.size, self.dim, self.bdir.target)
        if self.kill_after is not None and self.commits >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: die with this batch embedded, not committed
        k = batch.shard
        c = self.bdir.shard_dir(k).commit(self.claim(k), batch.ids[ok], batch.seqs[ok], vecs, batch.ids[~ok],
                                          batch.seqs[~ok], last_seq=-1, pos=batch.stop)
        self.cursors[k] = c
        self.commits += 1
        return c


def run_in_process(store: GalleryStore, bdir: BackfillDir, shards: Shards, ks: Sequence[int], embed_fn: Any,
                   batch_size: int, workers: int) -> None:
    """Finish shards ``ks`` in this process (a split resumed without --devices, or one shard left)."""
    from harmony.migration.backfill import embedded_batches

    writer = ShardWriter(bdir, store.dim)
    try:
        items = shard_batches(store, bdir, shards, ks, batch_size, writer)
        live = [it for it in items if it[2].size]
        with embedded_batches(embed_fn, [it[4] for it in live], workers) as results:
            for k, stop, ids, seqs, _ in items:
                vecs, ok = next(results) if ids.size else (None, None)
                writer.commit(ShardBatch(k, stop, ids, seqs, None), vecs, ok)
    finally:
        writer.close()


# -- Lightning ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardItems:
    """A rank's dataset: item i is its i-th batch, read (staged embed_fn) in the DataLoader."""

    items: tuple[tuple[int, int, np.ndarray, np.ndarray, list[str]], ...]
    reader: Any

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> ShardBatch:
        k, stop, ids, seqs, sources = self.items[i]
        return ShardBatch(k, stop, ids, seqs, self.reader(sources) if self.reader is not None else sources)


def run_lightning(store: GalleryStore, bdir: BackfillDir, launch: Launch, ks: list[int], embed_fn: Any,
                  batch_size: int, workers: int) -> None:
    """Embed shards ``ks`` over ``launch.world`` ranks (DDP, forkserver); RankFailed if one dies."""
    import lightning as L
    from lightning.pytorch.plugins.environments import LightningEnvironment
    from lightning.pytorch.strategies import DDPStrategy

    devices = min(launch.devices, len(ks)) if launch.num_nodes == 1 else launch.devices
    import multiprocessing

    from harmony.migration.ranks import ShardData, ShardModule, ShardWriterCallback

    # forkserver: the ranks fork from a fresh server process (never from this one, whose OpenMP
    # pools may be live: DESIGN section 7), which imports torch + Lightning once for all of them
    multiprocessing.set_forkserver_preload(["harmony.migration.ranks"])

    staged = workers > 0 and callable(getattr(embed_fn, "stages", None))  # read in DataLoader workers
    module = ShardModule(embed_fn, launch.accelerator, staged, os.getpid())
    # the hook is read here: ranks forked from a forkserver started earlier see that server's environment
    data = ShardData(str(store.path), bdir.target, store.dim, tuple(ks), batch_size, workers if staged else 0,
                     os.environ.get(KILL_HOOK, ""))
    writer = ShardWriterCallback()
    # across nodes: NODE_RANK, MASTER_ADDR and MASTER_PORT name this node and the rendezvous (also
    # under SLURM, whose own environment would expect one task per device)
    plugins = [LightningEnvironment()] if launch.multinode else None
    if launch.multinode:  # what LightningEnvironment reads; SLURM_NODEID alone would leave it at 0
        os.environ["NODE_RANK"] = str(launch.node_rank)
    trainer = L.Trainer(plugins=plugins, accelerator=launch.accelerator, devices=devices, num_nodes=launch.num_nodes,
                        strategy=DDPStrategy(start_method="forkserver",
                                             process_group_backend="gloo" if launch.accelerator == "cpu" else None),
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, callbacks=[writer],
                        default_root_dir=str(bdir.path / "lightning"))
    t = time.perf_counter()
    try:
        trainer.predict(module, datamodule=data, return_predictions=False)
    except Exception as e:  # noqa: BLE001 - a dead rank surfaces as torch's ProcessExitedException (or worse)
        log.warning("backfill rank failed:\n%s", e)  # the rank's traceback, when it raised
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise RankFailed(f"a rank of the backfill to {bdir.target} failed: {lines[-1] if lines else type(e).__name__}",
                         hint="the batches committed so far are kept: re-run the same command to resume") from None
    log.info("%d shard(s) embedded over %d process(es) in %.1f s", len(ks), devices * launch.num_nodes,
             time.perf_counter() - t)


def embed_shards(store: GalleryStore, bdir: BackfillDir, cursor: Cursor, embed_fn: Any, batch_size: int,
                 launch: Launch | None, workers: int) -> None:
    """Embed every unfinished shard: over ranks when ``launch.world`` > 1 and more than one is
    left, else in this process. RankFailed when a rank died (or left its shard unfinished).
    Across nodes (this is node 0): hand the other nodes the split, embed over every node's ranks
    and wait for all shards (theirs are read from the shard cursors)."""
    shards = bdir.read_shards(cursor)
    ks = unfinished(bdir, cursor, shards)
    if launch is not None and launch.multinode:
        files = rank_embedder(embed_fn)
        write_handoff(launch, store, bdir, cursor, files if ks else None, batch_size, workers)
        if ks:  # every node lists all shards, so that rank r takes the same ones on every node
            try:
                run_lightning(store, bdir, launch, list(range(cursor.n_shards)), files, batch_size,
                              workers if launch.accelerator == "gpu" else 0)
            except RankFailed as e:
                left = ", ".join(map(str, unfinished(bdir, cursor, shards))) or "none"
                raise RankFailed(f"{e.message}; shard(s) unfinished: {left}", hint="the batches committed so far "
                                 "are kept: re-run the same command on every node to finish only those") from None
            clear_handoff(launch)  # every node read it before its ranks could join: a later launch must not
            wait_shards(bdir, cursor, shards)
    elif ks and launch is not None and launch.world > 1 and len(ks) > 1:
        run_lightning(store, bdir, launch, ks, rank_embedder(embed_fn), batch_size,
                      workers if launch.accelerator == "gpu" else 0)
        left = unfinished(bdir, cursor, shards)
        if left:
            raise RankFailed(f"shard(s) {', '.join(map(str, left))} of the backfill to {bdir.target} are unfinished",
                             hint="re-run the same command to resume")
    elif ks:
        run_in_process(store, bdir, shards, ks, embed_fn, batch_size, workers)


# -- across nodes ------------------------------------------------------------------------------

def _busy(bdir: BackfillDir, k: int) -> bool:
    """Whether some process (on any node) holds shard ``k``'s lock, i.e. is still writing it."""
    from harmony.errors import Busy

    p = bdir.shard_dir(k).path / ".lock"
    if not p.exists():
        return False
    try:
        with file_lock(p, 0.0, "", ""):
            return False
    except Busy:
        return True


def wait_shards(bdir: BackfillDir, cursor: Cursor, shards: Shards, every_s: float = 0.2) -> None:
    """Node 0, its own ranks done: wait while the other nodes' ranks still hold unfinished shards
    (every rank claimed its shards before any began: Lightning's barrier after predict_dataloader).
    RankFailed naming the shards left when nobody holds them any more (their node died)."""
    while True:
        left = unfinished(bdir, cursor, shards)
        if not left:
            return
        if not any(_busy(bdir, k) for k in left):
            left = unfinished(bdir, cursor, shards)  # a rank commits its cursor before it lets go of the lock
            if not left:
                return
            raise RankFailed(f"shard(s) {', '.join(map(str, left))} of the backfill to {bdir.target} are unfinished: "
                             "the node(s) running them stopped", hint="the batches committed so far are kept: re-run "
                             "the same command on every node (NODE_RANK=0 too) to finish only those shards")
        time.sleep(every_s)


def _version_json(v: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(v)
    d["created"] = v.created.isoformat() if v.created is not None else None
    return d


def _version_of(d: dict[str, Any]) -> Any:
    from datetime import datetime

    from harmony.registry.records import Version

    return Version(**{**d, "created": datetime.fromisoformat(d["created"]) if d.get("created") else None})


_HANDED: set[str] = set()  # runs this process (node 0) handed off


def handed_off(launch: Launch) -> bool:
    """Whether this process already wrote the hand-off of ``launch``'s run."""
    return launch.run in _HANDED


def clear_handoff(launch: Launch) -> None:
    """Node 0 at its start: the previous launch's hand-off goes (a node k of this one must not take it)."""
    if launch.handoff is not None:
        launch.handoff.unlink(missing_ok=True)


def write_handoff(launch: Launch, store: GalleryStore | None, bdir: BackfillDir | None, cursor: Cursor | None,
                  files: Any, batch_size: int, workers: int, error: str = "") -> None:
    """Node 0: what the other nodes need, without the registry: the gallery folder, the target
    version's record and verified artifact (a FileEmbedder over :class:`VersionFiles`), the launch
    and the split. ``files`` None: nothing for them to embed (they exit 0); ``error``: node 0 failed."""
    from harmony.io import atomic_write_json

    if launch.handoff is None:
        return
    doc: dict[str, Any] = {"run": launch.run, "num_nodes": launch.num_nodes, "devices": launch.devices,
                           "accelerator": launch.accelerator, "error": error, "work": None}
    if files is not None:
        vf = getattr(files, "reg", None)
        if not isinstance(vf, VersionFiles):
            raise InvalidInput("a backfill across nodes embeds with a registered version only",
                               hint="run it through `harmony migrate gallery`")
        doc["work"] = {"gallery": str(store.path), "target": bdir.target, "n_shards": cursor.n_shards,
                       "started": cursor.started, "version": _version_json(vf.version), "artifact": str(vf.path),
                       "batch_size": batch_size, "embed_batch_size": files.batch_size, "device": files.device,
                       "workers": workers}
    launch.handoff.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(launch.handoff, doc)
    _HANDED.add(launch.run)


def take_handoff(launch: Launch, timeout_s: float | None = None, every_s: float = 0.2) -> dict[str, Any]:
    """Node k > 0: the hand-off of this run (same ``run`` id), waiting for node 0 (bounded)."""
    timeout_s = float(os.environ.get(WAIT_ENV, WAIT_S)) if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            doc = read_json(launch.handoff)
        except (OSError, ValueError):
            doc = None
        if doc is not None and doc.get("run") == launch.run:
            return doc
        if time.monotonic() > deadline:
            raise InvalidInput(f"node {launch.node_rank}: the coordinator (NODE_RANK=0) handed this run ({launch.run}) "
                               f"nothing within {timeout_s:.0f} s (no {launch.handoff})",
                               hint="start the same command with NODE_RANK=0 and the same MASTER_ADDR/MASTER_PORT "
                                    "and --registry, and check its output")
        time.sleep(every_s)


def run_node(launch: Launch, timeout_s: float | None = None) -> int:
    """Node k > 0 of a backfill across nodes: never opens the registry. Waits for node 0's
    hand-off, embeds this node's ranks' shards (global ranks kN..kN+N-1) through Lightning, and
    returns how many shards the run has (0: node 0 needed no other node)."""
    doc = take_handoff(launch, timeout_s)
    if doc["error"]:
        raise HarmonyError(f"the coordinator (NODE_RANK=0) failed: {doc['error']}", hint="see node 0's output; "
                           "re-run the same command on every node once it is fixed")
    if (doc["num_nodes"], doc["devices"]) != (launch.num_nodes, launch.devices):
        raise InvalidInput(f"node {launch.node_rank} was started with --devices {launch.devices} --num-nodes "
                           f"{launch.num_nodes}, the coordinator with --devices {doc['devices']} --num-nodes "
                           f"{doc['num_nodes']}", hint="start the same command on every node")
    w = doc["work"]
    if w is None:
        return 0
    from harmony.models.pipeline import FileEmbedder

    store = GalleryStore.open(w["gallery"], use_gpu=False)
    bdir = BackfillDir(store.path, w["target"])
    cursor = bdir.read_cursor()
    if cursor is None or cursor.n_shards != w["n_shards"] or cursor.started != w["started"]:
        raise RankFailed(f"the backfill to {w['target']} in {store.path} is not the split node 0 handed off",
                         hint="re-run the same command on every node (NODE_RANK=0 too)")
    files = VersionFiles(_version_of(w["version"]), Path(w["artifact"]))
    embed_fn = FileEmbedder(files, files.version.name, batch_size=w["embed_batch_size"], device=w["device"])
    run_lightning(store, bdir, launch, list(range(cursor.n_shards)), embed_fn, w["batch_size"], w["workers"])
    mine = [k for k in range(cursor.n_shards) if (k % launch.world) // launch.devices == launch.node_rank]

    def merged() -> bool:  # node 0 merges only when every shard is done, then the split is gone
        now = bdir.read_cursor()
        return now is None or (now.n_shards, now.started) != (cursor.n_shards, cursor.started)

    try:
        left = [] if merged() else [k for k in unfinished(bdir, cursor, bdir.read_shards(cursor)) if k in mine]
    except HarmonyError:
        if not merged():
            raise
        left = []
    if left and merged():  # node 0 finished between the two reads: the shard files went with the split
        left = []
    if left:
        raise RankFailed(f"shard(s) {', '.join(map(str, left))} of node {launch.node_rank} are unfinished",
                         hint="re-run the same command on every node to resume")
    return cursor.n_shards
