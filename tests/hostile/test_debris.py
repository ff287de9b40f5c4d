"""Item 5: kill -9 leaves no debris that `verify` cannot see; `verify --repair` removes it, and
never a running job's files; a version row and its evaluation commit together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from harmony.cli.registry import app
from harmony.errors import InvalidInput
from harmony.scratch import leftovers, scratch_dir

runner = CliRunner()

HOLD = """
import sys, time
from pathlib import Path
from harmony.scratch import scratch_dir
with scratch_dir(Path(sys.argv[1]), "register") as d:
    (d / "model.pt").write_bytes(b"x" * 1000)
    print(d, flush=True)
    time.sleep(60)
"""


def killed_scratch(root) -> str:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    folder = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return folder


def test_killed_scratch_is_listed_and_repaired_live_one_kept(reg, add):
    add("v1")
    dead = killed_scratch(reg.root)
    assert os.path.isdir(dead)
    with scratch_dir(reg.root, "live") as live:
        (live / "f").write_text("working")
        listed = {str(p) for p in leftovers(reg.root)}
        assert dead in listed and str(live) not in listed
        out = runner.invoke(app, ["verify", "--json", "--registry", str(reg.root)])
        assert out.exit_code == 0 and "leftover" in out.output and dead in out.output
        fixed = runner.invoke(app, ["verify", "--repair", "--registry", str(reg.root)])
        assert fixed.exit_code == 0, fixed.output
        assert not os.path.exists(dead) and (live / "f").read_text() == "working"
    assert not live.exists() and leftovers(reg.root) == []
    assert reg.verify()[0].status == "ok"


def test_next_registration_sweeps_debris(reg, add):
    dead = killed_scratch(reg.root)
    add("v1")
    assert not os.path.exists(dead)


def test_version_and_its_evaluation_commit_together(reg, make_ckpt):
    with pytest.raises(InvalidInput):  # the evaluation is refused: the version must not exist either
        reg.add_version("v1", kind="base", artifact=make_ckpt(0), backbone="b", dim=8,
                        evaluations=[("", {"val@0.001": 0.5})])
    assert reg.list_versions() == []
    assert not (reg.root / "artifacts" / "v1").exists()
    v = reg.add_version("v1", kind="base", artifact=make_ckpt(0), backbone="b", dim=8,
                        evaluations=[("synthetic:test", {"val@0.001": 0.5})])
    assert v.name == "v1" and reg.evaluations("v1")[0]["metrics"] == {"val@0.001": 0.5}


def test_old_orphan_artifact_folder_is_repaired(reg, add):
    add("v1")
    stray = reg.root / "artifacts" / "ghost"
    stray.mkdir()
    (stray / ".tmp-abc").write_bytes(b"half a checkpoint")
    old = time.time() - 3600
    os.utime(stray, (old, old))
    assert any(r.status == "orphan" and r.name == "ghost" for r in reg.verify())
    removed = reg.repair()
    assert [r.name for r in removed] == ["ghost"] and not stray.exists()
