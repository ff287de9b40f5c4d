"""Peak memory of a benchmark worker process, read so that a parent's size does not leak in.

``ru_maxrss`` of a process started by fork + exec also holds the RSS of the pre-exec copy of its
parent (Linux records the old address space's high-water mark at exec), so a worker spawned by a
large parent reported the parent's size. ``VmHWM`` belongs to the current address space only, and
``/proc/self/clear_refs`` can reset it after a warm-up.
"""

from __future__ import annotations

import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory now (MB); the high-water mark where /proc is missing."""
    now = _status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process's address space (MB)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Start the peak afresh from the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
