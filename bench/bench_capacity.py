"""The capacity plan's measured inputs, and the plan computed from them (docs/scale.md).

Measured here, per process (one CPU process using every core of this machine; a GPU where one
is present):

- embedding throughput (inference, images/s) and training throughput (forward + backward + the
  semi-hard triplet loss, images/s) of each backbone harmony ships — the tiny CPU networks (v1 and
  v2-base of the demo, 64 px) and FaceNet's Inception-ResNet-v1 at 160 px — in fp32 and bf16
  (autocast); ratio = bf16 / fp32 on the same network;
- the other benchmarks' results, read from bench/results/: FAISS add/search throughput and bytes
  per face per codec (search.json), DDP step time with 1 and 2 processes (ddp.json), backfill
  items/s with 1 and 2 processes (backfill_scale.json), the serving load test (serve.json).

From those it computes the plan for a 100M-face gallery migration and an 8M-identity training run
(device-hours, wall time on 8 and 64 devices, index memory per codec, shards) and rewrites the
table between the markers of docs/scale.md. Every input is marked ``measured`` (with the file it
came from) or ``assumed`` (a stated workload figure, e.g. how many images a training run sees).

Run: ``python bench/bench_capacity.py [--full]`` or ``python -m bench capacity``; writes
bench/results/capacity.json and the table in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

from harmony.io import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "capacity.json"
DOC = HERE.parent / "docs" / "scale.md"
BEGIN, END = "<!-- capacity:begin (python bench/bench_capacity.py) -->", "<!-- capacity:end -->"

NETWORKS = {  # name -> (backbone, args, image size)
    "small_cnn 16-32-64-64 @64 (v1 of the demo)": ("small_cnn", {"widths": [16, 32, 64, 64], "stem_stride": 2}, 64),
    "small_cnn 32-64-128-128 @64 (v2-base of the demo)": ("small_cnn", {"widths": [32, 64, 128, 128], "stem_stride": 2}, 64),
    "inception_resnet_v1 @160 (FaceNet-style)": ("inception_resnet_v1", {}, 160),
}
GALLERY_FACES = 100_000_000
TRAIN_IDENTITIES = 8_000_000
TRAIN_IMAGES_SEEN = 2_000_000_000  # assumed: ~10-20 passes over the paper's 100M-200M images
DEVICE_COUNTS = (8, 64)
GPU_MEMORY_GB = {"H100/H200-class (80 GB usable)": 80.0, "24 GB card": 24.0}


def _throughput(backbone: str, args: dict, size: int, precision: str, train: bool, device: str,
                batch: int, min_s: float) -> float:
    import torch

    from harmony.losses import triplet_loss
    from harmony.models.embedder import Embedder, EmbedderSpec

    dev = torch.device(device)
    torch.manual_seed(0)
    m = Embedder(EmbedderSpec(backbone=backbone, backbone_args=args, image_size=size)).to(dev)
    m.train(train)
    opt = torch.optim.Adam(m.parameters(), 1e-4) if train else None
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
    y = torch.arange(batch // 8, device=dev).repeat_interleave(8)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype, enabled=precision == "bf16"):
            if train:
                loss = triplet_loss(m(x), y)
            else:
                with torch.no_grad():
                    m(x)
        if train:
            opt.zero_grad()
            loss.backward()
            opt.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    step()  # warm-up (allocations, oneDNN/cuDNN kernel choice)
    step()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < min_s:
        step()
        n += 1
    sync()
    return n * batch / (time.perf_counter() - t0)


def measure_networks(quick: bool) -> list[dict]:
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name, (backbone, args, size) in NETWORKS.items():
            big = backbone == "inception_resnet_v1"
            batch = 256 if device == "cuda" else (32 if big else 256)
            for train in (False, True):
                per = {}
                for precision in ("fp32", "bf16"):
                    per[precision] = _throughput(backbone, args, size, precision, train, device, batch,
                                                 min_s=2.0 if quick else 6.0)
                rows.append({"what": f"{'training' if train else 'embedding'} {name}", "device": device,
                             "batch": batch, "fp32_images_per_s": per["fp32"], "bf16_images_per_s": per["bf16"],
                             "ratio_bf16_vs_fp32": per["bf16"] / per["fp32"], "source": "measured"})
    return rows


def _read(name: str) -> dict | None:
    p = HERE / "results" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _codec_bytes() -> list[dict]:
    """Bytes per face (RAM, ids included), add and search throughput of each codec: bench_codecs'
    unsharded rows, else bench_search's largest size."""
    res = _read("codecs")
    if res:
        return [{"codec": r["codec"], "bytes_per_face": r["bytes_per_face_ram"], "measured_at_n": r["n"],
                 "add_per_s": r.get("add_per_s"), "qps_batch": r.get("qps_batch"), "recall_at_10": r.get("recall_at_10"),
                 "source": "measured (bench/results/codecs.json)"} for r in res.get("rows", [])
                if r.get("shards") == 1 and r.get("bytes_per_face_ram")]
    res = _read("search")
    if not res:
        return []
    best: dict[str, dict] = {}
    for r in res.get("rows", []):
        b = r.get("bytes_per_vector_ram")
        if b is None or r.get("codec") in (None, "numpy"):
            continue
        if r["codec"] not in best or r.get("n", 0) > best[r["codec"]].get("n", 0):
            best[r["codec"]] = r
    return [{"codec": c, "bytes_per_face": r["bytes_per_vector_ram"], "measured_at_n": r.get("n"),
             "source": "measured (bench/results/search.json)"} for c, r in sorted(best.items())]


