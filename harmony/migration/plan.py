"""The migration plan: what ``harmony migrate gallery`` will do, decided before anything changes.

A target compatible with the gallery's version at the gallery's FAR serves queries at once: new
queries search the old index mixed with the growing new one. Any other target (incompatible,
or never measured at that FAR) needs the full backfill before queries may switch, and the plan
says where it would pass instead. Planning reads only; ``--dry-run`` stops here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harmony.errors import InUse, InvalidInput
from harmony.gallery.catalog import open_gallery
from harmony.migration.backfill import backfill_status, check_order_codec
from harmony.migration.gate import VerdictView, verdict_view
from harmony.migration.order import RANDOM, SCORE_TEXT, SEQUENTIAL, UNCERTAINTY, OrderSpec, uncertainty_method
from harmony.migration.states import active_migration
from harmony.models.pipeline import check_dim

if TYPE_CHECKING:
    from harmony.registry import Registry


@dataclass(frozen=True)
class MigrationPlan:
    gallery: str
    source: str  # the version the gallery serves (or served, when a swap was interrupted)
    target: str
    far: float  # the gallery's operating FAR
    codec: str
    dim: int
    n_items: int
    verdict: VerdictView  # target -> source at ``far``
    resume: int | None  # the in-flight migration (same target) this run continues
    resume_state: str | None
    done: int  # items the backfill in progress has processed
    pending: int  # items still without a target vector
    order: OrderSpec = OrderSpec()  # the backfill order (kept from the backfill in flight, if any)
    score: str | None = None  # uncertainty: the score the items allow (order.SCORES)

    @property
    def compatible(self) -> bool:
        return self.verdict.compatible

    @property
    def mode(self) -> str:
        return "mixed" if self.compatible else "full-backfill"

    def steps(self, batch_size: int, swap: bool) -> list[str]:
        s, t, n = self.source, self.target, self.n_items
        out = []
        if self.resume is not None:
            out.append(f"resume migration #{self.resume} ({self.resume_state}): {self.done} item(s) done, "
                       f"{self.pending} to go")
        if self.compatible:
            out.append(f"queries switch to {t} at once: they search the {s} index mixed with the growing {t} "
                       f"index (each item once, against its newest vector)")
        else:
            out.append(f"queries stay on {s} until the swap; {t} queries on {s} vectors are refused meanwhile")
        out.append(f"backfill: re-embed the {n} item(s) with {t} in {self.order_text()}, {batch_size} per batch, "
                   f"each batch committed (kill it any time; the same command resumes in the same order)")
        out.append(f"report VAL@FAR {s},{s} / {t}->{s} / {t},{t} and top-1 identification over the gallery")
        out.append(f"swap the {t} index in atomically" + ("" if swap else " (pass --swap, or run `harmony migrate "
                                                                          f"swap --gallery {self.gallery}` later)"))
        out.append(f"rollback to {s} stays one command until `harmony migrate gc --gallery {self.gallery}`")
        return out

    def order_text(self) -> str:
        """One phrase for the plan panel and the steps: the policy, its seed or its score."""
        p = self.order.policy
        if p == RANDOM:
            return f"random order (seed {self.order.seed})"
        if p == UNCERTAINTY:
            return f"uncertainty order ({self.score}: {SCORE_TEXT[self.score]}; from {self.source}'s stored vectors)"
        return "sequential order (the order items were added or changed)"

    def as_dict(self, batch_size: int = 256, swap: bool = False) -> dict[str, Any]:
        return {"gallery": self.gallery, "source": self.source, "target": self.target, "far": self.far,
                "codec": self.codec, "dim": self.dim, "n_items": self.n_items, "mode": self.mode,
                "compatible": self.compatible, "verdict": self.verdict.as_dict(), "resume": self.resume,
                "resume_state": self.resume_state, "done": self.done, "pending": self.pending,
                "batch_size": batch_size, "order": self.order.policy, "seed": self.order.seed, "score": self.score,
                "steps": self.steps(batch_size, swap)}


def plan_migration(reg: Registry, gallery: str, target: str, order: str | None = None,
                   seed: int | None = None) -> MigrationPlan:
    """Plan (or plan the resumption of) a migration of ``gallery`` to ``target``; changes nothing.

    ``order``/``seed``: the backfill order of a new migration (None: sequential, seed 0; a
    migration in flight keeps its own). NotFound for an unknown gallery or version, Incompatible
    for a version of another dimension, InUse while a migration to another version is in flight,
    InvalidInput when the gallery already serves ``target``, when ``order`` differs from the one
    in flight, or for the uncertainty order on an IVF gallery (it keeps no stored vectors).
    """
    record, store = open_gallery(reg, gallery, use_gpu=False)
    t = reg.resolve(target)
    active = store.active_version
    mig = active_migration(reg, gallery)
    if mig is not None and mig.target != t:
        raise InUse(f"gallery {gallery} already has migration #{mig.id} to {mig.target} in state {mig.state}",
                    hint=f"finish it (`harmony migrate gallery --gallery {gallery} --to {mig.target}`) or cancel it "
                         f"(`harmony migrate rollback --gallery {gallery}`) first")
    if mig is None and t == active:
        raise InvalidInput(f"gallery {gallery} already serves {t}", hint="pass another --to version")
    source = mig.source if mig is not None else active
    check_dim(reg.get_version(t), store.dim, gallery)
    st = backfill_status(store, t)
    spec = _resolve_order(gallery, st, mig.plan if mig is not None else None, order, seed)
    check_order_codec(spec, store.codec)
    table = store.items()
    score = uncertainty_method(table.labels[table.versions != t]) if spec.policy == UNCERTAINTY else None
    if st.score is not None:
        score = st.score
    return MigrationPlan(gallery=gallery, source=source, target=t, far=record.far, codec=store.codec, dim=store.dim,
                         n_items=st.n_items, verdict=verdict_view(reg, t, source, record.far),
                         resume=mig.id if mig is not None else None, resume_state=mig.state if mig else None,
                         done=st.done, pending=st.pending, order=spec, score=score)


def _resolve_order(gallery: str, st: Any, row_plan: dict | None, order: str | None, seed: int | None) -> OrderSpec:
    """The order this run uses: the backfill cursor's, else the in-flight migration row's, else the request."""
    held = None
    if st.order is not None:  # the gallery folder is the truth about a backfill in progress
        held = OrderSpec(st.order, int(st.seed or 0))
    elif row_plan is not None and row_plan.get("order"):  # begun, killed before its first cursor
        held = OrderSpec(row_plan["order"], int(row_plan.get("seed") or 0))
    asked = OrderSpec(order or (held.policy if held else SEQUENTIAL),
                      int(seed) if seed is not None else (held.seed if held else 0))
    if held is None:
        return asked
    if not asked.same_as(held):
        raise InvalidInput(f"the migration of gallery {gallery} in flight backfills in {held.describe()} order; it "
                           f"cannot change to {asked.describe()}",
                           hint=f"re-run without --order/--seed, or cancel it (`harmony migrate rollback --gallery "
                                f"{gallery}`) and start again")
    return held
