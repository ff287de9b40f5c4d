"""Cross-version compatibility: the 2x2 VAL@FAR table and the identification split.

Verification (DESIGN section 2): over one labelled image set embedded by both versions,
VAL(old,old), VAL(new,new), VAL(new->old) (probe = new, gallery = old, pairs i != j) and
VAL(old->new). Over one set the cross pair set is symmetric, so the two cross figures agree up to
float32 rounding of the dot products; both are measured and shown. Verdict (BCT, CVPR 2020):
the new version is compatible at a FAR when VAL(new->old) >= VAL(old,old).

Identification: the gallery holds the first ``gallery_per_identity`` images of each identity
embedded by the old version, the probes are the remaining images embedded by the new one; this
is where new->old and old->new really differ, and it mirrors a migration (old gallery, new
queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics._checks import as_embeddings, as_labels
from harmony.metrics.fars import DEFAULT_FARS, check_fars
from harmony.metrics.identification import knn_accuracy
from harmony.metrics.val_at_far import ValAtFar, val_at_far


def gain_recovered(before: float, cross: float, after: float) -> float | None:
    """Share of v2's gain over v1 that cross-version queries already deliver (DESIGN section 2):
    ``(cross - before) / (after - before)``; 0 = only as good as v1, 1 = as good as v2 itself.
    None when v2 is not better than v1 (``after <= before``): there is no gain to recover."""
    gain = after - before
    if not gain > 0:
        return None
    return (cross - before) / gain


@dataclass(frozen=True)
class CompatRow:
    """The 2x2 table at one FAR target: each cell a full ValAtFar (VAL, t*, pair counts), and the verdict."""

    far: float
    old_old: ValAtFar
    new_new: ValAtFar
    new_old: ValAtFar
    old_new: ValAtFar

    @property
    def compatible(self) -> bool:
        """BCT criterion: VAL(new->old) >= VAL(old,old)."""
        return self.new_old.val >= self.old_old.val

    @property
    def gain_recovered(self) -> float | None:
        """:func:`gain_recovered` at this FAR (None when v2 is not better than v1 here)."""
        return gain_recovered(self.old_old.val, self.new_old.val, self.new_new.val)

    def as_dict(self) -> dict[str, Any]:
        """JSON (``harmony eval --json``, the evaluations table): VALs, t* (None = accept all), pair counts."""
        return {"far": self.far, "compatible": self.compatible, "gain_recovered": self.gain_recovered,
                "val_old_old": self.old_old.val, "val_new_new": self.new_new.val,
                "val_new_old": self.new_old.val, "val_old_new": self.old_new.val,
                "threshold_old_old": self.old_old.as_dict()["threshold"],
                "threshold_new_new": self.new_new.as_dict()["threshold"],
                "threshold_new_old": self.new_old.as_dict()["threshold"],
                "threshold_old_new": self.old_new.as_dict()["threshold"],
                "zero_false_accepts": self.old_old.zero_false_accepts,
                "n_same_pairs": self.old_old.n_same, "n_diff_pairs": self.old_old.n_diff,
                "n_same_pairs_cross": self.new_old.n_same, "n_diff_pairs_cross": self.new_old.n_diff}

    def cells(self) -> dict[str, Any]:
        """The registry's compatibility row (``Registry.record_compatibility``'s ``table``): the four
        VALs under the registry's cell names (old_old, new_new, new_old, old_new), the rest of
        :meth:`as_dict` as detail."""
        detail = {k: v for k, v in self.as_dict().items() if k not in ("far", "compatible", "gain_recovered")}
        return {"old_old": self.old_old.val, "new_new": self.new_new.val, "new_old": self.new_old.val,
                "old_new": self.old_new.val, **detail}

    def as_migration_dict(self) -> dict[str, Any]:
        """The same row as a migration reads it: before = VAL(old,old), cross = VAL(new->old) (the
        mixed search while the backfill runs), after = VAL(new,new)."""
        return {"far": self.far, "before": self.old_old.val, "cross": self.new_old.val, "after": self.new_new.val,
                "compatible_here": self.compatible, "gain_recovered": self.gain_recovered,
                "zero_false_accepts": self.old_old.zero_false_accepts,
                "threshold_before": self.old_old.as_dict()["threshold"],
                "threshold_cross": self.new_old.as_dict()["threshold"],
                "threshold_after": self.new_new.as_dict()["threshold"], "n_same_pairs": self.old_old.n_same,
                "n_diff_pairs": self.old_old.n_diff}


@dataclass(frozen=True)
class CompatReport:
    """Compatibility of ``new_name`` with ``old_name`` at each FAR measured: the one compatibility
    record (evaluation, harmonic training and the migration report all build this one).

    Over a labelled set ``n_identities`` counts its identities and ``n_pairs`` is None; over a
    pair list (LFW) ``n_identities`` is None and ``n_pairs`` counts the listed pairs.
    """

    old_name: str
    new_name: str
    n_images: int
    n_identities: int | None
    rows: tuple[CompatRow, ...]
    n_pairs: int | None = None

    @property
    def compatible(self) -> dict[float, bool]:
        """Verdict per FAR target (compatibility depends on the operating point)."""
        return {r.far: r.compatible for r in self.rows}

    def row(self, far: float) -> CompatRow:
        for r in self.rows:
            if r.far == far:
                return r
        raise InvalidInput(f"FAR {far:g} was not measured (have {[r.far for r in self.rows]})",
                           hint="re-run the report with that FAR in fars")

    def as_dict(self) -> dict[str, Any]:
        """JSON for ``--json`` and the registry's evaluations table (rows: :meth:`CompatRow.as_dict`)."""
        d = {"old": self.old_name, "new": self.new_name, "n_images": self.n_images,
             "n_identities": self.n_identities, "rows": [r.as_dict() for r in self.rows]}
        return d | ({"n_pairs": self.n_pairs} if self.n_pairs is not None else {})

    def verification(self) -> list[dict[str, Any]]:
        """The migration report's ``verification`` list (rows: :meth:`CompatRow.as_migration_dict`)."""
        return [r.as_migration_dict() for r in self.rows]


