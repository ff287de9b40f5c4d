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
from harmony.migration.backfill import backfill_status
from harmony.migration.gate import VerdictView, verdict_view
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
        out.append(f"backfill: re-embed the {n} item(s) with {t}, {batch_size} per batch, each batch committed "
                   f"(kill it any time; the same command resumes)")
        out.append(f"report VAL@FAR {s},{s} / {t}->{s} / {t},{t} and top-1 identification over the gallery")
        out.append(f"swap the {t} index in atomically" + ("" if swap else " (pass --swap, or run `harmony migrate "
                                                                          f"swap --gallery {self.gallery}` later)"))
        out.append(f"rollback to {s} stays one command until `harmony migrate gc --gallery {self.gallery}`")
        return out

    def as_dict(self, batch_size: int = 256, swap: bool = False) -> dict[str, Any]:
        return {"gallery": self.gallery, "source": self.source, "target": self.target, "far": self.far,
                "codec": self.codec, "dim": self.dim, "n_items": self.n_items, "mode": self.mode,
                "compatible": self.compatible, "verdict": self.verdict.as_dict(), "resume": self.resume,
                "resume_state": self.resume_state, "done": self.done, "pending": self.pending,
                "batch_size": batch_size, "steps": self.steps(batch_size, swap)}


def plan_migration(reg: Registry, gallery: str, target: str) -> MigrationPlan:
    """Plan (or plan the resumption of) a migration of ``gallery`` to ``target``; changes nothing.

    NotFound for an unknown gallery or version, Incompatible for a version of another dimension,
    InUse while a migration to another version is in flight, InvalidInput when the gallery
    already serves ``target``.
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
    return MigrationPlan(gallery=gallery, source=source, target=t, far=record.far, codec=store.codec, dim=store.dim,
                         n_items=st.n_items, verdict=verdict_view(reg, t, source, record.far),
                         resume=mig.id if mig is not None else None, resume_state=mig.state if mig else None,
                         done=st.done, pending=st.pending)
