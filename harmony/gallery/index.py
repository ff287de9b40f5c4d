"""The one FAISS wrapper of harmony: build, train, add, remove, search, save, load, GPU placement.

Every index holds L2-normalised float32 vectors ``(n, d)`` under int64 ids and scores them by
inner product; callers only ever see squared L2 distances ``D = ||q - x||^2 = 2 - 2 q.x``
(clipped at 0), with ``I = -1`` and ``D = inf`` where fewer than ``k`` results exist.

Codecs (bytes per 128-D vector in the codes, ids extra):
  ``flat``    exact, 512 B (IndexFlatIP in an IndexIDMap2, so vectors can be reconstructed)
  ``sq8``     8-bit scalar quantiser, 128 B, the paper's 128 bytes per face (IndexIDMap2)
  ``ivf``     inverted file over flat codes, 512 B; needs training, nprobe trades speed for recall
  ``ivf-sq8`` inverted file over 8-bit codes, 128 B

Trained codecs learn from a seeded sample (:func:`train_sample_size`); :func:`training_sample`
tells its size, so the gallery can record and say how large it was.

Placement: :func:`shard_index` splits a CPU index into shards searched in parallel threads
(``faiss.IndexShards``; results equal the unsharded index's); :func:`to_gpu` shards over all
GPUs (``mode="shard"``, memory per GPU shrinks) or replicates to each (``"replicate"``, query
throughput grows). Both are search-only views: the store keeps and saves the CPU index.
"""

from __future__ import annotations

import logging
import math
import weakref
from pathlib import Path

import faiss
import numpy as np

from harmony.distances import sq_l2_from_dots
from harmony.errors import IntegrityError, InvalidInput, NotFound
from harmony.io import atomic_writer

log = logging.getLogger(__name__)

# Exhaustive search multiplies query blocks by database blocks with BLAS. FAISS's stock database
# block (1024 vectors) leaves much of the matmul speed unused: 4096 x 8192 blocks (128 MB scratch at
# most) made flat search of 1000 queries over 100k vectors 2.2x faster (median of 6 interleaved
# runs, 555 -> 1228 QPS on 2 shared cores) and IVF training no slower; bench_search.py reports both.
faiss.cvar.distance_compute_blas_query_bs = 4096
faiss.cvar.distance_compute_blas_database_bs = 8192

CODECS = ("flat", "sq8", "ivf", "ivf-sq8")
LOSSY_CODECS = ("sq8", "ivf-sq8")  # stored vectors come back as decoded 8-bit codes, not as added
NORM_TOLERANCE = 1e-3
MAX_NLIST = 65536
SQ_MIN_TRAIN = 1000  # fewer training vectors: 8-bit ranges fixed to the unit cube (see train_if_needed)
SQ_RANGE_MARGIN = 0.1  # widen trained 8-bit ranges by 10% so later vectors are rarely clipped
GPU_MAX_K = 2048  # the largest k GPU FAISS searches accept
GPU_MODES = ("shard", "replicate")
MAX_SHARDS = 256
TRAIN_PER_LIST = 64  # k-means points per inverted list (FAISS warns below 39)
TRAIN_MIN_PER_LIST = 39
TRAIN_CAP = 262_144  # at most this many training points (128 MB of 128-D float32), unless nlist needs 39 a list
SQ_TRAIN_SAMPLE = 65_536  # 8-bit ranges of a flat sq8 index: min/max over this many vectors
TRAIN_SEED = 0


# -- input checks: the one place where arrays are converted -----------------------------------

def as_vectors(x: np.ndarray, dim: int, what: str = "vectors") -> np.ndarray:
    """Return ``x`` as C-contiguous float32 ``(n, dim)``; reject wrong dims, NaN/inf, non-unit rows.

    A 1-D array is taken as one vector.
    """
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise InvalidInput(f"{what} must be a 2-D array (n, {dim}), got shape {a.shape}",
                           hint="stack the embeddings into one (n, d) array")
    if a.shape[1] != dim:
        raise InvalidInput(f"{what} have dimension {a.shape[1]}, expected {dim}",
                           hint="embed with the version this index was built for")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape[0] == 0:
        return a
    if not np.isfinite(a).all():
        raise InvalidInput(f"{what} contain NaN or inf", hint="check the embedder's output")
    norms = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))
    bad = np.abs(norms - 1.0) > NORM_TOLERANCE
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"{what} must be L2-normalised: row {i} has norm {norms[i]:.4f}",
                           hint="divide each embedding by its L2 norm")
    return a


