"""The benchmark plumbing that turns measurements into bench/results.md (the measuring itself is in bench/)."""

from __future__ import annotations

import torch

from bench.bench_harmonic import summarise
from bench.reference_losses import tf_style_semihard
from bench.run import to_markdown
from harmony.losses import triplet_loss


def _seed(seed: int, methods: dict) -> dict:
    return {"seed": seed, "v1": {"0.01": 0.9, "0.001": 0.7},
            "v2-base": {"0.01": {"own": 0.95, "cross_to_v1": 0.0}, "0.001": {"own": 0.8, "cross_to_v1": 0.0}},
            "methods": {m: {far: {"v2v2": v + 0.1, "v2->v1": c, "v1v1": v, "compatible": c >= v}
                            for far, v in (("0.01", 0.9), ("0.001", 0.7))} for m, c in methods.items()}}


def test_summary_pools_each_method_over_the_seeds_that_ran_it():
    runs = [_seed(0, {"a": 0.72, "b": 0.6}), _seed(1, {"a": 0.68})]
    rows = {(r["far"], r["method"]): r for r in summarise(runs)}
    a, b = rows[("0.001", "a")], rows[("0.001", "b")]
    assert abs(a["VAL(v2->v1)"] - 0.70) < 1e-12 and a["compatible_runs"] == "1/2" and a["seeds"] == "0 1"
    assert a["mean_criterion_met"] and a["v2_beats_v1"]  # mean 0.70 >= 0.70, although seed 1 alone fails
    assert b["seeds"] == "0" and b["compatible_runs"] == "0/1" and not b["mean_criterion_met"]
    assert rows[("0.001", "v2-base (independent)")]["VAL(v2->v1)"] == 0.0


def test_markdown_has_a_section_per_benchmark_and_failures_say_why():
    md = to_markdown({"date": "today", "machine": {"cpus": 2, "gpu": None},
                      "benchmarks": {"ok": {"summary": "fine", "rows": [{"ours_s": 0.5, "ref_s": 2.0, "speedup": 4.0}]},
                                     "bad": {"error": "RuntimeError: boom"}}})
    assert "## ok" in md and "| ours_s | ref_s | speedup |" in md and "| 0.5 | 2 | 4 |" in md
    assert "## bad" in md and "failed: `RuntimeError: boom`" in md and "gpu" not in md


def test_triplet_loss_equals_the_tf_style_reference_it_is_benchmarked_against():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(48, 8, generator=g), dim=1)
    labels = torch.arange(12).repeat_interleave(4)
    assert torch.allclose(triplet_loss(emb, labels, 0.2, "semihard"), tf_style_semihard(emb, labels, 0.2), atol=1e-6)


def test_peak_memory_is_this_process_and_resets():
    import numpy as np

    from bench.memory import peak_rss_mb, reset_peak_rss, rss_mb

    if not reset_peak_rss():
        import pytest

        pytest.skip("no /proc/self/clear_refs on this system")
    base = rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MB, touched
    assert peak_rss_mb() - base > 48
    del block
    reset_peak_rss()
    assert peak_rss_mb() - rss_mb() < 16  # the peak starts again from what is resident now


def test_seed_pool_key_follows_recipe_content_and_precision_not_comments(tmp_path):
    from bench.seed_pool import pool_key

    paths = [tmp_path / f"r{i}.yaml" for i in range(3)]
    for p in paths:
        p.write_text("# a comment\ntrain: {steps: 10}\n")
    key = pool_key(paths, "bf16-mixed")
    paths[0].write_text("# another comment\ntrain: {steps: 10}\n")
    assert pool_key(paths, "bf16-mixed") == key
    assert pool_key(paths, "32-true") != key  # bf16 and fp32 seeds never pool
    paths[0].write_text("train: {steps: 11}\n")
    assert pool_key(paths, "bf16-mixed") != key


