"""Evaluations and compatibility measurements: append-only facts about versions.

A compatibility row is one measurement of ``new`` against ``old`` at one FAR on one dataset: the
2x2 VAL table of DESIGN section 2 and the verdict the caller derived from it. Re-measuring appends
a row; readers take the newest. Verdicts are never inferred: not from the reverse direction, not
through a chain (v3~v2 and v2~v1 say nothing about v3~v1).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping

import duckdb
import numpy as np

from harmony.errors import InvalidInput
from harmony.metrics.fars import check_far
from harmony.registry.lookup import resolve_in as _resolve
from harmony.registry.records import (
    COMPAT_CELLS,
    COMPAT_COLUMNS,
    Compat,
    compat_from_row,
    from_json,
    to_json,
    utc,
)
from harmony.registry.schema import utcnow

FAR_RTOL = 1e-9


def record_evaluation(con: duckdb.DuckDBPyConnection, version: str, dataset: str,
                      metrics: Mapping[str, Any], against: str | None) -> int:
    """Append one evaluation of ``version`` on ``dataset`` (``against``: the other version of a
    cross-version figure); returns its id."""
    if not dataset:
        raise InvalidInput("evaluation needs a dataset name", hint="pass e.g. dataset='synthetic-test'")
    name = _resolve(con, version)
    other = _resolve(con, against) if against is not None else None
    row = con.execute(
        "INSERT INTO evaluations (version, dataset, against, metrics, created) VALUES (?, ?, ?, ?, ?) RETURNING id",
        [name, dataset, other, to_json(metrics) or "{}", utcnow()]).fetchone()
    return int(row[0])


def evaluations(con: duckdb.DuckDBPyConnection, version: str | None) -> list[dict[str, Any]]:
    sql = "SELECT id, version, dataset, against, metrics, created FROM evaluations"
    params: list[Any] = []
    if version is not None:
        sql += " WHERE version = ?"
        params.append(_resolve(con, version))
    rows = con.execute(sql + " ORDER BY id", params).fetchall()
    return [{"id": int(i), "version": v, "dataset": d, "against": a, "metrics": from_json(m), "created": utc(c)}
            for i, v, d, a, m, c in rows]


def record_compatibility(con: duckdb.DuckDBPyConnection, new: str, old: str, dataset: str, far: float,
                         table: Mapping[str, Any], compatible: bool) -> None:
    """Append one measurement; ``table`` needs old_old, new_new, new_old, old_new (VAL in [0, 1])."""
    far = check_far(far)
    missing = [k for k in COMPAT_CELLS if k not in table]
    if missing:
        raise InvalidInput(f"compatibility table lacks {', '.join(missing)}",
                           hint=f"pass all of {', '.join(COMPAT_CELLS)}")
    cells = []
    for k in COMPAT_CELLS:
        value = table[k]
        if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= float(value) <= 1.0) \
                or math.isnan(float(value)):
            raise InvalidInput(f"compatibility table {k}={value!r} is not a VAL in [0, 1]",
                               hint="pass the measured VAL@FAR figures")
        cells.append(float(value))
    if not isinstance(compatible, (bool, np.bool_)):
        raise InvalidInput(f"compatible must be a bool, got {compatible!r}", hint="pass True or False")
    new_name, old_name = _resolve(con, new), _resolve(con, old)
    if new_name == old_name:
        raise InvalidInput(f"cannot measure '{new_name}' against itself", hint="pass two different versions")
    detail = {k: v for k, v in table.items() if k not in COMPAT_CELLS}
    con.execute(
        "INSERT INTO compatibility (new_version, old_version, dataset, far, val_old_old, val_new_new, "
        "val_new_old, val_old_new, detail, compatible, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [new_name, old_name, dataset, far, *cells, to_json(detail) if detail else None, bool(compatible),
         utcnow()])


def compatibility(con: duckdb.DuckDBPyConnection, new: str, old: str) -> list[Compat]:
    """The newest measurement per (dataset, FAR) of ``new`` against ``old``, sorted by FAR."""
    rows = con.execute(
        f"SELECT {COMPAT_COLUMNS} FROM compatibility WHERE new_version = ? AND old_version = ? "
        "QUALIFY row_number() OVER (PARTITION BY dataset, far ORDER BY id DESC) = 1 ORDER BY far, dataset",
        [_resolve(con, new), _resolve(con, old)]).fetchall()
    return [compat_from_row(r) for r in rows]


def newest_compatibility(con: duckdb.DuckDBPyConnection, far: float | None = None) -> list[Compat]:
    """The newest measurement per (new, old, dataset, FAR) of every pair, optionally at one FAR
    (within FAR_RTOL), oldest first; the version matrix reads these."""
    where, params = "", []
    if far is not None:
        far = check_far(far)
        where, params = "WHERE abs(far - ?) <= ? ", [far, FAR_RTOL * far]
    rows = con.execute(
        f"SELECT {COMPAT_COLUMNS} FROM compatibility {where}"
        "QUALIFY row_number() OVER (PARTITION BY new_version, old_version, dataset, far ORDER BY id DESC) = 1 "
        "ORDER BY id", params).fetchall()
    return [compat_from_row(r) for r in rows]
