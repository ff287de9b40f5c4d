"""Moved to :mod:`harmony.io` (the one home of crash-safe writes); kept so old imports still work."""

from __future__ import annotations

from harmony.errors import DiskFull
from harmony.io import (atomic_write_bytes, atomic_write_json, atomic_writer, file_lock, fsync_dir, is_temp_name,
                        read_json)

write_bytes_atomic = atomic_write_bytes
write_json_atomic = atomic_write_json

__all__ = ["DiskFull", "atomic_writer", "file_lock", "fsync_dir", "is_temp_name", "read_json", "write_bytes_atomic",
           "write_json_atomic"]
