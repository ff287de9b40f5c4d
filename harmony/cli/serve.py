"""`harmony serve`: the HTTP search service (harmony.serve) under uvicorn; fastapi and uvicorn are
imported inside the command so `harmony --help` stays fast."""

from __future__ import annotations

from typing import Annotated

import typer

from harmony.cli.common import (
    DeviceOpt,
    RegistryOpt,
    console,
    handle_errors,
    open_registry,
)
from harmony.errors import InvalidInput


@handle_errors
def serve_command(
    gallery: Annotated[str, typer.Option("--gallery", "-g", help="Gallery to serve.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0: any free one).")] = 8000,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.01, help="Largest photo upload "
                                                 "accepted (larger: 413).")] = 10.0,
    check_every_s: Annotated[float, typer.Option("--check-every", min=0.0, help="Seconds between checks of the "
                                                 "gallery for a swap, rollback or backfill progress.")] = 0.1,
    registry_every_s: Annotated[float, typer.Option("--registry-every", min=0.0, help="Seconds between reads of "
                                                    "the registry's migration row.")] = 1.0,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level: debug, info, warning, "
                                           "error.")] = "info",
) -> None:
    """Serve top-k face search over a gallery: upload a photo or send a vector.

    Queries use the gallery's active index, mixed old/new during a compatible migration; a swap or
    rollback (`harmony migrate swap|rollback` in another shell) is followed without a restart.
    Endpoints: GET /health, POST /search/vector, POST /search/photo; OpenAPI docs at /docs.

    Example: harmony serve --gallery prod --host 127.0.0.1 --port 8000
    (then: curl -F file=@probe.jpg -F k=5 http://127.0.0.1:8000/search/photo)
    """
    try:
        import uvicorn

        from harmony.serve.app import create_app
    except ImportError as e:
        raise InvalidInput(f"harmony serve needs {e.name}, which is not installed",
                           hint="pip install 'harmony[serve]'") from None
    app = create_app(open_registry(registry), gallery, max_upload_bytes=int(max_upload_mb * 2**20),
                     check_every_s=check_every_s, registry_every_s=registry_every_s, device=device)
    h = app.state.service.current().health()
    console.print(f"serving gallery [bold]{gallery}[/] ({h['items']} items, {h['active_version']}, queries "
                  f"{h['query_version']}) on http://{host}:{port} (docs: /docs)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
