"""LFW-style verification: read pair lists, then the 10-fold threshold protocol.

``pairs.txt`` (the standard LFW file): a header ``"10 300"`` (folds, pairs per class per fold),
then per fold 300 matched lines ``name n1 n2`` followed by 300 mismatched lines
``name1 n1 name2 n2``. ``pairsDevTrain.txt``/``pairsDevTest.txt`` have a one-number header
(``"1100"``): one fold. Images live at ``<root>/<name>/<name>_<NNNN>.jpg`` (or .png).
Missing images are listed in :attr:`PairSet.missing`; their pairs stay in the list, so the
caller decides (the CLI refuses to score a set with missing images).

Protocol (DESIGN section 2): for each fold, the accuracy-maximising threshold is chosen on the
other folds (candidates: below every distance, each midpoint of consecutive distinct distances,
above every distance; the smallest best threshold wins), accuracy is measured on the held-out
fold with ``same <=> D < t``; report mean +- population std over folds, the thresholds, and
VAL@FAR over all pairs by the same rule as ``val_at_far``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from harmony.errors import InvalidInput, NotFound
from harmony.metrics.val_at_far import ValAtFar, _as_fars, _val_at_far_from_pairs

IMAGE_EXTS = (".jpg", ".png")


class Pair(NamedTuple):
    path_a: Path
    path_b: Path
    same: bool
    fold: int


@dataclass(frozen=True)
class PairSet:
    """Pairs in file order, the number of folds, and every referenced image that does not exist."""

    pairs: tuple[Pair, ...]
    n_folds: int
    missing: tuple[Path, ...]

    @property
    def same(self) -> np.ndarray:
        return np.array([p.same for p in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray:
        return np.array([p.fold for p in self.pairs], dtype=np.int64)


class _Resolver:
    """Maps (name, number) or a relative path to an existing file, recording the missing ones."""

    def __init__(self, root: Path, exts: Sequence[str]):
        self.root, self.exts, self.missing, self._cache = root, tuple(exts), set(), {}

    def lfw(self, name: str, num: int) -> Path:
        key = (name, num)
        if key not in self._cache:
            base = self.root / name / f"{name}_{num:04d}"
            found = next((base.with_suffix(e) for e in self.exts if base.with_suffix(e).is_file()), None)
            if found is None:
                found = base.with_suffix(self.exts[0])
                self.missing.add(found)
            self._cache[key] = found
        return self._cache[key]

    def path(self, p: str) -> Path:
        q = Path(p)
        q = q if q.is_absolute() else self.root / q
        if q not in self._cache:
            self._cache[q] = q
            if not q.is_file():
                self.missing.add(q)
        return q


def _int(tok: str, where: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise InvalidInput(f"{where}: expected an integer, got {tok!r}",
                           hint="check the file is an LFW pairs list") from None


def read_lfw_pairs(pairs_txt: str | Path, root: str | Path, exts: Sequence[str] = IMAGE_EXTS) -> PairSet:
    """Parse an LFW ``pairs.txt`` (or ``pairsDevTrain.txt``) against the image folder ``root``."""
    path = Path(pairs_txt)
    if not path.is_file():
        raise NotFound(f"pairs file {path} not found", hint="pass the LFW pairs.txt path")
    lines = [(i + 1, ln.split()) for i, ln in enumerate(path.read_text().splitlines()) if ln.strip()]
    if not lines:
        raise InvalidInput(f"{path} is empty", hint="pass the LFW pairs.txt path")
    (_, head), body = lines[0], lines[1:]
    if len(head) == 2:
        n_folds, per = _int(head[0], f"{path}:1"), _int(head[1], f"{path}:1")
    elif len(head) == 1:
        n_folds, per = 1, _int(head[0], f"{path}:1")
    else:
        raise InvalidInput(f"{path}:1: header must be '<folds> <pairs per class>' or '<pairs per class>'",
                           hint="use the unmodified LFW pairs file")
    if n_folds < 1 or per < 1:
        raise InvalidInput(f"{path}:1: header numbers must be positive", hint="use the unmodified LFW pairs file")
    if len(body) != 2 * n_folds * per:
        raise InvalidInput(f"{path}: header promises {n_folds} x 2 x {per} = {2 * n_folds * per} pairs, "
                           f"file has {len(body)}", hint="use the unmodified LFW pairs file")
    res = _Resolver(Path(root), exts)
    pairs = []
    for idx, (lineno, tok) in enumerate(body):
        fold, matched = idx // (2 * per), (idx % (2 * per)) < per
        where = f"{path}:{lineno}"
        if matched:
            if len(tok) != 3:
                raise InvalidInput(f"{where}: matched pair needs 'name n1 n2', got {' '.join(tok)!r}",
                                   hint=f"each fold lists {per} matched then {per} mismatched pairs")
            a, b = res.lfw(tok[0], _int(tok[1], where)), res.lfw(tok[0], _int(tok[2], where))
        else:
            if len(tok) != 4:
                raise InvalidInput(f"{where}: mismatched pair needs 'name1 n1 name2 n2', got {' '.join(tok)!r}",
                                   hint=f"each fold lists {per} matched then {per} mismatched pairs")
            a, b = res.lfw(tok[0], _int(tok[1], where)), res.lfw(tok[2], _int(tok[3], where))
        pairs.append(Pair(a, b, matched, fold))
    return PairSet(pairs=tuple(pairs), n_folds=n_folds, missing=tuple(sorted(res.missing)))


_TRUE, _FALSE = {"1", "true", "yes", "same"}, {"0", "false", "no", "different", "diff"}


def read_pairs_csv(path: str | Path, root: str | Path | None = None, n_folds: int = 10) -> PairSet:
    """Read a CSV with header ``path_a,path_b,same``; folds assigned round-robin (row i -> i % n_folds).

    Relative paths resolve against ``root`` (default: the CSV's folder). ``same``: 1/0, true/false.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"pairs CSV {path} not found", hint="pass a CSV with columns path_a,path_b,same")
    if n_folds < 1:
        raise InvalidInput(f"n_folds must be >= 1, got {n_folds}", hint="use 10 (the LFW protocol)")
    res = _Resolver(Path(root) if root is not None else path.parent, IMAGE_EXTS)
    pairs = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not {"path_a", "path_b", "same"} <= cols:
            raise InvalidInput(f"{path}: header must contain path_a,path_b,same, got {sorted(cols)}",
                               hint="first line: path_a,path_b,same")
        for i, row in enumerate(reader):
            flag = (row["same"] or "").strip().lower()
            if flag not in _TRUE | _FALSE:
                raise InvalidInput(f"{path}:{i + 2}: same must be 1/0 or true/false, got {row['same']!r}",
                                   hint="write 1 for a matched pair, 0 otherwise")
            pairs.append(Pair(res.path(row["path_a"]), res.path(row["path_b"]), flag in _TRUE, i % n_folds))
    if not pairs:
        raise InvalidInput(f"{path} has no pairs", hint="add one row per pair")
    return PairSet(pairs=tuple(pairs), n_folds=min(n_folds, len(pairs)), missing=tuple(sorted(res.missing)))


@dataclass(frozen=True)
class LfwResult:
    accuracy_mean: float
    accuracy_std: float  # population std over folds, as in the FaceNet paper
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]  # per held-out fold, chosen on the other folds (accept D < t)
    val: ValAtFar
    n_pairs: int
    n_folds: int

    def __str__(self) -> str:
        return f"{100 * self.accuracy_mean:.2f} +- {100 * self.accuracy_std:.2f}"

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy_mean": self.accuracy_mean, "accuracy_std": self.accuracy_std,
                "fold_accuracies": list(self.fold_accuracies), "thresholds": list(self.thresholds),
                "val": self.val.as_dict(), "n_pairs": self.n_pairs, "n_folds": self.n_folds}


