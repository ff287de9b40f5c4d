"""DDP step time on CPU: the same global P x K batch trained by one process or by two (gloo).

One optimisation step is what ``EmbeddingModule.training_step`` does under DDP: each rank embeds
its P / world identities, ``global_batch`` all-gathers embeddings (gradients for the local rows),
labels and ids, semi-hard triplet mining runs over the whole batch, global BatchNorm
(``GlobalBatchNorm``), backward with DDP's gradient all-reduce, Adam. The model is base-tiny's
(small CNN 16-32-64-64, strided stem, 128-D) on 64 px synthetic faces, P x K = 32 x 8.

Rows: one process with one torch thread, one process with two threads (the reference: what one
process does with both cores), two DDP processes with one thread each; ``ratio`` is the reference
step time over the row's (> 1: faster than the reference). All three rows train the same batch,
and the losses are reported (equal up to float rounding). The rows are measured in interleaved
rounds and each keeps its best median (interference from other jobs only ever slows a step);
the load average before and after is recorded, since on a shared machine the figures move.

Run: python bench/bench_ddp.py [--full]  (or python -m bench ddp); writes bench/results/ddp.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "ddp.json"
P, K, SIZE = 32, 8, 64


def _steps(rank: int, world: int, threads: int, steps: int, warmup: int) -> dict:
    import torch

    from harmony.data.sampler import PKBatchSampler
    from harmony.data.splits import synthetic_split
    from harmony.losses import triplet_loss
    from harmony.models.embedder import Embedder, EmbedderSpec
    from harmony.recipe import DataSpec
    from harmony.training.distributed import GlobalBatchNorm, global_batch

    torch.set_num_threads(threads)
    train = synthetic_split(DataSpec(image_size=SIZE, train_identities=64, per_identity=8), "train")
    sampler = PKBatchSampler(train.labels, P, K, steps=1, seed=0, rank=rank, num_replicas=world)
    idx = next(iter(sampler))
    x = torch.from_numpy(train.images[idx]).permute(0, 3, 1, 2).contiguous()
    batch = {"y": torch.as_tensor(train.labels[idx]), "idx": torch.as_tensor(idx)}
    torch.manual_seed(0)
    model = Embedder(EmbedderSpec(image_size=SIZE, backbone_args={"widths": [16, 32, 64, 64], "stem_stride": 2}))
    model.train()
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        GlobalBatchNorm().apply(model)
        net = DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, first_loss = [], None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        gb, emb = global_batch(batch, net(x))
        loss = triplet_loss(emb, gb["y"], margin=0.2, mining="semihard")
        loss.backward()
        opt.step()
        if world > 1:
            import torch.distributed as dist

            dist.barrier()  # a step ends when every rank has finished it
        if first_loss is None:
            first_loss = loss.item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"step_s": sorted(times)[len(times) // 2], "first_loss": first_loss, "rows_per_rank": len(idx)}


def _worker(rank: int, world: int, folder: str, steps: int, warmup: int) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        out = _steps(rank, world, 1, steps, warmup)
        torch.save(out, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _ddp(steps: int, warmup: int) -> dict:
    import torch
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as folder:
        mp.start_processes(_worker, args=(2, folder, steps, warmup), nprocs=2, start_method="spawn")
        per_rank = [torch.load(f"{folder}/rank{r}.pt", weights_only=True) for r in range(2)]
    return {"step_s": max(r["step_s"] for r in per_rank), "first_loss": per_rank[0]["first_loss"],
            "rows_per_rank": per_rank[0]["rows_per_rank"]}


def run(quick: bool = True) -> dict:
    import torch

    steps, warmup, rounds = (10, 3, 2) if quick else (40, 5, 3)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    load_before = os.getloadavg()
    configs = (("1 process x 1 thread", 1, 1), ("1 process x 2 threads (reference)", 1, 2),
               ("2 DDP processes (gloo) x 1 thread", 2, 1))
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for what, world, threads in configs:
            r = _steps(0, 1, threads, steps, warmup) if world == 1 else _ddp(steps, warmup)
            if what not in best or r["step_s"] < best[what]["step_s"]:
                best[what] = r
    rows = []
    for what, world, threads in configs:
        r = best[what]
        rows.append({"what": what, "processes": world, "threads_per_process": threads,
                     "global_batch": f"{P}x{K}={P * K}", "rows_per_rank": r["rows_per_rank"],
                     "median_step_s": r["step_s"], "first_loss": r["first_loss"]})
    ref = rows[1]["median_step_s"]
    for row in rows:
        row["ratio"] = ref / row["median_step_s"]
    machine = {"cpus": os.cpu_count(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "load_avg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]}
    ddp, one = rows[2], rows[0]
    summary = (f"One optimisation step on the global batch {P}x{K} (64 px, small CNN 16-32-64-64, semi-hard mining "
               f"over the global batch, global BatchNorm), best of {rounds} interleaved medians of {steps} steps on "
               f"{machine['cpus']} CPUs (1-min load average {machine['load_avg_1min_before_after']}): one "
               f"process with 2 threads {ref:.3f} s; two DDP processes (gloo, 1 thread each) "
               f"{ddp['median_step_s']:.3f} s ({ddp['ratio']:.2f}x the 2-thread process, "
               f"{one['median_step_s'] / ddp['median_step_s']:.2f}x one single-thread process). Same loss on every "
               f"row: {max(abs(r['first_loss'] - one['first_loss']) for r in rows) < 1e-4}.")
    result = {"benchmark": "ddp", "quick": quick, "machine": machine, "rows": rows, "summary": summary}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(summary)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    run(quick="--full" not in sys.argv)
