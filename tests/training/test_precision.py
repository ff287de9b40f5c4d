"""``train.precision: auto`` resolves per machine; explicit values pass through untouched."""

import torch

from harmony.recipe import load_recipe
from harmony.training import precision as P


def test_explicit_precision_is_kept():
    for p in ("32-true", "bf16-mixed", "16-mixed"):
        assert P.resolve_precision(p, "cpu") == p


def test_auto_on_cpu_follows_native_bf16(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    assert P.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert P.resolve_precision("auto", "cpu") == "32-true"
    assert P.resolve_precision("auto", "mps") == "32-true"


def test_auto_on_cuda_without_a_gpu_is_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert P.resolve_precision("auto", "gpu") == "32-true"


def test_cpu_probe_matches_torch():
    expected = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert P.cpu_has_native_bf16() == expected


def test_tiny_recipes_ask_for_auto():
    for name in ("base-tiny", "base-tiny-large", "harmonic-tiny"):
        assert load_recipe(f"recipes/{name}.yaml").train.precision == "auto"
