"""`harmony eval`: VAL@FAR, compatibility, identification, clustering and LFW accuracy of versions.

One top-level command (registered on the root app, not a group). ``--version`` is the model
under test, ``--against`` an older one: ``harmony eval --version v2 --against v1`` reports
whether v2 is compatible with v1, i.e. VAL(v2->v1) >= VAL(v1,v1) at each ``--far``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from harmony.cli.common import DeviceOpt, JsonOpt, RegistryOpt, console, handle_errors, open_registry


@handle_errors
def eval_command(
    version: Annotated[str, typer.Option("--version", help="The version to evaluate (name or alias).")],
    against: Annotated[Optional[str], typer.Option(
        "--against", help="An older version: also report whether --version is compatible with it "
        "(2x2 VAL table, cross identification) and record the verdict.")] = None,
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
    from harmony.evaluation.tables import render

    eval_data = resolve_data(data=data, synthetic=synthetic, per_identity=per_identity, size=size, seed=seed,
                             lfw_pairs=lfw_pairs, pairs_csv=pairs_csv)
    reg = open_registry(registry)
    with rich_progress() as progress:
        result = evaluate(reg, version, against, eval_data, fars=tuple(far) if far else (1e-2, 1e-3), plot=plot,
                          batch_size=batch_size, device=device, allow_missing=allow_missing, progress=progress)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=1, allow_nan=False, default=str))
        return
    for part in render(result):
        console.print(part, soft_wrap=isinstance(part, str))  # paths stay whole, copy-pasteable