def test_seed_pools_keep_their_own_files(tmp_path):
    """A seed run at another precision (or recipe) writes its own file and pools only with its own."""
    import json

    from bench.seed_pool import pooled_runs, seed_path

    for key, seeds in (("aaaa", (1, 0)), ("bbbb", (0,))):
        for s in seeds:
            seed_path(tmp_path, "harmonic", s, key).write_text(json.dumps({"seed": s, "recipes": key}))
    assert len(list(tmp_path.iterdir())) == 3  # seed 0 of pool bbbb did not overwrite seed 0 of aaaa
    assert [r["seed"] for r in pooled_runs(tmp_path, "harmonic", "aaaa")] == [0, 1]
    assert [r["recipes"] for r in pooled_runs(tmp_path, "harmonic", "bbbb")] == ["bbbb"]
    assert pooled_runs(tmp_path, "transform", "aaaa") == []


def test_shipped_recipes_pool_key_names_this_machines_precision(monkeypatch):
    import bench.bench_harmonic as bh
    import bench.seed_pool as sp

    monkeypatch.setattr(sp, "training_precision", lambda paths: "bf16-mixed")
    assert bh.recipes_key() == bh.recipes_key("bf16-mixed") != bh.recipes_key("32-true")


def test_backfill_order_summary_means_areas_over_seeds_and_counts_uncertainty_wins():
    from bench.bench_backfill_order import ORDERS, summarise

    def run(u: float, r: float) -> dict:
        curves = [{"order": o, "auc_top1": a, "auc_val": a / 2, "top1": [0.1] * 11, "val": [0.2] * 11}
                  for o, a in zip(ORDERS, (0.5, r, u))]
        return {"curves": curves, "uncertainty_minus_random": {"auc_top1": u - r, "auc_val": (u - r) / 2}}

    rows = summarise([{"pair": "v1 -> v2", "runs": [run(0.7, 0.6), run(0.5, 0.6)]}])
    by = {r["order"]: r for r in rows}
    assert abs(by["uncertainty"]["auc_top1"] - 0.6) < 1e-12 and abs(by["uncertainty"]["auc_top1_std"] - 0.1) < 1e-12
    assert abs(by["uncertainty - random"]["auc_top1"]) < 1e-12 and by["uncertainty - random"]["uncertainty_wins_top1"] == "1/2"
    assert by["random"]["seeds"] == 2 and by["sequential"]["auc_val@1e-3"] == 0.25


def test_capacity_plan_is_computed_from_the_measured_rates(tmp_path, monkeypatch):
    import bench.bench_capacity as bc

    nets = [{"what": "embedding net-a", "device": "cpu", "fp32_images_per_s": 1000.0, "bf16_images_per_s": 2000.0},
            {"what": "training net-a", "device": "cpu", "fp32_images_per_s": 500.0, "bf16_images_per_s": 250.0}]
    codecs = [{"codec": "flat", "bytes_per_face": 500.0}, {"codec": "sq8", "bytes_per_face": 150.0}]
    p = bc.plan(nets, codecs, None, None)
    mig, tr = p["migration"][0], p["training"][0]
    assert mig["precision"] == "bf16" and abs(mig["device_hours"] - 1e8 / 2000 / 3600) < 1e-9
    assert abs(mig["wall_hours_8"] - mig["device_hours"] / 8) < 1e-9
    assert tr["precision"] == "fp32" and abs(tr["device_hours"] - bc.TRAIN_IMAGES_SEEN / 500 / 3600) < 1e-9
    flat = p["index"][0]
    assert flat["gallery_gb"] == 50.0 and flat["shards_24 GB card"] == 3 and p["index"][1]["shards_24 GB card"] == 1
    doc = tmp_path / "scale.md"
    doc.write_text(f"intro\n{bc.BEGIN}\nold table\n{bc.END}\noutro\n")
    monkeypatch.setattr(bc, "DOC", doc)
    assert bc.write_doc("new table")
    assert doc.read_text() == f"intro\n{bc.BEGIN}\nnew table\n{bc.END}\noutro\n"


def test_training_precision_reads_the_training_recipes_only(tmp_path):
    from bench.seed_pool import training_precision

    (tmp_path / "base.yaml").write_text("train: {precision: 32-true}\n")
    (tmp_path / "transform.yaml").write_text("transform: {hidden: 64}\n")  # trains no network
    (tmp_path / "bf16.yaml").write_text("train: {precision: bf16-mixed}\n")
    assert training_precision([tmp_path / "base.yaml", tmp_path / "transform.yaml"]) == "32-true"
    assert training_precision([tmp_path / "base.yaml", tmp_path / "bf16.yaml"]) == "32-true+bf16-mixed"


