"""`harmony train`: base FaceNet models, harmonic (backward-compatible) upgrades, and transforms
between two versions' embedding spaces."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from harmony.cli.common import (DeviceOpt, JsonOpt, QuietOpt, RegistryOpt, console, echo_json, handle_errors,
                                open_registry, quiet_lightning, registry_root, table)

if TYPE_CHECKING:
    from harmony.registry import Registry

app = typer.Typer(help="Train embedding models and register them as versions.\n\n"
                  "Example: harmony train base --recipe recipes/base-tiny.yaml --name v1", no_args_is_help=True)

RecipeOpt = Annotated[Path, typer.Option("--recipe", "-r", help="YAML recipe (see recipes/).")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the new embedding version.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Override the recipe's seed.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--max-epochs", min=1, help="Override train.epochs.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", help="Override a recipe key (repeatable), VALUE read as YAML: --set model.dim=64 "
    "--set train.loss=arcface; validated like the recipe file, and the effective recipe is the one recorded.",
    show_default=False)]
ResumeOpt = Annotated[Optional[bool], typer.Option(
    "--resume/--no-resume", help="Continue the killed run of this --name from its last checkpoint (default: "
    "automatically when one is unfinished); --no-resume starts over.", show_default=False)]


def _metrics_table(title: str, columns: dict[str, dict], fars: tuple[float, ...]) -> Any:
    t = table(title, ("held-out identities", *columns), right=columns)
    for f in fars:
        t.add_row(f"VAL@FAR={f:g}", *[f"{c.get(f'val@{f:g}', float('nan')):.3f}" for c in columns.values()])
    return t


def _classifier_line(loss: str, clf: dict | None) -> None:
    """Say what the margin loss's classifier cost and why the registered model has none."""
    from harmony.training.base import CLASSIFIER_NOTE

    if clf is not None:
        console.print(f"{loss} classifier: {clf['identities']:,} identities x {clf['dim']} = {clf['parameters']:,} "
                      f"parameters ({clf['megabytes']:.2f} MB fp32), {CLASSIFIER_NOTE}", highlight=False)


def cost_line(cost: dict, new: str, old: str) -> str:
    """What a face costs to embed under each version, and the ratio: why a phone v2 is worth it."""
    n, o = cost.get("new"), cost.get("old")

    def one(c: dict) -> str:
        return f"{c['mult_adds'] / 1e6:.1f}M multiply-adds, {c['params'] / 1e6:.2f}M parameters at {c['input_size']} px"

    if o is None:
        return f"cost per face: {new} {one(n)}; {old} is an external model (not measured)"
    return (f"cost per face: {new} {one(n)}; {old} {one(o)}; multiply-add ratio {new}/{old} "
            f"{n['mult_adds'] / o['mult_adds']:.2f}")


def _announce_resume(reg: Registry, name: str, resume: Optional[bool]) -> None:
    from harmony.training.runs import unfinished_run

    pending = unfinished_run(reg, name)
    if pending is not None and resume is not False:
        console.print(f"resuming the unfinished run {pending} from its last checkpoint")


@app.command("base")
@handle_errors
def base(recipe: RecipeOpt, name: NameOpt, seed: SeedOpt = None, max_epochs: EpochsOpt = None,
         sets: SetOpt = None, resume: ResumeOpt = None, registry: RegistryOpt = None, quiet: QuietOpt = False) -> None:
    """Train a FaceNet model (triplet loss, online semi-hard mining; or train.loss sphereface,
    cosface or arcface over a training-only classifier, not registered) and register it.

    A killed run resumes from its last epoch: re-run the same command (or add --resume).
    Under DDP (train.devices/strategy/num_nodes in the recipe; Lightning starts the processes, or
    torchrun/SLURM does) rank 0 alone opens the registry and registers.

    Example: harmony train base --recipe recipes/base-tiny.yaml --name v1
    Example: harmony train base --recipe recipes/base-tiny-arcface.yaml --name v1-arcface
    Example: harmony train base --recipe recipes/base-tiny.yaml --name v1-64d --set model.dim=64
    Example: harmony train base --recipe recipes/base-tiny-ddp.yaml --name v1-ddp
    Example: torchrun --standalone --nproc_per_node 2 -m harmony train base --recipe recipes/base-tiny-ddp.yaml --name v1-ddp
    """
    from harmony.cli.progress import rich_progress
    from harmony.recipe import load_recipe, with_sets
    from harmony.training.base import follow_base, train_base
    from harmony.training.distributed import check_devices, launch_from_env

    quiet_lightning(quiet)
    r = with_sets(load_recipe(recipe), sets or ()).override(**{"seed": seed, "train.epochs": max_epochs})
    check_devices(r.train)  # before the registry is opened (or created)
    if not launch_from_env().is_zero:  # a DDP rank other than 0: it never opens the registry
        follow_base(registry_root(registry), r, name)
        return
    reg = open_registry(registry)
    _announce_resume(reg, name, resume)
    with rich_progress(not quiet) as progress:
        res = train_base(reg, r, name, resume=resume, progress=progress)
    console.print(_metrics_table(f"{name}: {r.model.backbone}, {r.train.loss} loss, "
                                 f"{res.metrics['train_seconds']:.0f} s training",
                                 {name: res.metrics, "raw pixels": res.baseline}, r.eval.fars))
    _classifier_line(r.train.loss, res.classifier)
    console.print(f"registered version [bold]{name}[/] in {reg.root} (run folder {res.run_dir}"
                  f"{', resumed' if res.resumed else ''})")


