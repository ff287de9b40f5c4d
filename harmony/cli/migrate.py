"""`harmony migrate ...`: move a gallery to a new embedding version, watch it, swap, roll back, gc.

Thin commands over harmony.migration (plan, run, lifecycle, report); rendering in render_migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from harmony.cli.common import (DeviceOpt, JsonOpt, QuietOpt, RegistryOpt, console, echo_json, err_console,
                                handle_errors, open_registry, plain, print_first, registry_root, table)

app = typer.Typer(help="Migrate galleries between embedding versions: plan, resumable backfill, report, "
                  "swap, rollback, gc.\n\nExample: harmony migrate gallery --gallery prod --to v2 --swap",
                  no_args_is_help=True)

GalleryOpt = Annotated[str, typer.Option("--gallery", "-g", help="Gallery name.")]
AllowMissingOpt = Annotated[bool, typer.Option("--allow-missing", help="Swap even when some items have no new "
                                               "vector (unreadable sources); they drop out of the served index.")]
MaxFlipOpt = Annotated[Optional[float], typer.Option(
    "--max-flip-rate", help="Refuse the swap when the migration report's negative flip rate after it (share "
    "of the queries the old version identifies right at top-1 that the new one gets wrong) exceeds this "
    "(0..1).", show_default=False)]
ORDERS = ("sequential", "random", "uncertainty")  # harmony.migration.order.POLICIES (not imported: --help stays fast)


def _check_order(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in ORDERS:
        raise typer.BadParameter(f"unknown order {value!r}; use one of {', '.join(ORDERS)}")
    return value


def _check_orders(value: str) -> str:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in ORDERS]
    if bad or not names:
        raise typer.BadParameter(f"unknown order(s) {', '.join(bad) or repr(value)}; use a comma-separated list of "
                                 f"{', '.join(ORDERS)}")
    return ",".join(dict.fromkeys(names))


def _plan_panel(plan: Any, batch_size: int, swap: bool) -> Any:
    from rich.panel import Panel

    mode = "[green]mixed: queries switch at once[/]" if plan.compatible else "[yellow]full backfill before the swap[/]"
    lines = [f"gallery [bold]{plan.gallery}[/]: {plan.n_items} items, {plan.dim}-D, codec {plan.codec}, "
             f"operating FAR {plan.far:g}",
             f"{plan.source} -> [bold]{plan.target}[/]: {mode}",
             f"verdict: {plan.verdict.describe()}",
             f"backfill order: {plan.order_text()}", ""]
    lines += [f"{i}. {s}" for i, s in enumerate(plan.steps(batch_size, swap), 1)]
    return Panel("\n".join(lines), title="migration plan", title_align="left", expand=False)


def _failed(counts: dict) -> None:
    if counts.get("failed"):
        print_first(f"{counts['failed']} item(s) whose source could not be read keep their old vector (restore or "
                    "remove them, then re-run; or swap with --allow-missing)",
                    [f"{f['item_id']}  ({f['source']})" for f in counts.get("failed_items") or []],
                    total=counts["failed"], more=" (all in `harmony migrate status --json`)")


def _print_repairs(fixed: Any) -> None:
    for f in fixed:
        console.print(f"[yellow]repaired:[/] {f}", highlight=False)


@app.command("gallery")
@handle_errors
def gallery_cmd(
    gallery: GalleryOpt,
    to: Annotated[str, typer.Option("--to", help="Target version (name or alias).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")] = False,
    swap: Annotated[bool, typer.Option("--swap", help="Swap the new index in when the backfill is done.")] = False,
    allow_missing: AllowMissingOpt = False,
    max_flip_rate: MaxFlipOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per committed backfill batch.")] = 256,
    order: Annotated[Optional[str], typer.Option(
        "--order", callback=_check_order, metavar="[sequential|random|uncertainty]",
        help="Backfill order of a new migration: sequential (default; the order items were added), random "
             "(seeded), uncertainty (items whose stored vectors are least trustworthy first). Fixed when the "
             "backfill starts; a resumed one keeps it.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Seed of --order random (default 0); "
                                                "recorded with the backfill.")] = None,
    max_batches: Annotated[Optional[int], typer.Option("--max-batches", min=0, help="Stop after N batches "
                                                       "(backfill in slices; re-run to continue).")] = None,
    eval_data: Annotated[Optional[Path], typer.Option("--eval-data", help="Report on this labelled image folder "
                                                      "instead of the gallery's own items.")] = None,
    via: Annotated[Optional[str], typer.Option("--via", help="Convert the stored vectors through this transform "
                                               "(`harmony train transform`) instead of re-embedding: no image is "
                                               "read, for galleries whose photos are gone.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=0, help="Processes that read and decode images ahead of the encoder (default: half "
        "the CPUs, at most 4; none on 2 CPUs or fewer; 0: read in the main process).", show_default=False)] = None,
    devices: Annotated[int, typer.Option(
        "--devices", min=1, help="Embed over N processes (GPUs with --device cuda or when one is present, else "
        "CPU processes): the pending items are split into N shards, each committed on its own; a killed "
        "process resumes only its shard.")] = 1,
    num_nodes: Annotated[int, typer.Option("--num-nodes", min=1, help="Nodes, each running --devices "
                                           "processes: start the same command once per node with NODE_RANK "
                                           "(or SLURM_NODEID), MASTER_ADDR and MASTER_PORT set, the gallery and "
                                           "registry on a shared file system. Node 0 plans, owns the registry "
                                           "and finishes; the others only embed their shards.")] = 1,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Plan and run (or resume) a gallery's migration to a new version.

    Compatible target (passing verdict at the gallery's FAR): queries switch to it at once and
    search the old index mixed with the growing new one. Otherwise a full backfill comes first.
    The backfill commits every batch: kill it any time, re-run the same command to resume (in
    the same order: --order and --seed are fixed when the backfill starts).
    With --via the stored vectors are converted through a transform in one commit instead; a
    later run without --via (before the swap) re-embeds the items whose sources still exist.

    Example: harmony migrate gallery --gallery prod --to v2 --order uncertainty --swap
    Example: harmony migrate gallery --gallery prod --to v2 --devices 2
    Example: NODE_RANK=0 MASTER_ADDR=node0 MASTER_PORT=29500 harmony migrate gallery -g prod --to v2 --num-nodes 2
    (2 nodes: the same command on node 1 with NODE_RANK=1; add --devices N for N GPUs per node)
    Example: harmony migrate gallery --gallery prod --to v2 --via v1-to-v2
    """
    from harmony.errors import InvalidInput
    from harmony.metrics.flips import check_rate

    if max_flip_rate is not None:
        check_rate(max_flip_rate, "--max-flip-rate")
        if not swap:
            raise InvalidInput("--max-flip-rate gates the swap, and --swap is not given",
                               hint="add --swap, or pass --max-flip-rate to `harmony migrate swap` later")
    launch = None
    if devices > 1 or num_nodes > 1:
        from harmony.migration.distributed import check_launch

        if via is not None:
            raise InvalidInput("--devices/--num-nodes do not apply to --via: a conversion reads no image",
                               hint="drop --devices")
        if max_batches is not None:
            raise InvalidInput("--max-batches does not apply to --devices: each process runs its shard to the end",
                               hint="drop --max-batches, or use --devices 1")
        launch = check_launch(devices, num_nodes, device, registry_root(registry), gallery)
        if launch.multinode and launch.node_rank > 0:  # never opens the registry: node 0 hands it the work
            _other_node(launch, dry_run=dry_run, as_json=as_json)
            return
    with _coordinating(launch):
        _gallery(gallery, to, dry_run=dry_run, swap=swap, allow_missing=allow_missing, max_flip_rate=max_flip_rate,
                 batch_size=batch_size, order=order, seed=seed, max_batches=max_batches, eval_data=eval_data, via=via,
                 workers=workers, device=device, registry=registry, as_json=as_json, quiet=quiet, launch=launch)