def _same_host(name: str, rows: list[dict], one: str, two: str, key: str, invert: bool = False) -> dict | None:
    """1 vs 2 processes of another bench on this one machine. Both runs share the same cores, so the
    ratio shows the cost of the extra process here, not how the job scales over devices."""
    val = {r["what"]: r[key] for r in rows if key in r}
    a, b = val.get(one), val.get(two)
    if not a or not b:
        return None
    ratio = (a / b) if invert else (b / a)  # > 1: two processes faster
    return {"one_process": one, "two_processes": two, "ratio_two_vs_one": ratio,
            "source": f"measured (bench/results/{name}.json)"}


def _ddp_scaling() -> dict | None:
    """bench_ddp: one step of the same global batch by 1 process with 2 threads and by 2 DDP processes."""
    rows = (_read("ddp") or {}).get("rows", [])
    return _same_host("ddp", rows, "1 process x 2 threads (reference)", "2 DDP processes (gloo) x 1 thread",
                      "median_step_s", invert=True)


def _backfill_scaling() -> dict | None:
    """bench_backfill_scale: the same gallery backfilled by 1 and by 2 processes (items/s)."""
    rows = (_read("backfill_scale") or {}).get("rows", [])
    return _same_host("backfill_scale", rows, "backfill, 1 process(es)", "backfill, 2 process(es)", "items_per_s")


def plan(networks: list[dict], codecs: list[dict], ddp: dict | None, backfill: dict | None) -> dict:
    """The 100M-face migration and the 8M-identity training run, from the measured rates."""
    out: dict = {"gallery_faces": GALLERY_FACES, "train_identities": TRAIN_IDENTITIES,
                 "train_images_seen": TRAIN_IMAGES_SEEN, "train_images_seen_source": "assumed",
                 "migration": [], "training": [], "index": []}
    for r in networks:
        rate = max(r["fp32_images_per_s"], r["bf16_images_per_s"])
        embedding = r["what"].startswith("embedding")
        work, table = (GALLERY_FACES, "migration") if embedding else (TRAIN_IMAGES_SEEN, "training")
        hours = work / rate / 3600
        row = {"network": r["what"].split(" ", 1)[1], "device": "GPU" if r["device"] == "cuda" else "CPU process",
               "precision": "bf16" if r["bf16_images_per_s"] >= r["fp32_images_per_s"] else "fp32",
               "images_per_s": rate, "device_hours": hours}
        for n in DEVICE_COUNTS:
            row[f"wall_hours_{n}"] = hours / n  # linear: extrapolated (see same_host)
        out[table].append(row)
    for c in codecs:
        gb = GALLERY_FACES * c["bytes_per_face"] / 1e9
        row = {"codec": c["codec"], "bytes_per_face": c["bytes_per_face"], "gallery_gb": gb,
               "add_per_s": c.get("add_per_s"), "qps_batch": c.get("qps_batch"), "recall_at_10": c.get("recall_at_10")}
        for gpu, mem in GPU_MEMORY_GB.items():
            row[f"shards_{gpu}"] = max(1, math.ceil(gb / mem))
        out["index"].append(row)
    out["same_host"] = {"ddp": ddp, "backfill": backfill,
                        "note": "1 vs 2 processes on this machine's shared cores: the cost of a second process "
                                "here, not device scaling; wall time on N devices is device-hours / N (linear, "
                                "extrapolated)"}
    return out