def as_ids(ids: np.ndarray, n: int | None = None) -> np.ndarray:
    """Return ``ids`` as int64 ``(n,)``, non-negative and unique (-1 means 'no result' in FAISS)."""
    a = np.asarray(ids)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise InvalidInput(f"ids must be a 1-D integer array, got {a.dtype} {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if n is not None and a.shape[0] != n:
        raise InvalidInput(f"{a.shape[0]} ids for {n} vectors", hint="pass one id per vector")
    if a.size and a.min() < 0:
        raise InvalidInput("ids must be non-negative")
    if np.unique(a).size != a.size:
        raise InvalidInput("ids repeat within one call", hint="deduplicate the ids")
    return a


# -- construction -----------------------------------------------------------------------------

def default_nlist(n: int) -> int:
    """About 4 sqrt(n) inverted lists, at most n/39 (FAISS wants >= 39 training points a list)."""
    if n <= 0:
        return 1
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39, MAX_NLIST)))


def default_nprobe(nlist: int) -> int:
    """Lists visited per query: nlist/16 (at least 8), measured in bench/bench_search.py."""
    return int(min(nlist, max(8, nlist // 16)))


def make_index(dim: int, codec: str = "flat", *, nlist: int | None = None,
               n: int | None = None) -> faiss.Index:
    """An empty inner-product index with int64 ids. IVF codecs need ``nlist`` or the gallery size ``n``."""
    if dim <= 0:
        raise InvalidInput(f"dimension must be positive, got {dim}")
    if codec == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if codec == "sq8":
        return faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT))
    if codec in ("ivf", "ivf-sq8"):
        if nlist is None:
            if n is None:
                raise InvalidInput(f"codec {codec} needs nlist or the expected number of vectors",
                                   hint="pass nlist=... (about 4*sqrt(n))")
            nlist = default_nlist(n)
        if not 1 <= nlist <= MAX_NLIST:
            raise InvalidInput(f"nlist must be in 1..{MAX_NLIST}, got {nlist}")
        quantizer = faiss.IndexFlatIP(dim)
        if codec == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT, True)
        index.cp.spherical = True  # centroids on the unit sphere, like the data
        index.cp.max_points_per_centroid = 64  # k-means on at most 64 * nlist samples (1M: 256k)
        index.nprobe = default_nprobe(nlist)
        return index
    raise InvalidInput(f"unknown codec {codec!r}", hint=f"use one of {', '.join(CODECS)}")


def codec_of(index: faiss.Index) -> str:
    """Name the codec of an index built by :func:`make_index` (after a load, too; of a shard view,
    its shards' codec)."""
    subs = shards_of(index)
    index = to_cpu(subs[0] if subs else index)
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        return "ivf-sq8"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexScalarQuantizer):
        return "sq8"
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    raise InvalidInput(f"unsupported index type {type(index).__name__}")


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    subs = shards_of(index)
    if subs:  # a shard view: every shard is a copy of one trained codec
        return _ivf(subs[0])
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Set how many inverted lists a search visits (ignored for non-IVF indexes)."""
    if is_gpu(index):
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", int(nprobe))
        return
    for sub in shards_of(index) or [index]:
        ivf = _ivf(sub)
        if ivf is not None:
            ivf.nprobe = int(min(max(1, nprobe), ivf.nlist))


# -- training, adding, removing ---------------------------------------------------------------

def train_sample_size(n: int, nlist: int | None) -> int:
    """How many of ``n`` vectors train a codec: IVF (``nlist`` lists) 64 a list, capped at
    TRAIN_CAP but never under FAISS's 39 a list; flat sq8 (``nlist=None``) SQ_TRAIN_SAMPLE."""
    if nlist is None:
        return int(min(n, SQ_TRAIN_SAMPLE))
    want = max(TRAIN_MIN_PER_LIST * nlist, min(TRAIN_PER_LIST * nlist, TRAIN_CAP))
    return int(min(n, max(want, SQ_MIN_TRAIN)))


_TRAINED: weakref.WeakKeyDictionary[faiss.Index, tuple[int, int]] = weakref.WeakKeyDictionary()


def training_sample(index: faiss.Index) -> tuple[int, int] | None:
    """``(sample, pool)`` when :func:`train_if_needed` trained this index object in this process
    (a clone or a loaded copy does not know; faiss indexes carry no such field)."""
    return _TRAINED.get(index)


