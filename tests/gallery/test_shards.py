"""Sharded search (index.shard_index, CPU IndexShards) against one unsharded index, and the seeded
training sample of trained codecs (index.train_if_needed)."""

from __future__ import annotations

import numpy as np
import pytest

from harmony.errors import InvalidInput
from harmony.gallery import index as fx
from harmony.gallery.store import GalleryStore
from harmony.gallery.synthetic import clustered_unit_vectors

DIM = 32


@pytest.fixture(scope="module")
def data():
    x, _, centres = clustered_unit_vectors(4000, DIM, n_clusters=400, seed=0)
    q, _, _ = clustered_unit_vectors(50, DIM, centres=centres, seed=1)
    ids = np.arange(x.shape[0], dtype=np.int64) * 5 + 11  # sparse ids
    return x, ids, q


def filled(codec: str, x: np.ndarray, ids: np.ndarray) -> object:
    index = fx.make_index(DIM, codec, n=x.shape[0])
    fx.add(index, ids, x)
    return index


def assert_same_results(D_a, I_a, D_b, I_b, tie: float = 1e-6) -> None:
    """Distances equal; ids equal wherever the distance is not tied with a neighbour in the row
    (two stored vectors at the same distance may come back in either order)."""
    np.testing.assert_allclose(D_a, D_b, rtol=0, atol=tie)
    for da, ia, ib in zip(D_a, I_a, I_b):
        gaps = np.diff(da)
        untied = np.ones(da.size, bool)
        untied[:-1] &= gaps > tie
        untied[1:] &= gaps > tie
        np.testing.assert_array_equal(ia[untied], ib[untied])


@pytest.mark.parametrize("n_shards", [2, 3, 7])
def test_sharded_flat_equals_one_flat_index_exactly(data, n_shards):
    x, ids, q = data
    one = filled("flat", x, ids)
    view = fx.shard_index(one, n_shards)
    assert isinstance(view, fx.faiss.IndexShards) and view.ntotal == x.shape[0]
    sizes = [s.ntotal for s in fx.shards_of(view)]
    assert sum(sizes) == x.shape[0] and max(sizes) - min(sizes) <= 1  # balanced within one vector
    D1, I1 = fx.search(one, q, 20)
    Ds, Is = fx.search(view, q, 20)
    np.testing.assert_array_equal(Is, I1)  # clustered float vectors: no exact ties here
    np.testing.assert_array_equal(Ds, D1)
    # and both equal a float64 brute force
    d = 2.0 - 2.0 * (q.astype(np.float64) @ x.astype(np.float64).T)
    np.testing.assert_array_equal(Is, ids[np.argsort(d, axis=1, kind="stable")[:, :20]])


@pytest.mark.parametrize("codec", fx.CODECS)
def test_every_codec_sharded_equals_unsharded(data, codec):
    x, ids, q = data
    one = filled(codec, x, ids)
    view = fx.shard_index(one, 4)
    assert fx.codec_of(view) == codec and not fx.is_gpu(view)
    for nprobe in (None, 3):
        D1, I1 = fx.search(one, q, 10, nprobe=nprobe)
        Ds, Is = fx.search(view, q, 10, nprobe=nprobe)
        assert_same_results(Ds, Is, D1, I1)
    exclude = I1[:, :2].ravel()
    D1, I1 = fx.search(one, q, 10, exclude_ids=exclude)
    Ds, Is = fx.search(view, q, 10, exclude_ids=exclude)
    assert not np.isin(Is, exclude).any()
    assert_same_results(Ds, Is, D1, I1)


def test_shards_merge_back_and_list_their_ids(data, tmp_path):
    x, ids, q = data
    for codec in fx.CODECS:
        one = filled(codec, x, ids)
        np.testing.assert_array_equal(fx.stored_ids(one), ids)
        view = fx.shard_index(one, 3)
        merged = fx.to_cpu(view)
        assert not fx.shards_of(merged) and merged.ntotal == x.shape[0]
        np.testing.assert_array_equal(fx.stored_ids(merged), ids)
        fx.save_index(view, tmp_path / f"{codec}.faiss")  # saved as one merged index
        loaded = fx.load_index(tmp_path / f"{codec}.faiss")
        assert_same_results(*fx.search(loaded, q, 10), *fx.search(one, q, 10))


def test_shard_index_rejects_bad_counts(data):
    x, ids, _ = data
    one = filled("flat", x[:100], ids[:100])
    assert fx.shard_index(one, 1) is one
    for bad in (0, fx.MAX_SHARDS + 1):
        with pytest.raises(InvalidInput, match="shards must be in"):
            fx.shard_index(one, bad)
    with pytest.raises(InvalidInput, match="not sharded yet"):
        fx.shard_index(fx.shard_index(one, 2), 2)
    with pytest.raises(InvalidInput, match="GPU mode"):
        fx.to_gpu(one, "mirror")


