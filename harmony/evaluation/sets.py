"""Set verification, YouTube-Faces style: is this folder of frames the same person as that one?

Pairs file (``--pairs FILE``): one pair per line, ``SET_A SET_B SAME [FOLD]``, whitespace
separated; ``SET_*`` are folders of frames relative to ``--data`` (or absolute), ``SAME`` is 1
(same person) or 0; ``FOLD`` (0-based) is optional: without it the lines are cut into 10
consecutive folds of (nearly) equal size, as YouTube Faces' splits.txt is. Blank lines and lines
starting with ``#`` are skipped. ``harmony data videos`` writes such a folder and file.

Score of a pair (FaceNet section 5.7): the mean squared L2 distance over all pairs of the first
``N`` frames of each side (frames in file-name order; unreadable frames are dropped from their
set, a set with no readable frame drops its pairs, listed). Accuracy: the LFW 10-fold protocol
of ``harmony.metrics.lfw_protocol`` on those scores, the one implementation of it.
Tests: tests/evaluation/test_sets.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmony.distances import sq_l2_from_dots
from harmony.errors import InvalidInput, NotFound
from harmony.metrics import LfwResult, lfw_protocol
from harmony.progress import ProgressFn

N_FOLDS = 10
FRAMES = 100  # the paper's N
PAIRS_FORMAT = ("one pair per line: SET_A SET_B SAME [FOLD]; SET_* frame folders relative to --data, SAME 1 or 0, "
                "FOLD 0-based (default: 10 consecutive folds); '#' starts a comment line")


@dataclass(frozen=True)
class SetPair:
    a: str
    b: str
    same: bool
    fold: int


def read_set_pairs(path: str | Path, n_folds: int = N_FOLDS) -> tuple[SetPair, ...]:
    """The pairs of a pairs file (format: :data:`PAIRS_FORMAT`); a bad line is an error naming it."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"pairs file {p} does not exist", hint="write one with `harmony data videos --out DIR`")
    raw: list[tuple[str, str, bool, int | None]] = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        f = s.split()
        if len(f) not in (3, 4) or f[2] not in ("0", "1") or (len(f) == 4 and not f[3].isdigit()):
            raise InvalidInput(f"{p}:{lineno}: {s!r} is not 'SET_A SET_B SAME [FOLD]'", hint=PAIRS_FORMAT)
        raw.append((f[0], f[1], f[2] == "1", int(f[3]) if len(f) == 4 else None))
    if not raw:
        raise InvalidInput(f"{p} lists no pairs", hint=PAIRS_FORMAT)
    given = [r[3] is not None for r in raw]
    if any(given) and not all(given):
        raise InvalidInput(f"{p}: some lines give a FOLD and some do not", hint="give it on every line or on none")
    n = len(raw)
    return tuple(SetPair(a, b, same, fold if fold is not None else i * n_folds // n)
                 for i, (a, b, same, fold) in enumerate(raw))


def frames_of(folder: Path, n: int) -> list[Path]:
    """The first ``n`` image files of a frame folder, in file-name order."""
    from harmony.data.images import list_images

    return list_images(folder)[:n]


@dataclass(frozen=True)
class SetsResult:
    version: str
    pairs_file: str
    frames: int  # N, the frames per side asked for
    n_pairs: int  # pairs scored
    n_sets: int
    frames_used: int  # frames embedded (readable, among the first N of each set)
    lfw: LfwResult
    skipped_pairs: tuple[tuple[str, str], ...] = ()
    unreadable: tuple[str, ...] = ()
    from_cache: bool = False

    def as_dict(self) -> dict[str, Any]:
        from harmony.evaluation.results import json_safe

        return json_safe({"version": self.version, "pairs_file": self.pairs_file, "frames": self.frames,
                          "n_pairs": self.n_pairs, "n_sets": self.n_sets, "frames_used": self.frames_used,
                          "accuracy_mean": self.lfw.accuracy_mean, "accuracy_std": self.lfw.accuracy_std,
                          "lfw": self.lfw.as_dict(), "skipped_pairs": [list(p) for p in self.skipped_pairs],
                          "unreadable": list(self.unreadable), "from_cache": self.from_cache})


def set_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared L2 over all (frame of a, frame of b) pairs of unit rows."""
    return float(sq_l2_from_dots(a @ b.T).astype(np.float64).mean())


def set_verification(reg: Any, version: str, pairs_file: str | Path, root: str | Path, *, frames: int = FRAMES,
                     far: float = 1e-3, batch_size: int = 512, device: str | None = None,
                     progress: ProgressFn | None = None) -> SetsResult:
    """Score every listed pair of frame sets with ``version`` and run the 10-fold protocol."""
    from harmony.data.sources import FileSource
    from harmony.evaluation.cache import embed_cached

    if frames < 1:
        raise InvalidInput(f"--frames {frames} must be at least 1", hint=f"the paper uses --frames {FRAMES}")
    pairs = read_set_pairs(pairs_file)
    base = Path(root)
    if not base.is_dir():
        raise NotFound(f"--data {base} is not a folder", hint="pass the folder the pairs file's sets are relative to")
    names = sorted({s for p in pairs for s in (p.a, p.b)})
    folders = {s: (Path(s) if Path(s).is_absolute() else base / s) for s in names}
    absent = [s for s, f in folders.items() if not f.is_dir()]
    if absent:
        raise NotFound(f"{len(absent)} set folder(s) named in {pairs_file} do not exist under {base}: "
                       f"{', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}",
                       hint="check --data is the folder the pairs file is relative to")
    files = {s: frames_of(f, frames) for s, f in folders.items()}
    paths = [str(p) for s in names for p in files[s]]
    if not paths:
        raise InvalidInput("the listed set folders hold no image files", hint="frames are .png/.jpg files in each set")
    emb = embed_cached(reg, version, FileSource.of(paths), batch_size=batch_size, device=device, progress=progress)
    pos, start = {}, 0
    for s in names:
        pos[s] = np.arange(start, start + len(files[s]))
        start += len(files[s])
    vecs = {s: emb.rows(pos[s][emb.ok[pos[s]]]) for s in names}
    scored, skipped = [], []
    for p in pairs:
        if len(vecs[p.a]) and len(vecs[p.b]):
            scored.append((set_distance(vecs[p.a], vecs[p.b]), p.same, p.fold))
        else:
            skipped.append((p.a, p.b))
    if not scored:
        raise InvalidInput("no pair has a readable frame on both sides", hint="check the frame files")
    d, same, folds = (np.array(c) for c in zip(*scored))
    lfw = lfw_protocol(d, same.astype(bool), folds, far=far)
    unreadable = tuple(u.path for u in emb.unusable)
    return SetsResult(version=reg.get_version(version).name, pairs_file=str(pairs_file), frames=int(frames),
                      n_pairs=int(d.size), n_sets=len(names), frames_used=int(emb.ok.sum()), lfw=lfw,
                      skipped_pairs=tuple(skipped), unreadable=unreadable, from_cache=emb.from_cache)