def _two_versions(old_emb: Any, new_emb: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    old = as_embeddings(old_emb, "old_emb")
    new = as_embeddings(new_emb, "new_emb")
    if old.shape != new.shape:
        raise InvalidInput(f"old_emb shape {old.shape} differs from new_emb shape {new.shape}",
                           hint="embed the same images, in the same order, with both versions")
    return old, new, as_labels(labels, old.shape[0], "labels")


def compatibility_report(old_emb: Any, new_emb: Any, labels: Any, fars: Sequence[float] = DEFAULT_FARS,
                         old_name: str = "v1", new_name: str = "v2", *, block_size: int = 4096,
                         device: str | None = None) -> CompatReport:
    """The 2x2 VAL@FAR table and BCT verdict per FAR, over one image set embedded by both."""
    old, new, lab = _two_versions(old_emb, new_emb, labels)
    fars_ = list(check_fars(fars, unique=False))
    kw = dict(block_size=block_size, device=device)
    oo = val_at_far(old, lab, fars_, **kw)
    nn = val_at_far(new, lab, fars_, **kw)
    no = val_at_far(new, lab, fars_, gallery=old, **kw)
    on = val_at_far(old, lab, fars_, gallery=new, **kw)
    rows = tuple(CompatRow(far=f, old_old=a, new_new=b, new_old=c, old_new=d)
                 for f, a, b, c, d in zip(fars_, oo, nn, no, on))  # type: ignore[arg-type]
    return CompatReport(old_name=old_name, new_name=new_name, n_images=int(old.shape[0]),
                        n_identities=int(np.unique(lab).size), rows=rows)


@dataclass(frozen=True)
class IdentificationRow:
    """Top-k accuracy of probes embedded by ``probe_version`` against a ``gallery_version`` gallery."""

    probe_version: str
    gallery_version: str
    accuracy: dict[int, float]


@dataclass(frozen=True)
class IdentificationReport:
    old_name: str
    new_name: str
    gallery_per_identity: int
    n_gallery: int
    n_probes: int
    ks: tuple[int, ...]
    rows: tuple[IdentificationRow, ...]  # old->old, new->new, new->old

    @property
    def cross(self) -> IdentificationRow:
        return self.rows[2]

    @property
    def compatible(self) -> bool:
        """Top-1 of new probes on the old gallery >= top-1 of old probes on it."""
        k = min(self.ks)
        return self.rows[2].accuracy[k] >= self.rows[0].accuracy[k]

    def as_dict(self) -> dict[str, Any]:
        return {"old": self.old_name, "new": self.new_name,
                "gallery_per_identity": self.gallery_per_identity, "n_gallery": self.n_gallery,
                "n_probes": self.n_probes, "ks": list(self.ks), "compatible": self.compatible,
                "rows": [{"probe": r.probe_version, "gallery": r.gallery_version,
                          "accuracy": {str(k): v for k, v in r.accuracy.items()}} for r in self.rows]}


def split_gallery(labels: np.ndarray, gallery_per_identity: int) -> np.ndarray:
    """Bool mask: True for the first ``gallery_per_identity`` images (in order) of each identity."""
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    counts = np.diff(np.r_[starts, len(codes)])
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - np.repeat(starts, counts)
    return rank < gallery_per_identity


def identification_report(old_emb: Any, new_emb: Any, labels: Any, gallery_per_identity: int = 1,
                          ks: Sequence[int] = (1, 5), old_name: str = "v1",
                          new_name: str = "v2") -> IdentificationReport:
    """Old gallery (first images per identity) vs probes (the rest): old->old, new->new, new->old.

    Identities with no more than ``gallery_per_identity`` images contribute gallery items only
    (distractors), no probes.
    """
    old, new, lab = _two_versions(old_emb, new_emb, labels)
    if gallery_per_identity < 1:
        raise InvalidInput(f"gallery_per_identity must be >= 1, got {gallery_per_identity}",
                           hint="use 1 (one enrolment image per identity)")
    gal = split_gallery(lab, gallery_per_identity)
    if gal.all():
        raise InvalidInput(f"no probes: no identity has more than {gallery_per_identity} image(s)",
                           hint="lower gallery_per_identity or evaluate on more images per identity")
    ks_ = tuple(int(k) for k in ks)
    pr = ~gal
    rows = (IdentificationRow(old_name, old_name, knn_accuracy(old[pr], lab[pr], old[gal], lab[gal], ks_)),
            IdentificationRow(new_name, new_name, knn_accuracy(new[pr], lab[pr], new[gal], lab[gal], ks_)),
            IdentificationRow(new_name, old_name, knn_accuracy(new[pr], lab[pr], old[gal], lab[gal], ks_)))
    return IdentificationReport(old_name=old_name, new_name=new_name,
                                gallery_per_identity=int(gallery_per_identity), n_gallery=int(gal.sum()),
                                n_probes=int(pr.sum()), ks=ks_, rows=rows)
