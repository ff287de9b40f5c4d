"""Checksums of a gallery's files: what a commit records in ``gallery.json`` and a load checks.

A commit records ``files``: ``{name: {"sha256": hex, "size": bytes}}`` for the item table and every
index it names, and seals the meta itself with ``meta_sha256``, the sha256 of its canonical JSON
(sorted keys, no spaces) without that key. Loading a file compares size, then sha256; the hash is
cached by ``(path, size, mtime_ns)``, so a repeated load in one process (and a load right after
the commit that wrote the file) does not read it again. A gallery written by an older harmony has
neither key: it opens unchecked and ``harmony registry verify`` calls it ``unverified``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from harmony.errors import IntegrityError
from harmony.registry.artifacts import sha256_file

FILES = "files"
SEAL = "meta_sha256"

_hashes: dict[tuple[str, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)  # FileNotFoundError propagates: the caller decides what a missing file means
    return str(Path(path).absolute()), st.st_size, st.st_mtime_ns


def file_sha256(path: Path) -> tuple[int, str]:
    """``(size, sha256)`` of a file, from the cache while its size and mtime are unchanged."""
    key = _key(path)
    if key not in _hashes:
        _hashes[key] = sha256_file(path)
    return key[1], _hashes[key]


def remember(path: Path, sha256: str) -> int:
    """Cache the hash of a file just written from bytes we hashed; returns its size."""
    key = _key(path)
    _hashes[key] = sha256
    return key[1]


def record(path: Path, data: bytes | None = None) -> dict[str, Any]:
    """The ``files`` entry of a file just written (``data``: its bytes, when at hand)."""
    if data is not None:
        sha = hashlib.sha256(data).hexdigest()
        return {"sha256": sha, "size": remember(path, sha)}
    size, sha = file_sha256(path)
    return {"sha256": sha, "size": size}


def _meta_hash(meta: Mapping[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its own checksum (what a commit writes as gallery.json)."""
    return {**meta, SEAL: _meta_hash(meta)}


def fix_hint(folder: Path) -> str:
    name = folder.name
    return (f"rebuild the gallery from its images (`harmony gallery rm {name} --force`, then `harmony gallery "
            f"build --name {name} ...`), or restore the folder from a backup; a migration's index: `harmony "
            f"migrate rollback --gallery {name}` and re-run the migration")


def meta_status(meta: Mapping[str, Any]) -> tuple[str, str]:
    """``(ok | altered | unverified, detail)`` of a loaded gallery.json against its seal."""
    if SEAL not in meta:
        return "unverified", "written by an older harmony: no checksums recorded (the next change records them)"
    actual = _meta_hash(meta)
    if actual != meta[SEAL]:
        return "altered", f"content sha256 {actual[:12]}... != sealed {str(meta[SEAL])[:12]}..."
    return "ok", ""


def file_status(folder: Path, name: str, meta: Mapping[str, Any]) -> tuple[str, str]:
    """``(ok | missing | altered | unverified, detail)`` of one file the meta names."""
    want = (meta.get(FILES) or {}).get(name)
    path = Path(folder) / name
    if not path.is_file():
        return "missing", "file not found"
    if want is None:
        return "unverified", "no checksum recorded (written by an older harmony)"
    size = os.stat(path).st_size
    if size != want.get("size"):
        return "altered", f"size {size} != recorded {want.get('size')}"
    _, sha = file_sha256(path)
    if sha != want.get("sha256"):
        return "altered", f"sha256 {sha[:12]}... != recorded {str(want.get('sha256'))[:12]}..."
    return "ok", ""


def check_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    """IntegrityError when gallery.json does not match its seal."""
    status, detail = meta_status(meta)
    if status == "altered":
        raise IntegrityError(f"gallery {Path(folder).name}: {Path(folder) / 'gallery.json'} was altered ({detail})",
                             hint=fix_hint(Path(folder)))


def check_file(folder: Path, name: str, meta: Mapping[str, Any]) -> None:
    """IntegrityError when a recorded file's size or sha256 differs; FileNotFoundError when it
    is gone (a writer may have replaced the generation: the caller retries)."""
    want = (meta.get(FILES) or {}).get(name)
    if want is None:
        return  # an older gallery: nothing to compare with
    path = Path(folder) / name
    os.stat(path)
    status, detail = file_status(folder, name, meta)
    if status == "altered":
        raise IntegrityError(f"gallery {Path(folder).name}: {path} was altered ({detail})", hint=fix_hint(Path(folder)))


def live_files(meta: Mapping[str, Any]) -> list[str]:
    """The data files one generation consists of: the item table and every index."""
    names = [meta["items"]] if meta.get("items") else []
    return names + sorted((meta.get("indexes") or {}).values())


def check_folder(folder: Path) -> list[tuple[str, str, str]]:
    """``(file, status, detail)`` for gallery.json and every file it names (for ``verify``)."""
    folder = Path(folder)
    meta_path = folder / "gallery.json"
    if not meta_path.is_file():
        return [("gallery.json", "missing", "file not found")]
    try:
        meta = json.loads(meta_path.read_bytes())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        return [("gallery.json", "altered", f"unreadable: {e}")]
    rows = [("gallery.json", *meta_status(meta))]
    return rows + [(name, *file_status(folder, name, meta)) for name in live_files(meta)]
