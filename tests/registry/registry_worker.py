"""A separate process for the concurrency and crash tests (run as a script, not collected).

    python registry_worker.py add-loop ROOT PREFIX COUNT SIZE TIMEOUT   # prints "ok NAME" / "busy NAME"
    python registry_worker.py hold-lock ROOT SECONDS                    # prints "locked", holds the writer lock
    python registry_worker.py kill-at POINT ROOT NAME SIZE              # SIGKILLs itself at POINT of add_version
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import zlib
from pathlib import Path

import duckdb

from harmony.errors import Busy
from harmony.registry import Registry, artifacts


def _artifact(size: int, seed: int) -> Path:
    fd, path = tempfile.mkstemp(suffix=".pt")
    with os.fdopen(fd, "wb") as f:
        f.write(seed.to_bytes(8, "little") * (size // 8 + 1))
    return Path(path)


def add_loop(root: str, prefix: str, count: int, size: int, timeout: float) -> None:
    reg = Registry.open(root, timeout_s=timeout)
    for i in range(count):
        name = f"{prefix}-{i}"
        src = _artifact(size, zlib.crc32(name.encode()))
        try:
            reg.add_version(name, kind="base", artifact=src, backbone="tiny", dim=16, command="worker")
            print(f"ok {name}", flush=True)
        except Busy:
            print(f"busy {name}", flush=True)
        finally:
            src.unlink()


def hold_lock(root: str, seconds: float) -> None:
    import time

    con = duckdb.connect(str(Path(root) / "harmony.duckdb"))
    print("locked", flush=True)
    time.sleep(seconds)
    con.close()


def kill_at(point: str, root: str, name: str, size: int) -> None:
    reg = Registry.open(root)
    original = getattr(artifacts, point)

    def then_die(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(artifacts, point, then_die)
    reg.add_version(name, kind="base", artifact=_artifact(size, 7), backbone="tiny", dim=16)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "add-loop":
        add_loop(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
    elif cmd == "hold-lock":
        hold_lock(args[0], float(args[1]))
    elif cmd == "kill-at":
        kill_at(args[0], args[1], args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")
