"""Embedding throughput of external versions through harmony against calling the model directly,
and of a harmony-trained version with its batch norms folded (``harmony.models.fold``) against the
same network unfolded.

A harmony network (small CNN, widths 32-64-128-256, 112 px, 128-D, untrained: the cost is the
same) is exported with ``harmony.models.export.export_model`` to ONNX and to TorchScript and
registered back as external versions (``add-external --adapter onnx|torchscript``). For each:

- harmony: ``load_encoder(reg, name).encode(crops)`` on uint8 (n, 112, 112, 3) RGB crops, batches
  of ``BATCH`` (its checks, colour order, normalisation, layout, output checks, L2 norm included);
- reference, same run: the same onnxruntime session / TorchScript module called directly on the
  same crops already preprocessed (float32 NCHW, built outside the timed loop), same batch size.

- dlib (``--mode aligned``, when ``harmony[dlib]`` is installed): ``load_encoder(reg, "dlib").encode``
  on 150 x 150 chips against ``compute_face_descriptor`` called directly on the same chips.

overhead = harmony seconds / reference seconds - 1 (goal <= 5%). Runs alternate and the best of
``REPEATS`` counts for each side.
Run: ``python -m bench encoders`` or ``python bench/bench_encoders.py [--full]``; writes
bench/results/encoders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harmony.io import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "encoders.json"
SIZE, DIM, WIDTHS, BATCH, GOAL = 112, 128, (32, 64, 128, 256), 64, 0.05


def _registry(tmp: Path):
    import torch

    from harmony.models.embedder import Embedder, EmbedderSpec
    from harmony.models.export import export_model
    from harmony.models.onnx_model import register_onnx
    from harmony.models.torchscript import register_torchscript
    from harmony.registry import Registry

    reg = Registry.open(tmp / "registry")
    torch.manual_seed(0)
    model = Embedder(EmbedderSpec(dim=DIM, image_size=SIZE, backbone_args={"widths": list(WIDTHS)})).eval()
    torch.save(model.checkpoint(), tmp / "net.pt")
    reg.add_version("net", kind="base", artifact=tmp / "net.pt", backbone="small_cnn", dim=DIM,
                    meta={"spec": model.spec.as_dict(), "note": "untrained, benchmark only"})
    register_onnx(reg, "net-onnx", export_model(reg, "net", "onnx", tmp / "net.onnx").path)
    register_torchscript(reg, "net-ts", export_model(reg, "net", "torchscript", tmp / "net.ts").path)
    return reg


def _best(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` alternating rounds (after one warm-up)."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def _onnx_reference(enc, crops: np.ndarray) -> Callable[[], object]:
    x = crops.astype(np.float32).transpose(0, 3, 1, 2)  # the sidecar's pipeline: raw pixels, NCHW
    batches = [np.ascontiguousarray(x[a:a + BATCH]) for a in range(0, len(x), BATCH)]
    sess, i, o = enc.session, enc.input_name, enc.output_name
    return lambda: [sess.run([o], {i: b})[0] for b in batches]


def _torchscript_reference(enc, crops: np.ndarray) -> Callable[[], object]:
    import torch

    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)  # mean 0, std 1 of x/255
    # channels_last: the layout the traced convs run fastest on (what harmony's permute of NHWC crops gives)
    batches = [x[a:a + BATCH].contiguous(memory_format=torch.channels_last) for a in range(0, len(x), BATCH)]

    def run() -> list:
        with torch.no_grad():
            return [enc.module(b) for b in batches]

    return run


def _unfolded_reference(reg) -> Callable:
    """A harmony-trained version as trained: the same network with its batch norms (eval mode),
    through the same ``encode_array``; ``load_encoder`` folds them into the convolutions."""

    def reference(enc, crops: np.ndarray) -> Callable[[], object]:
        from harmony.models.encode import encode_array
        from harmony.models.loading import load_embedder

        model = load_embedder(reg, "net")
        return lambda: [encode_array(model, crops[a:a + BATCH], BATCH) for a in range(0, len(crops), BATCH)]

    return reference


def _dlib_reference(enc, crops: np.ndarray) -> Callable[[], object]:
    chips = [np.ascontiguousarray(c) for c in crops]  # already 150 x 150: nothing for harmony to resize
    return lambda: [enc.model.compute_face_descriptor(chips[a:a + BATCH]) for a in range(0, len(chips), BATCH)]


def _as_array(out: object) -> np.ndarray:
    """A batch's output as (b, dim) float32: a tensor, an array, or dlib's list of vectors."""
    if hasattr(out, "numpy"):
        return out.numpy().astype(np.float32)
    try:
        return np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError):
        return np.array([np.array(v) for v in out], dtype=np.float32)


def _has_dlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None


def run(quick: bool = True) -> dict:
    import torch

    from harmony.data.synthetic import SynthConfig, render_set
    from harmony.models.loading import load_encoder

    n, repeats = (384, 4) if quick else (2048, 7)
    crops, _ = render_set(n // 8, 8, "test", SynthConfig(image_size=SIZE, seed=0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reg = _registry(Path(tmp))
        cases = [("net", "harmony network, batch norm folded at load", _unfolded_reference(reg), crops),
                 ("net-onnx", "onnx (onnxruntime, CPU provider)", _onnx_reference, crops),
                 ("net-ts", "torchscript", _torchscript_reference, crops)]
        if _has_dlib():
            from harmony.models.dlib_model import register_dlib

            register_dlib(reg, "dlib", mode="aligned")
            chips, _ = render_set(max(n // 32, 2), 8, "test", SynthConfig(image_size=150, seed=0))
            cases.append(("dlib", "dlib ResNet (aligned chips)", _dlib_reference, chips))
        for name, adapter, reference, crops in cases:
            n = len(crops)
            enc = load_encoder(reg, name, batch_size=BATCH, device="cpu")
            if hasattr(enc, "batch_size"):
                enc.batch_size = BATCH
            got = enc.encode(crops)
            direct = np.concatenate([_as_array(r) for r in reference(enc, crops)()])
            agree = float(np.abs(got - direct / np.linalg.norm(direct, axis=1, keepdims=True)).max())
            t = _best({"harmony": lambda enc=enc, crops=crops: enc.encode(crops), "reference": reference(enc, crops)}, repeats)
            overhead = t["harmony"] / t["reference"] - 1
            rows.append({"adapter": adapter, "images": n, "batch": BATCH, "image_size": int(crops.shape[1]),
                         "harmony_images_per_s": n / t["harmony"], "reference_images_per_s": n / t["reference"],
                         "reference": "the same network unfolded (batch norms kept), same encode path" if name == "net"
                         else "the same session/module called directly on preprocessed float32 NCHW crops",
                         "ratio": t["reference"] / t["harmony"], "overhead": overhead,
                         "goal_met": overhead <= GOAL, "max_abs_diff_vs_reference": agree})
    summary = "; ".join(f"{r['adapter']}: {r['harmony_images_per_s']:.0f} images/s vs unfolded "
                        f"{r['reference_images_per_s']:.0f} images/s ({r['ratio']:.2f}x)" if r["adapter"].startswith("harmony")
                        else f"{r['adapter']}: harmony {r['harmony_images_per_s']:.0f} images/s vs direct "
                        f"{r['reference_images_per_s']:.0f} images/s, overhead {100 * r['overhead']:+.1f}% "
                        f"(goal <= {100 * GOAL:.0f}%)" for r in rows)
    out = {"benchmark": "encoders", "summary": summary,
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "platform": platform.platform(), "load_average_1min_at_end": os.getloadavg()[0]},
           "rows": rows}
    atomic_write_text(RESULTS, json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true")
    print(run(quick=not ap.parse_args().full)["summary"])
