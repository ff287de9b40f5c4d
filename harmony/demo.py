"""`harmony demo`: the whole story on synthetic faces, in one command, in a throwaway registry.

v1 is trained and serves a gallery; a stronger v2-base is trained independently (and is not
compatible with v1); a harmonic v2 is trained from v1; the gallery is migrated to v2 with queries
running on v2 before the backfill has finished; the run ends with the compatibility table, the
migration report and a PNG of the VAL vs FAR curves.

The library tells the story without drawing it: ``say`` receives plain strings, :class:`Heading`
for each step and the measured records (:class:`HarmonicReports`, :class:`MigrationReport`) as
they come; ``harmony.cli.demo`` renders them (tables on screen, plain text in demo.log).
Progress goes through ``harmony.progress`` ticks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union


from harmony.errors import Incompatible, NotFound
from harmony.io import atomic_write_json
from harmony.progress import ProgressFn, tick

if TYPE_CHECKING:
    from harmony.metrics import CompatReport

log = logging.getLogger(__name__)
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@dataclass(frozen=True)
class Heading:
    """A step of the story: ``"1/6 train v1 (...)"``."""

    text: str


@dataclass(frozen=True)
class HarmonicReports:
    """Harmonic v2 against v1, and the independently trained v2-base against v1 (the baseline)."""

    report: "CompatReport"
    baseline: "CompatReport | None"
    eval_set: str
    identification: dict | None = None  # IdentificationReport.as_dict(): top-1 v2->v1 vs v1->v1
    flips: dict | None = None  # FlipReport.as_dict(): what v1 got right and v2 gets wrong


@dataclass(frozen=True)
class MigrationReport:
    """The migration report dict (as the registry's migration row stores it)."""

    report: dict[str, Any]


Said = Union[str, Heading, HarmonicReports, MigrationReport]
N_STEPS = 6


def log_said(x: Said) -> None:
    """The default ``say``: the story through ``logging`` (records as one line each)."""
    log.info("%s", x.text if isinstance(x, Heading) else x)


@dataclass
class DemoResult:
    out: Path
    timings: dict = field(default_factory=dict)
    compat: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    identification: dict = field(default_factory=dict)
    flips: dict = field(default_factory=dict)
    mid_search: list = field(default_factory=list)
    mid_top1: tuple[int, int] = (0, 0)  # v2 queries with the right identity first / queries, mid-backfill
    mid_progress: dict = field(default_factory=dict)
    mid_refusal: str = ""
    report: dict = field(default_factory=dict)
    plot: str = ""
    metrics: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """What a run measured, as plain JSON (``summary.json`` in the demo folder; bench/bench_demo.py)."""
        return {k: v for k, v in asdict(self).items() if k != "out"}


def recipe_path(name: str, recipes: Path = RECIPES) -> Path:
    p = recipes / name
    if not p.is_file():
        raise NotFound(f"recipe {p} not found", hint="run the demo from a harmony checkout, or pass --recipes DIR")
    return p


def run_demo(out: Path, say: Callable[[Said], None] = log_said, progress: ProgressFn | None = None,
             recipes: Path = RECIPES, gallery_identities: int = 200, per_identity: int = 4,
             max_epochs: int | None = None, eval_identities: int = 300) -> DemoResult:
    """Run every step; ``say`` receives the story (plain strings, headings, records) as it unfolds;
    ``progress`` gets one tick per step and is passed on to training, embedding and the backfill."""
    from harmony.data.synthetic_folder import write_synthetic_faces
    from harmony.evaluation.cache import embed_cached
    from harmony.evaluation.datasets import synthetic_set
    from harmony.metrics import plot_val_far, val_far_curve
    from harmony.gallery.catalog import build_gallery
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from harmony.migration.search import search_gallery
    from harmony.recipe import load_recipe
    from harmony.registry import Registry
    from harmony.training.base import train_base
    from harmony.training.harmonic import train_harmonic

    res = DemoResult(out)
    root = out / "registry"
    reg = Registry.open(root)
    t_all = time.time()

    def step(i: int, title: str) -> float:
        tick(progress, "harmony demo", i - 1, N_STEPS, unit="steps")
        say(Heading(f"{i}/{N_STEPS} {title}"))
        return time.time()

    def recipe(name: str):
        return load_recipe(recipe_path(name, recipes)).override(**{"train.epochs": max_epochs})

    t = step(1, "train v1 (recipes/base-tiny.yaml): the model in production")
    rec1 = recipe("base-tiny.yaml")
    key = f"val@{min(rec1.eval.fars):g}"
    r1 = train_base(reg, rec1, "v1", progress=progress)
    res.timings["train v1"] = time.time() - t
    res.metrics["v1"] = r1.metrics
    res.metrics["raw pixels"] = r1.baseline
    say(f"v1: {key} = {r1.metrics[key]:.3f} on held-out identities (raw pixels {r1.baseline[key]:.3f})")

    t = step(2, "train v2-base (recipes/base-tiny-large.yaml): a stronger, independently trained model")
    r2 = train_base(reg, recipe("base-tiny-large.yaml"), "v2-base", progress=progress)
    res.timings["train v2-base"] = time.time() - t
    res.metrics["v2-base"] = r2.metrics
    say(f"v2-base: {key} = {r2.metrics[key]:.3f}")

    t = step(3, "train harmonic v2 from v1 (recipes/harmonic-tiny.yaml, --init v2-base)")
    rh = train_harmonic(reg, recipe("harmonic-tiny.yaml"), "v2", "v1", "v2-base", progress=progress)
    res.timings["train harmonic v2"] = time.time() - t
    say(HarmonicReports(rh.report, rh.baselines, rh.eval_set,
                        rh.identification.as_dict() if rh.identification else None,
                        rh.flips.as_dict() if rh.flips else None))
    res.compat, res.baseline = rh.report.as_dict(), rh.baselines.as_dict() if rh.baselines else {}
    res.identification = rh.identification.as_dict() if rh.identification else {}
    res.flips = rh.flips.as_dict() if rh.flips else {}

    t = step(4, "build gallery 'prod' with v1 from held-out faces")
    size = reg.get_version("v1").meta["spec"]["image_size"]
    faces = write_synthetic_faces(out / "data" / "gallery", gallery_identities, per_identity, size=size)
    # unseen images of gallery identities, spread so some are backfilled early and some late
    queries = write_synthetic_faces(out / "data" / "queries", sorted({0, gallery_identities // 3,
                                                                     gallery_identities // 2, gallery_identities - 2,
                                                                     gallery_identities - 1}),
                                    1, size=size, first_image=per_identity)
    b = build_gallery(reg, "prod", "v1", faces, far=1e-3, progress=progress)
    res.timings["build gallery"] = time.time() - t
    say(f"gallery prod: {b.n_items} items of {b.n_identities} identities, embedded with v1 in {b.embed_s:.1f} s")

    t = step(5, "migrate prod to v2: queries switch at once, the backfill runs in batches")
    plan = plan_migration(reg, "prod", "v2")
    batch = min(64, max(2, plan.n_items // 8))  # pause after 3 of ~8 batches to show a half-migrated gallery
    for s in plan.steps(batch, True):
        say(f"  - {s}")
    part = run_migration(reg, plan, batch_size=batch, stop_after=3, progress=progress)
    done = (part.backfill.n_embedded + part.backfill.n_resumed) if part.backfill else 0
    res.mid_progress = {"done": done, "total": plan.n_items, "state": part.migration.state}
    say(f"backfill paused after 3 batches: {done}/{plan.n_items} items have v2 vectors (state {part.migration.state})")
    try:
        sr = search_gallery(reg, "prod", queries, k=3, version="v2")
    except Incompatible as e:  # not compatible at the gallery's FAR: full backfill before any v2 query
        res.mid_refusal = e.message
        say(f"v2 queries refused until the swap: {e.message}")
    else:
        res.mid_search = [[(h.item_id, h.label, round(h.distance, 3), h.version) for h in hits] for hits in sr.hits]
        correct = sum(bool(hits) and hits[0][1] == Path(q).parent.name for q, hits in zip(sr.queries, res.mid_search))
        res.mid_top1 = (int(correct), len(sr.queries))
        say(f"v2 queries on the half-migrated gallery ({sr.mode} search): top-1 correct for {correct}/"
            f"{len(sr.queries)} queries; hits scored against {sorted({h[3] for hits in res.mid_search for h in hits})} "
            "vectors")
    full = run_migration(reg, plan_migration(reg, "prod", "v2"), batch_size=batch, swap=True, progress=progress)
    res.report = full.report or {}
    say(MigrationReport(res.report))
    res.timings["migrate gallery"] = time.time() - t
    say(f"migration #{full.migration.id}: {full.migration.state}; rollback: harmony migrate rollback --gallery prod "
        f"--registry {root}")

    t = step(6, "VAL vs FAR curves of v1, v2, v2-base and the cross pairs")
    plot = out / "val_far.png"
    data = synthetic_set(eval_identities, per_identity=8, size=size)
    emb = {v: embed_cached(reg, v, data.source).vectors for v in ("v1", "v2-base", "v2")}  # renders: all usable
    curves = {v: val_far_curve(e, data.labels) for v, e in emb.items()}
    for v in ("v2-base", "v2"):
        curves[f"{v}->v1"] = val_far_curve(emb[v], data.labels, gallery=emb["v1"])
    plot_val_far(curves, plot, title="harmony demo: held-out synthetic identities")
    res.plot = str(plot)
    res.timings["evaluate + plot"] = time.time() - t
    res.timings["total"] = time.time() - t_all
    tick(progress, "harmony demo", N_STEPS, N_STEPS, unit="steps")
    atomic_write_json(out / "summary.json", res.as_dict())
    return res