def test_store_searches_over_shards_like_one_index(tmp_path, data):
    x, _, q = data
    names = [f"item{i}" for i in range(x.shape[0])]
    stores = []
    for shards in (1, 3):
        s = GalleryStore.create(tmp_path / f"g{shards}", DIM, "v1", "ivf-sq8", use_gpu=False, shards=shards)
        s.add_items(names, names, ["p"] * len(names), x, "v1")
        stores.append(GalleryStore.open(s.path, use_gpu=False))  # the setting persists
    one, sharded = stores
    assert sharded.shards == 3 and fx.shards_of(sharded._search_index("v1"))
    assert sharded.info().shards == 3 and one.info().shards == 1
    D1, I1 = one.search_ids(q, 10)
    Ds, Is = sharded.search_ids(q, 10)
    assert_same_results(Ds, Is, D1, I1)
    info = sharded.info()
    m = fx.train_sample_size(x.shape[0], fx.default_nlist(x.shape[0]))
    assert info.trained_on == {"v1": {"sample": m, "pool": x.shape[0]}}


def test_training_sample_rule_and_seeded_sample():
    assert fx.train_sample_size(10_000, None) == 10_000  # sq8: all, up to SQ_TRAIN_SAMPLE
    assert fx.train_sample_size(10**6, None) == fx.SQ_TRAIN_SAMPLE
    assert fx.train_sample_size(10**6, 100) == 6400  # 64 a list
    assert fx.train_sample_size(10**6, 5_000) == fx.TRAIN_CAP  # capped ...
    assert fx.train_sample_size(10**6, 10_000) == 39 * 10_000  # ... never under 39 a list
    assert fx.train_sample_size(10**7, 65_536) == 39 * 65_536
    assert fx.train_sample_size(500, 10) == 500  # fewer vectors than the rule asks: all of them
    x, _, _ = clustered_unit_vectors(3000, DIM, n_clusters=100, seed=2)
    a, b = fx.make_index(DIM, "ivf", nlist=20), fx.make_index(DIM, "ivf", nlist=20)
    assert fx.train_if_needed(a, x) == 1280 and fx.training_sample(a) == (1280, 3000)
    fx.train_if_needed(b, x)
    ca = fx.faiss.vector_to_array(fx.faiss.downcast_index(a.quantizer).codes)
    cb = fx.faiss.vector_to_array(fx.faiss.downcast_index(b.quantizer).codes)
    np.testing.assert_array_equal(ca, cb)  # the same seeded sample, the same centroids
    assert fx.train_if_needed(a, x) == 0  # trained already


@pytest.mark.gpu
@pytest.mark.skipif(not fx.gpu_available(), reason="needs a GPU and faiss-gpu")
@pytest.mark.parametrize("mode", fx.GPU_MODES)
def test_gpu_shard_and_replicate_match_cpu(data, mode):
    x, ids, q = data
    one = filled("flat", x, ids)
    gpu = fx.to_gpu(one, mode)
    D1, I1 = fx.search(one, q, 10)
    Dg, Ig = fx.search(gpu, q, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(Ig, I1)]) >= 0.99
    np.testing.assert_allclose(Dg, D1, atol=1e-3)


def test_build_and_info_say_shards_and_training_sample(env):
    import json

    from typer.testing import CliRunner

    from harmony.cli.gallery import app

    runner = CliRunner()
    r = runner.invoke(app, ["build", "--name", "big", "--version", "v1", "--data", str(env.faces), "--codec", "ivf-sq8",
                            "--shards", "3", "--gpu-mode", "replicate", "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "trained on a seeded sample of 48 of 48 vectors" in r.stdout and "over 3 CPU shards" in r.stdout
    info = json.loads(runner.invoke(app, ["info", "--name", "big", "--json"]).stdout)["store"]
    assert (info["shards"], info["gpu_mode"], info["trained_on"]) == (3, "replicate", {"v1": {"sample": 48, "pool": 48}})
    table = " ".join(runner.invoke(app, ["info", "--name", "big"], terminal_width=200).stdout.split())
    assert "v1: 48 of 48 vectors (seeded sample)" in table and "3 CPU shard(s); several GPUs: replicate" in table
    flat = runner.invoke(app, ["build", "--name", "small", "--version", "v1", "--data", str(env.faces), "--quiet"])
    assert flat.exit_code == 0 and "trained on" not in flat.stdout
    bad = runner.invoke(app, ["build", "--name", "x", "--version", "v1", "--data", str(env.faces), "--shards", "0"])
    assert bad.exit_code == 2 and "--shards" in bad.output