def _h(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def to_markdown(res: dict) -> str:
    p = res["plan"]
    m = res["machine"]
    lines = [(f"Measured on {m['cpus']} CPU cores ({m['cpu']}), {m['date']}; "
             f"{'GPU: ' + m['gpu'] if m.get('gpu') else 'no GPU lent to this run: every rate below is a CPU process'}."),
             "", (f"**Migration of {p['gallery_faces']:,} faces** (re-embedding; wall time = device-hours / devices, "
                  "linear: extrapolated):"), "", *_hours_table(p["migration"]),
             "", (f"**Training on {p['train_identities']:,} identities**, {p['train_images_seen']:,} images seen "
                  "(assumed workload; wall time linear in devices: extrapolated):"), "",
             *_hours_table(p["training"]), "", _same_host_line(p["same_host"])]
    gpus = list(GPU_MEMORY_GB)
    lines += ["", (f"**Index for {p['gallery_faces']:,} faces** (bytes per face, add and batch-search rates measured at "
              "100k x 128-D on this machine's CPU by bench_codecs, ids included):"), "",
              "| codec | bytes/face (measured) | GB | adds/s (measured) | QPS batched (measured) | recall@10 | "
              + " | ".join(f"shards on {g}" for g in gpus) + " |", "|---|---|---|---|---|---|" + "---|" * len(gpus)]
    for r in p["index"]:
        num = lambda v, f=",.0f": "" if v is None else format(v, f)
        lines.append(f"| {r['codec']} | {r['bytes_per_face']:.0f} | {r['gallery_gb']:,.1f} | {num(r['add_per_s'])} | "
                     f"{num(r['qps_batch'])} | {num(r['recall_at_10'], '.3f')} | "
                     + " | ".join(str(r[f'shards_{g}']) for g in gpus) + " |")
    return "\n".join(lines)


def _hours_table(rows: list[dict]) -> list[str]:
    head = ["| network | device | precision | images/s (measured) | device-hours | "
            + " | ".join(f"wall h on {n}" for n in DEVICE_COUNTS) + " |", "|---|---|---|---|---|" + "---|" * len(DEVICE_COUNTS)]
    return head + [f"| {r['network']} | {r['device']} | {r['precision']} | {r['images_per_s']:,.0f} | {_h(r['device_hours'])} | "
                   + " | ".join(_h(r[f"wall_hours_{n}"]) for n in DEVICE_COUNTS) + " |" for r in rows]


def _same_host_line(sh: dict) -> str:
    parts = [f"{what}: 2 processes ran at {d['ratio_two_vs_one']:.2f}x the speed of 1 ({d['source']})"
             for what, d in (("DDP step", sh["ddp"]), ("backfill", sh["backfill"])) if d]
    return ("Measured on this machine, 1 vs 2 processes sharing its cores (the cost of a second process here, "
            "not device scaling): " + ("; ".join(parts) if parts else "not measured") + ".")


def write_doc(markdown: str) -> bool:
    """Replace the generated block of docs/scale.md; False when the doc or its markers are missing."""
    if not DOC.exists():
        return False
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_text(DOC, f"{head}{BEGIN}\n{markdown}\n{END}{tail}")
    return True


def run(quick: bool = True) -> dict:
    import torch

    networks = measure_networks(quick)
    codecs = _codec_bytes()
    ddp = _ddp_scaling()
    backfill = _backfill_scaling()
    machine = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}
    res = {"benchmark": "capacity", "machine": machine, "networks": networks, "codecs": codecs,
           "ddp": ddp, "backfill": backfill, "serve": (_read("serve") or {}).get("summary"),
           "plan": plan(networks, codecs, ddp, backfill)}
    big = [r for r in res["plan"]["migration"] if "inception" in r["network"] and r["device"] == "CPU process"]
    res["summary"] = (f"Per CPU process ({machine['cpus']} cores): " + "; ".join(
        f"{r['what']}: {r['fp32_images_per_s']:,.0f} img/s fp32, {r['bf16_images_per_s']:,.0f} bf16 "
        f"({r['ratio_bf16_vs_fp32']:.2f}x)" for r in networks if r["device"] == "cpu")
        + (f". 100M faces with Inception-ResNet-v1: {big[0]['device_hours']:,.0f} CPU-process-hours" if big else ""))
    res["rows"] = networks + [dict(r, what=f"index for 100M faces, {r['codec']}") for r in res["plan"]["index"]]
    res["doc_updated"] = write_doc(to_markdown(res))
    atomic_write_text(RESULTS, json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="longer timing windows")
    out = run(quick=not ap.parse_args().full)
    print(out["summary"])
    print(to_markdown(out))
