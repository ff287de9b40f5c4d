"""Checking artifacts against their recorded sha256, and exporting the catalog.

``verify`` is how a crash is noticed: a kill -9 during registration leaves at most an artifact
folder (or a temp file) with no row, reported as ``orphan``; a changed or lost file of a
registered version is ``altered`` or ``missing``. ``verify_gallery`` does the same for each file
of a gallery against the checksums its last commit recorded.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable

import duckdb

from harmony.errors import InvalidInput
from harmony.registry.artifacts import sha256_file
from harmony.registry.records import Gallery, TransformEdge, Version, VerifyResult, utc

EXPORT_FORMATS = ("parquet", "json")


def verify_file(root: Path, record: Version | TransformEdge) -> VerifyResult:
    """A record's artifact against its recorded sha256: ok | missing | altered."""
    path = root / record.artifact
    if not path.is_file():
        return VerifyResult(record.name, "missing", str(path), "artifact file not found")
    actual = sha256_file(path)
    if actual != record.sha256:
        return VerifyResult(record.name, "altered", str(path),
                            f"sha256 {actual[:12]}... != recorded {record.sha256[:12]}...")
    return VerifyResult(record.name, "ok", str(path))


def verify_version(root: Path, v: Version) -> VerifyResult:
    checked = verify_file(root, v)
    if not checked.ok:
        return checked
    path = root / v.artifact
    if v.meta.get("adapter") == "dlib":  # the JSON artifact names model files outside the store
        from harmony.registry.manifests import dlib_model_problems

        problems = dlib_model_problems(path)
        if problems:
            status = "missing" if any(p.startswith("missing") for p in problems) else "altered"
            return VerifyResult(v.name, status, str(path), "; ".join(problems))
    return VerifyResult(v.name, "ok", str(path))


def verify_gallery(root: Path, g: Gallery) -> list[VerifyResult]:
    """One row per file of a registered gallery: gallery.json and each file it names, checked
    against the sizes and sha256 recorded at its last commit (ok | missing | altered |
    unverified, the last for a gallery of an older harmony, which recorded none)."""
    from harmony.gallery.checksums import check_folder  # the one module that knows that record

    folder = Path(g.path) if Path(g.path).is_absolute() else root / g.path
    if not folder.is_dir():
        return [VerifyResult(g.name, "missing", str(folder),
                             f"gallery folder not found (fix: `harmony gallery rm {g.name}` removes its row)")]
    return [VerifyResult(g.name, status, str(folder / name), detail) for name, status, detail in check_folder(folder)]


def orphans(root: Path, records: Iterable[Version | TransformEdge], folder: str = "artifacts",
            what: str = "version") -> list[VerifyResult]:
    """Folders under ``root/folder`` with no ready record, and stray files inside a record's folder."""
    expected = {v.name: (root / v.artifact).name for v in records}
    found: list[VerifyResult] = []
    base = root / folder
    if not base.is_dir():
        return found
    for entry in sorted(base.iterdir()):
        if entry.name not in expected or not entry.is_dir():
            found.append(VerifyResult(entry.name, "orphan", str(entry),
                                      f"no registered {what} (left by an interrupted add or remove)"))
            continue
        for item in sorted(entry.iterdir()):
            if item.name != expected[entry.name]:
                found.append(VerifyResult(entry.name, "orphan", str(item), "stray file beside the artifact"))
    return found


GRACE_S = 60.0  # an orphan younger than this may be a concurrent add between its copy and its commit


def leftovers(root: Path, gallery_paths: Iterable[str]) -> list[VerifyResult]:
    """Debris of killed runs outside the artifact folders: unowned scratch entries (see
    harmony.scratch), half-built gallery folders, gallery folders no registry row names."""
    from harmony.scratch import leftovers as scratch_leftovers

    found = [VerifyResult(p.name, "leftover", str(p), "temporary files of a killed run")
             for p in scratch_leftovers(root)]
    base = root / "galleries"
    known = {Path(p).name for p in gallery_paths}
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        if ".building-" in entry.name:
            found.append(VerifyResult(entry.name, "leftover", str(entry), "a gallery build that was killed"))
        elif entry.is_dir() and entry.name not in known:
            found.append(VerifyResult(entry.name, "orphan", str(entry), "gallery folder with no registry row"))
    return found


def repair(root: Path, problems: Iterable[VerifyResult], grace_s: float = GRACE_S) -> list[VerifyResult]:
    """Delete the leftovers and orphans among ``problems`` (never a registered artifact or a live
    run's scratch folder); returns what was removed."""
    import shutil
    import time

    from harmony.scratch import sweep

    swept = {str(p) for p in sweep(root)}
    removed = []
    for r in problems:
        path = Path(r.path)
        if r.status not in ("orphan", "leftover"):
            continue
        if str(path) in swept:
            removed.append(r)
            continue
        try:
            if time.time() - path.stat().st_mtime < grace_s:
                continue
        except FileNotFoundError:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(r)
    return removed


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                       "ORDER BY table_name").fetchall()
    return [r[0] for r in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return value.isoformat() if isinstance(value, date) else value


def export(con: duckdb.DuckDBPyConnection, out_dir: Path, format: str) -> list[Path]:
    """One file per table: ``<table>.parquet`` via DuckDB COPY, or ``<table>.json`` (a list of rows,
    JSON columns nested, timestamps ISO 8601 UTC)."""
    if format not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {format!r}", hint=f"use one of {', '.join(EXPORT_FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for table in _tables(con):
        path = out_dir / f"{table}.{format}"
        if format == "parquet":
            quoted = str(path).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM \"{table}\" ORDER BY ALL) TO '{quoted}' (FORMAT parquet)")
        else:
            described = con.execute(f'DESCRIBE "{table}"').fetchall()
            names = [d[0] for d in described]
            json_cols = {d[0] for d in described if d[1] == "JSON"}
            rows = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
            records = [{n: (json.loads(v) if n in json_cols and v is not None else _plain(v))
                        for n, v in zip(names, row)} for row in rows]
            path.write_text(json.dumps(records, indent=1, sort_keys=False) + "\n")
        written.append(path)
    return written
