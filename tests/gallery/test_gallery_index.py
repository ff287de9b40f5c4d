"""harmony.gallery.index against a numpy brute-force search on seeded clustered unit vectors."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.gallery import index as fx
from harmony.errors import DiskFull
from harmony.gallery.synthetic import clustered_unit_vectors

DIM = 64


@pytest.fixture(scope="module")
def data():
    x, _, centres = clustered_unit_vectors(6000, DIM, n_clusters=600, seed=0)
    q, _, _ = clustered_unit_vectors(60, DIM, centres=centres, seed=1)
    ids = np.arange(x.shape[0], dtype=np.int64) * 7 + 3  # sparse, non-contiguous ids
    return x, ids, q


def brute_force(x, ids, q, k):
    """The obviously correct twin: all distances in float64, stable sort."""
    d = 2.0 - 2.0 * (q.astype(np.float64) @ x.astype(np.float64).T)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), ids[order]


def true_distance(x, ids, q, I):
    pos = {int(i): r for r, i in enumerate(ids)}
    rows = np.vectorize(lambda i: pos[int(i)])(I)
    return 2.0 - 2.0 * np.einsum("qd,qkd->qk", q.astype(np.float64), x[rows].astype(np.float64))


def recall_at(I, I_true):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(I, I_true)])


def built(codec, x, ids):
    index = fx.make_index(DIM, codec, n=x.shape[0])
    fx.add(index, ids, x)
    return index


def test_flat_matches_brute_force(data):
    x, ids, q = data
    D, I = fx.search(built("flat", x, ids), q, 10)
    D_ref, I_ref = brute_force(x, ids, q, 10)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, atol=1e-5)
    assert D.dtype == np.float32 and I.dtype == np.int64


def test_sq8_distances_within_tolerance_and_recall(data):
    x, ids, q = data
    D, I = fx.search(built("sq8", x, ids), q, 10)
    # 8-bit codes over the trained ranges: the squared L2 error stays below 0.02 (0.5% of the range 0..4)
    assert np.abs(D - true_distance(x, ids, q, I)).max() < 0.02
    assert recall_at(I, brute_force(x, ids, q, 10)[1]) >= 0.9


@pytest.mark.parametrize("codec,tol", [("ivf", 1e-5), ("ivf-sq8", 0.04)])
def test_ivf_recall_floor_and_exact_when_probing_all(data, codec, tol):
    x, ids, q = data
    index = built(codec, x, ids)
    _, I_ref = brute_force(x, ids, q, 10)
    D, I = fx.search(index, q, 10)  # default nprobe
    assert recall_at(I, I_ref) >= 0.9
    assert np.abs(D - true_distance(x, ids, q, I)).max() < tol
    nlist = fx._ivf(index).nlist
    _, I_all = fx.search(index, q, 10, nprobe=nlist)
    assert recall_at(I_all, I_ref) >= (1.0 if codec == "ivf" else 0.95)
    _, I_one = fx.search(index, q, 10, nprobe=1)
    assert recall_at(I_one, I_ref) < recall_at(I, I_ref)  # nprobe really is honoured


def test_fewer_items_than_k_pads_with_minus_one_and_inf():
    x, _, _ = clustered_unit_vectors(3, DIM, seed=2)
    index = fx.make_index(DIM, "flat")
    fx.add(index, [5, 6, 7], x)
    D, I = fx.search(index, x[:1], 5)
    assert sorted(I[0, :3]) == [5, 6, 7] and list(I[0, 3:]) == [-1, -1]
    assert np.isinf(D[0, 3:]).all() and D[0, 0] == pytest.approx(0.0, abs=1e-6)
    D, I = fx.search(fx.make_index(DIM, "sq8"), x, 2)  # empty and untrained
    assert (I == -1).all() and np.isinf(D).all()


@pytest.mark.parametrize("codec", fx.CODECS)
def test_save_load_round_trip(tmp_path, data, codec):
    x, ids, q = data
    index = built(codec, x[:2000], ids[:2000])
    path = tmp_path / f"{codec}.faiss"
    size = fx.save_index(index, path)
    assert size == path.stat().st_size > 0
    loaded = fx.load_index(path)
    assert fx.codec_of(loaded) == codec and loaded.ntotal == 2000
    for a, b in zip(fx.search(index, q, 10), fx.search(loaded, q, 10)):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_save_full_disk_keeps_old_file(tmp_path, data, monkeypatch):
    x, ids, q = data
    path = tmp_path / "g.faiss"
    fx.save_index(built("flat", x[:100], ids[:100]), path)
    before = path.read_bytes()
    real = fx.faiss.PyCallbackIOWriter

    def failing_writer(write):
        calls = []

        def w(b):
            calls.append(len(b))
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(b)
        return real(w)

    monkeypatch.setattr(fx.faiss, "PyCallbackIOWriter", failing_writer)
    with pytest.raises(DiskFull, match="disk full"):
        fx.save_index(built("flat", x, ids), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.faiss"]


@pytest.mark.parametrize("codec", fx.CODECS)
def test_remove(data, codec):
    x, ids, q = data
    index = built(codec, x[:2000], ids[:2000])
    _, I = fx.search(index, q, 5, nprobe=10_000)
    gone = np.unique(I[:, 0])
    assert fx.remove(index, np.r_[gone, 10**12]) == gone.size  # an absent id is ignored
    assert index.ntotal == 2000 - gone.size
    _, I2 = fx.search(index, q, 5, nprobe=10_000)
    assert not np.isin(I2, gone).any()


def test_input_checks():
    index = fx.make_index(DIM, "flat")
    x, _, _ = clustered_unit_vectors(4, DIM, seed=3)
    with pytest.raises(InvalidInput, match=f"dimension 32, expected {DIM}"):
        fx.add(index, [0, 1, 2, 3], x[:, :32])
    bad = x.copy()
    bad[1, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        fx.add(index, [0, 1, 2, 3], bad)
    with pytest.raises(InvalidInput, match="L2-normalised"):
        fx.add(index, [0, 1, 2, 3], x * 2)
    with pytest.raises(InvalidInput, match="repeat"):
        fx.add(index, [0, 1, 1, 3], x)
    with pytest.raises(InvalidInput, match="4 vectors"):
        fx.add(index, [0, 1], x)
    with pytest.raises(InvalidInput, match="unknown codec"):
        fx.make_index(DIM, "pq")
    with pytest.raises(InvalidInput, match="nlist"):
        fx.make_index(DIM, "ivf")
    fx.add(index, [0, 1, 2, 3], x.astype(np.float64))  # converted to float32 in one place
    D, I = fx.search(index, x[2].astype(np.float64), 1)  # one 1-D query
    assert I[0, 0] == 2 and index.ntotal == 4


def test_exclude_ids_selector_and_growth_agree_with_brute_force(data):
    x, ids, q = data
    index = built("flat", x, ids)
    _, I_all = brute_force(x, ids, q, 40)
    exclude = np.unique(I_all[:, :25])  # most of every query's neighbourhood
    keep = ~np.isin(ids, exclude)
    D_ref, I_ref = brute_force(x[keep], ids[keep], q, 10)
    D, I = fx.search(index, q, 10, exclude_ids=exclude)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, atol=1e-5)
    S2, I2 = fx._search_excluding_by_growth(index, q, 10, exclude)  # the GPU path, run on the CPU
    np.testing.assert_array_equal(I2, I_ref)
    np.testing.assert_allclose(fx.ip_to_sqdist(S2, I2), D_ref, atol=1e-5)


def test_default_nlist_and_small_sq8_training():
    assert fx.default_nlist(1_000_000) == 4000
    assert fx.default_nlist(100_000) == 1265
    assert fx.default_nlist(1000) == 25  # at most n/39
    assert fx.default_nlist(5) == 1
    # a handful of training vectors: ranges fixed to [-1, 1], later vectors are not clipped
    x, _, _ = clustered_unit_vectors(3000, DIM, seed=4)
    index = fx.make_index(DIM, "sq8")
    fx.train_if_needed(index, x[:10])
    fx.add(index, np.arange(3000), x)
    D, I = fx.search(index, x[:20], 5)
    assert np.abs(D - true_distance(x, np.arange(3000), x[:20], I)).max() < 0.03


def test_cpu_fallback_without_gpu():
    if fx.gpu_available():
        pytest.skip("a GPU is present")
    index = fx.make_index(DIM, "flat")
    assert fx.to_gpu(index) is index and fx.to_cpu(index) is index and not fx.is_gpu(index)
