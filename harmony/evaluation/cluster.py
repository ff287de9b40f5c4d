"""FaceNet Figure 7 as a command: group a folder of photos into one folder per person.

Steps: list the photos under ``--data`` (any depth, hidden files skipped), embed them with the
version (the embedding cache of ``harmony eval``; unusable photos are listed, never fatal),
cluster at a threshold, and write ``--out``:

- ``cluster_0001/`` ... (largest first): copies (or hard links) of the members, named by their
  path under ``--data`` with ``/`` replaced by ``__``; clusters smaller than ``min_size`` go
  together into ``unclustered/``;
- ``contact_sheets/<folder>.png``: a grid of thumbnails per folder;
- ``clusters.json``: the manifest (version, threshold and where it came from, method, members).

Threshold: ``--threshold``, else the version's own verification threshold t* at FAR 1e-3 (or
``far``) from the latest evaluation the registry holds for it (training records one on its test
split, ``harmony eval`` one per data set); a version never evaluated needs ``--threshold``.
Methods: ``agglomerative`` (average linkage, ``harmony.metrics.agglomerative_clusters``: groups
merge while their mean pair distance is <= t) and ``components`` (connected components of the
graph of pairs with D < t: the verification rule itself, single linkage; chains can merge people).

The input is only read. The output is built in a temp folder next to ``--out`` and renamed into
place, so a killed run leaves no half-written ``--out``; a non-empty ``--out`` is replaced only
with ``force``, and only when it is a previous output of this command (it holds clusters.json).
Tests: tests/evaluation/test_cluster_cli.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmony.errors import AlreadyExists, InvalidInput, NotFound
from harmony.progress import ProgressFn, tick

METHODS = ("agglomerative", "components")
MANIFEST = "clusters.json"
SHEETS = "contact_sheets"
UNCLUSTERED = "unclustered"
FAR = 1e-3
THUMB = 96
SHEET_COLUMNS = 8
SHEET_MAX = 64  # thumbnails per contact sheet; the title says how many more


@dataclass(frozen=True)
class Threshold:
    """The squared-L2 threshold used and where it came from (``evaluation_id`` None: given by hand)."""

    value: float
    source: str
    far: float | None = None
    dataset: str | None = None
    evaluation_id: int | None = None


def version_threshold(reg: Any, version: str, far: float = FAR) -> Threshold | None:
    """t* at ``far`` from the latest evaluation of ``version`` alone that recorded a finite one."""
    key = f"threshold@{far:g}"
    for e in reversed(reg.evaluations(version)):
        t = (e.get("metrics") or {}).get(key)
        if e.get("against") is None and isinstance(t, (int, float)) and math.isfinite(t):
            return Threshold(float(t), f"t* at FAR {far:g} on {e['dataset']} (evaluation {e['id']})", far,
                             e["dataset"], int(e["id"]))
    return None


def resolve_threshold(reg: Any, version: str, threshold: float | None, far: float = FAR) -> Threshold:
    if threshold is not None:
        if not math.isfinite(threshold) or threshold <= 0:
            raise InvalidInput(f"--threshold {threshold} must be a positive squared L2 distance",
                               hint="e.g. --threshold 0.8 (unit vectors: distances lie in 0..4)")
        return Threshold(float(threshold), "--threshold")
    found = version_threshold(reg, version, far)
    if found is None:
        name = reg.get_version(version).name
        raise InvalidInput(f"the registry holds no verification threshold at FAR {far:g} for {name}",
                           hint=f"pass --threshold T, or measure one first: harmony eval --version {name} "
                                f"--synthetic 300")
    return found


def list_photos(root: Path) -> list[Path]:
    """Image files under ``root`` at any depth (hidden files and folders skipped), sorted."""
    from harmony.data.images import IMAGE_EXTENSIONS

    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        out += [Path(d) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(out)


def components_clusters(emb: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Cluster ids ``(n,)`` (0-based): connected components of the pairs with D < threshold."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from harmony.distances import sq_l2_from_dots

    x = np.ascontiguousarray(emb, dtype=np.float32)
    n = x.shape[0]
    rows, cols = [], []
    for a in range(0, n, block):
        d = sq_l2_from_dots(x[a:a + block] @ x.T)
        i, j = np.nonzero(d < threshold)
        rows.append(i + a)
        cols.append(j)
    r, c = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def cluster_ids(emb: np.ndarray, threshold: float, method: str) -> np.ndarray:
    from harmony.metrics import agglomerative_clusters

    if method not in METHODS:
        raise InvalidInput(f"--method {method!r} is not known", hint=f"use one of {', '.join(METHODS)}")
    if method == "agglomerative":
        return agglomerative_clusters(emb, threshold)
    return components_clusters(emb, threshold)


def contact_sheet(paths: Sequence[Path], title: str, thumb: int = THUMB, columns: int = SHEET_COLUMNS,
                  limit: int = SHEET_MAX) -> bytes:
    """PNG bytes: up to ``limit`` thumbnails in a grid under a one-line title."""
    from PIL import Image, ImageDraw

    from harmony.data.images import load_image

    shown = list(paths)[:limit]
    cols = max(1, min(columns, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    head = 18
    sheet = Image.new("RGB", (cols * thumb, rows * thumb + head), (255, 255, 255))
    more = f" (first {limit} shown)" if len(paths) > limit else ""
    ImageDraw.Draw(sheet).text((4, 3), f"{title}: {len(paths)} photo(s){more}", fill=(0, 0, 0))
    for k, p in enumerate(shown):
        try:
            img = Image.fromarray(load_image(p, thumb))
        except InvalidInput:
            continue
        sheet.paste(img, ((k % cols) * thumb, head + (k // cols) * thumb))
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Cluster:
    folder: str  # under --out
    members: tuple[str, ...]  # paths relative to --data
    sheet: str  # under --out

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class ClusterRun:
    version: str
    data: str
    out: str
    threshold: Threshold
    method: str
    n_photos: int
    clusters: tuple[Cluster, ...]  # the folders written, unclustered last when there is one
    unusable: tuple[tuple[str, str], ...]  # (path, reason)
    linked: str  # "copy" or "hardlink"
    min_size: int
    n_clusters: int  # all clusters found, singletons included
    scores: dict[str, Any] | None = None  # pairwise precision/recall against first-level folders

    def as_dict(self) -> dict[str, Any]:
        from harmony.evaluation.results import json_safe

        t = self.threshold
        return json_safe({
            "version": self.version, "data": self.data, "out": self.out, "method": self.method,
            "threshold": {"value": t.value, "source": t.source, "far": t.far, "dataset": t.dataset,
                          "evaluation_id": t.evaluation_id},
            "n_photos": self.n_photos, "n_clusters": self.n_clusters, "min_size": self.min_size,
            "linked": self.linked,
            "clusters": [{"folder": c.folder, "size": c.size, "sheet": c.sheet, "members": list(c.members)}
                         for c in self.clusters],
            "unusable": [{"path": p, "reason": r} for p, r in self.unusable], "scores": self.scores})


def _check_out(data: Path, out: Path, force: bool) -> None:
    """Refuse an --out that overlaps --data, or that holds files we did not write."""
    d, o = data.resolve(), out.resolve()
    if o == d or d in o.parents or o in d.parents:
        raise InvalidInput(f"--out {out} and --data {data} overlap", hint="write the clusters outside the photo folder")
    if out.exists() and not out.is_dir():
        raise AlreadyExists(f"--out {out} is a file", hint="pass a folder path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise AlreadyExists(f"--out {out} is not empty", hint="pass --force to replace it, or another --out")
        if not (out / MANIFEST).is_file():
            raise AlreadyExists(f"--out {out} is not empty and is not an output of `harmony cluster` (no {MANIFEST})",
                                hint="--force replaces only a previous cluster output; pick another --out")


def _place(src: Path, dst: Path, hardlink: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if hardlink:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copy2(src, dst)


def _flat_name(rel: str, taken: set[str]) -> str:
    name = rel.replace(os.sep, "__").replace("/", "__")
    stem, suffix = os.path.splitext(name)
    k = 2
    while name in taken:
        name, k = f"{stem}-{k}{suffix}", k + 1
    taken.add(name)
    return name


def _write(tmp: Path, data: Path, groups: list[tuple[str, list[str]]], hardlink: bool,
           progress: ProgressFn | None) -> list[Cluster]:
    total, done, out = sum(len(m) for _, m in groups), 0, []
    for folder, members in groups:
        taken: set[str] = set()
        for rel in members:
            _place(data / rel, tmp / folder / _flat_name(rel, taken), hardlink)
            done += 1
            tick(progress, "writing clusters", done, total, unit="photos")
        sheet = f"{SHEETS}/{folder}.png"
        (tmp / SHEETS).mkdir(exist_ok=True)
        (tmp / sheet).write_bytes(contact_sheet([data / m for m in members], folder))
        out.append(Cluster(folder, tuple(members), sheet))
    return out


def _sweep_dead(out: Path) -> None:
    """Remove the temp folders of earlier runs for ``out`` that were killed (their pid is gone):
    a kill -9 cannot clean up after itself, the next run does."""
    for d in out.parent.glob(f".{out.name}.tmp-*-*"):
        pid = d.name[len(f".{out.name}.tmp-"):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished temp folder to ``out``; an old output is moved aside first, removed last."""
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "out")
        else:
            out.rmdir()
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def cluster_folder(reg: Any, version: str, data: str | Path, out: str | Path, *, threshold: float | None = None,
                   far: float = FAR, method: str = "agglomerative", min_size: int = 2, force: bool = False,
                   hardlink: bool = False, score: bool = False, batch_size: int = 512, device: str | None = None,
                   progress: ProgressFn | None = None) -> ClusterRun:
    """Cluster the photos under ``data`` with ``version`` and write one folder per cluster to ``out``."""
    from harmony.data.sources import FileSource
    from harmony.evaluation.cache import embed_cached
    from harmony.metrics import pairwise_precision_recall

    data, out = Path(data), Path(out)
    if method not in METHODS:
        raise InvalidInput(f"--method {method!r} is not known", hint=f"use one of {', '.join(METHODS)}")
    if min_size < 1:
        raise InvalidInput(f"--min-size {min_size} must be at least 1", hint="1 gives every photo a cluster folder")
    if not data.is_dir():
        raise NotFound(f"--data {data} is not a folder", hint="pass the folder of photos to cluster")
    _check_out(data, out, force)
    t = resolve_threshold(reg, version, threshold, far)
    photos = list_photos(data)
    if not photos:
        raise InvalidInput(f"no image files under {data}", hint="photos are .jpg/.png/... files at any depth")
    v = reg.get_version(version)
    emb = embed_cached(reg, v.name, FileSource.of(photos), batch_size=batch_size, device=device, progress=progress)
    ok = np.flatnonzero(emb.ok)
    rel = [str(p.relative_to(data)) for p in photos]
    unusable = tuple((u.path, u.reason) for u in emb.unusable)
    if ok.size == 0:
        raise InvalidInput(f"none of the {len(photos)} photo(s) under {data} could be embedded",
                           hint="see the reasons logged above")
    ids = cluster_ids(emb.rows(ok), t.value, method)
    sizes = np.bincount(ids)
    first = np.unique(ids, return_index=True)[1]  # ids are 0..k-1, all present
    order = sorted(range(sizes.size), key=lambda c: (-sizes[c], first[c]))
    groups, rest = [], []
    for c in order:
        members = [rel[i] for i in ok[ids == c]]
        if sizes[c] >= min_size:
            groups.append((f"cluster_{len(groups) + 1:04d}", members))
        else:
            rest += members
    if rest:
        groups.append((UNCLUSTERED, sorted(rest)))
    scores = None
    if score:
        truth = [r.split(os.sep)[0] if os.sep in r else "" for r in (rel[i] for i in ok)]
        pr = pairwise_precision_recall(ids, np.unique(truth, return_inverse=True)[1])
        scores = {"precision": pr.precision, "recall": pr.recall, "f1": pr.f1,
                  "identities": len(set(truth)), "labels": "first-level folders under --data"}
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        clusters = _write(tmp, data, groups, hardlink, progress)
        run = ClusterRun(version=v.name, data=str(data.absolute()), out=str(out.absolute()), threshold=t,
                         method=method, n_photos=len(photos), clusters=tuple(clusters), unusable=unusable,
                         linked="hardlink" if hardlink else "copy", min_size=min_size, n_clusters=int(sizes.size),
                         scores=scores)
        (tmp / MANIFEST).write_text(json.dumps(run.as_dict(), indent=1, allow_nan=False) + "\n")
        _check_out(data, out, force)  # again: something may have appeared there while we embedded
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run
