"""`harmony eval` as a library call: embed (cached), measure, plot, record in the registry.

Convention: ``version`` is the new model, ``against`` the old one; the verdict answers "is
``version`` compatible with ``against``", i.e. VAL(version->against) >= VAL(against,against) at
each FAR (DESIGN section 2, BCT). Figures:

- labelled sets: VAL@FAR over all pairs per version; leave-one-out top-1/top-5 identification;
  average-linkage clustering cut at the version's own t* for FAR 1e-3, scored by pairwise
  precision/recall; with ``against``, the 2x2 compatibility table and the identification split
  (gallery = first image per identity by the old version, probes = the rest by the new one) and the
  negative flips on that split (queries old->old gets right that new->new or new->old gets wrong,
  listed by image path relative to the images' common folder, or by index into the set);
- pair lists (LFW): the 10-fold LFW protocol (accuracy mean +- std) and VAL@FAR over the listed
  pairs per version; with ``against``, the 2x2 table over the pairs (new->old = D(new(a), old(b)),
  old->new = D(old(a), new(b))) and the LFW protocol on the new->old distances.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from harmony.distances import paired_sq_l2
from harmony.errors import Incompatible, InvalidInput
from harmony.data.sources import ArraySource, FileSource
from harmony.evaluation.cache import Embedded, embed_cached, is_labelled_images
from harmony.evaluation.datasets import EvalData, LabelledSet, PairsSet
from harmony.evaluation.results import EvalResult, VersionEval
from harmony.metrics import (MetricsWarning, compatibility_report, flip_report, identification_report, knn_accuracy,
                             lfw_protocol, plot_val_far, val_at_far, val_far_curve)
from harmony.metrics.clustering import MAX_N, cluster_report
from harmony.metrics.compat import CompatReport, CompatRow
from harmony.metrics.fars import DEFAULT_FARS, check_fars
from harmony.metrics.val_at_far import DEFAULT_CURVE_FARS
from harmony.progress import ProgressFn

if TYPE_CHECKING:
    from harmony.data.datamodule import LabelledImages
    from harmony.registry import Registry

CLUSTER_FAR = 1e-3
KS = (1, 5)


def as_eval_data(data: "EvalData | LabelledImages") -> EvalData:
    """A ``LabelledImages`` (images in memory with labels) becomes a labelled set."""
    if is_labelled_images(data):
        return LabelledSet(ArraySource.of(data.images), np.asarray(data.labels), data.key)
    return data


@contextmanager
def caveats(notes: list[str]) -> Iterator[None]:
    """Collect MetricsWarning messages (e.g. "rests on zero false accepts") as notes, once each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricsWarning)
        yield
    for w in caught:
        if issubclass(w.category, MetricsWarning):
            if str(w.message) not in notes:
                notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def item_ids(data: LabelledSet, rows: np.ndarray) -> tuple[list[str | int], str | None]:
    """(ids of the images at ``rows``, the folder they are relative to): file paths relative to
    the images' common folder, or indices into an in-memory set (root None)."""
    if not isinstance(data.source, FileSource):
        return [int(i) for i in rows], None
    paths = [data.source.paths[i] for i in rows]
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    return [os.path.relpath(p, root) for p in paths], root


def _listing(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# -- labelled sets -------------------------------------------------------------------------------

def _labelled(data: LabelledSet, embedded: dict[str, Embedded], new: str, old: str | None, fars: tuple[float, ...],
              mdev: str, notes: list[str], curves: dict | None) -> dict[str, Any]:
    ok = np.logical_and.reduce([e.ok for e in embedded.values()])
    unreadable = [data.source.paths[i] if isinstance(data.source, FileSource) else f"image #{i}"
                  for i in np.flatnonzero(~ok)]
    labels = np.asarray(data.labels)
    counts = np.unique(labels[ok], return_counts=True)
    lonely = counts[0][counts[1] < 2]
    if lonely.size:
        notes.append(f"{lonely.size} identit(ies) left with fewer than 2 readable images skipped")
        ok &= ~np.isin(labels, lonely)
    labels = labels[ok]
    n_ids = int(np.unique(labels).size)
    if n_ids < 2:
        raise InvalidInput(f"only {n_ids} identity has 2+ readable images; verification needs 2",
                           hint="check the unreadable files listed above, or add identities")
    embs = {k: e.rows(ok) for k, e in embedded.items()}
    targets = fars if CLUSTER_FAR in fars else (*fars, CLUSTER_FAR)
    per: dict[str, dict[str, Any]] = {}
    for name, e in embs.items():
        with caveats(notes):
            vals = val_at_far(e, labels, list(targets), device=mdev)
        top_k = knn_accuracy(e, labels, e, labels, KS, exclude_self=True)
        t = vals[targets.index(CLUSTER_FAR)].threshold
        clustering = None
        if len(labels) > MAX_N:
            msg = f"clustering skipped: {len(labels)} images exceed its limit of {MAX_N}"
            notes.extend([msg] if msg not in notes else [])
        elif math.isfinite(t):
            with caveats(notes):
                clustering = cluster_report(e, labels, t)
        per[name] = {"val": tuple(vals[: len(fars)]), "top_k": top_k, "clustering": clustering}
        if curves is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetricsWarning)
                curves[name] = val_far_curve(e, labels, device=mdev)
    out: dict[str, Any] = {"per": per, "n_images": int(len(labels)), "n_identities": n_ids, "n_pairs": None,
                           "unreadable": tuple(unreadable), "compat": None, "identification": None, "cross_lfw": None,
                           "flips": None, "flip_ids_root": None}
    if old is not None:
        ids, out["flip_ids_root"] = item_ids(data, np.flatnonzero(ok))
        names = np.asarray(data.identities, dtype=object)[labels] if data.identities is not None else labels
        with caveats(notes):
            out["compat"] = compatibility_report(embs[old], embs[new], labels, fars, old_name=old, new_name=new,
                                                 device=mdev)
            out["identification"] = identification_report(embs[old], embs[new], labels, 1, KS, old_name=old,
                                                          new_name=new)
            out["flips"] = flip_report(embs[old], embs[new], names, 1, ids, old_name=old, new_name=new)
        if curves is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetricsWarning)
                curves[f"{new}->{old}"] = val_far_curve(embs[new], labels, gallery=embs[old], device=mdev)
    return out


