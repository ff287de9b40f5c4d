"""Run folders: where a training run keeps what it needs to resume after a kill.

A run named ``n`` lives at ``<registry root>/runs/n/`` (never in the current directory):
``run.json`` (what is trained: kind, recipe, from/init), ``recipe.yaml`` for people, one
``<stage>/last.ckpt`` per stage (``base``; ``head`` then ``all`` for harmonic), Lightning's CSV
logs, and ``FINISHED`` once the version is registered. A folder without ``FINISHED`` is an
unfinished run, and training the same name again resumes it.
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from harmony.errors import InvalidInput, NotFound
from harmony.io import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from harmony.registry import Registry

log = logging.getLogger(__name__)

MANIFEST = "run.json"
FINISHED = "FINISHED"
FAILED = "FAILED"
LAST = "last.ckpt"


@dataclass(frozen=True)
class Run:
    """An open run folder; ``resumed`` says it continues an unfinished run of the same name."""

    path: Path
    resumed: bool = False

    def stage_dir(self, stage: str) -> Path:
        return self.path / stage

    def last_checkpoint(self, stage: str) -> Path | None:
        """The stage's checkpoint from the end of its last finished epoch, if any."""
        p = self.stage_dir(stage) / LAST
        return p if p.is_file() else None


def run_path(reg: Registry | Path, name: str) -> Path:
    """``reg`` may be the registry's root folder itself: DDP ranks other than 0 never open the registry."""
    return Path(reg if isinstance(reg, (str, Path)) else reg.root) / "runs" / name


def unfinished_run(reg: Registry, name: str) -> Path | None:
    """The folder of a started, not yet registered run of ``name``, or None."""
    p = run_path(reg, name)
    return p if (p / MANIFEST).is_file() and not (p / FINISHED).exists() else None


def open_run(reg: Registry, name: str, manifest: dict, resume: bool | None = None) -> Run:
    """Resume the unfinished run of ``name`` or start a new one.

    ``resume``: None resumes when there is an unfinished run, True requires one, False discards
    it. A run is resumed only with the manifest it was started with (same recipe, same from/init),
    or its checkpoints would continue a different experiment."""
    path = run_path(reg, name)
    pending = unfinished_run(reg, name)
    if resume is True and pending is None:
        raise NotFound(f"no unfinished training run named {name!r} under {path.parent}",
                       hint="drop --resume to start a new run")
    if pending is not None and resume is not False:
        saved = json.loads((path / MANIFEST).read_text())
        changed = sorted(k for k in saved.keys() | manifest.keys() if saved.get(k) != manifest.get(k))
        if changed:
            raise InvalidInput(f"the unfinished run {name!r} ({path}) was started with a different "
                               f"{', '.join(changed)}", hint="pass --no-resume to start over, or choose another --name")
        log.info("resuming the unfinished run %s from its last checkpoint", path)
        (path / FAILED).unlink(missing_ok=True)
        return Run(path, resumed=True)
    if path.exists():  # a discarded unfinished run, or the folder of a version since removed
        shutil.rmtree(path)
    path.mkdir(parents=True)
    atomic_write_json(path / MANIFEST, manifest)
    atomic_write_text(path / "recipe.yaml", manifest.get("recipe", ""))
    return Run(path)


@contextmanager
def marked_on_failure(run: Run) -> Iterator[None]:
    """A run that raises is cleaned or marked: with no checkpoint yet its folder goes (nothing to
    resume); with one it stays resumable and ``FAILED`` records why (kill -9 leaves neither, and
    the next run of the name resumes or, with ``--no-resume``, replaces it)."""
    try:
        yield
    except BaseException as err:
        if not any(run.path.glob(f"*/{LAST}")):
            shutil.rmtree(run.path, ignore_errors=True)
        else:
            text = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            atomic_write_text(run.path / FAILED, text + "\n")
            log.warning("training run %s failed (%s); `--resume` continues from its last checkpoint", run.path, text)
        raise


def finish_run(run: Run) -> None:
    """Mark the run finished (the version is registered) and drop its checkpoints: the registry
    holds the model, and a later run of the same name must not resume this one."""
    for ckpt in run.path.glob(f"*/{LAST}"):
        ckpt.unlink()
    atomic_write_text(run.path / FINISHED, "")