@app.command("harmonic")
@handle_errors
def harmonic(
    recipe: RecipeOpt,
    name: NameOpt,
    old: Annotated[str, typer.Option("--from", help="The frozen old version (v1) to stay compatible with.")],
    init: Annotated[Optional[str], typer.Option("--init", help="Start from this registered version (usually a stronger "
                                                "independently trained v2-base); default: a fresh network.")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="harmonic (FaceNet appendix) or bct "
                                                  "(Shen et al. 2020); default from the recipe.")] = None,
    require_compatible: Annotated[bool, typer.Option("--require-compatible", help="Exit non-zero (and record no "
                                                     "compatibility) unless VAL(v2->v1) >= VAL(v1,v1) at every FAR.")] = False,
    max_flip_rate: Annotated[Optional[float], typer.Option(
        "--max-flip-rate", help="Refuse to register v2 (exit non-zero, the run folder kept) when more than this "
        "share (0..1) of the held-out queries v1 identifies right at top-1 become wrong with v2 (on a v2 gallery "
        "or on v1's gallery, mixed search).", show_default=False)] = None,
    seed: SeedOpt = None,
    sets: SetOpt = None,
    resume: ResumeOpt = None,
    registry: RegistryOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a v2 whose embeddings are directly comparable with --from's, and register it.

    With a margin train.loss (recipes/harmonic-tiny-arcface.yaml) v2 trains with that loss plus the
    harmonic v1/v2 term, so a triplet-trained v1 can be upgraded to an ArcFace-trained v2.

    A killed run resumes from its last epoch (and stage): re-run the same command (or add --resume).
    Under DDP (train.devices/strategy/num_nodes in the recipe) rank 0 alone opens the registry.
    Held-out figures: the 2x2 VAL table with the share of the gain recovered, top-1 identification
    on a v1 gallery and the negative flips (all flipped ids: `harmony registry show NAME --json`).

    Example: harmony train harmonic --from v1 --init v2-base --recipe recipes/harmonic-tiny.yaml --name v2
    Example: harmony train harmonic --from v1 --init v2-base --recipe recipes/harmonic-tiny.yaml --name v2 --max-flip-rate 0.02
    Example: harmony train harmonic --from v1 --init v2-arcface --recipe recipes/harmonic-tiny-arcface.yaml --name v2
    """
    from harmony.cli.progress import rich_progress
    from harmony.cli.tables import harmonic_tables
    from harmony.metrics.flips import check_rate
    from harmony.recipe import load_recipe, with_sets
    from harmony.cli.tables import compat_table
    from harmony.training.distributed import check_devices, launch_from_env
    from harmony.training.harmonic import follow_harmonic, train_harmonic

    if max_flip_rate is not None:
        check_rate(max_flip_rate, "--max-flip-rate")  # before any training
    quiet_lightning(quiet)
    r = with_sets(load_recipe(recipe), sets or ()).override(**{"seed": seed, "harmonic.method": method})
    check_devices(r.train)  # before the registry is opened (or created)
    if not launch_from_env().is_zero:  # a DDP rank other than 0: v1 and --init come from rank 0
        follow_harmonic(registry_root(registry), r, name)
        return
    reg = open_registry(registry)
    _announce_resume(reg, name, resume)
    with rich_progress(not quiet) as progress:
        res = train_harmonic(reg, r, name, old, init, require_compatible=require_compatible, resume=resume,
                             progress=progress, max_flip_rate=max_flip_rate)
    for t in harmonic_tables(res.report, res.baselines, res.eval_set, res.identification.as_dict(),
                             res.flips.as_dict()):
        console.print(t)
    for anc in res.ancestors:  # a chain: measured against every older ancestor too, never assumed transitive
        console.print(compat_table(anc, f"{name} vs {anc.old_name} ({old}'s ancestor), measured on the same "
                                        "held-out identities"))
    _classifier_line(r.train.loss, res.classifier)
    if res.cost is not None:
        console.print(cost_line(res.cost, name, old), highlight=False)
    verdict = res.compatible
    console.print(f"registered version [bold]{name}[/] (parent {old}); compatible with {old}: "
                  + ("[green]yes[/]" if all(verdict.values()) else
                     ", ".join(f"FAR {f:g}: {'yes' if v else 'no'}" for f, v in verdict.items())))
    if require_compatible and not all(verdict.values()):
        console.print(f"[red]--require-compatible: {name} is not compatible with {old}; compatibility not recorded[/]")
        raise typer.Exit(1)


def transform_table_view(title: str, table_: dict) -> Any:
    """The edge's measured table (training.transform.transform_table) as a rich table."""
    a, b = table_["from"], table_["to"]
    cols = ("FAR", f"{a},{a}", f"{b},{b}", f"{b}->h({a})", f"h({a}),h({a})", "gain", f"{b}->{a} no h")
    t = table(f"{title}: VAL at FAR (probes,gallery)", cols, right=cols, no_wrap=cols)
    for r in table_["rows"]:
        g, w = r.get("gain_recovered"), r.get("val_to_from_without_h")
        t.add_row(f"{r['far']:g}" + (" *" if r.get("zero_false_accepts") else ""), f"{r['val_from_from']:.3f}", f"{r['val_to_to']:.3f}", f"{r['val_to_mapped']:.3f}",
                  f"{r['val_mapped_mapped']:.3f}", "-" if g is None else f"{g:.2f}", "-" if w is None else f"{w:.3f}")
    notes = ["gain: gain_recovered, (VAL(to->h(from)) - VAL(from,from)) / (VAL(to,to) - VAL(from,from))"]
    if any(r.get("zero_false_accepts") for r in table_["rows"]):
        notes.append("* FAR x different pairs < 1: the figure rests on zero false accepts")
    t.caption = "; ".join(notes)
    return t


