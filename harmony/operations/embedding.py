"""A registered version as an embedder of image files: for building, adding, searching, backfilling.

Files are decoded at the version's input size (``harmony.data.images.load_image``) and encoded in
batches; a file that cannot be read (vanished, truncated, not an image) is masked out with
``ok=False`` rather than failing the batch, which is the contract of the backfill's ``embed_fn``.
Vectors are ``(n_ok, d)`` float32, L2-normalised, in the order of the readable files.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from harmony.errors import Incompatible, IntegrityError, InvalidInput

log = logging.getLogger(__name__)


def check_dim(version: Any, dim: int, gallery: str) -> None:
    """Incompatible when ``version`` (a registry Version) embeds in another dimension than ``dim``."""
    if int(version.dim) != int(dim):
        raise Incompatible(
            f"version {version.name} embeds in {version.dim} dimensions, gallery {gallery} holds {dim}-D vectors",
            hint=f"versions of different dimension cannot share a gallery: build a new one with "
                 f"`harmony gallery build --version {version.name}`")


def load_version_encoder(reg: Any, version: str, *, batch_size: int = 256, device: str | None = None) -> Any:
    """The encoder of a registered version (checksum-verified), checked against its recorded dim."""
    from harmony.models.loading import load_encoder

    v = reg.get_version(version)
    enc = load_encoder(reg, v.name, batch_size=batch_size, device=device)
    if int(enc.dim) != int(v.dim):
        raise IntegrityError(f"version {v.name} is recorded as {v.dim}-D but its model embeds in {enc.dim}-D",
                             hint="re-register the model under a new name with the right dim")
    return enc


def read_images(paths: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n_ok, size, size, 3) uint8, ok (n,) bool)``; unreadable files are masked, not logged
    one by one (callers report them together)."""
    from harmony.data.images import load_image

    out, ok = [], np.zeros(len(paths), bool)
    for i, p in enumerate(paths):
        try:
            out.append(load_image(p, size))
            ok[i] = True
        except InvalidInput:
            pass
    return (np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)), ok


@dataclass
class FileEmbedder:
    """``embed_fn(sources) -> (vectors, ok)`` for one version; loads the model on first use and
    keeps the time spent reading files and encoding them."""

    reg: Any
    version: str
    batch_size: int = 256
    device: str | None = None
    read_s: float = 0.0
    encode_s: float = 0.0
    _encoder: Any = field(default=None, repr=False)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_version_encoder(self.reg, self.version, batch_size=self.batch_size,
                                                 device=self.device)
        return self._encoder

    @property
    def dim(self) -> int:
        return int(self.encoder.dim)

    def __call__(self, sources: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.encoder
        t = time.perf_counter()
        images, ok = read_images(list(sources), int(enc.image_size))
        t2 = time.perf_counter()
        vecs = np.asarray(enc.encode(images), dtype=np.float32) if len(images) else np.zeros((0, enc.dim), np.float32)
        self.read_s += t2 - t
        self.encode_s += time.perf_counter() - t2
        return vecs.reshape(-1, int(enc.dim)), ok


def embed_files(embed_fn: FileEmbedder, paths: Sequence[str], batch_size: int = 256,
                label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embed many files in batches (a progress bar with items/s on a terminal): ``(vectors, ok)``."""
    dim = embed_fn.dim
    parts, ok = [], np.zeros(len(paths), bool)
    with progress_bar(label, len(paths)) as advance:
        for a in range(0, len(paths), batch_size):
            vecs, ok_b = embed_fn(paths[a:a + batch_size])
            parts.append(vecs)
            ok[a:a + len(ok_b)] = ok_b
            advance(len(ok_b))
    return (np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)), ok


@contextmanager
def progress_bar(label: str | None, total: int) -> Iterator[Any]:
    """``advance(n)`` for a rich bar on stderr (items/s, ETA); a no-op without a terminal or label."""
    from rich.console import Console

    console = Console(stderr=True)
    if not label or total <= 0 or not console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeRemainingColumn)

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[rate]:>7} items/s"),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)
    t0 = time.perf_counter()
    with prog:
        task = prog.add_task(label, total=total, rate="-")

        def advance(n: int) -> None:
            done = prog.tasks[0].completed + n
            elapsed = time.perf_counter() - t0
            prog.update(task, advance=n, rate=f"{done / elapsed:,.0f}" if elapsed > 0 else "-")
        yield advance
