"""Real processes against one registry: concurrent writers, a held lock, and kill -9 mid-add."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harmony.errors import Busy
from harmony.registry import Registry, artifacts

WORKER = Path(__file__).with_name("registry_worker.py")


def _spawn(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _statuses(reg: Registry) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in reg.verify():
        out.setdefault(r.status, []).append(r.name)
    return {k: sorted(v) for k, v in out.items()}


def test_concurrent_writers(tmp_path):
    root = tmp_path / "registry"
    Registry.open(root)
    procs = [_spawn("add-loop", root, prefix, 10, 64_000, 20) for prefix in ("a", "b")]
    reg = Registry.open(root)
    seen = 0
    while any(p.poll() is None for p in procs):  # a third process reads while they write
        try:
            seen = max(seen, len(reg.list_versions()))
        except Busy:
            pass
        time.sleep(0.02)
    lines = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        lines += out.split("\n")
    ok = {line.split()[1] for line in lines if line.startswith("ok ")}
    busy = {line.split()[1] for line in lines if line.startswith("busy ")}
    assert len(ok) + len(busy) == 20
    assert {v.name for v in reg.list_versions()} == ok
    assert _statuses(reg) == {"ok": sorted(ok)}
    assert len(ok) >= 16, f"too many Busy with a 20 s timeout: {sorted(busy)}"


def test_busy_when_another_process_holds_the_lock(tmp_path, monkeypatch, make_ckpt):
    reg = Registry.open(tmp_path / "registry", timeout_s=0.5)
    holder: list[subprocess.Popen] = []
    staged = artifacts.stage_copy

    def stage_then_lock(src, folder):
        result = staged(src, folder)
        holder.append(_spawn("hold-lock", reg.root, 5))
        assert holder[0].stdout.readline().strip() == "locked"
        return result

    monkeypatch.setattr(artifacts, "stage_copy", stage_then_lock)
    with pytest.raises(Busy, match="registry is busy: another harmony process is writing") as err:
        reg.add_version("v1", kind="base", artifact=make_ckpt(), backbone="tiny", dim=16)
    assert "timeout" in err.value.hint
    assert not (reg.root / "artifacts" / "v1").exists()  # the staged temp file and its folder were removed
    with pytest.raises(Busy):
        reg.list_versions()  # reads wait for the writer too
    holder[0].kill()
    holder[0].wait()
    assert reg.list_versions() == []


@pytest.mark.parametrize("point", ["stage_copy", "place"])
def test_kill_at_each_step_leaves_only_an_orphan(tmp_path, point):
    root = tmp_path / "registry"
    Registry.open(root)
    p = _spawn("kill-at", point, root, "v1", 100_000)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    reg = Registry.open(root)
    assert reg.list_versions() == []
    assert _statuses(reg) == {"orphan": ["v1"]}
    src = tmp_path / "real.pt"
    src.write_bytes(b"real weights")
    reg.add_version("v1", kind="base", artifact=src, backbone="tiny", dim=16)
    assert _statuses(reg) == {"ok": ["v1"]}
    assert reg.artifact_path("v1").read_bytes() == b"real weights"


def test_kill_at_random_times(tmp_path):
    """SIGKILL a process that keeps registering 4 MB artifacts, at random moments."""
    root = tmp_path / "registry"
    Registry.open(root)
    rng = random.Random(0)
    printed: set[str] = set()
    for round_ in range(3):
        p = _spawn("add-loop", root, f"r{round_}", 1000, 4_000_000, 20)
        first = p.stdout.readline()
        assert first.startswith("ok ")  # it is running and has committed once
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=60)
        out = first + out
        printed |= {line.split()[1] for line in out.split("\n") if line.startswith("ok ")}
        reg = Registry.open(root)
        names = {v.name for v in reg.list_versions()}
        assert printed <= names  # every acknowledged add survived
        assert len(names - printed) <= 1  # at most the add in flight when killed
        statuses = _statuses(reg)
        assert set(statuses) <= {"ok", "orphan"}, statuses
        assert set(statuses["ok"]) == names
        printed = names
    for name in statuses.get("orphan", []):  # a re-add of the name replaces an orphan
        src = tmp_path / f"{name}.pt"
        src.write_bytes(b"x")
        reg.add_version(name, kind="base", artifact=src, backbone="tiny", dim=16)
    assert set(_statuses(reg)) == {"ok"}


def test_threads_of_one_process_share_the_registry(tmp_path):
    """Threads serialise on a per-file lock instead of colliding inside one DuckDB instance."""
    from concurrent.futures import ThreadPoolExecutor

    reg = Registry.open(tmp_path / "registry")
    src = tmp_path / "w.pt"
    src.write_bytes(b"w" * 1000)

    def work(i: int) -> str:
        reg.add_version(f"t{i}", kind="base", artifact=src, backbone="tiny", dim=16)
        reg.record_evaluation(f"t{i}", "d", {"i": i})
        return reg.get_version(f"t{i}").name

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(work, range(8))) == sorted(f"t{i}" for i in range(8))
    assert len(reg.list_versions()) == 8 and len(reg.evaluations()) == 8
