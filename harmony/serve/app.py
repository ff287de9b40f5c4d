"""The HTTP search service: a FastAPI app over one gallery (harmony.serve.state.GalleryService).

Endpoints: ``GET /health``, ``POST /search/vector`` (JSON ``{"vector": [...], "k": 5}``),
``POST /search/photo`` (multipart ``file``, optional ``k`` and ``version`` form fields), and
FastAPI's OpenAPI docs at ``/docs``. Errors are JSON ``{"error": code, "detail": message, "hint":
fix}``: 413 for an upload over the size limit, 422 for an unusable photo or a vector of the wrong
dimension / not unit length, 409 when the compatibility gate refuses, 404 for an unknown version,
503 while the registry is busy. Handlers are plain ``def``: FastAPI runs them in its thread pool,
so FAISS and torch work does not block the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from harmony.errors import (
    Busy,
    HarmonyError,
    Incompatible,
    IntegrityError,
    InvalidInput,
    NotFound,
)
from harmony.gallery.index import GPU_MAX_K
from harmony.serve.state import Answer, GalleryService

if TYPE_CHECKING:
    from harmony.registry import Registry

MAX_UPLOAD_BYTES = 10 * 2**20
FRAMING_BYTES = 64 * 1024  # multipart boundaries and form fields around the photo
STATUS = {InvalidInput: 422, Incompatible: 409, NotFound: 404, Busy: 503, IntegrityError: 500}


class VectorQuery(BaseModel):
    vector: list[float] = Field(description="One L2-normalised embedding, of the gallery's dimension.")
    k: int = Field(5, ge=1, le=GPU_MAX_K, description="Results to return.")
    version: str | None = Field(None, description="The version that embedded the vector (default: the "
                                   "gallery's serving version, or the target of a compatible migration).")


class TooLarge(HarmonyError):
    code = "too_large"


def _answer(a: Answer) -> dict[str, Any]:
    return {"query_version": a.query_version, "gallery_version": a.gallery_version, "mode": a.mode,
            "generation": a.generation,
            "hits": [{"rank": i + 1, "item_id": h.item_id, "identity": h.label, "distance": h.distance,
                      "version": h.version} for i, h in enumerate(a.hits)]}


def _error(status: int, e: HarmonyError) -> JSONResponse:
    return JSONResponse({"error": e.code, "detail": e.message, "hint": e.hint}, status_code=status)


def create_app(reg: Registry, gallery: str, *, max_upload_bytes: int = MAX_UPLOAD_BYTES, check_every_s: float = 0.1,
               registry_every_s: float = 1.0, use_gpu: bool | None = None, device: str | None = None) -> FastAPI:
    """The app serving ``gallery`` of ``reg`` (NotFound now, not at the first request, when it does
    not exist). ``check_every_s`` / ``registry_every_s``: how often a request re-checks the gallery
    and the registry for a swap, rollback or backfill progress (0: every request)."""
    service = GalleryService(reg, gallery, check_every_s=check_every_s, registry_every_s=registry_every_s,
                             use_gpu=use_gpu, device=device)
    app = FastAPI(title=f"harmony search: gallery {gallery}",
                  description="Top-k face search over a harmony gallery; follows migrations (mixed v1/v2 search "
                              "during a compatible one, swaps and rollbacks) without a restart.")
    app.state.service = service
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.add_middleware(UploadLimit, path="/search/photo", limit=int(max_upload_bytes) + FRAMING_BYTES)

    @app.exception_handler(HarmonyError)
    def harmony_error(request: Request, e: HarmonyError) -> JSONResponse:
        status = 413 if isinstance(e, TooLarge) else next((s for t, s in STATUS.items() if isinstance(e, t)), 400)
        return _error(status, e)

    @app.get("/health", summary="Gallery, serving version, migration state, items")
    def health() -> dict[str, Any]:
        return {"status": "ok", **service.current().health()}

    @app.post("/search/vector", summary="Top-k items for one embedding")
    def search_vector(body: VectorQuery) -> dict[str, Any]:
        return _answer(service.search_vectors([body.vector], body.k, body.version)[0])

    @app.post("/search/photo", summary="Embed an uploaded photo, then top-k items")
    def search_photo(file: Annotated[UploadFile, File(description="A JPEG or PNG photo.")],
                     k: Annotated[int, Form(ge=1, le=GPU_MAX_K)] = 5,
                     version: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        limit = app.state.max_upload_bytes
        data = file.file.read(limit + 1)
        if len(data) > limit:
            raise _too_large(None, limit)
        if not data:
            raise InvalidInput("the uploaded file is empty", hint="upload a JPEG or PNG photo")
        suffix = (file.filename or "").rsplit(".", 1)[-1].lower() if "." in (file.filename or "") else "img"
        return _answer(service.search_photo(data, suffix, k, version))

    return app


class UploadLimit:
    """ASGI middleware: the body of a request to ``path`` is read into memory up to ``limit``
    bytes before the app sees it; beyond that (announced by Content-Length, or counted while it
    streams in) the answer is 413 and nothing is parsed or spooled to disk."""

    def __init__(self, app: Any, path: str, limit: int):
        self.app, self.path, self.limit = app, path, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        announced = dict(scope.get("headers") or []).get(b"content-length", b"")
        size = int(announced) if announced.isdigit() else 0
        chunks, more = [], True
        while more and size <= self.limit:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
            size = max(size, sum(map(len, chunks)))
        if size > self.limit:
            await _error(413, _too_large(size, self.limit - FRAMING_BYTES))(scope, receive, send)
            return
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large(size: int | None, limit: int) -> TooLarge:
    got = f" ({size / 2**20:.1f} MiB)" if size else ""
    return TooLarge(f"the upload{got} exceeds the limit of {limit / 2**20:.1f} MiB",
                    hint="send a smaller photo (a face crop is enough), or start the server with a larger "
                         "--max-upload-mb")
