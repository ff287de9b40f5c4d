"""Galleries through the library (harmony.gallery.catalog, harmony.migration): build, add, remove, search (direct, cross, refused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmony.errors import AlreadyExists, Incompatible, InvalidInput, NotFound
from harmony.gallery.catalog import add_to_gallery, build_gallery, gallery_view, open_gallery, remove_from_gallery
from harmony.migration.search import search_gallery
from tests.gallery.helpers import assert_same_hits, brute_force, direct_vectors, record_verdict, write_faces


def test_build_stores_items_vectors_and_registry_row(env):
    r = build_gallery(env.reg, "G", "v1", env.faces, far=1e-2)
    assert (r.n_items, r.n_identities, r.unreadable) == (48, 12, ())
    g, store = open_gallery(env.reg, "G")
    assert (g.version, g.far, g.codec, g.path) == ("v1", 1e-2, "flat", "galleries/G")
    assert Path(store.path) == env.root / "galleries" / "G"
    t = store.items()
    files = sorted(env.faces.glob("*/*.png"))
    assert list(t.item_ids) == [str(f.relative_to(env.faces)) for f in files]
    assert list(t.labels) == [f.parent.name for f in files]
    assert list(t.sources) == [str(f.absolute()) for f in files]
    np.testing.assert_allclose(store.vectors(list(t.item_ids), "v1"), direct_vectors(env.reg, "v1", files), atol=1e-5)
    assert not any(p.name.startswith(".G.building") for p in (env.root / "galleries").iterdir())


def test_build_refusals_and_unreadable_files(env):
    with pytest.raises(NotFound):
        build_gallery(env.reg, "G", "nope", env.faces)
    with pytest.raises(InvalidInput):
        build_gallery(env.reg, "G", "v1", env.faces, codec="pq")
    (env.faces / "id003" / "broken.png").write_bytes(b"not a png")
    r = build_gallery(env.reg, "G", "v1", env.faces)
    assert r.n_items == 48 and r.unreadable == (str((env.faces / "id003" / "broken.png").absolute()),)
    with pytest.raises(AlreadyExists):
        build_gallery(env.reg, "G", "v1", env.faces)


def test_build_replaces_the_folder_of_a_build_killed_before_registering(env):
    stale = env.root / "galleries" / "G"
    stale.mkdir(parents=True)
    (stale / "gallery.json").write_text("{}")
    assert build_gallery(env.reg, "G", "v1", env.faces).n_items == 48
    assert len(open_gallery(env.reg, "G")[1].items()) == 48


@pytest.mark.parametrize("codec", ["flat", "sq8", "ivf"])
def test_search_equals_brute_force(env, codec):
    build_gallery(env.reg, "G", "v1", env.faces, codec=codec)
    files = sorted(env.faces.glob("*/*.png"))
    names = [str(f.relative_to(env.faces)) for f in files]
    gallery = direct_vectors(env.reg, "v1", files)
    r = search_gallery(env.reg, "G", env.faces / "id005", k=5)
    assert (r.mode, r.query_version, len(r.queries)) == ("direct", "v1", 4)
    expected = brute_force(direct_vectors(env.reg, "v1", r.queries), gallery, names, len(names))
    if codec == "flat":
        assert_same_hits(r.hits, expected, 5)
        assert [h[0].item_id for h in r.hits] == [str(Path(q).relative_to(env.faces)) for q in r.queries]
    else:  # 8-bit codes / IVF probing: approximately the same neighbours
        for got, exp in zip(r.hits, expected):
            assert len({h.item_id for h in got} & {n for n, _ in exp[:5]}) >= 3
            np.testing.assert_allclose([h.distance for h in got][:1], [exp[0][1]], atol=0.05)


def test_other_version_needs_a_passing_verdict_at_the_gallery_far(env):
    build_gallery(env.reg, "G", "v1", env.faces, far=1e-3)
    q = env.faces / "id002" / "001.png"
    with pytest.raises(Incompatible) as e:
        search_gallery(env.reg, "G", q, version="v2")
    assert "FAR 0.001" in e.value.message and "migrate gallery --gallery G --to v2" in e.value.hint
    record_verdict(env.reg, "v2", "v1", 1e-2, True)
    record_verdict(env.reg, "v2", "v1", 1e-3, False)
    with pytest.raises(Incompatible) as e:
        search_gallery(env.reg, "G", q, version="v2")
    assert "not compatible" in e.value.message and "passes at FAR 0.01" in e.value.message
    record_verdict(env.reg, "v2", "v1", 1e-3, True)  # newest measurement wins
    r = search_gallery(env.reg, "G", q, k=4, version="v2")
    assert (r.mode, r.query_version, r.gallery_version) == ("cross", "v2", "v1")
    assert all(h.version == "v1" for h in r.hits[0])
    files = sorted(env.faces.glob("*/*.png"))
    names = [str(f.relative_to(env.faces)) for f in files]
    expected = brute_force(direct_vectors(env.reg, "v2", [q]), direct_vectors(env.reg, "v1", files), names, 48)
    assert_same_hits(r.hits, expected, 4)


def test_dimension_mismatch_and_unknown_names(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    with pytest.raises(Incompatible, match="8 dimensions"):
        search_gallery(env.reg, "G", env.faces / "id000", version="v8")
    with pytest.raises(NotFound):
        search_gallery(env.reg, "H", env.faces / "id000")
    with pytest.raises(NotFound):
        search_gallery(env.reg, "G", env.faces / "nothing-here.png")


def test_add_and_remove_files_and_folders(env):
    build_gallery(env.reg, "G", "v1", env.faces)
    more = write_faces(env.tmp / "more", 2, 3, first_image=10)  # id000/010.png ... id001/012.png
    r = add_to_gallery(env.reg, "G", [more / "id000" / "010.png", more / "id001"])
    assert (r.added, r.replaced, r.unreadable) == (4, 0, ())
    r = add_to_gallery(env.reg, "G", [env.faces / "id004" / "000.png"])  # the same item again: replaced
    assert (r.added, r.replaced) == (0, 1)
    r = add_to_gallery(env.reg, "G", [more / "id000" / "011.png"], identity="alice")
    assert r.added == 1
    _, store = open_gallery(env.reg, "G")
    t = store.items()
    assert len(t) == 53 and t.labels[t.row_of_item["alice/011.png"]] == "alice"
    np.testing.assert_allclose(store.vectors(["id001/011.png"], "v1"),
                               direct_vectors(env.reg, "v1", [more / "id001" / "011.png"]), atol=1e-5)
    assert remove_from_gallery(env.reg, "G", ["alice/011.png"]) == ["alice/011.png"]
    removed = remove_from_gallery(env.reg, "G", ["id007"])  # an identity: every item under it
    assert sorted(removed) == [f"id007/{i:03d}.png" for i in range(4)]
    with pytest.raises(NotFound):
        remove_from_gallery(env.reg, "G", ["id007/000.png"])
    assert len(store.items()) == 48
    assert gallery_view(env.reg, "G").info.n_items == 48


def test_build_on_a_full_disk_leaves_nothing_behind(env, monkeypatch):
    import errno

    import harmony.io as atomic
    from harmony.errors import DiskFull

    real_fsync = atomic.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DiskFull):
        build_gallery(env.reg, "G", "v1", env.faces)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert env.reg.list_galleries() == [] and list((env.root / "galleries").iterdir()) == []
    assert build_gallery(env.reg, "G", "v1", env.faces).n_items == 48