def best_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy of ``same <=> d < t``; smallest best t wins."""
    u = np.unique(d.astype(np.float64))
    cands = np.concatenate([[u[0]], (u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)]])
    ds, dd = np.sort(d[same].astype(np.float64)), np.sort(d[~same].astype(np.float64))
    correct = np.searchsorted(ds, cands, side="left") + (dd.size - np.searchsorted(dd, cands, side="left"))
    i = int(np.argmax(correct))
    return float(cands[i]), float(correct[i] / d.size)


def lfw_protocol(distances: Any, same: Any, folds: Any, far: float = 1e-3) -> LfwResult:
    """k-fold verification accuracy (threshold fit on the other folds) plus VAL@FAR over all pairs.

    distances: ``(n,)`` squared L2 per pair; same: ``(n,)`` bool; folds: ``(n,)`` fold ids (>= 2).
    """
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same)
    f = np.asarray(folds)
    if d.ndim != 1 or s.shape != d.shape or f.shape != d.shape:
        raise InvalidInput(f"distances, same and folds must be 1-D of one length, got {d.shape}, {s.shape}, "
                           f"{f.shape}", hint="pass one entry per pair")
    if not np.isfinite(d).all():
        raise InvalidInput("distances contain NaN or inf", hint="re-embed the broken images")
    if s.dtype != bool:
        if not np.isin(s, (0, 1)).all():
            raise InvalidInput("same must be boolean (or 0/1)", hint="pass True for matched pairs")
        s = s.astype(bool)
    if s.all() or not s.any():
        raise InvalidInput("need both matched and mismatched pairs", hint="use a full LFW pairs list")
    fold_ids = np.unique(f)
    if fold_ids.size < 2:
        raise InvalidInput(f"the protocol needs at least 2 folds, got {fold_ids.size}",
                           hint="use pairs.txt (10 folds), or read_pairs_csv(n_folds=10)")
    accs, ths = [], []
    for k in fold_ids:
        test = f == k
        t, _ = best_threshold(d[~test], s[~test])
        ths.append(t)
        accs.append(float(((d[test] < t) == s[test]).mean()))
    val = _val_at_far_from_pairs(d[s], d[~s], _as_fars(far)[0][:1])[0]
    return LfwResult(accuracy_mean=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                     fold_accuracies=tuple(accs), thresholds=tuple(ths), val=val,
                     n_pairs=int(d.size), n_folds=int(fold_ids.size))
