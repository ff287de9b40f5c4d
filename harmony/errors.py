"""Typed errors: every failure a user can cause says what is wrong and how to fix it.

The CLI prints ``error: <message> (fix: <hint>)`` on one line and exits with status 2.
"""

from __future__ import annotations


class HarmonyError(Exception):
    """Base class; ``code`` is a stable machine-readable tag, ``hint`` the fix."""

    code = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class NotFound(HarmonyError):
    code = "not_found"


class AlreadyExists(HarmonyError):
    code = "already_exists"


class InvalidInput(HarmonyError):
    """Bad user input: a malformed recipe, wrong dimensions, an unreadable file."""

    code = "invalid_input"


class IntegrityError(HarmonyError):
    """Stored data does not match its record (checksum mismatch, missing artifact)."""

    code = "integrity"


class Incompatible(HarmonyError):
    """Two embedding versions lack a passing compatibility verdict for the requested use."""

    code = "incompatible"


class Busy(HarmonyError):
    """Another process holds the registry or a gallery for writing."""

    code = "busy"


class InUse(HarmonyError):
    """Refused because something still depends on the object (a gallery, an alias)."""

    code = "in_use"


class DiskFull(HarmonyError):
    """The file system ran out of space (or quota) during a write; nothing committed was lost."""

    code = "disk_full"


_OS_HINTS = {
    "ENOSPC": "free some disk space and re-run the command (what was committed is intact)",
    "EDQUOT": "free some quota and re-run the command (what was committed is intact)",
    "EROFS": "the file system is read-only: pass a writable --registry (or $HARMONY_REGISTRY)",
    "EACCES": "check the file's permissions, or pass a --registry you may write",
    "EPERM": "check the file's permissions, or pass a --registry you may write",
    "ENAMETOOLONG": "use a shorter name (names are at most 64 characters)",
    "ENOENT": "check the path",
    "EMFILE": "raise the open-file limit (ulimit -n) and re-run",
}


def from_os_error(err: OSError) -> HarmonyError:
    """An OSError that reached the CLI, as one typed line naming the file and the fix."""
    import errno

    name = errno.errorcode.get(err.errno or 0, "")
    where = f": {err.filename}" if err.filename else ""
    text = f"{err.strerror or err}{where}"
    if name in ("ENOSPC", "EDQUOT"):
        return DiskFull(f"disk full while writing{where}", hint=_OS_HINTS[name])
    return InvalidInput(f"cannot complete the command: {text}",
                        hint=_OS_HINTS.get(name, "see the message; nothing was committed past the last step"))


def from_foreign_error(err: Exception) -> HarmonyError | None:
    """An OSError or a DuckDB error that reached the CLI as one typed line; None for anything
    else (a bug, which keeps its traceback)."""
    if isinstance(err, OSError):
        return from_os_error(err)
    if type(err).__module__.split(".")[0].lstrip("_") != "duckdb":  # DuckDB's errors live in _duckdb
        return None
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "No space left" in str(err) or "disk" in str(err).lower():
        return DiskFull(f"registry write failed: {first}", hint="free some disk space and re-run")
    return HarmonyError(f"registry operation failed: {first}",
                        hint="re-run; `harmony registry verify` checks the registry")
