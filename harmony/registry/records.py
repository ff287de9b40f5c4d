"""The registry's record types (frozen dataclasses) and the small rules they obey.

Rows come out of DuckDB as tuples; the ``*_from_row`` functions turn them into these records,
decoding the JSON columns into dicts, so no caller ever sees a JSON string.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any, Mapping

from harmony.errors import InvalidInput

NAME_MAX = 64  # names become folder and file names: well under NAME_MAX of any file system
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (NAME_MAX - 1))
KINDS = ("base", "harmonic", "external")

COMPAT_CELLS = ("old_old", "new_new", "new_old", "old_new")


def check_name(name: str, what: str = "version") -> str:
    """Names become folder names and CLI arguments, so keep them to a safe alphabet."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid {what} name {name if len(str(name)) <= 80 else str(name)[:77] + '...'!r}: use letters, digits, "
            f"'.', '_' or '-', starting with a letter or digit, at most {NAME_MAX} characters",
            hint=f"choose a {what} name such as v2-harmonic",
        )
    return name


def _plain(value: Any) -> Any:
    """Make numpy scalars/arrays, paths and non-finite floats JSON-safe (NaN/inf become null)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array or scalar, torch tensor
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidInput(f"cannot store {type(value).__name__} value {value!r} as JSON",
                       hint="pass numbers, strings, lists and dicts")


def to_json(value: Mapping[str, Any] | None) -> str | None:
    """Serialise a dict column; None stays SQL NULL."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInput(f"expected a dict, got {type(value).__name__}", hint="pass a dict of plain values")
    return json.dumps(_plain(value), sort_keys=True, allow_nan=False)


def from_json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def utc(ts: datetime | None) -> datetime | None:
    """Stored timestamps are naive UTC; hand them out timezone-aware."""
    return ts.replace(tzinfo=timezone.utc) if ts is not None and ts.tzinfo is None else ts


@dataclass(frozen=True)
class Version:
    """One immutable embedding version. ``artifact`` is relative to the registry root."""

    name: str
    kind: str
    backbone: str
    dim: int
    recipe: str
    parent: str | None
    artifact: str
    sha256: str
    size_bytes: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    created_by: str = ""
    status: str = "ready"


def columns_of(record: type) -> str:
    """The SQL column list of a table whose columns are named (and ordered) like ``record``'s fields."""
    return ", ".join(f.name for f in fields(record))


VERSION_COLUMNS = columns_of(Version)


def version_from_row(row: tuple) -> Version:
    (name, kind, backbone, dim, recipe, parent, artifact, sha, size, metrics, meta, created, by,
     status) = row
    return Version(name, kind, backbone, int(dim), recipe or "", parent, artifact, sha,
                   None if size is None else int(size), from_json(metrics), from_json(meta),
                   utc(created), by or "", status)


@dataclass(frozen=True)
class TransformEdge:
    """A learned map h from ``from_version``'s embedding space into ``to_version``'s (FCT without
    side-information), its artifact (relative to the registry root) and ``metrics``: the table
    measured on held-out identities when it was trained (``harmony.training.transform``)."""

    name: str
    from_version: str
    to_version: str
    in_dim: int
    out_dim: int
    artifact: str
    sha256: str
    size_bytes: int | None
    recipe: str
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    created_by: str = ""
    status: str = "ready"


TRANSFORM_COLUMNS = columns_of(TransformEdge)


def transform_from_row(row: tuple) -> TransformEdge:
    (name, src, dst, in_dim, out_dim, artifact, sha, size, recipe, metrics, meta, created, by, status) = row
    return TransformEdge(name, src, dst, int(in_dim), int(out_dim), artifact, sha, None if size is None else int(size),
                         recipe or "", from_json(metrics), from_json(meta), utc(created), by or "", status)


@dataclass(frozen=True)
class Compat:
    """One compatibility measurement of ``new`` against ``old`` at one FAR on one dataset.

    ``table`` holds the 2x2 VAL table (old_old, new_new, new_old, old_new) plus any extra keys
    the caller stored (e.g. thresholds)."""

    id: int
    new: str
    old: str
    dataset: str
    far: float
    table: dict[str, Any]
    compatible: bool
    created: datetime | None = None


COMPAT_COLUMNS = ("id, new_version, old_version, dataset, far, val_old_old, val_new_new, val_new_old, "
                  "val_old_new, detail, compatible, created")


def compat_from_row(row: tuple) -> Compat:
    cid, new, old, dataset, far, oo, nn, no, on, detail, ok, created = row
    table = {"old_old": oo, "new_new": nn, "new_old": no, "old_new": on, **from_json(detail)}
    return Compat(int(cid), new, old, dataset, float(far), table, bool(ok), utc(created))


@dataclass(frozen=True)
class Gallery:
    """A named gallery: which version its vectors come from, where its files live, its FAR."""

    name: str
    version: str
    path: str
    far: float
    codec: str
    meta: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None


GALLERY_COLUMNS = columns_of(Gallery)


def gallery_from_row(row: tuple) -> Gallery:
    name, version, path, far, codec, meta, created, updated = row
    return Gallery(name, version, path, float(far), codec, from_json(meta), utc(created), utc(updated))


@dataclass(frozen=True)
class Migration:
    """A gallery migration from ``source`` to ``target``; ``cursor`` counts items backfilled."""

    id: int
    gallery: str
    source: str
    target: str
    state: str
    plan: dict[str, Any] = field(default_factory=dict)
    cursor: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None


MIGRATION_COLUMNS = columns_of(Migration)


def migration_from_row(row: tuple) -> Migration:
    mid, gallery, source, target, state, plan, cursor, counts, report, created, updated = row
    return Migration(int(mid), gallery, source, target, state, from_json(plan),
                     None if cursor is None else int(cursor), from_json(counts), from_json(report),
                     utc(created), utc(updated))


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing one artifact: ok | missing | altered | orphan."""

    name: str
    status: str
    path: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"
