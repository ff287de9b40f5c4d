"""Artifact files: checksums and crash-safe placement under ``root/artifacts/<name>/``.

An artifact is written to a temp file in its final folder, fsynced, and only renamed into place
(then the folder fsynced) while the registry row is being committed. A kill -9 at any moment
leaves either nothing, or a folder with no row (an orphan that ``verify`` reports and that the
next registration of the same name replaces).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from harmony.errors import InvalidInput
from harmony.io import fsync_dir

TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def stage_copy(src: Path, folder: Path) -> tuple[Path, str, int]:
    """Copy ``src`` to a temp file in ``folder``, hashing while copying and fsyncing at the end.

    Returns (temp path, sha256, size in bytes). The caller renames it into place with ``place``
    or deletes it."""
    src = Path(src)
    if not src.is_file():
        raise InvalidInput(f"artifact {src} does not exist or is not a file",
                           hint="pass the path of the checkpoint file to register")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
    h, size = hashlib.sha256(), 0
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                h.update(chunk)
                fout.write(chunk)
                size += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), h.hexdigest(), size


def place(tmp: Path, final: Path) -> None:
    """Clear leftovers of earlier failed attempts from the folder, then rename ``tmp`` into place."""
    folder = final.parent
    for entry in folder.iterdir():
        if entry != tmp and entry != final:
            remove_path(entry)
    os.replace(tmp, final)
    fsync_dir(folder)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_folder(folder: Path) -> None:
    """Delete a version's artifact folder and make the deletion durable."""
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        fsync_dir(folder.parent)
