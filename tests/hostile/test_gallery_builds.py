"""Item 3 (and the gallery half of item 5): two concurrent builds of one name end with exactly one
complete gallery, the loser exits 2 touching only its own scratch folder; builds leave no debris
under galleries/; `gallery rm` is every gallery row's way out (refused mid-migration unless --force)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import harmony
from harmony.cli.gallery import app as gallery_app
from harmony.cli.registry import app as registry_app
from harmony.errors import AlreadyExists
from harmony.gallery.catalog import build_gallery, open_gallery, remove_gallery
from harmony.migration.plan import plan_migration
from harmony.migration.run import run_migration
from harmony.scratch import leftovers, scratch_root
from tests.gallery.helpers import env, shared_versions  # noqa: F401  (fixtures)

runner = CliRunner()
BUILD = "from harmony.cli.gallery import app; app()"


def invoke(app, *args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def no_debris(root: Path, galleries: set[str]) -> None:
    assert {p.name for p in (root / "galleries").iterdir()} == galleries
    assert leftovers(root) == [] and not any(scratch_root(root).glob("gallery-*"))


def searchable(env, name: str, n: int = 48) -> None:
    r = invoke(gallery_app, "search", "--name", name, "--query", env.faces / "id004" / "001.png", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["hits"][0]["item_id"] == "id004/001.png"
    assert len(open_gallery(env.reg, name)[1].items()) == n
    assert {r.status for r in env.reg.verify_galleries(name)} == {"ok"}


def test_two_concurrent_build_processes_leave_one_complete_gallery(env):
    pythonpath = os.pathsep.join([str(Path(harmony.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    penv = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "HARMONY_REGISTRY": str(env.root)}
    args = [sys.executable, "-c", BUILD, "build", "--name", "p3", "--version", "v1", "--data", str(env.faces),
            "--registry", str(env.root), "--json"]
    procs = [subprocess.Popen(args, env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in outs)
    assert codes == [0, 2], outs
    loser = next(err for rc, _, err in outs if rc == 2)
    assert "already exists" in loser and "Traceback" not in loser
    assert [g.name for g in env.reg.list_galleries()] == ["p3"]
    searchable(env, "p3")
    no_debris(env.root, {"p3"})


def test_loser_of_a_race_touches_only_its_own_folder(env):
    """The other build commits while this one is embedding (the window the issue's race hit)."""
    won = []

    def progress(tick):
        if not won:
            won.append(build_gallery(env.reg, "p3", "v1", env.faces))

    with pytest.raises(AlreadyExists, match="already exists"):
        build_gallery(env.reg, "p3", "v1", env.faces, progress=progress)
    assert won and [g.name for g in env.reg.list_galleries()] == ["p3"]
    searchable(env, "p3")
    no_debris(env.root, {"p3"})


def test_folder_of_a_build_killed_before_its_row_is_replaced(env):
    stale = env.root / "galleries" / "p3"
    stale.mkdir(parents=True)
    (stale / "gallery.json").write_text("{}")  # a kill between the rename and the registry row
    build_gallery(env.reg, "p3", "v1", env.faces)
    searchable(env, "p3")
    no_debris(env.root, {"p3"})


def test_gallery_rm_refuses_mid_migration_then_force_frees_the_version(env):
    build_gallery(env.reg, "p3", "v1", env.faces)
    run_migration(env.reg, plan_migration(env.reg, "p3", "v2"), batch_size=8, stop_after=1)  # backfilling
    r = invoke(gallery_app, "rm", "p3")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "migration #" in lines[0] and "--force" in lines[0]
    assert (env.root / "galleries" / "p3").is_dir() and env.reg.get_gallery("p3")
    r = invoke(registry_app, "rm", "v1")
    assert r.exit_code == 2 and "serves gallery 'p3'" in r.output
    r = invoke(gallery_app, "rm", "p3", "--force")
    assert r.exit_code == 0 and "removed gallery p3" in r.output and "discarded migration" in r.output
    assert env.reg.list_galleries() == [] and env.reg.migrations("p3") == []
    no_debris(env.root, set())
    assert invoke(registry_app, "rm", "v1").exit_code == 0


def test_gallery_rm_of_a_row_whose_folder_is_missing(env):
    import shutil

    build_gallery(env.reg, "p3", "v1", env.faces)
    shutil.rmtree(env.root / "galleries" / "p3")  # the end state the race left
    assert invoke(gallery_app, "build", "--name", "p3", "--version", "v1", "--data", env.faces).exit_code == 2
    out = remove_gallery(env.reg, "p3")
    assert out.folder_removed is False and env.reg.list_galleries() == []
    assert invoke(gallery_app, "build", "--name", "p3", "--version", "v1", "--data", env.faces).exit_code == 0
    assert invoke(gallery_app, "rm", "p3").exit_code == 0
    assert invoke(gallery_app, "rm", "p3").exit_code == 2  # NotFound, one line
    no_debris(env.root, set())
    assert "Example:" in invoke(gallery_app, "rm", "--help").output


HOLD = """
import sys, time
from pathlib import Path
from harmony.scratch import scratch_dir
with scratch_dir(Path(sys.argv[1]), "gallery-p3") as d:
    (d / "index-v1.1.faiss").write_bytes(b"x" * 1000)
    print(d, flush=True)
    time.sleep(60)
"""


def test_a_killed_build_leaves_scratch_that_verify_lists_and_the_next_build_sweeps(env):
    import signal

    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(env.root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(harmony.__file__).parents[1])})
    dead = Path(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert dead.parent == scratch_root(env.root) and dead.is_dir()
    assert dead in leftovers(env.root)
    assert any(r.status == "leftover" and r.path == str(dead) for r in env.reg.verify())
    build_gallery(env.reg, "p3", "v1", env.faces)
    assert not dead.exists()
    no_debris(env.root, {"p3"})
