"""GPU figures, for a machine with a CUDA GPU (skipped, with the reason, elsewhere):

- bf16 training throughput (images/s) of Inception-ResNet-v1 at 160 px with the triplet loss,
  next to fp32 on the same GPU (the reference);
- GPU FAISS flat search and add vs CPU FAISS on the same data (100k x 128-D);
- exact VAL@FAR over 100k x 100k pairs on the GPU vs the CPU scan on 20k (seconds per 1e9 pairs).
"""

from __future__ import annotations

import time

import numpy as np


def _train_throughput(precision: str, batch: int = 256, steps: int = 10) -> float:
    import torch

    from harmony.losses import triplet_loss
    from harmony.models.embedder import Embedder, EmbedderSpec

    dev = torch.device("cuda")
    m = Embedder(EmbedderSpec(backbone="inception_resnet_v1", image_size=160)).to(dev)
    opt = torch.optim.Adam(m.parameters(), 1e-4)
    x = torch.randint(0, 256, (batch, 3, 160, 160), dtype=torch.uint8, device=dev)
    y = torch.arange(batch // 8, device=dev).repeat_interleave(8)
    for i in range(steps + 3):
        if i == 3:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = triplet_loss(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def _faiss(n: int = 100_000, nq: int = 10_000, d: int = 128) -> list[dict]:
    from harmony.gallery import index as fx

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xb[:nq] + 0.05 * rng.standard_normal((nq, d)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    out = {}
    for where in ("cpu", "gpu"):
        idx = fx.make_index(d, "flat")
        if where == "gpu":
            idx = fx.to_gpu(idx)
        t0 = time.perf_counter()
        fx.add(idx, np.arange(n, dtype=np.int64), xb)
        add_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fx.search(idx, xq, 10)
        out[where] = {"add_s": add_s, "qps": nq / (time.perf_counter() - t0)}
    return [{"what": "faiss flat add 100k", "ours_gpu_s": out["gpu"]["add_s"], "reference_cpu_s": out["cpu"]["add_s"],
             "speedup": out["cpu"]["add_s"] / out["gpu"]["add_s"]},
            {"what": "faiss flat search QPS (k=10)", "ours_gpu": out["gpu"]["qps"], "reference_cpu": out["cpu"]["qps"],
             "speedup": out["gpu"]["qps"] / out["cpu"]["qps"]}]


def _val_at_far() -> dict:
    from harmony.metrics import val_at_far

    def emb(n):
        rng = np.random.default_rng(0)
        lab = np.repeat(np.arange(n // 10), 10)
        x = rng.standard_normal((n // 10, 128)).astype(np.float32)[lab] + 1.5 * rng.standard_normal((n, 128)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), lab

    xg, lg = emb(100_000)
    t0 = time.perf_counter()
    val_at_far(xg, lg, [1e-3, 1e-2], device="cuda")
    gpu_s = time.perf_counter() - t0
    xc, lc = emb(20_000)
    t0 = time.perf_counter()
    val_at_far(xc, lc, [1e-3, 1e-2], device="cpu")
    cpu_s = time.perf_counter() - t0
    gpu_rate, cpu_rate = gpu_s / (100_000**2 / 2 / 1e9), cpu_s / (20_000**2 / 2 / 1e9)
    return {"what": "VAL@FAR exact, s per 1e9 pairs", "ours_gpu_100k": gpu_rate, "reference_cpu_20k": cpu_rate,
            "gpu_100k_total_s": gpu_s, "speedup": cpu_rate / gpu_rate}


def run(quick: bool = True) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"rows": [], "summary": "skipped: no CUDA GPU on this machine"}
    bf16, fp32 = _train_throughput("bf16"), _train_throughput("fp32")
    rows = [{"what": "IRv1 160px triplet training images/s", "ours_bf16": bf16, "reference_fp32": fp32,
             "speedup": bf16 / fp32}]
    rows += _faiss()
    rows.append(_val_at_far())
    return {"rows": rows, "summary": f"GPU: {torch.cuda.get_device_name(0)}"}


if __name__ == "__main__":
    print(run())