def test_val_tuning_runs_pool_apart_from_the_test_figures(tmp_path, monkeypatch):
    """--split val writes harmonic-val-seed*.json and harmonic-val.json; the test pool and its
    summary file stay untouched, so tuning never enters the benchmark's figures."""
    import json

    import bench.bench_harmonic as bh

    monkeypatch.setattr(bh, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(bh, "RESULTS", tmp_path / "harmonic.json")
    monkeypatch.setattr(bh, "one_seed", lambda seed, methods, split: _seed(seed, {m: 0.75 for m in methods}))
    bh.run(seeds=[0], methods={"cand": {}}, split="val")
    assert not (tmp_path / "harmonic.json").exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "harmonic-val-seed0-" + bh.recipes_key() + ".json" and names[1] == "harmonic-val.json"
    bh.run(seeds=[0], methods={"main": {}}, split="test")
    test = json.loads((tmp_path / "harmonic.json").read_text())
    assert [r["method"] for r in test["rows"] if r["far"] == "0.001"] == ["v2-base (independent)", "main"]


def test_a_tuning_candidate_is_validated_against_the_recipe():
    import pytest

    from bench.bench_harmonic import candidate
    from harmony.errors import InvalidInput

    assert candidate(["harmonic.frozen_stages=2", "harmonic.loss=ract"]) == {"harmonic.frozen_stages": 2,
                                                                               "harmonic.loss": "ract"}
    with pytest.raises(InvalidInput, match="prototype_rendrs"):
        candidate(["harmonic.prototype_rendrs=32"])


def test_anatomy_splits_cross_distance_into_centre_offset_and_spread():
    import numpy as np

    from bench.bench_harmonic import anatomy

    labels = np.repeat(np.arange(3), 2)
    e1 = np.array([[1, 0], [-1, 0], [3, 0], [1, 0], [0, 1], [0, 3]], np.float64)
    a = anatomy(e1, e1 + [0.5, 0.0], labels)  # every v2 vector shifted: pure offset, same spread
    assert np.isclose(a["bias"], 0.25) and np.isclose(a["spread_v1"], a["spread_v2"])
    assert np.isclose(a["spread_v1"], 1.0)  # (1 + 1 + 1 + 1 + 1 + 1) / 6
    rng = np.random.default_rng(0)  # v2 = v1 + independent per-image noise: centres agree, bias ~0
    labels = np.repeat(np.arange(400), 8)
    e1 = rng.normal(size=(labels.size, 4))
    noisy = anatomy(e1, e1 + rng.normal(scale=0.3, size=e1.shape), labels)
    assert abs(noisy["bias"]) < 0.01 < 4 * 0.09 / 8  # the uncorrected |mean d|^2 would be ~0.045


def test_objective_candidates_score_val_only_and_merge_by_their_overrides(tmp_path, monkeypatch):
    """bench_objectives --split val --set ...: one row per (objective, overrides, budget) in
    objectives-val.json, a re-run replacing its own row; the reported objectives.json is untouched."""
    import json

    import pytest

    import bench.bench_objectives as bo

    seen = []
    monkeypatch.setattr(bo, "VAL", tmp_path / "objectives-val.json")
    monkeypatch.setattr(bo, "RESULTS", tmp_path / "objectives.json")
    monkeypatch.setattr(bo, "measure", lambda r, splits: seen.append((r.train.margin_loss.warmup_steps, splits))
                        or {"objective": r.train.loss, "val_val@0.001": 0.5})
    bo.candidate(False, ("train.margin_loss.warmup_steps=50",), ["arcface"])
    bo.candidate(False, (), ["arcface"])
    bo.candidate(False, ("train.margin_loss.warmup_steps=50",), ["arcface"])
    assert seen == [(50, ("val",)), (0, ("val",)), (50, ("val",))]
    rows = json.loads((tmp_path / "objectives-val.json").read_text())["rows"]
    assert [r["sets"] for r in rows] == [[], ["train.margin_loss.warmup_steps=50"]]
    assert not (tmp_path / "objectives.json").exists()
    with pytest.raises(SystemExit, match="warmup_step"):
        bo.candidate(False, ("train.margin_loss.warmup_step=50",), ["arcface"])