def train_if_needed(index: faiss.Index, vecs: np.ndarray) -> int:
    """Train an untrained index (IVF centroids, SQ8 ranges) on a seeded sample of ``vecs`` (size:
    :func:`train_sample_size`); return the sample size (0: already trained, nothing done). The
    size and the pool it was drawn from are kept for :func:`training_sample` (the store records
    them in the gallery's meta when it commits this index)."""
    if index.is_trained:
        return 0
    x = as_vectors(vecs, index.d, "training vectors")
    ivf = _ivf(index)
    need = ivf.nlist if ivf is not None else 1
    if x.shape[0] < need:
        raise InvalidInput(f"{x.shape[0]} training vectors for {need} inverted lists",
                           hint="add more items at once, or choose a smaller nlist")
    m = train_sample_size(x.shape[0], ivf.nlist if ivf is not None else None)
    if m < x.shape[0]:
        rows = np.sort(np.random.default_rng(TRAIN_SEED).choice(x.shape[0], size=m, replace=False))
        sample = x[rows]
    else:
        sample = x
    sq = _scalar_quantizer(index)
    if sq is not None:
        sq.rangestat_arg = SQ_RANGE_MARGIN
    index.train(sample)
    if sq is not None and m < SQ_MIN_TRAIN:
        # Ranges from a handful of vectors would clip later ones; unit vectors (and IVF residuals of
        # unit vectors) have every component in [-1, 1] ([-2, 2]), so quantise over that instead.
        lo = 2.0 if ivf is not None else 1.0
        ranges = np.concatenate([np.full(index.d, -lo, np.float32), np.full(index.d, 2 * lo, np.float32)])
        sq.trained.resize(0)
        faiss.copy_array_to_vector(ranges, sq.trained)
    _TRAINED[index] = (int(m), int(x.shape[0]))
    log.info("trained %s on %d of %d vectors (seeded sample)", type(index).__name__, m, x.shape[0])
    return int(m)


def _scalar_quantizer(index: faiss.Index) -> "faiss.ScalarQuantizer | None":
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    return inner.sq if isinstance(inner, (faiss.IndexScalarQuantizer, faiss.IndexIVFScalarQuantizer)) else None


def add(index: faiss.Index, ids: np.ndarray, vecs: np.ndarray) -> int:
    """Add new vectors under ``ids`` (trains first if needed; returns the training sample size, 0
    when none). To replace an id, :func:`remove` it first."""
    x = as_vectors(vecs, index.d)
    i = as_ids(ids, x.shape[0])
    if x.shape[0] == 0:
        return 0
    trained = train_if_needed(index, x)
    index.add_with_ids(x, i)
    return trained


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    """Remove ``ids`` (absent ids are ignored); return how many vectors went."""
    i = np.unique(np.asarray(ids, dtype=np.int64))
    if i.size == 0 or index.ntotal == 0:
        return 0
    return int(index.remove_ids(i))


def reconstruct(index: faiss.Index, ids: np.ndarray, *, direct_map: bool = False) -> np.ndarray:
    """Stored vectors ``(n, d)`` float32 for ``ids`` (sq8 codecs return decoded codes).

    Flat and sq8 indexes map ids to vectors; IVF ones keep no such map, so they fail unless
    ``direct_map``: then a copy of the index gets a hash-table id map built (O(n), once per call;
    the index itself is left unchanged)."""
    i = np.ascontiguousarray(ids, dtype=np.int64)
    cpu = to_cpu(index)
    ivf = _ivf(cpu)
    if direct_map and ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
        cpu = faiss.clone_index(cpu)
        faiss.extract_index_ivf(cpu).set_direct_map_type(faiss.DirectMap.Hashtable)
    try:
        return cpu.reconstruct_batch(i)
    except RuntimeError as e:
        raise InvalidInput(f"cannot reconstruct vectors from this index: {e}".splitlines()[0],
                           hint="use a flat or sq8 codec") from None


# -- search -----------------------------------------------------------------------------------

