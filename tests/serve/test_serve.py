"""The search service through FastAPI's TestClient: health, vector and photo search equal to
`gallery search`, 4xx for bad input, and a migration (mixed search, swap, rollback) followed
between requests without a restart."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # starlette >= 1.10 prefers httpx2 for its test client; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from typer.testing import CliRunner

from harmony.errors import NotFound
from harmony.gallery.catalog import build_gallery
from harmony.migration.lifecycle import rollback_gallery, swap_gallery
from harmony.migration.plan import plan_migration
from harmony.migration.run import run_migration
from harmony.migration.search import search_gallery
from harmony.models.pipeline import FileEmbedder
from harmony.serve.app import create_app
from tests.gallery.helpers import record_verdict

PROBE = "id004/002.png"


@pytest.fixture
def served(env):
    build_gallery(env.reg, "prod", "v1", env.faces)
    app = create_app(env.reg, "prod", check_every_s=0, registry_every_s=0, max_upload_bytes=200_000)
    with TestClient(app) as client:
        yield env, client


def as_pairs(hits):
    return [(h["item_id"], h["identity"], h["version"]) for h in hits]


def lib_pairs(result):
    return [(h.item_id, h.label, h.version) for h in result.hits[0]]


def photo(env, rel=PROBE):
    return {"file": (rel.replace("/", "_"), (env.faces / rel).read_bytes(), "image/png")}


def test_health_and_docs(served):
    _, client = served
    h = client.get("/health").json()
    assert (h["status"], h["gallery"], h["active_version"], h["query_version"], h["items"], h["migration"]) == \
        ("ok", "prod", "v1", "v1", 48, None)
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/search/vector", "/search/photo"} <= set(paths)


def test_vector_and_photo_search_equal_gallery_search(served):
    env, client = served
    ref = search_gallery(env.reg, "prod", env.faces / PROBE, k=5)
    vec = FileEmbedder(env.reg, "v1")([str(env.faces / PROBE)])[0][0]
    r = client.post("/search/vector", json={"vector": vec.tolist(), "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["mode"], body["query_version"], body["gallery_version"]) == ("direct", "v1", "v1")
    assert as_pairs(body["hits"]) == lib_pairs(ref) and [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([h["distance"] for h in body["hits"]], [h.distance for h in ref.hits[0]], atol=1e-5)
    p = client.post("/search/photo", files=photo(env), data={"k": "5"})
    assert p.status_code == 200, p.text
    assert as_pairs(p.json()["hits"]) == lib_pairs(ref) and p.json()["hits"][0]["item_id"] == PROBE


def test_bad_input_gets_a_4xx_with_the_reason_and_the_service_stays_up(served):
    env, client = served
    corrupt = client.post("/search/photo", files={"file": ("x.jpg", b"\xff\xd8 not a jpeg at all", "image/jpeg")})
    assert corrupt.status_code == 422 and "cannot be used" in corrupt.json()["detail"], corrupt.text
    empty = client.post("/search/photo", files={"file": ("x.png", b"", "image/png")})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    huge = client.post("/search/photo", files={"file": ("big.png", b"\0" * 300_000, "image/png")})
    assert huge.status_code == 413 and "exceeds the limit" in huge.json()["detail"] and huge.json()["hint"]
    just_over = client.post("/search/photo", files={"file": ("big.png", b"\0" * 210_000, "image/png")})
    assert just_over.status_code == 413  # within the framing allowance: the handler counts the photo's bytes

    def streamed():  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"\0" * 10_000

    chunked = client.post("/search/photo", content=streamed(),
                          headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert chunked.status_code == 413 and "exceeds the limit" in chunked.json()["detail"]
    wrong_dim = client.post("/search/vector", json={"vector": [1.0] + [0.0] * 7, "k": 3})
    assert wrong_dim.status_code == 422 and "dimension 8, expected 16" in wrong_dim.json()["detail"]
    not_unit = client.post("/search/vector", json={"vector": [2.0] + [0.0] * 15})
    assert not_unit.status_code == 422 and "L2-normalised" in not_unit.json()["detail"]
    assert client.post("/search/vector", json={"vector": "abc"}).status_code == 422  # schema check
    assert client.post("/search/vector", json={"vector": [1.0] + [0.0] * 15, "k": 0}).status_code == 422
    unknown = client.post("/search/vector", json={"vector": [1.0] + [0.0] * 15, "version": "v99"})
    assert unknown.status_code == 404, unknown.text
    other_dim = client.post("/search/vector", json={"vector": [1.0] + [0.0] * 15, "version": "v8"})
    assert other_dim.status_code == 409 and "8 dimensions" in other_dim.json()["detail"]
    gate = client.post("/search/vector", json={"vector": [1.0] + [0.0] * 15, "version": "v3"})
    assert gate.status_code == 409 and "cannot search the 48 v1 vector(s)" in gate.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/search/photo", files=photo(env)).status_code == 200  # still serving


def test_unknown_gallery_is_refused_at_startup(env):
    with pytest.raises(NotFound):
        create_app(env.reg, "nope")
    from harmony.cli.main import app

    r = CliRunner().invoke(app, ["serve", "--gallery", "nope", "--port", "0"])
    assert r.exit_code == 2 and "error:" in r.output and "nope" in r.output, r.output


def test_a_migration_is_followed_mixed_then_swapped_then_rolled_back_without_restart(served):
    env, client = served
    record_verdict(env.reg, "v2", "v1", 1e-3, True)
    vec = {v: FileEmbedder(env.reg, v)([str(env.faces / PROBE)])[0][0].tolist() for v in ("v1", "v2")}
    before = client.post("/search/vector", json={"vector": vec["v1"], "k": 48}).json()
    built_at_start = client.app.state.service.snapshots_built

    run_migration(env.reg, plan_migration(env.reg, "prod", "v2"), batch_size=16, stop_after=1)  # 16 of 48 done
    h = client.get("/health").json()
    assert (h["active_version"], h["query_version"], h["migration"]["state"]) == ("v1", "v2", "backfilling")
    mixed = client.post("/search/vector", json={"vector": vec["v2"], "k": 48}).json()
    assert mixed["mode"] == "mixed" and {x["version"] for x in mixed["hits"]} == {"v1", "v2"}
    assert sum(x["version"] == "v2" for x in mixed["hits"]) == 16 and len(mixed["hits"]) == 48
    ref = search_gallery(env.reg, "prod", env.faces / PROBE, k=48)  # the CLI's mixed search agrees
    assert (ref.mode, ref.query_version) == ("mixed", "v2") and as_pairs(mixed["hits"]) == lib_pairs(ref)

    run_migration(env.reg, plan_migration(env.reg, "prod", "v2"), batch_size=16)  # finish: ready
    snap_before_swap = client.app.state.service.current()
    swap_gallery(env.reg, "prod")  # another process would do the same: it commits the store, then the registry
    swapped = client.post("/search/vector", json={"vector": vec["v2"], "k": 5}).json()
    assert (swapped["mode"], swapped["gallery_version"]) == ("direct", "v2")
    assert {x["version"] for x in swapped["hits"]} == {"v2"}
    assert client.get("/health").json()["active_version"] == "v2"
    # a request that had taken the old snapshot finishes on it, unharmed by the swap
    old = snap_before_swap.search(env.reg, np.array([vec["v2"]], np.float32), 5, "v2")[0]
    assert old.gallery_version == "v1" and old.hits

    rollback_gallery(env.reg, "prod")
    back = client.post("/search/vector", json={"vector": vec["v1"], "k": 48}).json()
    h = client.get("/health").json()
    assert (back["mode"], h["active_version"], h["query_version"], h["migration"]) == ("direct", "v1", "v1", None)
    assert as_pairs(back["hits"]) == as_pairs(before["hits"])  # exactly the results before the migration
    assert client.app.state.service.snapshots_built >= built_at_start + 3  # followed, never restarted


def test_sharded_gallery_serves_the_same_results(env):
    build_gallery(env.reg, "one", "v1", env.faces)
    build_gallery(env.reg, "four", "v1", env.faces, shards=4)
    vec = FileEmbedder(env.reg, "v1")([str(env.faces / PROBE)])[0][0].tolist()
    got = {}
    for name in ("one", "four"):
        with TestClient(create_app(env.reg, name, use_gpu=False)) as client:
            assert client.get("/health").json()["shards"] == (4 if name == "four" else 1)
            got[name] = client.post("/search/vector", json={"vector": vec, "k": 10}).json()["hits"]
    assert json.dumps(got["one"]) == json.dumps(got["four"])


def test_photo_upload_accepts_jpeg(served):
    from PIL import Image

    env, client = served
    buf = io.BytesIO()
    with Image.open(env.faces / PROBE) as im:
        im.convert("RGB").save(buf, "JPEG", quality=95)
    r = client.post("/search/photo", files={"file": ("probe.jpg", buf.getvalue(), "image/jpeg")}, data={"k": "3"})
    assert r.status_code == 200 and r.json()["hits"][0]["identity"] == "id004", r.text