def _other_node(launch: Any, *, dry_run: bool, as_json: bool) -> None:
    """`migrate gallery --num-nodes M` on node k > 0: embed the shards node 0 hands this node."""
    from harmony.migration.distributed import run_node

    if dry_run:  # the plan is node 0's to show
        return
    n = run_node(launch)
    if as_json:
        echo_json({"node_rank": launch.node_rank, "shards": n})
    else:
        console.print(f"node {launch.node_rank}: its shards of the backfill are done ({n} in all; node 0 merges "
                      "and finishes)" if n else f"node {launch.node_rank}: node 0 needed no other node",
                      highlight=False)


@contextmanager
def _coordinating(launch: Any) -> Iterator[None]:
    """Node 0 of a backfill across nodes: the previous hand-off goes first; if this run ends
    without one (nothing to split, or a refusal), the other nodes are told so and stop waiting."""
    if launch is None or not launch.multinode:
        yield
        return
    from harmony.migration.distributed import clear_handoff, handed_off, write_handoff

    clear_handoff(launch)
    error = ""
    try:
        yield
    except BaseException as e:  # Ctrl-C too: the other nodes must not take it for "nothing to do"
        error = getattr(e, "message", "") or str(e) or type(e).__name__
        raise
    finally:
        if not handed_off(launch):
            write_handoff(launch, None, None, None, None, 0, 0, error=error)


