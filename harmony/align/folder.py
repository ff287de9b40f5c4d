"""A folder of raw photos -> a folder of aligned face crops, in parallel, resumable, never fatal.

``RAW/<person>/<photo>`` (or photos directly in RAW, or deeper: the tree is mirrored) becomes
``CROPS/<person>/<photo-stem>.png``: the largest face, or with ``all_faces`` every face as
``<stem>_1.png``, ``<stem>_2.png``... (largest first). Two photos with the same stem in one folder
(``a.jpg``, ``a.png``) keep their extension in the name (``a_jpg.png``). A photo that yields no
crop (no face, unreadable, too large, a detector error) is a :class:`PhotoResult` with its reason
in the report, never an exception. Photos are decoded at full resolution by
:func:`harmony.data.images.read_rgb` (EXIF orientation applied, every mode to 8-bit RGB).

Parallel runs use a ``spawn`` process pool (a forked child of a process that already ran an
OpenMP op can hang: DESIGN section 7); each worker limits itself to one thread and loads dlib's
models once. Crops are written atomically; the report is checkpointed every few seconds, and
entries of another spec are dropped before the first crop is written, so an interrupted run
resumes correctly whatever spec it is re-run with (see ``report.py`` for the resume rule).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harmony.align.report import NO_FACE, AlignReport, PhotoResult, previous_entries, spec_id, still_done
from harmony.align.spec import AlignSpec
from harmony.errors import InvalidInput, NotFound
from harmony.progress import ProgressFn, tick

log = logging.getLogger(__name__)

CHECKPOINT_S = 5.0
TASK = "aligning faces"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class _Job:
    """What a worker needs for one photo (picklable)."""

    photo: str  # absolute path
    rel: str  # relative to RAW, posix
    base: str  # crop name without ".png", relative to CROPS, posix
    out: str
    spec: AlignSpec
    all_faces: bool
    bytes: int
    mtime_ns: int
    old_crops: tuple[str, ...]


def list_photos(raw: Path, out: Path) -> list[Path]:
    """Image files under ``raw`` (hidden files and folders, and ``out`` itself, left out), sorted."""
    from harmony.data.images import IMAGE_EXTENSIONS
    from harmony.io import is_temp_name

    out_resolved = out.resolve()
    found = []
    for folder, dirs, files in os.walk(raw):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != out_resolved)
        found += [here / f for f in files
                  if not f.startswith(".") and not is_temp_name(f) and Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found)


def crop_bases(raw: Path, photos: list[Path]) -> dict[Path, str]:
    """Each photo's crop name without ``.png`` (relative, posix): its stem, or ``stem_ext`` when
    another photo in the same folder has the same stem."""
    rels = {p: p.relative_to(raw) for p in photos}
    clash = Counter((r.parent, r.stem) for r in rels.values())
    return {p: (r.parent / (r.stem if clash[(r.parent, r.stem)] == 1 else f"{r.stem}_{r.suffix[1:].lower()}"))
            .as_posix() for p, r in rels.items()}


def _crop_names(base: str, n: int, all_faces: bool) -> list[str]:
    return [f"{base}_{i + 1}.png" for i in range(n)] if all_faces else [f"{base}.png"][:n]


def align_one(job: _Job) -> PhotoResult:
    """Align one photo and write its crops; every failure becomes a result with its reason."""
    from harmony.align.crop import crop_face
    from harmony.align.detect import detect_faces
    from harmony.data.images import read_rgb
    from harmony.data.synthetic_folder import encode_image
    from harmony.io import atomic_write_bytes

    done = dict(path=job.rel, bytes=job.bytes, mtime_ns=job.mtime_ns, spec_id=spec_id(job.spec, job.all_faces))
    written: list[str] = []
    try:
        try:
            image = read_rgb(job.photo)
        except InvalidInput as e:
            reason = e.message.removeprefix(f"cannot read image {job.photo}: ")  # the entry names the photo
            return PhotoResult(status="unreadable", reason=reason, **done)
        faces = detect_faces(image, job.spec)
        keep = faces if job.all_faces else faces[:1]
        for name, face in zip(_crop_names(job.base, len(keep), job.all_faces), keep):
            atomic_write_bytes(Path(job.out) / name, encode_image(crop_face(image, face, job.spec), "png"))
            written.append(name)
        status, reason = ("aligned", None) if written else ("no_face", NO_FACE)
        return PhotoResult(status=status, faces=len(faces), crops=tuple(written), reason=reason, **done)
    except MemoryError:
        return PhotoResult(status="error", reason="out of memory while aligning", crops=tuple(written), **done)
    except Exception as e:  # noqa: BLE001 - one photo (a dlib error, a full disk) must not abort the run
        from harmony.errors import DiskFull

        if isinstance(e, DiskFull):
            raise
        return PhotoResult(status="error", reason=f"{type(e).__name__}: {e}", crops=tuple(written), **done)
    finally:
        for stale in set(job.old_crops) - set(written):
            try:
                os.unlink(Path(job.out) / stale)
            except OSError:
                pass


def _init_worker() -> None:
    """One thread per worker process, dlib's models loaded once."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    from harmony.align.detect import _models

    _models()


