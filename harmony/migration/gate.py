"""The compatibility gate: may ``new``-version queries be scored against ``old``-version vectors?

The migrator trusts only the registry's verdict at the gallery's operating FAR (DESIGN section 2).
The other FARs measured are read too, so a plan or a refusal can say "passes at 1e-2, not at the
gallery's 1e-3". A version never measured counts as incompatible. The one rule for the verdict
(the newest measurement at the FAR, over every dataset) and the one refusal message live here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harmony.errors import Incompatible
from harmony.registry.catalog import FAR_RTOL

if TYPE_CHECKING:
    from harmony.registry import Registry


@dataclass(frozen=True)
class Measured:
    """The newest measurement of one (dataset, FAR)."""

    id: int
    far: float
    dataset: str
    compatible: bool
    val_old_old: float
    val_new_old: float

    def as_dict(self) -> dict[str, Any]:
        return {"far": self.far, "dataset": self.dataset, "compatible": self.compatible,
                "val_old_old": self.val_old_old, "val_new_old": self.val_new_old}


@dataclass(frozen=True)
class VerdictView:
    new: str
    old: str
    far: float  # the gallery's operating FAR
    verdict: bool | None  # the registry's verdict at ``far`` (None: never measured)
    measured: tuple[Measured, ...]  # every (dataset, FAR) measured, by FAR

    @property
    def compatible(self) -> bool:
        return self.new == self.old or self.verdict is True

    def at(self, far: float) -> list[Measured]:
        return [m for m in self.measured if abs(m.far - far) <= FAR_RTOL * far]

    def passing_elsewhere(self) -> list[float]:
        """FARs other than the gallery's where the newest measurement passes."""
        out = {m.far for m in self.measured if m.compatible and abs(m.far - self.far) > FAR_RTOL * self.far}
        return sorted(out, reverse=True)

    def describe(self) -> str:
        """One sentence: the verdict at the gallery's FAR and, if it fails there, where it passes."""
        n, o, f = self.new, self.old, self.far
        if n == o:
            return f"{n} is the gallery's own version"
        if self.verdict is True:
            return f"{n} is compatible with {o} at FAR {f:g}, the gallery's operating point"
        if self.verdict is False:
            here = max(self.at(f), key=lambda m: m.id)
            text = (f"{n} is not compatible with {o} at FAR {f:g}, the gallery's operating point "
                    f"(VAL({n}->{o}) {here.val_new_old:.3f} < VAL({o},{o}) {here.val_old_old:.3f} on {here.dataset})")
        else:
            text = f"the registry holds no {n}->{o} compatibility measurement at FAR {f:g}, the gallery's operating point"
        elsewhere = self.passing_elsewhere()
        if elsewhere:
            text += (f"; it passes at FAR {', '.join(f'{x:g}' for x in elsewhere)}, which would serve a gallery "
                     f"operating there mixed, but not this one")
        return text

    def refusal(self, gallery: str, n_old: int) -> Incompatible:
        """The error for a search that would score ``new`` queries against ``n_old`` ``old`` vectors."""
        return Incompatible(
            f"{self.new} queries cannot search the {n_old} {self.old} vector(s) of gallery {gallery}: {self.describe()}",
            hint=f"finish the backfill to {self.new} and swap (`harmony migrate gallery --gallery {gallery} "
                 f"--to {self.new} --swap`), or search with --version {self.old}"
                 + ("" if self.verdict is not None else
                    f"; or measure it: `harmony eval --version {self.new} --against {self.old} --far {self.far:g}`"))

    def as_dict(self) -> dict[str, Any]:
        return {"new": self.new, "old": self.old, "far": self.far, "verdict": self.verdict,
                "compatible": self.compatible, "measured": [m.as_dict() for m in self.measured],
                "passing_elsewhere": self.passing_elsewhere(), "describe": self.describe()}


def verdict_view(reg: Registry, new: str, old: str, far: float) -> VerdictView:
    """Read the verdict at ``far`` and every measurement of ``new`` against ``old`` (resolved
    version names) in one registry read."""
    if new == old:
        return VerdictView(new, old, float(far), True, ())
    measured = tuple(Measured(c.id, c.far, c.dataset, c.compatible, float(c.table["old_old"]),
                              float(c.table["new_old"])) for c in reg.compatibility(new, old))
    view = VerdictView(new, old, float(far), None, measured)
    here = view.at(far)  # the newest row at this FAR over every dataset
    return replace(view, verdict=max(here, key=lambda m: m.id).compatible if here else None)