@app.command("transform")
@handle_errors
def transform(
    old: Annotated[str, typer.Option("--from", help="The version whose stored vectors h converts (v1).")],
    new: Annotated[str, typer.Option("--to", help="The version whose space h maps into (v2).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the new transform edge.")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Transform recipe: data and transform sections "
                                         "(see recipes/transform-tiny.yaml).")],
    seed: SeedOpt = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Override transform.steps.")] = None,
    sets: SetOpt = None,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Learn h mapping --from's embeddings into --to's space (FCT without side-information) and
    register it as a transform edge with its measured table.

    Both versions (any kind, external ones too) embed the recipe's labelled data once through
    their own input pipelines; h trains on those vectors in seconds. The table (test identities):
    VAL(from,from), VAL(to,to), VAL(to->h(from)), VAL(h(from),h(from)), gain_recovered.
    `harmony migrate gallery --to TO --via NAME` then upgrades a gallery without reading an image.

    Example: harmony train transform --from v1 --to v2 --name v1-to-v2 --recipe recipes/transform-tiny.yaml
    Example: harmony train transform --from v1 --to v2 --name v1-to-v2b --recipe recipes/transform-tiny.yaml --set transform.hidden=512
    """
    from harmony.cli.progress import rich_progress
    from harmony.recipe import load_transform_recipe, with_sets
    from harmony.training.transform import train_transform

    r = with_sets(load_transform_recipe(recipe), sets or ()).override(**{"seed": seed, "transform.steps": steps})
    reg = open_registry(registry)
    with rich_progress(not (quiet or as_json)) as progress:
        res = train_transform(reg, r, name, old, new, device=device, progress=progress)
    if as_json:
        echo_json({"transform": res.edge, "test": res.table, "val": res.val_table, "best_step": res.best_step,
                   "fit_seconds": res.fit_s, "wall_seconds": res.wall_s})
        return
    e = res.edge
    console.print(transform_table_view(f"{e.name}: {e.from_version} -> {e.to_version} on {res.table['dataset']} "
                                       f"(held-out test identities)", res.table))
    console.print(f"registered transform [bold]{e.name}[/] ({e.in_dim}-D -> {e.out_dim}-D, h fitted in "
                  f"{res.fit_s:.1f} s, sha256 {e.sha256[:12]}); convert a {e.from_version} gallery with "
                  f"`harmony migrate gallery --gallery G --to {e.to_version} --via {e.name}`", highlight=False)