# -- pair lists ------------------------------------------------------------------------------------

def _lfw_all(d: np.ndarray, same: np.ndarray, folds: np.ndarray, fars: Sequence[float]):
    return [lfw_protocol(d, same, folds, far=f) for f in fars]


def _pair_curve(d: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fars, vals) over listed pairs, on the same FAR grid as ``val_far_curve``."""
    return DEFAULT_CURVE_FARS, np.array([r.val.val for r in _lfw_all(d, same, folds, DEFAULT_CURVE_FARS)])


def _pairs(data: PairsSet, embs: dict[str, Embedded], new: str, old: str | None, fars: tuple[float, ...],
           allow_missing: bool, notes: list[str], curves: dict | None) -> dict[str, Any]:
    ok = np.logical_and.reduce([e.ok for e in embs.values()])
    unreadable = [data.source.paths[i] for i in np.flatnonzero(~ok)]
    a, b = data.a, data.b
    usable = (a >= 0) & (b >= 0)
    usable &= ok[np.where(a >= 0, a, 0)] & ok[np.where(b >= 0, b, 0)]
    if unreadable and not allow_missing:
        raise InvalidInput(f"{len(unreadable)} image(s) in the pair list cannot be read: {_listing(unreadable)}",
                           hint=f"replace them, or pass --allow-missing to score the other {int(usable.sum())} pairs")
    if not usable.all():
        notes.append(f"{int((~usable).sum())} of {data.n_pairs} pairs skipped: "
                     f"{len(data.missing)} missing and {len(unreadable)} unreadable image(s)")
    if not usable.any():
        raise InvalidInput("no pair has two readable images", hint="check --data points at the image root")
    a, b, same, folds = a[usable], b[usable], data.same[usable], data.folds[usable]
    per: dict[str, dict[str, Any]] = {}
    for name, e in embs.items():
        d = paired_sq_l2(e.rows(a), e.rows(b))
        res = _lfw_all(d, same, folds, fars)
        per[name] = {"val": tuple(r.val for r in res), "lfw": res[0]}
        if curves is not None:
            curves[name] = _pair_curve(d, same, folds)
    used = np.unique(np.concatenate([a, b]))
    out: dict[str, Any] = {"per": per, "n_images": int(used.size), "n_identities": None, "n_pairs": int(same.size),
                           "unreadable": tuple(unreadable), "compat": None, "identification": None, "cross_lfw": None}
    if old is not None:
        d_no = paired_sq_l2(embs[new].rows(a), embs[old].rows(b))
        d_on = paired_sq_l2(embs[old].rows(a), embs[new].rows(b))
        no, on = _lfw_all(d_no, same, folds, fars), _lfw_all(d_on, same, folds, fars)
        rows = tuple(CompatRow(far=f, old_old=per[old]["val"][i], new_new=per[new]["val"][i], new_old=no[i].val,
                               old_new=on[i].val) for i, f in enumerate(fars))
        out["compat"] = CompatReport(old_name=old, new_name=new, n_images=int(used.size), n_identities=None,
                                     rows=rows, n_pairs=int(same.size))
        out["cross_lfw"] = no[0]
        if curves is not None:
            curves[f"{new}->{old}"] = _pair_curve(d_no, same, folds)
            curves[f"{old}->{new}"] = _pair_curve(d_on, same, folds)
    return out


# -- entry point -----------------------------------------------------------------------------------

def evaluate(reg: Registry, version: str, against: str | None = None, data: "EvalData | LabelledImages | None" = None,
             fars: Sequence[float] = DEFAULT_FARS, plot: str | Path | None = None, *, batch_size: int = 512,
             device: str | None = None, allow_missing: bool = False, record: bool = True,
             progress: ProgressFn | None = None) -> EvalResult:
    """Evaluate ``version`` (and, with ``against``, its compatibility with that older version) on
    ``data``; record the figures in the registry; with ``plot``, write VAL-vs-FAR curves (PNG).

    ``device``: for the encoders and the pair scans (None: the GPU when there is one).
    ``allow_missing``: score a pair list without the pairs whose images are missing or unreadable
    (otherwise they are an error that lists them).
    ``progress``: passed on to the embedding step (``harmony.progress``; None: silent).
    """
    if data is None:
        raise InvalidInput("no evaluation data given", hint="pass --synthetic N, --data DIR or a pair list")
    data = as_eval_data(data)
    fars_ = check_fars(fars)
    new_v = reg.get_version(version)
    old_v = reg.get_version(against) if against is not None else None
    if old_v is not None:
        if old_v.name == new_v.name:
            raise InvalidInput(f"--version and --against are both '{new_v.name}'",
                               hint="compare two different versions")
        if old_v.dim != new_v.dim:
            raise Incompatible(f"'{new_v.name}' embeds in {new_v.dim}-D and '{old_v.name}' in {old_v.dim}-D: their "
                               "embeddings cannot be compared", hint="compare versions of the same dimension "
                               "(evaluate each on its own without --against)")
    if isinstance(data, PairsSet) and data.missing and not allow_missing:
        raise InvalidInput(f"{len(data.missing)} image(s) named in the pair list are missing: "
                           f"{_listing(list(data.missing))}",
                           hint="restore them, or pass --allow-missing to score the pairs that remain")
    versions = [new_v] + ([old_v] if old_v is not None else [])
    if data.source.n == 0:
        raise InvalidInput("none of the evaluation images exists", hint="check --data points at the image root")
    embedded = {v.name: embed_cached(reg, v.name, data.source, batch_size=batch_size, device=device,
                                     progress=progress) for v in versions}
    sizes = {name: e.image_size for name, e in embedded.items()}
    mdev = device or "auto"
    notes: list[str] = []
    curves: dict | None = {} if plot is not None else None
    old = old_v.name if old_v is not None else None
    if isinstance(data, LabelledSet):
        out = _labelled(data, embedded, new_v.name, old, fars_, mdev, notes, curves)
    else:
        out = _pairs(data, embedded, new_v.name, old, fars_, allow_missing, notes, curves)
    per = out["per"]
    ves = tuple(VersionEval(v.name, v.dim, sizes[v.name], per[v.name]["val"], embedded[v.name].from_cache,
                            per[v.name].get("top_k"), per[v.name].get("clustering"), per[v.name].get("lfw"))
                for v in versions)
    dataset = data.name(set(sizes.values()))
    plot_path = None
    if plot is not None:
        plot_path = plot_val_far(curves, plot, title=f"VAL vs FAR on {dataset}")
    result = EvalResult(dataset=dataset, kind="labelled" if isinstance(data, LabelledSet) else "pairs",
                        data_key=data.source.key[:16], fars=fars_, n_images=out["n_images"],
                        n_identities=out["n_identities"], n_pairs=out["n_pairs"], versions=ves,
                        compat=out["compat"], identification=out["identification"], cross_lfw=out["cross_lfw"],
                        flips=out.get("flips"), flip_ids_root=out.get("flip_ids_root"),
                        unreadable=out["unreadable"],
                        missing=data.missing if isinstance(data, PairsSet) else (),
                        notes=tuple(notes), plot=plot_path)
    if record:
        result = _record(reg, result)
    return result


def _record(reg: Registry, r: EvalResult) -> EvalResult:
    """One evaluation row per version, one cross row and one compatibility row per FAR with --against."""
    from dataclasses import replace

    common = {"n_images": r.n_images, "n_identities": r.n_identities, "n_pairs": r.n_pairs, "data_key": r.data_key}
    ids = [reg.record_evaluation(v.name, r.dataset, v.metrics() | common | {"image_size": v.image_size})
           for v in r.versions]
    if r.compat is not None:
        new, old = r.compat.new_name, r.compat.old_name
        d = r.as_dict()
        ids.append(reg.record_evaluation(new, r.dataset, {"compatibility": d["compatibility"],
                                                          "identification": d["identification"],
                                                          "flips": d["flips"], "cross_lfw": d["cross_lfw"]} | common,
                                         against=old))
        for row in r.compat.rows:
            reg.record_compatibility(new, old, r.dataset, row.far, row.cells(), row.compatible)
    return replace(r, evaluation_ids=tuple(ids))
