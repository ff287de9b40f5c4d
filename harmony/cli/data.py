"""`harmony data`: write the built-in synthetic faces as an image folder (or as videos with a pairs
file), inspect folders, align the faces of a photo folder into crops."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from harmony.cli.common import JsonOpt, QuietOpt, console, echo_json, handle_errors, print_first, table

if TYPE_CHECKING:
    from harmony.align.report import AlignReport

app = typer.Typer(help="Synthetic faces and image folders.\n\n"
                  "Example: harmony data synth --identities 20 --out data/synth", no_args_is_help=True)


@app.command("synth")
@handle_errors
def synth(
    out: Annotated[Optional[Path], typer.Option("--out", help="Write ROOT/<identity>/<image>.png here.")] = None,
    identities: Annotated[int, typer.Option("--identities", "-n", min=1, help="Number of identities.")] = 20,
    per_identity: Annotated[int, typer.Option("--per-identity", "-k", min=1, help="Images per identity.")] = 8,
    split: Annotated[str, typer.Option(help="Identity stream: train, val or test (disjoint identities).")] = "test",
    size: Annotated[int, typer.Option(min=16, max=1024, help="Image size in pixels (64 for CPU, 160 like FaceNet).")] = 64,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg.")] = "png",
    preview: Annotated[Optional[Path], typer.Option(help="Also save a PNG contact sheet (one row per identity).")] = None,
) -> None:
    """Render synthetic faces to an image folder and/or a contact sheet.

    Example: harmony data synth --identities 50 --per-identity 10 --out data/synth --preview sheet.png
    """
    import time


    from harmony.cli.progress import rich_progress
    from harmony.data.synthetic import SynthConfig, render_set
    from harmony.data.synthetic_folder import FORMATS, write_synthetic_faces
    from harmony.errors import InvalidInput

    if out is None and preview is None:
        raise InvalidInput("nothing to do", hint="pass --out DIR and/or --preview FILE.png")
    if fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt!r} is not supported", hint="use png or jpg")
    t0 = time.time()
    if out is not None:
        with rich_progress() as progress:
            write_synthetic_faces(out, identities, per_identity, split=split, size=size, seed=seed, fmt=fmt,
                                  progress=progress)
        console.print(f"wrote {identities * per_identity} images of {identities} identities to [bold]{out}[/]")
    dt = time.time() - t0
    if preview is not None:
        from harmony.data.synthetic_folder import encode_image
        from harmony.io import atomic_write_bytes

        rows = min(identities, 8)
        images, _ = render_set(rows, per_identity, split, SynthConfig(image_size=size, seed=seed))
        cols = min(per_identity, 8)
        grid = images[: rows * per_identity].reshape(rows, per_identity, size, size, 3)[:, :cols]
        sheet = grid.transpose(0, 2, 1, 3, 4).reshape(rows * size, cols * size, 3)
        atomic_write_bytes(preview, encode_image(sheet, "png"))
        console.print(f"contact sheet ({rows} identities x {cols} images) saved to [bold]{preview}[/]")
    if out is not None:
        n = identities * per_identity
        console.print(f"rendered and wrote {n} images in {dt:.2f} s ({n / max(dt, 1e-9):,.0f} images/s)")


@app.command("videos")
@handle_errors
def videos(
    out: Annotated[Path, typer.Option("--out", help="Write OUT/id<identity>/<video>/<frame>.png and OUT/pairs.txt.")],
    identities: Annotated[int, typer.Option("--identities", "-n", min=2, help="Number of identities.")] = 20,
    videos_per_identity: Annotated[int, typer.Option("--videos", min=2, help="Videos per identity.")] = 2,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per video.")] = 30,
    pairs: Annotated[int, typer.Option("--pairs", min=20, help="Pairs listed, a multiple of 20 (half same "
                                       "person, half not, in 10 folds).")] = 40,
    split: Annotated[str, typer.Option(help="Identity stream: train, val or test (disjoint identities).")] = "test",
    size: Annotated[int, typer.Option(min=16, max=512, help="Frame size in pixels.")] = 64,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg.")] = "png",
) -> None:
    """Render synthetic videos (one identity each, pose and light drifting slowly) and a pairs file
    for `harmony eval sets`.

    Example: harmony data videos --out data/videos --identities 20 --frames 30 --pairs 40
    """
    from harmony.cli.progress import rich_progress
    from harmony.data.synthetic_folder import FORMATS
    from harmony.data.synthetic_video import write_videos
    from harmony.errors import InvalidInput

    if fmt not in FORMATS:
        raise InvalidInput(f"--format {fmt!r} is not supported", hint="use png or jpg")
    with rich_progress() as progress:
        pairs_file = write_videos(out, identities, videos_per_identity, frames, pairs, split=split, size=size,
                                  seed=seed, fmt=fmt, progress=progress)
    console.print(f"wrote {identities * videos_per_identity} videos of {frames} frames ({identities} identities) "
                  f"to [bold]{out}[/] and {pairs} pairs to [bold]{pairs_file}[/]")
    console.print(f"[dim]next: harmony eval sets --version V --pairs {pairs_file} --data {out}[/]")


@app.command("scan")
@handle_errors
def scan(root: Annotated[Path, typer.Argument(help="Image folder: ROOT/<identity>/<image>.")],
         min_images: Annotated[int, typer.Option(help="Identities with fewer images are skipped.")] = 2,
         as_json: JsonOpt = False) -> None:
    """Check an image folder as a build would read it (every file decoded): counts, skipped
    identities, unusable files with their reasons.

    Example: harmony data scan data/synth
    """
    from harmony.data.folder import scan_folder

    idx = scan_folder(root, min_images)
    if as_json:
        echo_json({"root": str(root), "identities": len(idx.identities), "images": len(idx),
                   "skipped_identities": list(idx.skipped_identities),
                   "unreadable": [{"path": u.path, "reason": u.reason} for u in idx.unusable]})
        return
    t = table(f"image folder {root}", ("what", "count"), right=("count",))
    t.add_row("identities used", str(len(idx.identities)))
    t.add_row("images used", str(len(idx)))
    t.add_row(f"identities skipped (< {min_images} images)", str(len(idx.skipped_identities)))
    t.add_row("unreadable files skipped", str(len(idx.unusable)))
    console.print(t)
    if idx.unusable:
        print_first(f"{len(idx.unusable)} unreadable image(s) skipped", [u.reason for u in idx.unusable])


@app.command("align")
@handle_errors
def align(
    raw: Annotated[Path, typer.Argument(help="Photo folder: RAW/<person>/<photo>, or photos directly inside.")],
    out: Annotated[Path, typer.Option("--out", help="Crops folder: CROPS/<person>/<photo-stem>.png.")],
    size: Annotated[int, typer.Option(min=16, max=1024, help="Crop side in pixels.")] = 160,
    margin: Annotated[int, typer.Option(min=0, max=512, help="facenet style: pixels added around the box.")] = 32,
    style: Annotated[str, typer.Option(help="facenet (box + margin) or dlib-chip (5-point, eyes level).")] = "facenet",
    all_faces: Annotated[bool, typer.Option("--all-faces", help="Write every face (stem_1.png, ...), "
                                            "not only the largest.")] = False,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Processes (default: one per core).")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Detect, align and crop the faces of a photo folder (dlib HOG + 5-point landmarks).

    Photos without a face, unreadable or too large ones are listed in CROPS/align-report.json and
    below, never fatal; a second run skips photos already aligned with the same settings.

    Example: harmony data align photos/ --out crops/ --style dlib-chip --size 150
    """
    from harmony.align.folder import align_folder
    from harmony.align.spec import AlignSpec
    from harmony.cli.progress import rich_progress
    from harmony.errors import InvalidInput
    from harmony.machine import usable_cpus

    spec = AlignSpec(style=style, size=size, margin=margin)
    with rich_progress(enabled=not (quiet or as_json)) as progress:
        report = align_folder(raw, out, spec, all_faces=all_faces, workers=workers or usable_cpus(),
                              progress=progress)
    counts = report.counts
    if as_json:
        echo_json(report.as_dict())
    else:
        _render_align(report)
    if counts["aligned"] == 0:
        what = f"no photos under {raw}" if not counts["photos"] else f"no face aligned in any of {counts['photos']} photo(s)"
        raise InvalidInput(what, hint=f"see {out / 'align-report.json'} for each photo's reason")


def _render_align(report: "AlignReport") -> None:
    c = report.counts
    t = table(f"aligned {report.raw} -> {report.out} ({report.spec.name})", ("what", "count"), right=("count",))
    for label, key in (("photos", "photos"), ("aligned now", "aligned_now"), ("already aligned (skipped)", "resumed"),
                       ("crops", "crops"), ("no face found", "no_face"), ("unreadable", "unreadable"),
                       ("errors", "error")):
        t.add_row(label, str(c[key]))
    console.print(t)
    problems = report.problems
    if problems:
        limit = 20
        p = table(f"{len(problems)} photo(s) without a crop", ("photo", "reason"), no_wrap=("photo",))
        for r in problems[:limit]:
            p.add_row(str(report.raw / r.path), r.reason or r.status)
        console.print(p)
        if len(problems) > limit:
            console.print(f"... and {len(problems) - limit} more in {report.out / 'align-report.json'}")
    console.print(f"report: [bold]{report.out / 'align-report.json'}[/]")
