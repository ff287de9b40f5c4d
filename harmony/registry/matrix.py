"""The version matrix: the measured VAL@FAR of every probe version against every gallery version.

Read from the registry's rows, one matrix per dataset (figures over different image sets do not
compare). Cell (p, g) is VAL(p -> g): probes embedded by p, gallery by g (DESIGN section 2).

- Off the diagonal, from compatibility rows: a row of ``new`` against ``old`` measured both
  VAL(new -> old) (``new_old``) and VAL(old -> new) (``old_new``); the newest measurement of a
  cell wins.
- On the diagonal, VAL(v, v): the newest evaluation of v on the dataset (``against`` none) that
  holds ``val@FAR``; else the newest compatibility row on the dataset with v on one side
  (``old_old`` / ``new_new``, the same figure over the same images).

Nothing is inferred: an unmeasured pair stays unmeasured (not through a chain v3->v2->v1, not from
the reverse direction, not from another FAR or dataset). Rows are probe kinds: a version's own
vectors (``ProbeKind("v1")``); the kind leaves room for vectors mapped through a learned
transform (``ProbeKind("v1", via="h")``, shown "v1 via h"), whose cells a transform table adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from harmony.metrics.fars import check_far

if TYPE_CHECKING:
    from harmony.registry.store import Registry


@dataclass(frozen=True)
class ProbeKind:
    """A matrix row: probes embedded by ``version`` (and mapped through transform ``via``, if any)."""

    version: str
    via: str | None = None

    @property
    def label(self) -> str:
        return self.version if self.via is None else f"{self.version} via {self.via}"


@dataclass(frozen=True)
class MatrixCell:
    """One measured VAL and the registry row it comes from (``source``: evaluation | compatibility)."""

    val: float
    source: str
    record_id: int
    created: datetime | None = None


@dataclass(frozen=True)
class VersionMatrix:
    """Measured VAL@``far`` on ``dataset``; ``cells`` maps (probe label, gallery version) to a cell,
    and a pair absent from it is unmeasured."""

    dataset: str
    far: float
    probes: tuple[ProbeKind, ...]
    galleries: tuple[str, ...]
    cells: Mapping[tuple[str, str], MatrixCell]

    def cell(self, probe: ProbeKind | str, gallery: str) -> MatrixCell | None:
        return self.cells.get((probe.label if isinstance(probe, ProbeKind) else probe, gallery))

    def values(self) -> np.ndarray:
        """``(len(probes), len(galleries))`` float64, NaN where unmeasured."""
        out = np.full((len(self.probes), len(self.galleries)), np.nan)
        for i, p in enumerate(self.probes):
            for j, g in enumerate(self.galleries):
                c = self.cell(p, g)
                if c is not None:
                    out[i, j] = c.val
        return out

    @property
    def n_cross(self) -> int:
        """Measured cells off the diagonal (a probe kind against another version's gallery)."""
        return sum(1 for (p, g) in self.cells if p != g)

    def as_dict(self) -> dict[str, Any]:
        """JSON: row labels, columns, the values (None = unmeasured) and each cell's source row."""
        vals = self.values()
        return {"dataset": self.dataset, "far": self.far, "probes": [p.label for p in self.probes],
                "galleries": list(self.galleries),
                "values": [[None if np.isnan(v) else float(v) for v in row] for row in vals],
                "cells": [{"probe": p, "gallery": g, "val": c.val, "source": c.source, "record_id": c.record_id}
                          for (p, g), c in self.cells.items()]}


def _newer(cells: dict, key: tuple[str, str], cell: MatrixCell) -> None:
    """Put ``cell`` at ``key`` unless a cell of another source (an evaluation) or a newer row of the
    same source is there."""
    old = cells.get(key)
    if old is None or (old.source == cell.source and cell.record_id > old.record_id):
        cells[key] = cell


def version_matrices(reg: Registry, far: float = 1e-3, dataset: str | None = None) -> list[VersionMatrix]:
    """One matrix per dataset with at least one compatibility row at ``far`` (only ``dataset``
    when given), versions in registration order, rows and columns the versions with a cell."""
    far = check_far(far, "--far")
    compat = [c for c in reg.all_compatibility(far) if dataset is None or c.dataset == dataset]
    key = f"val@{far:g}"
    datasets = list(dict.fromkeys(c.dataset for c in compat))
    evals = [e for e in reg.evaluations() if e["against"] is None and e["dataset"] in datasets
             and isinstance(e["metrics"].get(key), (int, float))]
    order = {v.name: i for i, v in enumerate(reg.list_versions(include_deleted=True))}
    edges = _transform_cells(reg, far, dataset)
    datasets += [ds for ds in dict.fromkeys(ds for ds, _, _ in edges) if ds not in datasets]
    out = []
    for ds in datasets:
        cells: dict[tuple[str, str], MatrixCell] = {}
        rows = [c for c in compat if c.dataset == ds]
        for c in rows:  # cross cells: both directions each row measured
            _newer(cells, (c.new, c.old), MatrixCell(float(c.table["new_old"]), "compatibility", c.id, c.created))
            _newer(cells, (c.old, c.new), MatrixCell(float(c.table["old_new"]), "compatibility", c.id, c.created))
        for e in evals:  # the diagonal from evaluations first ...
            if e["dataset"] == ds:
                _newer(cells, (e["version"], e["version"]),
                       MatrixCell(float(e["metrics"][key]), "evaluation", e["id"], e["created"]))
        for c in rows:  # ... else from the compatibility rows' own-version cells
            for v, cell in ((c.old, "old_old"), (c.new, "new_new")):
                _newer(cells, (v, v), MatrixCell(float(c.table[cell]), "compatibility", c.id, c.created))
        names = sorted({v for pair in cells for v in pair}, key=lambda v: (order.get(v, len(order)), v))
        probes = [ProbeKind(v) for v in names]
        for e_ds, kind, cell in edges:  # transform rows: "v1 via h" against the target's gallery
            if e_ds == ds:
                cells[(kind.label, cell[0])] = cell[1]
                probes.append(kind)
                if cell[0] not in names:
                    names.append(cell[0])
        out.append(VersionMatrix(ds, far, tuple(probes), tuple(names), cells))
    return out


def _transform_cells(reg: Registry, far: float, dataset: str | None) -> list[tuple[str, ProbeKind, tuple[str, MatrixCell]]]:
    """Each transform edge's measured VAL(to -> h(from)) at ``far`` (its table on the test
    identities), as a row ``from via h`` against the ``to`` gallery: over one image set the pair
    set is symmetric, so VAL(h(v1) -> v2) is the same figure."""
    out = []
    for i, t in enumerate(reg.transforms()):
        table = t.metrics.get("test") or {}
        ds = table.get("dataset")
        if ds is None or (dataset is not None and ds != dataset):
            continue
        for row in table.get("rows", []):
            if row.get("far") is not None and abs(float(row["far"]) - far) <= 1e-12 * max(far, 1.0):
                out.append((ds, ProbeKind(t.from_version, via=t.name),
                            (t.to_version, MatrixCell(float(row["val_to_mapped"]), "transform", i, t.created))))
    return out
