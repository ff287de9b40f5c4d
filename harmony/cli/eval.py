"""`harmony eval`: VAL@FAR, compatibility, identification, clustering and LFW accuracy of versions,
and the paper's experiments on any registered version.

``harmony eval --version V ...`` is the evaluation itself (the group's own callback, so it runs
when no sub-command is named). ``--version`` is the model under test, ``--against`` an older
one: ``harmony eval --version v2 --against v1`` reports whether v2 is compatible with v1, i.e.
VAL(v2->v1) >= VAL(v1,v1) at each ``--far``; ``--quantize int8`` adds VAL with one byte per
dimension. Sub-commands: ``robustness`` (FaceNet Table 4: JPEG quality and face size) and
``sets`` (YouTube-Faces-style set verification).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from harmony.cli.common import DeviceOpt, JsonOpt, RegistryOpt, console, handle_errors, open_registry, table

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from harmony.evaluation.quantize import QuantizeReport
    from harmony.evaluation.results import EvalResult
    from harmony.evaluation.robustness import RobustnessResult
    from harmony.evaluation.sets import SetsResult

MAX_LISTED = 20  # missing/unreadable files shown before "... and N more (see --json)"


@handle_errors
def eval_command(
    ctx: typer.Context,
    version: Annotated[Optional[str], typer.Option(
        "--version", help="The version to evaluate (name or alias). Required without a sub-command.",
        show_default=False)] = None,
    against: Annotated[Optional[str], typer.Option(
        "--against", help="An older version: also report whether --version is compatible with it "
        "(2x2 VAL table, gain recovered, cross identification, negative flips) and record the verdict.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Image folder ROOT/<identity>/<image> (or, with --lfw-pairs, the LFW image root).")] = None,
    synthetic: Annotated[Optional[int], typer.Option(
        "--synthetic", min=2, help="Evaluate on N held-out synthetic identities (test split).")] = None,
    per_identity: Annotated[int, typer.Option("--per-identity", min=2, help="Images per synthetic identity.")] = 8,
    size: Annotated[Optional[int], typer.Option(
        "--size", help="Render synthetic faces at this size (default: each version's input size).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic generator seed (0 = what training holds out).")] = 0,
    lfw_pairs: Annotated[Optional[Path], typer.Option(
        "--lfw-pairs", help="LFW pairs.txt (10 folds); images under --data.")] = None,
    pairs_csv: Annotated[Optional[Path], typer.Option(
        "--pairs-csv", help="CSV path_a,path_b,same (relative to --data, else to the CSV's folder).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Score a pair list without the pairs whose images are missing or unreadable "
        "(they are listed either way).")] = False,
    far: Annotated[Optional[list[float]], typer.Option(
        "--far", help="FAR target (repeatable; default 1e-2 and 1e-3).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write VAL-vs-FAR curves to this PNG.")] = None,
    quantize: Annotated[Optional[str], typer.Option(
        "--quantize", help="Also score one byte per dimension: int8 (per-dimension scale, FAISS "
        "ScalarQuantizer QT_8bit fitted on the scored embeddings; distances on the decoded vectors).",
        show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder batch.")] = 512,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate an embedding version on held-out data, and its compatibility with an older one.

    Embeddings are cached per (version sha256, image set) under <registry>/cache/embeddings, so a
    second run on the same data does not re-embed. Results are recorded in the registry.
    Sub-commands (options after the sub-command's name): robustness (JPEG quality and face size,
    FaceNet Table 4), sets (set verification over folders of video frames).

    Example: harmony eval --version v2 --against v1 --synthetic 300 --per-identity 8 --plot val_far.png
    """
    import json

    from harmony.cli.progress import rich_progress
    from harmony.evaluation import embed_cached, evaluate, resolve_data
    from harmony.metrics.fars import DEFAULT_FARS, check_fars

    if ctx.invoked_subcommand is not None:
        _refuse_group_options(ctx)
        return
    if version is None:
        raise _click(ctx, "exceptions").MissingParameter(  # the message typer gives a required option
            ctx=ctx, param=next(p for p in ctx.command.params if p.name == "version"))
    if quantize is not None:
        from harmony.evaluation.quantize import check_scheme

        check_scheme(quantize)
    fars = check_fars(far, "--far") if far else DEFAULT_FARS
    eval_data = resolve_data(data=data, synthetic=synthetic, per_identity=per_identity, size=size, seed=seed,
                             lfw_pairs=lfw_pairs, pairs_csv=pairs_csv)
    reg = open_registry(registry)
    with rich_progress(not as_json) as progress:
        result = evaluate(reg, version, against, eval_data, fars=fars, plot=plot, batch_size=batch_size,
                          device=device, allow_missing=allow_missing, progress=progress)
        quant = None
        if quantize is not None:
            from harmony.evaluation.quantize import quantize_report

            embedded = {v.name: embed_cached(reg, v.name, eval_data.source, batch_size=batch_size, device=device,
                                             progress=progress) for v in result.versions}  # the cache just written
            quant = quantize_report(eval_data, embedded, result.fars, scheme=quantize, device=device)
    if as_json:
        out = result.as_dict() | ({"quantize": quant.as_dict()} if quant is not None else {})
        typer.echo(json.dumps(out, indent=1, allow_nan=False, default=str))
        return
    for part in renderables(result) + ([quantize_table(quant)] if quant is not None else []):
        console.print(part, soft_wrap=isinstance(part, str))  # paths stay whole, copy-pasteable


