"""`harmony eval`: VAL@FAR, compatibility, identification, clustering and LFW accuracy of versions.

One top-level command (registered on the root app, not a group). ``--version`` is the model
under test, ``--against`` an older one: ``harmony eval --version v2 --against v1`` reports
whether v2 is compatible with v1, i.e. VAL(v2->v1) >= VAL(v1,v1) at each ``--far``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from harmony.cli.common import DeviceOpt, JsonOpt, RegistryOpt, console, handle_errors, open_registry

if TYPE_CHECKING:
    from rich.console import RenderableType

    from harmony.evaluation.results import EvalResult

MAX_LISTED = 20  # missing/unreadable files shown before "... and N more (see --json)"


@handle_errors
def eval_command(
    version: Annotated[str, typer.Option("--version", help="The version to evaluate (name or alias).")],
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
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder batch.")] = 512,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate an embedding version on held-out data, and its compatibility with an older one.

    Embeddings are cached per (version sha256, image set) under <registry>/cache/embeddings, so a
    second run on the same data does not re-embed. Results are recorded in the registry.

    Example: harmony eval --version v2 --against v1 --synthetic 300 --per-identity 8 --plot val_far.png
    """
    import json

    from harmony.cli.progress import rich_progress
    from harmony.evaluation import evaluate, resolve_data
    from harmony.metrics.fars import DEFAULT_FARS, check_fars

    fars = check_fars(far, "--far") if far else DEFAULT_FARS
    eval_data = resolve_data(data=data, synthetic=synthetic, per_identity=per_identity, size=size, seed=seed,
                             lfw_pairs=lfw_pairs, pairs_csv=pairs_csv)
    reg = open_registry(registry)
    with rich_progress(not as_json) as progress:
        result = evaluate(reg, version, against, eval_data, fars=fars, plot=plot, batch_size=batch_size,
                          device=device, allow_missing=allow_missing, progress=progress)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=1, allow_nan=False, default=str))
        return
    for part in renderables(result):
        console.print(part, soft_wrap=isinstance(part, str))  # paths stay whole, copy-pasteable


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
