"""The embedding cache: hits without re-encoding, misses on any change of model or image set,
atomic files, unreadable images masked and listed (never a zero row), and each version at its own
input size."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harmony.data.synthetic import SynthConfig, render_set
from harmony.errors import InvalidInput
from harmony.evaluation import FileSource, embed_cached, folder_set, synthetic_set
from harmony.evaluation.cache import cache_path
from harmony.models.encode import encode_array
from tests.evaluation.conftest import write_faces


def cache_files(reg):
    return sorted(p.relative_to(reg.root) for p in (reg.root / "cache").rglob("*") if p.is_file())


def test_second_embedding_hits_the_cache(reg, add_tiny, count_encodes):
    add_tiny("v1")
    src = synthetic_set(6, 3).source
    first = embed_cached(reg, "v1", src).vectors
    assert sum(count_encodes) == 18 and first.shape == (18, 16) and first.dtype == np.float32
    count_encodes.clear()
    second = embed_cached(reg, "v1", synthetic_set(6, 3).source).vectors  # an equal, new object
    assert count_encodes == [] and np.array_equal(first, second)
    [f] = cache_files(reg)
    assert f.parts[:3] == ("cache", "embeddings", "v1")
    assert f.name.startswith(reg.get_version("v1").sha256[:16]) and f.name.endswith("-32px.npz")


def test_cached_embeddings_equal_a_direct_encode(reg, add_tiny):
    """Twin: chunked loading + cache == one encode of the whole rendered set, in order."""
    model = add_tiny("v1")
    images, _ = render_set(7, 3, "test", SynthConfig(image_size=32, seed=0))
    direct = encode_array(model, images, batch_size=64)
    chunked = embed_cached(reg, "v1", synthetic_set(7, 3).source, batch_size=4).vectors
    np.testing.assert_allclose(chunked, direct, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(chunked, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("other", [dict(n_identities=7), dict(per_identity=4), dict(seed=1), dict(size=40)])
def test_a_different_image_set_misses(reg, add_tiny, count_encodes, other):
    add_tiny("v1")
    base = dict(n_identities=6, per_identity=3, seed=0, size=None)
    embed_cached(reg, "v1", synthetic_set(**base).source)
    count_encodes.clear()
    emb = embed_cached(reg, "v1", synthetic_set(**(base | other)).source).vectors
    assert sum(count_encodes) == len(emb) > 0
    assert len(cache_files(reg)) == 2


def test_another_version_never_reads_this_versions_cache(reg, add_tiny, count_encodes):
    add_tiny("v1", seed=0)
    add_tiny("v2", seed=1)
    src = synthetic_set(6, 3).source
    a = embed_cached(reg, "v1", src).vectors
    b = embed_cached(reg, "v2", src).vectors
    assert sum(count_encodes) == 36 and not np.allclose(a, b)
    v = reg.get_version("v1")
    assert cache_path(reg.root, "v1", v.sha256, src, 32) != cache_path(reg.root, "v1", "0" * 64, src, 32)


def test_folder_key_follows_file_content(tmp_path, reg, add_tiny, count_encodes):
    root = tmp_path / "faces"
    paths = write_faces(root, 4, 3)
    add_tiny("v1")
    first = folder_set(root)
    embed_cached(reg, "v1", first.source)
    assert folder_set(root).source.key == first.source.key  # a rescan of an unchanged folder: same key
    count_encodes.clear()
    embed_cached(reg, "v1", folder_set(root).source)
    assert count_encodes == []

    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: may have changed
    assert folder_set(root).source.key != first.source.key
    embed_cached(reg, "v1", folder_set(root).source)
    assert sum(count_encodes) == 12
    write_faces(tmp_path / "more", 1, 2)
    touched = folder_set(root).source.key
    os.rename(tmp_path / "more" / "person00", root / "person99")  # a new identity
    grown = folder_set(root)
    assert len(grown.labels) == 14 and grown.source.key != touched


def test_unreadable_file_is_masked_and_listed(tmp_path, reg, add_tiny):
    root = tmp_path / "faces"
    paths = write_faces(root, 3, 3)
    paths[4].write_bytes(b"not an image")
    add_tiny("v1")
    src = folder_set(root).source
    emb = embed_cached(reg, "v1", src)
    ok = emb.ok
    assert ok.tolist() == [i != 4 for i in range(9)]
    assert len(emb.vectors) == 8  # no row at all stands in for the unreadable file (never a zero row)
    [bad] = emb.unusable
    assert bad.path == src.paths[4] and "cannot read image" in bad.reason
    np.testing.assert_allclose(np.linalg.norm(emb.rows(ok), axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInput, match="unusable"):
        emb.rows(np.array([4]))
    again = embed_cached(reg, "v1", src)  # from the cache: still marked
    assert again.from_cache and again.ok.tolist() == ok.tolist() and again.unusable == emb.unusable
    np.testing.assert_array_equal(again.vectors, emb.vectors)


def test_wrong_shaped_cache_file_is_recomputed_atomically(reg, add_tiny, count_encodes):
    add_tiny("v1")
    src = synthetic_set(6, 3).source
    path = cache_path(reg.root, "v1", reg.get_version("v1").sha256, src, 32)
    path.parent.mkdir(parents=True)
    np.savez(path, vectors=np.zeros((5, 16), np.float32), ok=np.ones(5, bool))
    emb = embed_cached(reg, "v1", src)
    assert sum(count_encodes) == 18 and np.load(path)["vectors"].shape == (18, 16) and emb.ok.all()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_each_version_loads_at_its_own_size(tmp_path, reg, add_tiny):
    """A 40 px model sees the same files at 40 px; with the spec recorded, a hit loads no model."""
    root = tmp_path / "faces"
    write_faces(root, 3, 2, size=48)
    add_tiny("small", image_size=32, spec_meta=True)
    big = add_tiny("big", seed=1, image_size=40, spec_meta=True)
    src = folder_set(root).source
    small_run = embed_cached(reg, "small", src)
    big_run = embed_cached(reg, "big", src)
    assert (small_run.image_size, big_run.image_size) == (32, 40) and not big_run.from_cache
    emb = big_run.vectors
    assert {f.name.split("-")[-1] for f in cache_files(reg)} == {"32px.npz", "40px.npz"}

    from harmony.data.images import load_images

    decoded = load_images(list(src.paths), 40)
    images, ok = decoded.images, decoded.ok
    assert ok.all() and decoded.unusable == ()
    np.testing.assert_allclose(emb, encode_array(big, images), atol=1e-5)

    loads = []

    def factory():
        loads.append(1)
        raise AssertionError("a cache hit must not load the model")

    again = embed_cached(reg, "big", FileSource.of(src.paths), encoder_factory=factory)
    assert loads == [] and again.from_cache and np.array_equal(again.vectors, emb)
