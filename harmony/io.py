"""Crash-safe file writes: temp file in the same folder, fsync, os.replace, fsync the folder.

The one home of harmony's file-writing primitives (galleries, backfill checkpoints, the
evaluation cache, plots, ``harmony data synth``). A reader sees either the old file or the new
one, never a torn write, whatever kill -9 or a power cut interrupts. A full disk raises
:class:`~harmony.errors.DiskFull` (a HarmonyError) after removing the temp file, so the last
committed state stays intact and the operation can simply be re-run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from harmony.errors import Busy, DiskFull

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

__all__ = ["DiskFull", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "atomic_writer", "file_lock",
           "fsync_dir", "is_temp_name", "read_json"]


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or unlink inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` atomically when the block exits without error.

    The parent folder is created if missing; on any error the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        _unlink_quietly(tmp)
        if e.errno in _NO_SPACE:
            raise DiskFull(
                f"disk full while writing {path}",
                hint=f"free space under {path.parent} and re-run: the last committed state is intact",
            ) from e
        raise
    except BaseException:
        _unlink_quietly(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Sorted keys, one-space indent, trailing newline: stable bytes for the same object."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def is_temp_name(name: str) -> bool:
    """True for the temp files :func:`atomic_writer` leaves behind when a process is killed."""
    return name.startswith(".") and ".tmp-" in name


@contextmanager
def file_lock(path: str | Path, timeout: float, busy: str, hint: str) -> Iterator[None]:
    """Exclusive flock on ``path`` (created if absent), waiting up to ``timeout`` seconds, then
    Busy(busy, hint). The OS releases it when the holder dies, so kill -9 leaves no stale lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Busy(busy, hint=hint) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