def _check_folders(raw: Path, out: Path) -> None:
    if not raw.is_dir():
        raise NotFound(f"photo folder {raw} does not exist", hint="pass the folder holding RAW/<person>/<photo>")
    if out.resolve() == raw.resolve():
        raise InvalidInput("--out is the photo folder itself", hint="write the crops to another folder, e.g. crops/")
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out} is a file", hint="pass a folder")


def align_folder(raw: str | Path, out: str | Path, spec: AlignSpec = AlignSpec(), all_faces: bool = False,
                 workers: int = 1, progress: ProgressFn | None = None) -> AlignReport:
    """Align every photo under ``raw`` into ``out`` (the layout above) and write
    ``out/align-report.json``; photos done by an earlier run with the same spec are skipped.
    ``workers > 1`` aligns in that many processes. Raises only for unusable folders or a full disk."""
    raw, out = Path(raw), Path(out)
    _check_folders(raw, out)
    out.mkdir(parents=True, exist_ok=True)
    sid = spec_id(spec, all_faces)
    old = previous_entries(out)
    photos = list_photos(raw, out)
    bases = crop_bases(raw, photos)
    results: dict[str, PhotoResult] = {}
    jobs: list[_Job] = []
    for photo in photos:
        rel = photo.relative_to(raw).as_posix()
        try:
            st = photo.stat()
        except OSError as e:
            results[rel] = PhotoResult(rel, "unreadable", reason=f"cannot read image {photo}: {e.strerror}",
                                       spec_id=sid)
            continue
        kept = still_done(old.get(rel), sid, st, out)
        if kept is not None:
            results[rel] = kept
        else:
            prior = old.get(rel)
            jobs.append(_Job(str(photo), rel, bases[photo], str(out), spec, all_faces, st.st_size, st.st_mtime_ns,
                             prior.crops if prior else ()))

    def report() -> AlignReport:
        return AlignReport(raw, out, spec, all_faces, tuple(results[k] for k in sorted(results)))

    report().write()  # entries of another spec are gone before any crop is written
    log.info("aligning %d photo(s) (%d done earlier) with %s", len(jobs), len(results), spec.name)
    tick(progress, TASK, 0, len(jobs), "photos")
    last = time.monotonic()
    for i, res in enumerate(_run(jobs, workers), 1):
        results[res.path] = res
        tick(progress, TASK, i, len(jobs), "photos")
        if time.monotonic() - last > CHECKPOINT_S:
            report().write()
            last = time.monotonic()
    final = report()
    final.write()
    return final


def _run(jobs: list[_Job], workers: int):
    """Results of ``jobs`` as they finish: in this process for one worker (or fewer than two
    photos per worker: starting a process costs more), else a spawn pool."""
    workers = max(1, min(int(workers), len(jobs) // 2))
    if workers == 1:
        yield from map(align_one, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = {pool.submit(align_one, job): job for job in jobs}
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    yield PhotoResult(job.rel, "error", reason="a worker process died (out of memory?); re-run to "
                                      "retry", bytes=job.bytes, mtime_ns=job.mtime_ns,
                                      spec_id=spec_id(job.spec, job.all_faces))
        except BaseException:  # a full disk, Ctrl-C: stop, do not align the rest first
            pool.shutdown(wait=True, cancel_futures=True)
            raise
