"""Scratch space: the one place under a registry root where unfinished work lives.

Every temporary folder (a checkpoint about to be registered, a gallery being built) is made under
``<registry>/tmp/`` by :func:`scratch_dir`, and its maker holds an flock on ``<folder>.lock`` for as
long as it works there. The OS drops that lock when the process dies, so :func:`leftovers` can tell
debris of a killed run (lock free) from the work of a live one (lock held) without guessing from
ages, and :func:`sweep` deletes only debris. Writers sweep before they start; ``harmony registry
verify`` lists leftovers and ``verify --repair`` removes them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCRATCH = "tmp"


def scratch_root(root: Path) -> Path:
    return Path(root) / SCRATCH


@contextmanager
def scratch_dir(root: Path, purpose: str) -> Iterator[Path]:
    """A fresh folder ``<root>/tmp/<purpose>-<random>/``, locked while the block runs and deleted
    afterwards unless the block moved it into place."""
    base = scratch_root(root)
    base.mkdir(parents=True, exist_ok=True)
    folder = base / f"{purpose}-{uuid.uuid4().hex[:12]}"
    lock = folder.with_name(folder.name + ".lock")
    fd = _locked(lock)
    try:
        folder.mkdir()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _locked(lock: Path) -> int:
    """Create and flock ``lock``; retried if a sweeper unlinked the file between open and flock
    (the lock must be on the inode that the path names, or sweepers would not see it)."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _held(lock: Path) -> bool:
    """True when a live process holds ``lock`` (we could not take it)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def leftovers(root: Path) -> list[Path]:
    """Scratch entries no live process owns: what a killed run left behind."""
    base = scratch_root(root)
    if not base.is_dir():
        return []
    out = []
    for entry in sorted(base.iterdir()):
        if entry.name.endswith(".lock"):
            if not entry.with_name(entry.name[:-5]).exists() and not _held(entry):
                out.append(entry)
            continue
        if not _held(entry.with_name(entry.name + ".lock")):
            out.append(entry)
    return out


def sweep(root: Path) -> list[Path]:
    """Delete what :func:`leftovers` finds; returns what went. Never touches live work."""
    gone = []
    for entry in leftovers(root):
        lock = entry.with_name(entry.name + ".lock")
        if lock.exists() and _held(lock):  # re-check: a new owner may have appeared meanwhile
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        gone.append(entry)
    return gone
