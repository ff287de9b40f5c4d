"""harmony.io, the one home of crash-safe writes: old file or new file, never half, never a temp left."""

from __future__ import annotations

import errno
import os

import pytest

import harmony.io as hio
from harmony.errors import DiskFull, HarmonyError


def test_write_creates_folders_and_replaces_whole_files(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    hio.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    assert hio.read_json(target) == {"a": [1, 2], "b": 1}
    hio.atomic_write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(target.parent) == ["x.json"]


def test_a_failed_block_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "x.bin"
    hio.atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with hio.atomic_writer(target) as f:
            f.write(b"half of the new")
            assert [p for p in os.listdir(tmp_path) if hio.is_temp_name(p)]  # the temp exists meanwhile
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


def test_no_space_is_disk_full_with_a_hint(tmp_path, monkeypatch):
    target = tmp_path / "x.bin"
    hio.atomic_write_bytes(target, b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hio.os, "fsync", full)
    with pytest.raises(DiskFull, match="disk full") as e:
        hio.atomic_write_bytes(target, b"new")
    assert isinstance(e.value, HarmonyError) and "free space" in e.value.hint
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.bin"]


def test_io_is_the_one_home_of_crash_safe_writes():
    from harmony.gallery import store
    from harmony.migration import checkpoint

    assert hio.DiskFull is DiskFull
    assert store.atomic_write_json is hio.atomic_write_json and checkpoint.atomic_writer is hio.atomic_writer