def _click(ctx: typer.Context, part: str):
    """The click module typer runs on (typer >= 0.23 vendors its own as ``typer._click``)."""
    import importlib

    return importlib.import_module(f"{type(ctx).__module__.rsplit('.', 1)[0]}.{part}")


def _refuse_group_options(ctx: typer.Context) -> None:
    """`harmony eval --json robustness ...` would silently drop --json: refuse it instead."""
    from harmony.errors import InvalidInput

    cmdline = _click(ctx, "core").ParameterSource.COMMANDLINE
    given = [p.opts[0] for p in ctx.command.params if ctx.get_parameter_source(p.name) == cmdline]
    if given:
        raise InvalidInput(f"{', '.join(given)} before '{ctx.invoked_subcommand}' belong(s) to `harmony eval` itself",
                           hint=f"put the options after the sub-command: harmony eval {ctx.invoked_subcommand} "
                                f"{' '.join(given)} ...")


def quantize_table(q: "QuantizeReport") -> "Table":
    """float32 and int8 VAL side by side per version and FAR, with the difference."""
    from harmony.cli.tables import pct

    t = table(f"VAL@FAR with one byte per dimension ({q.scheme}, {q.scale})",
              ("version", "FAR", "float32", "int8", "int8 - float32", "bytes/face"),
              right=("FAR", "float32", "int8", "int8 - float32", "bytes/face"))
    for r in q.rows:
        t.add_row(r.version, f"{r.far:g}", pct(r.float32.val), pct(r.int8.val), f"{100 * r.delta:+.2f} pts",
                  f"{q.bytes_float32[r.version]} -> {q.bytes_int8[r.version]}")
    t.caption = ("squared L2 on the decoded vectors re-normalised; largest |norm - 1| after decoding: "
                 + ", ".join(f"{k} {v:.1e}" for k, v in q.norm_drift.items()))
    return t


def renderables(r: "EvalResult") -> list["RenderableType"]:
    """Every table that applies to the result, then the notes and lists of skipped files."""
    from harmony.cli.tables import (clustering_table, compat_table, flips_table, leave_one_out_table, lfw_table,
                                    split_identification_table, top1_line, val_table, verdict_line)

    ids = f", {r.n_identities} identities" if r.n_identities is not None else f", {r.n_pairs} pairs"
    out: list = [f"[bold]data:[/] {r.dataset} ({r.n_images} images{ids})", val_table(r)]
    if r.kind == "pairs":
        out.append(lfw_table(r))
    if any(v.top_k for v in r.versions):
        out.append(leave_one_out_table(r))
    if any(v.clustering is not None for v in r.versions):
        out.append(clustering_table(r))
    if r.compat is not None:
        out += [compat_table(r.compat), verdict_line(r.compat)]
    if r.identification is not None:
        out += [split_identification_table(r.identification), top1_line(r.identification)]
    if r.flips is not None:
        out.append(flips_table(r.flips.as_dict(), all_in="--json"))
        if r.flip_ids_root is not None:
            out.append(f"[dim]flipped queries are paths under {r.flip_ids_root}[/]")
    skipped = "their pairs skipped" if r.kind == "pairs" else "skipped"
    for title, items in (("missing", r.missing), ("unreadable", r.unreadable)):
        if items:
            shown = "\n".join(f"  {p}" for p in items[:MAX_LISTED])
            more = f"\n  ... and {len(items) - MAX_LISTED} more (see --json)" if len(items) > MAX_LISTED else ""
            out.append(f"[yellow]{len(items)} {title} image(s), {skipped}:[/]\n{shown}{more}")
    out.append("[dim]embeddings: " + ", ".join(
        f"{v.name} {'from the cache' if v.from_cache else 'computed and cached'}" for v in r.versions) + "[/]")
    for note in r.notes:
        out.append(f"[dim]note: {note}[/]")
    if r.plot is not None:
        out.append(f"plot written to [bold]{r.plot}[/]")
    if r.evaluation_ids:
        out.append(f"[dim]recorded as evaluation(s) {', '.join(map(str, r.evaluation_ids))} in the registry[/]")
    return out