def search(index: faiss.Index, queries: np.ndarray, k: int, *, nprobe: int | None = None,
           exclude_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest ids per query: ``D`` (nq, k) float32 squared L2, ``I`` (nq, k) int64.

    ``exclude_ids`` are never returned (used by mixed search to skip items re-embedded since).
    """
    q = as_vectors(queries, index.d, "queries")
    if k <= 0:
        raise InvalidInput(f"k must be positive, got {k}")
    nq = q.shape[0]
    if nq == 0 or index.ntotal == 0:
        return np.full((nq, k), np.inf, np.float32), np.full((nq, k), -1, np.int64)
    exclude = None if exclude_ids is None else np.unique(np.asarray(exclude_ids, dtype=np.int64))
    if exclude is not None and exclude.size == 0:
        exclude = None
    if is_gpu(index):
        if nprobe is not None:
            set_nprobe(index, nprobe)
        S, I = _search_excluding_by_growth(index, q, k, exclude)
    elif exclude is not None and shards_of(index):
        S, I = _search_shards_excluding(index, q, k, nprobe, exclude)
    else:
        S, I = index.search(q, k, params=_params(index, nprobe, exclude))
    return ip_to_sqdist(S, I), I


def _search_shards_excluding(view: faiss.Index, q: np.ndarray, k: int, nprobe: int | None,
                             exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A CPU shard view searched with an ID selector: each shard gets its own parameters (an
    IndexIDMap points the selector it is given at its own id map while it searches, so one
    parameter object shared by IndexShards' threads would race), one thread a shard, then the
    per-shard top-k merged by inner product (ties by shard order, as IndexShards merges)."""
    from concurrent.futures import ThreadPoolExecutor

    subs = shards_of(view)
    with ThreadPoolExecutor(len(subs)) as pool:  # faiss releases the GIL while it searches
        parts = list(pool.map(lambda sub: sub.search(q, k, params=_params(sub, nprobe, exclude)), subs))
    S = np.hstack([p[0] for p in parts])
    I = np.hstack([p[1] for p in parts])
    S = np.where(I >= 0, S, -np.inf)
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, order, 1), np.take_along_axis(I, order, 1)


def ip_to_sqdist(S: np.ndarray, I: np.ndarray) -> np.ndarray:
    """Inner products of unit vectors -> squared L2 (2 - 2 ip, clipped at 0); inf where I == -1."""
    found = I >= 0
    D = sq_l2_from_dots(np.where(found, S, 1.0).astype(np.float32))
    D[~found] = np.inf
    return D


def _params(index: faiss.Index, nprobe: int | None, exclude: np.ndarray | None):
    sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(exclude)) if exclude is not None else None
    ivf = _ivf(index)
    if ivf is not None:
        p = faiss.SearchParametersIVF(nprobe=int(min(max(1, nprobe or ivf.nprobe), ivf.nlist)))
    elif sel is None:
        return None
    else:
        p = faiss.SearchParameters()
    if sel is not None:
        p.sel = sel
        p.referenced_objects = [sel]  # keep the selector alive as long as the parameters
    return p


def _search_excluding_by_growth(index: faiss.Index, q: np.ndarray, k: int,
                                exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exclusion for indexes without ID selectors (GPU): search deeper until k survivors remain."""
    nq = q.shape[0]
    cap = min(index.ntotal, GPU_MAX_K) if is_gpu(index) else index.ntotal
    S_out = np.full((nq, k), -np.inf, np.float32)
    I_out = np.full((nq, k), -1, np.int64)
    todo = np.arange(nq)
    kk = min(cap, k if exclude is None else 2 * k)
    while todo.size:
        S, I = index.search(q[todo], kk)
        keep = I >= 0
        if exclude is not None:
            keep &= ~np.isin(I, exclude)
        done = (keep.sum(1) >= k) | (kk >= cap)
        for row in np.flatnonzero(done):
            cols = np.flatnonzero(keep[row])[:k]
            S_out[todo[row], : cols.size] = S[row, cols]
            I_out[todo[row], : cols.size] = I[row, cols]
        todo = todo[~done]
        kk = min(cap, kk * 4)
    return S_out, I_out


# -- persistence ------------------------------------------------------------------------------

def save_index(index: faiss.Index, path: Path | str) -> int:
    """Write ``index`` atomically (from a CPU copy); return the bytes written. ENOSPC -> DiskFull."""
    cpu = to_cpu(index)
    with atomic_writer(path) as f:
        writer = faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(cpu, writer)
        del writer
        size = f.tell()
    return size


def load_index(path: Path | str) -> faiss.Index:
    """Read an index written by :func:`save_index` (always onto the CPU)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"index file {p} does not exist", hint="check the gallery folder")
    try:
        return faiss.read_index(str(p))
    except RuntimeError as e:
        raise IntegrityError(f"index file {p} is unreadable: {str(e).splitlines()[0]}",
                             hint="restore the gallery folder from a backup or rebuild it") from None


# -- placement: shards, replicas, GPUs --------------------------------------------------------

