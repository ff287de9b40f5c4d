"""What a folder alignment did, photo by photo: ``CROPS/align-report.json``, and the resume rule.

The report records the AlignSpec used (and ``all_faces``), counts, and one entry per photo: its
path relative to RAW, status (``aligned``, ``no_face``, ``unreadable``, ``error``), the number of
faces detected, the crops written (relative to CROPS), the reason when there is no crop, and the
photo's size and mtime. A later run skips a photo when its entry has the same spec id, the photo
is unchanged (same bytes and mtime) and, for an aligned one, every crop still exists and is newer
than the photo; anything else is aligned again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harmony.align.spec import AlignSpec
from harmony.io import atomic_write_json, read_json

REPORT_NAME = "align-report.json"
FORMAT = 1
STATUSES = ("aligned", "no_face", "unreadable", "error")
NO_FACE = "no face found"


def spec_id(spec: AlignSpec, all_faces: bool) -> str:
    """12 hex digits naming what a crop depends on: the spec and whether every face is written."""
    raw = json.dumps({"spec": spec.as_dict(), "all_faces": bool(all_faces)}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PhotoResult:
    """One photo's outcome. ``path`` is relative to RAW, ``crops`` relative to CROPS (posix)."""

    path: str
    status: str
    faces: int = 0
    crops: tuple[str, ...] = ()
    reason: str | None = None
    bytes: int = 0
    mtime_ns: int = 0
    spec_id: str = ""
    resumed: bool = False  # skipped this run: done by an earlier one

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "faces": self.faces, "crops": list(self.crops),
                "reason": self.reason, "bytes": self.bytes, "mtime_ns": self.mtime_ns, "spec_id": self.spec_id}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PhotoResult":
        return cls(str(d["path"]), str(d["status"]), int(d.get("faces", 0)), tuple(d.get("crops", ())),
                   d.get("reason"), int(d.get("bytes", 0)), int(d.get("mtime_ns", 0)), str(d.get("spec_id", "")))


@dataclass(frozen=True)
class AlignReport:
    """A folder run: RAW, CROPS, the spec, and every photo's result (sorted by path)."""

    raw: Path
    out: Path
    spec: AlignSpec
    all_faces: bool
    photos: tuple[PhotoResult, ...]

    @property
    def counts(self) -> dict[str, int]:
        c = {"photos": len(self.photos), "aligned_now": 0, "resumed": 0, "crops": 0,
             **{s: 0 for s in STATUSES}}
        for p in self.photos:
            c[p.status] += 1
            c["crops"] += len(p.crops)
            c["resumed" if p.resumed else "aligned_now"] += p.status == "aligned"
        return c

    @property
    def problems(self) -> tuple[PhotoResult, ...]:
        """Photos without a crop, with their reasons."""
        return tuple(p for p in self.photos if p.status != "aligned")

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "raw": str(self.raw), "spec": self.spec.as_dict(), "spec_name": self.spec.name,
                "all_faces": self.all_faces, "spec_id": spec_id(self.spec, self.all_faces), "counts": self.counts,
                "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
                "photos": [p.as_dict() for p in self.photos]}

    def write(self) -> Path:
        path = self.out / REPORT_NAME
        atomic_write_json(path, self.as_dict())
        return path


def previous_entries(out: Path) -> dict[str, PhotoResult]:
    """Every entry of an earlier run's report, whatever its spec (empty: none or unreadable);
    :func:`still_done` decides which still count, the others name crops to replace or remove."""
    try:
        data = read_json(out / REPORT_NAME)
        if data.get("format") != FORMAT:
            return {}
        entries = (PhotoResult.from_dict(d) for d in data.get("photos", ()))
        return {e.path: e for e in entries if e.status in STATUSES}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def still_done(entry: PhotoResult | None, sid: str, stat: os.stat_result, out: Path) -> PhotoResult | None:
    """``entry`` marked resumed when it is still valid for spec id ``sid`` and a photo with this
    ``stat`` (the rule above), else None."""
    if entry is None or entry.spec_id != sid or entry.bytes != stat.st_size or entry.mtime_ns != stat.st_mtime_ns:
        return None
    if entry.status == "error":  # a crash or a transient failure: try again
        return None
    for crop in entry.crops:
        try:
            if (out / crop).stat().st_mtime_ns < stat.st_mtime_ns:
                return None
        except OSError:
            return None
    if entry.status == "aligned" and not entry.crops:
        return None
    return replace(entry, resumed=True)
