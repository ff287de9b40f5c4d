"""Negative flips: queries the old version identified correctly that the new version gets wrong.

An upgrade that raises top-1 accuracy can still break queries that used to work; those are what
users notice ("it found her yesterday"). Split as in ``identification_report``
(:func:`harmony.metrics.compat.split_gallery`): the gallery holds the first
``gallery_per_identity`` images of each identity, the probes are the rest. A probe is right at
top-1 exactly as :func:`harmony.metrics.knn_accuracy` decides: no wrong-identity gallery item at
a distance <= the nearest right-identity one (ties go against the probe). Baseline: old probes
on the old gallery. Two comparisons:

- ``new``: new probes on a new-version gallery (the state after the backfill and swap);
- ``cross``: new probes on the old gallery (what a mixed search gives before the backfill).

A flip is a probe right in the baseline and wrong in the comparison; ``rate = flips / probes``
(the negative flip rate of Yan et al., "Positive-congruent training", CVPR 2021).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from numbers import Real
from typing import Any, Sequence

import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics._checks import as_embeddings, as_labels, label_codes, warn_if_not_unit
from harmony.metrics.compat import split_gallery
from harmony.metrics.identification import wrong_closer_counts


def check_rate(rate: Any, name: str = "max_flip_rate") -> float:
    """A rate threshold: a real number in [0, 1] (the one wording for ``--max-flip-rate``)."""
    if isinstance(rate, bool) or not isinstance(rate, Real) or math.isnan(float(rate)) \
            or not 0.0 <= float(rate) <= 1.0:
        raise InvalidInput(f"{name} must be a number in [0, 1], got {rate!r}",
                           hint=f"e.g. {name} 0.02 (refuse when more than 2% of the queries flip)")
    return float(rate)


@dataclass(frozen=True)
class FlipSet:
    """Flips of one comparison (probes by ``probe_version`` on a ``gallery_version`` gallery).

    ``per_identity``: (identity, flips) for identities with at least one flip, most flips first
    (ties by identity name); ``ids``: the flipped queries in input order (item ids when given,
    else indices into the input arrays)."""

    probe_version: str
    gallery_version: str
    n_queries: int
    n_flips: int
    per_identity: tuple[tuple[str, int], ...]
    ids: tuple[str | int, ...]

    @property
    def rate(self) -> float:
        return self.n_flips / self.n_queries

    def as_dict(self) -> dict[str, Any]:
        return {"probe": self.probe_version, "gallery": self.gallery_version, "n_flips": self.n_flips,
                "rate": self.rate, "per_identity": dict(self.per_identity), "ids": list(self.ids)}


@dataclass(frozen=True)
class FlipReport:
    """Negative flips of ``new_name`` against ``old_name`` on one probe/gallery split."""

    old_name: str
    new_name: str
    gallery_per_identity: int
    n_gallery: int
    n_queries: int
    n_old_correct: int  # probes the old version gets right at top-1 (the most that can flip)
    new: FlipSet
    cross: FlipSet

    def over(self, max_rate: float) -> list[FlipSet]:
        """The comparisons whose flip rate exceeds ``max_rate``."""
        return [s for s in (self.new, self.cross) if s.rate > max_rate]

    def as_dict(self) -> dict[str, Any]:
        return {"old": self.old_name, "new": self.new_name, "gallery_per_identity": self.gallery_per_identity,
                "n_gallery": self.n_gallery, "n_queries": self.n_queries, "n_old_correct": self.n_old_correct,
                "new_flips": self.new.as_dict(), "cross_flips": self.cross.as_dict()}


def _top1_right(probe: np.ndarray, pc: np.ndarray, gallery: np.ndarray, gc: np.ndarray) -> np.ndarray:
    """Bool per probe: right at top-1 under knn_accuracy's rule (ties against the probe)."""
    return wrong_closer_counts(probe, pc, gallery, gc) == 0


def _flip_set(flipped: np.ndarray, probe_version: str, gallery_version: str, probe_labels: np.ndarray,
              probe_ids: list) -> FlipSet:
    counts = Counter(str(x) for x in probe_labels[flipped])
    per = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return FlipSet(probe_version, gallery_version, int(flipped.size), int(flipped.sum()), per,
                   tuple(probe_ids[i] for i in np.flatnonzero(flipped)))


def flip_report(old_emb: Any, new_emb: Any, labels: Any, gallery_per_identity: int = 1,
                ids: Sequence[Any] | None = None, old_name: str = "v1", new_name: str = "v2") -> FlipReport:
    """Negative flips of ``new`` against ``old`` over one image set embedded by both.

    ``old_emb`` / ``new_emb``: ``(n, d)`` float32, L2-normalised, rows aligned; ``labels``: ``(n,)``
    identities; ``ids``: ``n`` item ids to list flipped queries by (default: row indices).
    """
    old = as_embeddings(old_emb, "old_emb")
    new = as_embeddings(new_emb, "new_emb")
    if old.shape != new.shape:
        raise InvalidInput(f"old_emb shape {old.shape} differs from new_emb shape {new.shape}",
                           hint="embed the same images, in the same order, with both versions")
    lab = as_labels(labels, old.shape[0], "labels")
    if ids is not None and len(ids) != old.shape[0]:
        raise InvalidInput(f"ids has {len(ids)} entries for {old.shape[0]} embeddings",
                           hint="pass one item id per embedding, in the same order")
    if isinstance(gallery_per_identity, bool) or int(gallery_per_identity) != gallery_per_identity \
            or gallery_per_identity < 1:
        raise InvalidInput(f"gallery_per_identity must be an integer >= 1, got {gallery_per_identity!r}",
                           hint="use 1 (one enrolment image per identity)")
    warn_if_not_unit(old, "old_emb")
    warn_if_not_unit(new, "new_emb")
    gal = split_gallery(lab, int(gallery_per_identity))
    if gal.all():
        raise InvalidInput(f"no probes: no identity has more than {gallery_per_identity} image(s)",
                           hint="lower gallery_per_identity or evaluate on more images per identity")
    pr = ~gal
    (codes,) = label_codes(lab)
    pc, gc = codes[pr], codes[gal]
    base = _top1_right(old[pr], pc, old[gal], gc)
    after = _top1_right(new[pr], pc, new[gal], gc)
    cross = _top1_right(new[pr], pc, old[gal], gc)
    all_ids = [int(i) for i in range(len(lab))] if ids is None else [
        x.item() if isinstance(x, np.generic) else x for x in ids]
    probe_ids = [all_ids[i] for i in np.flatnonzero(pr)]
    probe_labels = lab[pr]
    return FlipReport(old_name=old_name, new_name=new_name, gallery_per_identity=int(gallery_per_identity),
                      n_gallery=int(gal.sum()), n_queries=int(pr.sum()), n_old_correct=int(base.sum()),
                      new=_flip_set(base & ~after, new_name, new_name, probe_labels, probe_ids),
                      cross=_flip_set(base & ~cross, new_name, old_name, probe_labels, probe_ids))