def shards_of(index: faiss.Index) -> list[faiss.Index]:
    """The sub-indexes of an IndexShards / IndexReplicas view (``[]`` for any other index)."""
    if not isinstance(index, (faiss.IndexShards, faiss.IndexReplicas)):
        return []
    return [faiss.downcast_index(index.at(i)) for i in range(index.count())]


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The int64 ids an index holds, sorted (IDMap: its id map; IVF: the ids of every list)."""
    if isinstance(index, faiss.IndexIDMap):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    ivf = _ivf(index)
    if ivf is None:
        raise InvalidInput(f"cannot list the ids of a {type(index).__name__}", hint="use an index made by make_index")
    inv = ivf.invlists
    parts = [faiss.rev_swig_ptr(inv.get_ids(lst), inv.list_size(lst)).copy()
             for lst in range(ivf.nlist) if inv.list_size(lst)]
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.empty(0, np.int64)


def shard_index(index: faiss.Index, n_shards: int) -> faiss.Index:
    """A search-only view of a CPU ``index`` split into ``n_shards`` (``faiss.IndexShards``, one
    thread a shard): shard ``s`` holds every ``n_shards``-th stored id, so shards are balanced
    within one vector. Each shard is a copy of the same trained codec (same IVF centroids and SQ
    ranges, same nprobe), so the merged top-k equals the unsharded index's (ties aside).
    ``n_shards=1`` returns ``index`` itself. Costs one extra copy of the vectors in memory."""
    n_shards = int(n_shards)
    if not 1 <= n_shards <= MAX_SHARDS:
        raise InvalidInput(f"shards must be in 1..{MAX_SHARDS}, got {n_shards}", hint="e.g. --shards 4")
    if n_shards == 1:
        return index
    if is_gpu(index) or shards_of(index):
        raise InvalidInput("shard_index takes a CPU index that is not sharded yet", hint="pass the stored CPU index")
    ids = stored_ids(index)
    view = faiss.IndexShards(index.d, True, False)  # threaded; ids kept as stored (no successive shift)
    view.metric_type = index.metric_type
    subs = []
    for s in range(n_shards):
        sub = faiss.clone_index(index)
        drop = np.delete(ids, np.arange(s, ids.size, n_shards))
        if drop.size:
            sub.remove_ids(faiss.IDSelectorBatch(drop))
        subs.append(sub)
        view.add_shard(sub)
    view.referenced_objects = subs  # the view does not own its shards
    return view


def gpu_available() -> bool:
    """True when this faiss build sees at least one CUDA GPU (never with faiss-cpu)."""
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # a broken CUDA install reads as 'no GPU'
        return False


def is_gpu(index: faiss.Index) -> bool:
    """A GPU index, an id map over one, or a shard/replica view over GPU indexes (a CPU shard view
    is not)."""
    subs = shards_of(index)
    if subs:
        return is_gpu(subs[0])
    if isinstance(index, faiss.IndexIDMap):
        return is_gpu(faiss.downcast_index(index.index))
    return type(index).__name__.startswith("Gpu")


def check_gpu_mode(mode: str) -> str:
    if mode not in GPU_MODES:
        raise InvalidInput(f"unknown GPU mode {mode!r}", hint=f"use one of {', '.join(GPU_MODES)}")
    return mode


def to_gpu(index: faiss.Index, mode: str = "shard") -> faiss.Index:
    """A GPU copy of ``index``: on one GPU a plain copy; over several, ``mode="shard"`` splits the
    vectors over all GPUs (each holds 1/ngpu) and ``"replicate"`` puts a full copy on each (queries
    spread over them). The CPU index itself when no GPU is present or this index type has no GPU
    implementation (logged)."""
    check_gpu_mode(mode)
    if not gpu_available() or is_gpu(index):
        return index
    ngpu = faiss.get_num_gpus()
    try:
        if ngpu == 1:
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        co = faiss.GpuMultipleClonerOptions()
        co.shard = mode == "shard"
        return faiss.index_cpu_to_all_gpus(index, co=co, ngpu=ngpu)
    except RuntimeError as e:
        log.warning("keeping %s on the CPU: %s", type(index).__name__, str(e).splitlines()[0])
        return index


def to_cpu(index: faiss.Index) -> faiss.Index:
    """A CPU index: GPU indexes and GPU views copied back (shards merged), a CPU shard view merged
    into one index (a copy), any other index itself."""
    if is_gpu(index):
        return faiss.index_gpu_to_cpu(index)
    subs = shards_of(index)
    if not subs:
        return index
    if isinstance(index, faiss.IndexReplicas):
        return subs[0]
    merged = faiss.clone_index(subs[0])
    for sub in subs[1:]:
        merged.merge_from(faiss.clone_index(sub), 0)
    return merged