# -- the group: `harmony eval` itself, and the paper's experiments as sub-commands -------------------

app = typer.Typer(invoke_without_command=True, rich_markup_mode="rich", pretty_exceptions_enable=False)
app.callback()(eval_command)


@app.command("robustness")
@handle_errors
def robustness_command(
    version: Annotated[str, typer.Option("--version", help="The version to measure (name or alias).")],
    jpeg: Annotated[Optional[str], typer.Option(
        "--jpeg", help="JPEG qualities (1..100), comma-separated. [default: 10,20,30,50,70,90]",
        show_default=False)] = None,
    pixels: Annotated[Optional[str], typer.Option(
        "--pixels", help="Face sizes in pixels (>= 16), comma-separated: the crop is shrunk to sqrt(px) x sqrt(px), "
        "then resized back to the model's input. [default: 1600,6400,14400,25600,65536]", show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Image folder ROOT/<identity>/<image> (default: held-out synthetic identities).")] = None,
    synthetic: Annotated[int, typer.Option(
        "--synthetic", min=2, help="Held-out synthetic identities (test split), without --data.")] = 200,
    per_identity: Annotated[int, typer.Option("--per-identity", min=2, help="Images per synthetic identity.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Synthetic generator seed (0 = what training holds out).")] = 0,
    far: Annotated[float, typer.Option("--far", help="The FAR VAL is read at (the paper: 1e-3).")] = 1e-3,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write VAL against quality and size to this PNG.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per read and encoder batch.")] = 256,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """VAL@FAR against JPEG quality and face size in pixels (FaceNet Table 4), next to the undegraded faces.

    Each image is read once at the larger of the model's input and the largest face size, through
    the version's own pipeline; JPEG re-encodes (Pillow) the model-sized face; a face size shrinks
    the face to sqrt(px) squared and resizes it back. Degraded images are not cached.

    Example: harmony eval robustness --version v1 --jpeg 10,20,50,90 --pixels 1600,6400,25600 --plot table4.png
    """
    import json

    from harmony.cli.progress import rich_progress
    from harmony.evaluation import folder_set, synthetic_set
    from harmony.evaluation.robustness import (JPEG_QUALITIES, PIXELS, check_pixels, check_qualities, parse_ints,
                                               robustness)
    from harmony.metrics.fars import check_far

    qualities = check_qualities(parse_ints(jpeg, "--jpeg", JPEG_QUALITIES))
    sizes = check_pixels(parse_ints(pixels, "--pixels", PIXELS))
    far_ = check_far(far, "--far")
    eval_data = folder_set(data) if data is not None else synthetic_set(synthetic, per_identity, None, seed)
    reg = open_registry(registry)
    with rich_progress(not as_json) as progress:
        res = robustness(reg, version, eval_data, qualities=qualities, pixels=sizes, far=far_, plot=plot,
                         batch_size=batch_size, device=device, progress=progress)
    if as_json:
        typer.echo(json.dumps(res.as_dict(), indent=1, allow_nan=False, default=str))
        return
    for part in robustness_renderables(res):
        console.print(part, soft_wrap=isinstance(part, str))


def robustness_renderables(r: "RobustnessResult") -> list["RenderableType"]:
    from harmony.cli.tables import pct, threshold

    t = table(f"{r.version}: VAL@FAR={r.far:g} on {r.dataset} ({r.n_images} images, {r.n_identities} identities)",
              ("condition", f"VAL@{r.far:g}", "vs undegraded", "t*"), right=(f"VAL@{r.far:g}", "vs undegraded", "t*"))
    for i, row in enumerate(r.rows):
        if i and row.condition.kind != r.rows[i - 1].condition.kind:
            t.add_section()
        star = " *" if row.val.zero_false_accepts else ""
        t.add_row(row.condition.label, pct(row.val.val) + star,
                  "" if row.condition.kind == "reference" else f"{100 * row.delta:+.2f} pts", threshold(row.val.threshold))
    t.caption = (f"read at {r.source_size}x{r.source_size}, shown to the model at {r.input_size}x{r.input_size}"
                 + ("; * rests on zero false accepts" if any(x.val.zero_false_accepts for x in r.rows) else ""))
    out: list = [t]
    if r.unreadable:
        out.append(f"[yellow]{len(r.unreadable)} unreadable image(s) skipped[/] (listed in --json)")
    out += [f"[dim]note: {n}[/]" for n in r.notes]
    if r.plot is not None:
        out.append(f"plot written to [bold]{r.plot}[/]")
    return out


@app.command("sets")
@handle_errors
def sets_command(
    version: Annotated[str, typer.Option("--version", help="The version to evaluate (name or alias).")],
    pairs: Annotated[Path, typer.Option(
        "--pairs", help="Pairs file: one pair per line 'SET_A SET_B SAME [FOLD]'; SET_* frame folders relative "
        "to --data, SAME 1 (same person) or 0, FOLD 0-based (default: 10 consecutive folds); '#' comments.")],
    data: Annotated[Path, typer.Option("--data", help="The folder the pairs file's set folders are relative to.")],
    frames: Annotated[int, typer.Option("--frames", min=1, help="First N frames (file-name order) of each set.")] = 100,
    far: Annotated[float, typer.Option("--far", help="FAR for the VAL reported next to the accuracy.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder batch.")] = 512,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set verification (YouTube Faces, FaceNet section 5.7): one folder of frames against another.

    A pair's score is the mean squared L2 distance over all pairs of the first N frames of each
    side; accuracy is the LFW 10-fold protocol (threshold chosen on the other folds). Frame
    embeddings are cached like `harmony eval`'s. `harmony data videos` writes a synthetic test set.

    Example: harmony eval sets --version v1 --pairs videos/pairs.txt --data videos --frames 100
    """
    import json

    from harmony.cli.progress import rich_progress
    from harmony.evaluation.sets import set_verification
    from harmony.metrics.fars import check_far

    far_ = check_far(far, "--far")
    reg = open_registry(registry)
    with rich_progress(not as_json) as progress:
        res = set_verification(reg, version, pairs, data, frames=frames, far=far_, batch_size=batch_size,
                               device=device, progress=progress)
    if as_json:
        typer.echo(json.dumps(res.as_dict(), indent=1, allow_nan=False, default=str))
        return
    for part in sets_renderables(res):
        console.print(part, soft_wrap=isinstance(part, str))


def sets_renderables(r: "SetsResult") -> list["RenderableType"]:
    from harmony.cli.tables import pct, threshold

    lf = r.lfw
    t = table(f"{r.version}: set verification, {r.n_pairs} pairs of {r.n_sets} sets, first {r.frames} frames each",
              ("version", "accuracy", f"VAL@{lf.val.far:g}", "folds", "fold thresholds", "frames embedded"),
              right=("accuracy", f"VAL@{lf.val.far:g}", "folds", "fold thresholds", "frames embedded"))
    star = " *" if lf.val.zero_false_accepts else ""
    t.add_row(r.version, f"{100 * lf.accuracy_mean:.2f} +- {100 * lf.accuracy_std:.2f}", pct(lf.val.val) + star,
              str(lf.n_folds), f"{threshold(min(lf.thresholds))}..{threshold(max(lf.thresholds))}", str(r.frames_used))
    t.caption = "score = mean squared L2 over all frame pairs; same person when score < the fold's threshold" + (
        f"; * FAR x {lf.val.n_diff} different pairs < 1: VAL rests on zero false accepts" if star else "")
    out: list = [t]
    if r.skipped_pairs:
        out.append(f"[yellow]{len(r.skipped_pairs)} pair(s) skipped: a side has no readable frame[/] (see --json)")
    if r.unreadable:
        out.append(f"[yellow]{len(r.unreadable)} unreadable frame(s) left out of their sets[/] (see --json)")
    out.append(f"[dim]embeddings: {'from the cache' if r.from_cache else 'computed and cached'}[/]")
    return out