def _gallery(gallery: str, to: str, *, dry_run: bool, swap: bool, allow_missing: bool, max_flip_rate: float | None,
             batch_size: int, order: str | None, seed: int | None, max_batches: int | None,
             eval_data: Path | None, via: str | None, workers: int | None, device: str | None,
             registry: Path | None, as_json: bool, quiet: bool, launch: Any) -> None:
    """The migration `migrate gallery` runs in this process (node 0 of several, or the only one)."""
    from harmony.cli.progress import rich_progress
    from harmony.cli.render_migration import report_renderables
    from harmony.migration.lifecycle import swap_gallery
    from harmony.migration.plan import plan_migration
    from harmony.migration.run import run_migration
    from harmony.migration.states import READY

    reg = open_registry(registry)
    if via is not None:
        from harmony.errors import InvalidInput

        if max_batches is not None:
            raise InvalidInput("--max-batches does not apply to --via: a conversion commits every vector at once",
                               hint="drop --max-batches")
        if order is not None or seed is not None:
            raise InvalidInput("--order/--seed do not apply to --via: a conversion converts every vector at once",
                               hint="drop --order/--seed, or pass them to the backfill that follows (without --via)")
        _via(reg, gallery, to, via, dry_run=dry_run, swap=swap, allow_missing=allow_missing, eval_data=eval_data,
             as_json=as_json, quiet=quiet)
        return
    plan = plan_migration(reg, gallery, to, order=order, seed=seed)
    if dry_run:
        if as_json:
            echo_json({"dry_run": True, "plan": plan.as_dict(batch_size, swap)})
        else:
            console.print(_plan_panel(plan, batch_size, swap))
            console.print("[dim]dry run: nothing changed[/]")
        return
    if not as_json:
        console.print(_plan_panel(plan, batch_size, swap))
    with rich_progress(enabled=not (quiet or as_json)) as progress:
        out = run_migration(reg, plan, batch_size=batch_size, allow_missing=allow_missing, eval_data=eval_data,
                            progress=progress, stop_after=max_batches, device=device, workers=workers,
                            launch=launch)
    m, b = out.migration, out.backfill
    if not as_json:
        _print_repairs(out.fixed)
        if b is not None:
            console.print(f"backfill to {plan.target}: {b.n_embedded} embedded in this run ({b.n_resumed} done "
                          f"before), {b.n_failed} unreadable, {b.items_per_s:,.0f} items/s, {b.embed_share:.0%} of "
                          f"the time embedding", highlight=False)
        if not out.complete:
            console.print(f"migration #{m.id} is {m.state}: {m.cursor or 0} of {plan.n_items} items done; re-run "
                          "the same command to continue", highlight=False)
            return
        _failed(m.counts)
        for part in report_renderables(out.report or m.report):
            console.print(part)
    # one path with or without --json: swap after the report, so a refusal comes last
    swapped = (swap_gallery(reg, gallery, allow_missing=allow_missing, max_flip_rate=max_flip_rate)
               if swap and m.state == READY else None)
    if as_json:
        echo_json({"plan": plan.as_dict(batch_size, swap), "migration": swapped.migration if swapped else m,
                   "backfill": b, "report": out.report, "swap": swapped, "fixed": list(out.fixed)})
    elif swapped is not None:
        console.print(f"swapped: gallery [bold]{gallery}[/] serves {swapped.active} (rollback to "
                      f"{swapped.previous} until `harmony migrate gc --gallery {gallery}`)", highlight=False)
    elif m.state == READY:
        console.print(f"migration #{m.id} is ready: `harmony migrate swap --gallery {gallery}` serves {plan.target}",
                      highlight=False)
    else:
        console.print(f"migration #{m.id} is {m.state}; gallery {gallery} serves {plan.target}", highlight=False)


