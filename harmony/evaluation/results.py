"""What one `harmony eval` measured: per-version figures, the cross-version reports, and notes.

Plain frozen records; ``as_dict`` gives the JSON the CLI prints and ``metrics`` the dict each
version's row in the registry's ``evaluations`` table holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmony.metrics import ClusterReport, CompatReport, FlipReport, IdentificationReport, LfwResult, ValAtFar


def json_safe(x: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN/inf); containers are rebuilt."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class VersionEval:
    """One version on the set: VAL@FAR per target, leave-one-out top-k, clustering, LFW accuracy.

    Labelled sets fill ``top_k`` and ``clustering`` (``clustering`` stays None past the clustering
    size limit, with a note); pair lists fill ``lfw``. ``val`` is over all pairs of a labelled set,
    or over the listed pairs.
    """

    name: str
    dim: int
    image_size: int  # the size the images were loaded at
    val: tuple[ValAtFar, ...]
    from_cache: bool = False
    top_k: dict[int, float] | None = None
    clustering: ClusterReport | None = None
    lfw: LfwResult | None = None

    def metrics(self) -> dict[str, Any]:
        """Flat figures for the registry (``val@0.001`` keys as training records them)."""
        m: dict[str, Any] = {}
        for r in self.val:
            m[f"val@{r.far:g}"] = r.val
            m[f"threshold@{r.far:g}"] = r.as_dict()["threshold"]
        if self.top_k is not None:
            m |= {f"top{k}": v for k, v in self.top_k.items()}
        if self.clustering is not None:
            c = self.clustering.as_dict()
            m |= {"cluster_threshold": c["threshold"], "cluster_precision": c["scores"]["precision"],
                  "cluster_recall": c["scores"]["recall"], "cluster_f1": c["scores"]["f1"],
                  "n_clusters": c["n_clusters"]}
        if self.lfw is not None:
            m |= {"lfw_accuracy_mean": self.lfw.accuracy_mean, "lfw_accuracy_std": self.lfw.accuracy_std}
        return m

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "image_size": self.image_size, "from_cache": self.from_cache,
                "val": [r.as_dict() for r in self.val],
                "top_k": None if self.top_k is None else {str(k): v for k, v in self.top_k.items()},
                "clustering": None if self.clustering is None else self.clustering.as_dict(),
                "lfw": None if self.lfw is None else self.lfw.as_dict()}


@dataclass(frozen=True)
class EvalResult:
    """Everything one evaluation measured. ``versions[0]`` is ``--version`` (the new one),
    ``versions[1]`` the ``--against`` version (the old one) when given.

    ``compat``: the 2x2 VAL table with a verdict per FAR ("is new compatible with old":
    VAL(new->old) >= VAL(old,old)); over a pair list its ``n_identities`` is None (pairs carry no
    identities) and its ``n_pairs`` counts the listed pairs. ``identification``: labelled sets
    only, gallery = first image per identity embedded by old, probes = the rest by new.
    ``cross_lfw``: pair lists only, the LFW protocol on D(new(a), old(b)). ``flips``: labelled
    sets only, the negative flips on the identification split; its ids are image paths relative to
    ``flip_ids_root`` (None: indices into an in-memory set).
    """

    dataset: str
    kind: str  # "labelled" | "pairs"
    data_key: str
    fars: tuple[float, ...]
    n_images: int
    n_identities: int | None
    n_pairs: int | None
    versions: tuple[VersionEval, ...]
    compat: CompatReport | None = None
    identification: IdentificationReport | None = None
    cross_lfw: LfwResult | None = None
    flips: FlipReport | None = None
    flip_ids_root: str | None = None
    unreadable: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    plot: Path | None = None
    evaluation_ids: tuple[int, ...] = ()

    @property
    def compatible(self) -> dict[float, bool] | None:
        return None if self.compat is None else self.compat.compatible

    def as_dict(self) -> dict[str, Any]:
        compat = None if self.compat is None else self.compat.as_dict()
        return json_safe({
            "dataset": self.dataset, "kind": self.kind, "data_key": self.data_key, "fars": list(self.fars),
            "n_images": self.n_images, "n_identities": self.n_identities, "n_pairs": self.n_pairs,
            "versions": [v.as_dict() for v in self.versions],
            "compatibility": compat,
            "compatible": None if self.compat is None else {f"{f:g}": ok for f, ok in self.compat.compatible.items()},
            "identification": None if self.identification is None else self.identification.as_dict(),
            "flips": None if self.flips is None else self.flips.as_dict() | {"ids_root": self.flip_ids_root},
            "cross_lfw": None if self.cross_lfw is None else self.cross_lfw.as_dict(),
            "unreadable": list(self.unreadable), "missing": list(self.missing), "notes": list(self.notes),
            "plot": None if self.plot is None else str(self.plot),
            "evaluation_ids": list(self.evaluation_ids)})
