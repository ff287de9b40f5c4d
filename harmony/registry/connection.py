"""Short-lived DuckDB connections with lock retry.

DuckDB lets one process write a database file at a time, and a read-only connection cannot
coexist with another process's writer either. So every registry operation opens its own
connection, does its work in one transaction and closes it; when another process holds the file
we retry with jittered exponential backoff until ``timeout_s``, then raise ``Busy``.

Inside one process, a lock per database file serialises operations: two connections of one
process share one DuckDB instance, which refuses mixed read-only/read-write configurations and
would turn concurrent writers into transaction conflicts.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from harmony.errors import Busy

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.RLock())


def _is_lock_error(err: Exception) -> bool:
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text


# A user's SQL runs on a connection that can reach nothing but the catalog: no file reads or writes
# (COPY, read_text, ATTACH, EXPORT), no extension installs or loads, and a locked configuration
# so the statement cannot switch any of that back on.
SANDBOX_CONFIG = {"enable_external_access": False, "autoinstall_known_extensions": False,
                  "autoload_known_extensions": False, "lock_configuration": True}


def connect(path: Path, *, read_only: bool, timeout_s: float,
            config: dict[str, object] | None = None) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while another process holds its lock; Busy after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise Busy("registry is busy: another harmony process is writing",
                           hint=f"wait for it to finish and retry, or raise the timeout ({timeout_s:g} s); "
                                f"database {path}") from None
            time.sleep(min(left, delay * random.uniform(0.5, 1.5)))
            delay = min(delay * 2, 0.25)


@contextmanager
def reading(path: Path, timeout_s: float, *, sandbox: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one query or a few; closed on exit. ``sandbox``: for SQL
    someone typed, the connection sees the catalog tables and nothing else (SANDBOX_CONFIG)."""
    with _process_lock(path):
        con = connect(path, read_only=True, timeout_s=timeout_s, config=SANDBOX_CONFIG if sandbox else None)
        try:
            yield con
        finally:
            con.close()


@contextmanager
def writing(path: Path, timeout_s: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-write transaction: committed when the block ends, rolled back if it raises."""
    with _process_lock(path):
        con = connect(path, read_only=False, timeout_s=timeout_s)
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()