def _via(reg: Any, gallery: str, to: str, via: str, *, dry_run: bool, swap: bool, allow_missing: bool,
         eval_data: Optional[Path], as_json: bool, quiet: bool) -> None:
    """`migrate gallery --via`: plan, convert (harmony.migration.convert), report, optional swap."""
    from rich.panel import Panel

    from harmony.cli.progress import rich_progress
    from harmony.cli.render_migration import report_renderables
    from harmony.migration.convert import plan_conversion, run_conversion

    plan = plan_conversion(reg, gallery, to, via)
    p, e = plan.migration, plan.edge
    if not as_json:
        lines = [f"gallery [bold]{p.gallery}[/]: {p.n_items} items, {p.dim}-D, codec {p.codec}, operating FAR {p.far:g}",
                 f"{p.source} -> [bold]{p.target}[/] via transform [bold]{e.name}[/]: stored vectors converted, "
                 "no image read", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(plan.steps(swap), 1)]
        console.print(Panel("\n".join(lines), title="migration plan (transform)", title_align="left", expand=False))
    if dry_run:
        if as_json:
            echo_json({"dry_run": True, "plan": plan.as_dict(swap)})
        else:
            console.print("[dim]dry run: nothing changed[/]")
        return
    with rich_progress(enabled=not (quiet or as_json)) as progress:
        out = run_conversion(reg, plan, swap=swap, allow_missing=allow_missing, eval_data=eval_data, progress=progress)
    if as_json:
        echo_json({"plan": plan.as_dict(swap), "migration": out.migration, "conversion": out.conversion,
                   "report": out.report, "swap": out.swap, "fixed": list(out.fixed)})
        return
    _print_repairs(out.fixed)
    c = out.conversion
    console.print(f"converted {c.n_converted} {p.source} vector(s) to {p.target} via {e.name} in {c.total_s:.2f} s "
                  f"({c.vectors_per_s:,.0f} vectors/s); no image was read", highlight=False)
    for part in report_renderables(out.report):
        console.print(part)
    m = out.migration
    if out.swap is not None:
        console.print(f"swapped: gallery [bold]{gallery}[/] serves {out.swap.active} (rollback to "
                      f"{out.swap.previous} until `harmony migrate gc --gallery {gallery}`)", highlight=False)
    else:
        console.print(f"migration #{m.id} is {m.state}: `harmony migrate swap --gallery {gallery}` serves "
                      f"{p.target}", highlight=False)


