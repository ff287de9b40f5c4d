"""The demo's orchestration end to end on micro recipes (the real recipes take minutes)."""

from __future__ import annotations


def test_demo_story_runs_on_micro_recipes(tmp_path, micro_demo_recipes):
    from harmony.demo import run_demo
    from harmony.registry import Registry

    said = []
    res = run_demo(tmp_path / "out", say=said.append, progress=None, recipes=micro_demo_recipes,
                   gallery_identities=6, per_identity=4, eval_identities=20)
    reg = Registry.open(tmp_path / "out" / "registry")
    assert {v.name for v in reg.list_versions()} == {"v1", "v2-base", "v2"}
    g = reg.get_gallery("prod")
    assert g.version == "v2"  # swapped at the end
    assert 0 < res.mid_progress["done"] < res.mid_progress["total"]  # queries ran before the backfill finished
    # v2 queries mid-backfill: mixed search when compatible at the gallery's FAR, else a refusal
    assert (res.mid_search and all(hits for hits in res.mid_search)) or "refused" in res.mid_refusal.lower() \
        or "compatib" in res.mid_refusal
    assert (tmp_path / "out" / "val_far.png").stat().st_size > 1000
    assert res.report and res.compat["rows"]
    assert "total" in res.timings
    # what the run measured is kept as JSON beside the registry, and the demo benchmark reads it as rows
    from bench.bench_demo import _rows
    from harmony.io import read_json

    summary = read_json(tmp_path / "out" / "summary.json")
    assert summary["timings"]["total"] == res.timings["total"]
    assert set(summary["metrics"]) == {"v1", "v2-base", "raw pixels"}
    rows = _rows(summary)
    total = next(r for r in rows if r["what"] == "time: total")
    assert total["ratio_vs_budget"] == total["seconds"] / 600.0
    assert sum(r["what"].startswith("v2 (harmonic) vs v1") for r in rows) == len(res.compat["rows"])
    mid = next(r for r in rows if r["what"].startswith("v2 queries mid-backfill"))
    assert mid["queries"] == res.mid_top1[1] and (mid["queries"] > 0 or res.mid_refusal)
