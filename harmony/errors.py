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