@app.command("status")
@handle_errors
def status_cmd(gallery: GalleryOpt, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Where a gallery's migrations stand: state, backfill progress, failed items, report.

    Example: harmony migrate status --gallery prod
    """
    from harmony.cli.render_migration import report_renderables
    from harmony.migration.lifecycle import migration_status
    from harmony.migration.states import ACTIVE_STATES

    s = migration_status(open_registry(registry), gallery)
    if as_json:
        echo_json({**plain(s), "latest": s.latest, "can_rollback": s.can_rollback})
        return
    console.print(f"gallery [bold]{s.gallery}[/] serves {s.active} ({s.n_items} items, FAR {s.far:g}); indexes: "
                  f"{', '.join(s.versions) or '-'}; rollback target: {s.previous or '-'}", highlight=False)
    if not s.migrations:
        console.print("no migrations yet")
    else:
        t = table(f"migrations of {s.gallery}", ("#", "from", "to", "state", "done", "failed", "mode", "updated"),
                  right=("#", "done", "failed"), caption="times in UTC")
        for m in s.migrations:
            t.add_row(str(m.id), m.source, m.target, m.state, str(m.cursor if m.cursor is not None else "-"),
                      str(m.counts.get("failed", "-")), str(m.plan.get("mode", "-")),
                      m.updated.strftime("%Y-%m-%d %H:%M:%S") if m.updated else "")
        console.print(t)
        b, m = s.backfill, s.latest
        if m.plan.get("mode") == "transform" and m.state in ACTIVE_STATES and b is not None and not b.done:
            console.print(f"gallery folder: {b.pending} item(s) hold {m.target} vectors converted via "
                          f"{m.plan.get('via')}; `harmony migrate gallery --gallery {s.gallery} --to {m.target}` "
                          "re-embeds those whose sources exist", highlight=False)
        elif b is not None and m.state in ACTIVE_STATES:
            console.print(f"gallery folder: backfill to {b.target} {b.state}, {b.done} processed, {b.pending} pending, "
                          f"{b.failed} unreadable so far, {b.batches} batches committed", highlight=False)
        if m.plan.get("order"):
            console.print(f"backfill order of migration #{m.id}: {_order_line(m.plan)}", highlight=False)
        _failed(m.counts)
        if m.report:
            for part in report_renderables(m.report):
                console.print(part)
    for w in s.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)


def _order_line(plan: dict) -> str:
    """The order a migration row's plan recorded: policy, seed (random) or score (uncertainty)."""
    o = plan["order"]
    if o == "random":
        return f"random (seed {plan.get('seed', 0)})"
    if o == "uncertainty":
        return f"uncertainty (score {plan.get('score') or '?'})"
    return o


def _print_outcome(o: Any, as_json: bool) -> None:
    """One swap/rollback outcome: JSON, or the repairs made on the way and one line."""
    if as_json:
        echo_json(o)
        return
    _print_repairs(o.fixed)
    console.print(_swap_line(o), highlight=False)


def _swap_line(o: Any) -> str:
    return {"swapped": f"gallery {o.gallery} now serves {o.active}; rollback to {o.previous} until gc",
            "already": f"gallery {o.gallery} already serves {o.active}",
            "rolled_back": f"migration #{o.migration.id} rolled back: gallery {o.gallery} serves {o.active}",
            "cancelled": f"migration #{o.migration.id} cancelled (recorded as failed), its checkpoints deleted: "
                         f"gallery {o.gallery} serves {o.active}"}[o.action] + \
        (f" ({o.missing} item(s) without a vector there)" if o.missing else "")


@app.command("swap")
@handle_errors
def swap_cmd(gallery: GalleryOpt, allow_missing: AllowMissingOpt = False, max_flip_rate: MaxFlipOpt = None,
             registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Serve the finished migration's new index (atomic; the old one stays for rollback).

    Safe to re-run: a swap killed midway is completed by running it again. With --max-flip-rate
    the swap is refused when the report's negative flip rate after it is higher.

    Example: harmony migrate swap --gallery prod --max-flip-rate 0.02
    """
    from harmony.metrics.flips import check_rate
    from harmony.migration.lifecycle import swap_gallery

    if max_flip_rate is not None:
        check_rate(max_flip_rate, "--max-flip-rate")
    _print_outcome(swap_gallery(open_registry(registry), gallery, allow_missing=allow_missing,
                                max_flip_rate=max_flip_rate), as_json)


@app.command("rollback")
@handle_errors
def rollback_cmd(gallery: GalleryOpt, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Undo the newest migration: back to the old index after a swap (until gc), or cancel one in flight.

    Example: harmony migrate rollback --gallery prod
    """
    from harmony.migration.lifecycle import rollback_gallery

    _print_outcome(rollback_gallery(open_registry(registry), gallery), as_json)


@app.command("gc")
@handle_errors
def gc_cmd(
    gallery: GalleryOpt,
    version: Annotated[Optional[str], typer.Option("--version", "-v", help="Delete only this version's index.")] = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete old indexes the gallery no longer serves (after this, rollback is impossible).

    Example: harmony migrate gc --gallery prod
    """
    from harmony.migration.lifecycle import gc_gallery

    dropped = gc_gallery(open_registry(registry), gallery, version)
    if as_json:
        echo_json({"gallery": gallery, "deleted": dropped})
        return
    console.print(f"deleted the {', '.join(dropped)} index(es) of gallery {gallery}" if dropped
                  else f"gallery {gallery} holds no index to collect", highlight=False)


@app.command("curve")
@handle_errors
def curve_cmd(
    gallery: GalleryOpt,
    to: Annotated[str, typer.Option("--to", help="Target version (name or alias).")],
    orders: Annotated[str, typer.Option("--orders", callback=_check_orders,
                                        help="Comma-separated orders to compare.")] = ",".join(ORDERS),
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the random order and of the item sample.")] = 0,
    far: Annotated[Optional[float], typer.Option("--far", help="FAR of the VAL curve (default: the gallery's "
                                                 "operating FAR).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, max=1000, help="Fractions 0, 1/steps, ..., 1.")] = 10,
    max_items: Annotated[int, typer.Option("--max-items", min=2, help="Measure a seeded sample above this many "
                                           "items (pairwise VAL is quadratic).")] = 4000,
    png: Annotated[Optional[Path], typer.Option("--png", help="Write the curves (top-1 and VAL) as a PNG.")] = None,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What each backfill order would give: mixed-search top-1 and VAL@FAR against the share backfilled.

    Uses the gallery's items and identities with both versions (stored vectors; the target's are
    embedded from the sources when the gallery holds none yet). Probes are the items embedded by
    the target version; each item counts once, against its current vector (new once backfilled).
    Reports the area under each curve. Changes nothing: no registry row, no index, no checkpoint.

    Example: harmony migrate curve --gallery prod --to v2 --png curve.png
    """
    from harmony.cli.render_migration import curve_renderables
    from harmony.metrics import check_far
    from harmony.migration.curve import gallery_curves, plot_backfill_curves

    if far is not None:
        check_far(far, "--far")
    if png is not None and not png.absolute().parent.is_dir():
        from harmony.errors import InvalidInput

        raise InvalidInput(f"--png {png}: folder {png.absolute().parent} does not exist",
                           hint="create it first, or write the PNG elsewhere")
    reg = open_registry(registry)
    rep = gallery_curves(reg, gallery, to, orders.split(","), seed=seed, far=far, steps=steps, max_items=max_items,
                         device=device)
    written = plot_backfill_curves(rep, png) if png is not None else None
    if as_json:
        echo_json({**rep.as_dict(), "png": str(written) if written else None})
        return
    for part in curve_renderables(rep.as_dict()):
        console.print(part)
    if written is not None:
        console.print(f"wrote {written}", highlight=False)
