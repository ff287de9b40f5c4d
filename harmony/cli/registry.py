"""`harmony registry ...`: inspect and maintain the catalog of embedding versions.

Thin commands over harmony.registry; duckdb/torch are imported inside the commands."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from harmony.cli.common import (JsonOpt, RegistryOpt, console, echo_json, err_console, field_table, handle_errors,
                                open_registry, plain, table)

app = typer.Typer(help="Inspect and maintain the registry of embedding versions.\n\n"
                  "Example: harmony registry list", no_args_is_help=True)
alias_app = typer.Typer(help="Mutable names that point at versions (e.g. prod -> v2).\n\n"
                        "Example: harmony registry alias set prod v2", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


class Adapter(str, Enum):
    torchscript = "torchscript"
    onnx = "onnx"
    dlib = "dlib"


class Colour(str, Enum):
    rgb = "rgb"
    bgr = "bgr"


class ModelFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


class Mode(str, Enum):
    aligned = "aligned"
    detect = "detect"


class Align(str, Enum):
    dlib_chip = "dlib-chip"
    facenet = "facenet"
    none = "none"


def align_spec(align: "Align | None", size: "int | None", image_size: "int | None"):
    """``--align``/``--align-size`` as an AlignSpec (None: no alignment; the crop size defaults
    to the model's input size)."""
    from harmony.align.spec import AlignSpec
    from harmony.errors import InvalidInput

    if align is None or align is Align.none:
        if size is not None:
            raise InvalidInput("--align-size needs --align dlib-chip or facenet", hint="add --align facenet")
        return None
    return AlignSpec(style=align.value, size=int(size or image_size or 160))


class ExportFormat(str, Enum):
    parquet = "parquet"
    json = "json"


VersionArg = Annotated[str, typer.Argument(help="Version name or alias.")]


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else ""


def _versions_table(versions, aliases: dict[str, str], title: str) -> Table:
    by_version: dict[str, list[str]] = {}
    for alias, target in aliases.items():
        by_version.setdefault(target, []).append(alias)
    t = table(title, ("name", "kind", "dim", "backbone", "parent", "aliases", "created", "sha256"), right=("dim",),
              no_wrap=("name", "kind", "created", "sha256"), caption="times in UTC")
    for v in versions:
        t.add_row(v.name, v.kind, str(v.dim), v.backbone, v.parent or "", ", ".join(by_version.get(v.name, [])),
                  _when(v.created), v.sha256[:8])
    return t


@app.command("list")
@handle_errors
def list_cmd(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered embedding versions.

    Example: harmony registry list --json
    """
    reg = open_registry(registry)
    versions, aliases = reg.list_versions(), reg.aliases()
    if as_json:
        echo_json(versions)
        return
    if not versions:
        console.print(f"no versions in {reg.root} yet; train one with `harmony train base`")
        return
    console.print(_versions_table(versions, aliases, f"versions in {reg.root}"))
    edges = reg.transforms()
    if edges:
        console.print(_transforms_table(edges, f"transforms in {reg.root}"))


def _transforms_table(edges, title: str) -> Table:
    """One row per edge, with its test-identity figures at the strictest FAR it was measured at."""
    cols = ("name", "from", "to", "dims", "FAR", "to->h(from)", "gain")
    t = table(title, cols, right=("FAR", "to->h(from)", "gain"), no_wrap=cols,
              caption="VAL(to->h(from)) and gain_recovered on held-out identities; more: `harmony registry show NAME`")
    for e in edges:
        rows = (e.metrics.get("test") or {}).get("rows") or []
        r = min(rows, key=lambda x: x["far"]) if rows else None
        g = r.get("gain_recovered") if r else None
        t.add_row(e.name, e.from_version, e.to_version, f"{e.in_dim}->{e.out_dim}", f"{r['far']:g}" if r else "-",
                  f"{r['val_to_mapped']:.3f}" if r else "-", "-" if g is None else f"{g:.2f}")
    return t


@app.command("transforms")
@handle_errors
def transforms_cmd(from_version: Annotated[Optional[str], typer.Option("--from", help="Only edges from this "
                                                                         "version.")] = None,
                   to_version: Annotated[Optional[str], typer.Option("--to", help="Only edges to this version.")] = None,
                   registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """List the transform edges (learned maps between two versions, `harmony train transform`).

    Example: harmony registry transforms --to v2
    """
    reg = open_registry(registry)
    edges = reg.transforms(from_version, to_version)
    if as_json:
        echo_json(edges)
        return
    if not edges:
        console.print("no transforms yet; learn one with `harmony train transform --from V1 --to V2 --name V1-to-V2`")
        return
    console.print(_transforms_table(edges, f"transforms in {reg.root}"))


def _show_transform(reg, name: str, as_json: bool) -> None:
    from harmony.cli.train import transform_table_view

    e = reg.get_transform(name)
    if as_json:
        echo_json(e)
        return
    rows = [(key, _when(value) if isinstance(value, datetime) else str(value if value is not None else ""))
            for key, value in dataclasses.asdict(e).items() if key not in ("metrics", "meta", "recipe")]
    console.print(field_table(f"transform {e.name}", rows))
    for part in ("test", "val"):
        if e.metrics.get(part):
            console.print(transform_table_view(f"measured on {e.metrics[part]['dataset']} ({part} identities)",
                                               e.metrics[part]))


@app.command("show")
@handle_errors
def show_cmd(name: VersionArg, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Show one version (its record, aliases, evaluations, transforms) or one transform edge.

    Example: harmony registry show prod
    """
    reg = open_registry(registry)
    if any(e.name == name for e in reg.transforms(include_deleted=True)):
        _show_transform(reg, name, as_json)  # a removed one: NotFound, "was removed"
        return
    v = reg.get_version(name)
    aliases = sorted(a for a, t in reg.aliases().items() if t == v.name)
    evals = reg.evaluations(v.name)
    edges = [e for e in reg.transforms() if v.name in (e.from_version, e.to_version)]
    if as_json:
        echo_json({**plain(v), "aliases": aliases, "evaluations": evals, "transforms": [e.name for e in edges]})
        return
    rows = [(key, json.dumps(value, sort_keys=True) if isinstance(value, dict) else _when(value)
             if isinstance(value, datetime) else str(value if value is not None else ""))
            for key, value in dataclasses.asdict(v).items()]
    console.print(field_table(f"version {v.name}", [*rows, ("aliases", ", ".join(aliases))]))
    if evals:
        et = table("evaluations", ("id", "dataset", "against", "metrics", "created (UTC)"))
        for e in evals:
            et.add_row(str(e["id"]), e["dataset"], e["against"] or "", json.dumps(e["metrics"], sort_keys=True),
                       _when(e["created"]))
        console.print(et)
    if edges:
        console.print(_transforms_table(edges, f"transforms from or to {v.name}"))


@app.command("lineage")
@handle_errors
def lineage_cmd(name: VersionArg, registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Show a version, its parent, grandparent, ...

    Example: harmony registry lineage v3
    """
    reg = open_registry(registry)
    chain = reg.lineage(name)
    if as_json:
        echo_json(chain)
        return
    console.print(_versions_table(chain, reg.aliases(), f"lineage of {chain[0].name} (newest first)"))


@app.command("compat")
@handle_errors
def compat_cmd(new: Annotated[Optional[str], typer.Argument(help="The newer version (probes).")] = None,
               old: Annotated[Optional[str], typer.Argument(help="The older version (gallery).")] = None,
               matrix: Annotated[bool, typer.Option("--matrix", help="Every pair instead: measured VAL(probe->gallery) "
                                                    "of all versions, one matrix per dataset.")] = False,
               far: Annotated[Optional[float], typer.Option("--far", help="The FAR of the matrix (default 1e-3); for "
                                                            "NEW OLD, show only that FAR.", show_default=False)] = None,
               dataset: Annotated[Optional[str], typer.Option("--dataset", help="Only measurements on this dataset.")]
               = None,
               png: Annotated[Optional[Path], typer.Option("--png", help="With --matrix: write the heat map to this "
                                                           "PNG (unmeasured pairs grey).")] = None,
               registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Show the newest compatibility measurements of NEW against OLD, per dataset and FAR, with the
    share of the gain recovered; or, with --matrix, the measured cross-version VAL of every pair.

    Example: harmony registry compat v2 v1
    Example: harmony registry compat --matrix --far 1e-3 --png matrix.png
    """
    from harmony.errors import InvalidInput
    from harmony.metrics.fars import check_far

    far_ = check_far(far, "--far") if far is not None else None
    if matrix:
        if new is not None or old is not None:
            raise InvalidInput("--matrix shows every pair of versions; it takes no NEW OLD",
                               hint="drop NEW OLD, or drop --matrix to see one pair")
        _matrix(open_registry(registry), far_ if far_ is not None else 1e-3, dataset, png, as_json)
        return
    if new is None or old is None:
        raise InvalidInput("registry compat needs NEW and OLD (or --matrix)",
                           hint="e.g. `harmony registry compat v2 v1`, or `harmony registry compat --matrix`")
    if png is not None:
        raise InvalidInput("--png draws the version matrix", hint="add --matrix")
    _pair(open_registry(registry), new, old, far_, dataset, as_json)


def _pair(reg, new: str, old: str, far: float | None, dataset: str | None, as_json: bool) -> None:
    from harmony.cli.tables import gain, gain_note
    from harmony.metrics import gain_recovered
    from harmony.registry.catalog import FAR_RTOL

    rows = [c for c in reg.compatibility(new, old) if (far is None or abs(c.far - far) <= FAR_RTOL * far)
            and (dataset is None or c.dataset == dataset)]
    gains = [gain_recovered(c.table["old_old"], c.table["new_old"], c.table["new_new"]) for c in rows]
    if as_json:
        echo_json([plain(c) | {"gain_recovered": g} for c, g in zip(rows, gains)])
        return
    if not rows:
        where = (f" at FAR {far:g}" if far is not None else "") + (f" on {dataset}" if dataset else "")
        console.print(f"no compatibility measured for {new} against {old}{where}; measure it with "
                      f"`harmony train harmonic` or `harmony eval --version {new} --against {old}`")
        return
    cells = ("FAR", "old,old", "new,new", "new->old", "old->new")
    t = table(f"{rows[0].new} against {rows[0].old}: VAL at FAR (probes,gallery)", ("dataset", *cells), right=cells,
              no_wrap=("dataset", *cells))
    t.add_column("verdict", no_wrap=True, min_width=12)
    t.add_column("gain recovered", justify="right", no_wrap=True)
    for c, g in zip(rows, gains):
        verdict = "[green]compatible[/]" if c.compatible else "[red]incompatible[/]"
        t.add_row(c.dataset, f"{c.far:g}",
                  *(f"{c.table[k]:.4f}" for k in ("old_old", "new_new", "new_old", "old_new")), verdict, gain(g))
    if any(g is None for g in gains):
        t.caption = gain_note(rows[0].new, rows[0].old)
    console.print(t)


def _matrix(reg, far: float, dataset: str | None, png: Optional[Path], as_json: bool) -> None:
    from harmony.cli.tables import matrix_table
    from harmony.errors import NotFound
    from harmony.metrics.plots import plot_val_matrix
    from harmony.registry.matrix import version_matrices

    matrices = version_matrices(reg, far, dataset)
    if not matrices:
        where = f" on {dataset}" if dataset else ""
        msg = f"no cross-version VAL measured at FAR {far:g}{where}"
        hint = "measure a pair with `harmony eval --version NEW --against OLD` (or train harmonic), or try another --far"
        if png is not None:
            raise NotFound(f"{msg}: nothing to draw in {png}", hint=hint)
        if as_json:
            echo_json({"far": far, "matrices": [], "png": None})
        else:
            console.print(f"{msg}; {hint}")
        return
    written = None
    if png is not None:
        written = plot_val_matrix([(m.dataset, m.values(), [p.label for p in m.probes], list(m.galleries))
                                   for m in matrices], png, title=f"VAL@FAR={far:g}, probe version (rows) "
                                                                   "against gallery version (columns)")
    if as_json:
        echo_json({"far": far, "matrices": [m.as_dict() for m in matrices], "png": written})
        return
    for m in matrices:
        console.print(matrix_table(m))
    if written is not None:
        console.print(f"heat map written to [bold]{written}[/]", soft_wrap=True)


@alias_app.command("set")
@handle_errors
def alias_set(alias: str, version: str, registry: RegistryOpt = None) -> None:
    """Point ALIAS at VERSION (creating or moving it).

    Example: harmony registry alias set prod v2
    """
    reg = open_registry(registry)
    reg.set_alias(alias, version)
    console.print(f"{alias} -> {reg.resolve(alias)}")


@alias_app.command("rm")
@handle_errors
def alias_rm(alias: str, registry: RegistryOpt = None) -> None:
    """Remove ALIAS (the version stays).

    Example: harmony registry alias rm staging
    """
    open_registry(registry).remove_alias(alias)
    console.print(f"removed alias {alias}")


@alias_app.command("list")
@handle_errors
def alias_list(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """List aliases and the versions they point at.

    Example: harmony registry alias list
    """
    aliases = open_registry(registry).aliases()
    if as_json:
        echo_json(aliases)
        return
    t = table("aliases", ("alias", "version"))
    for a, v in aliases.items():
        t.add_row(a, v)
    console.print(t)


@app.command("verify")
@handle_errors
def verify_cmd(name: Annotated[Optional[str], typer.Argument(help="One version or transform (default: all, "
                                                              "and every gallery).")] = None,
               gallery: Annotated[Optional[str], typer.Option("--gallery", help="Check only this gallery's files.")] = None,
               repair: Annotated[bool, typer.Option("--repair", help="Delete the orphans and leftovers of killed "
                                                    "runs (never a registered artifact or a running job's files).")] = False,
               registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Re-hash artifacts and gallery files (index, items, gallery.json: one row each) against
    their recorded sha256, list the debris of killed runs; exit 1 when any is missing or altered.
    A gallery built by an older harmony has no checksums: its rows say unverified.

    Example: harmony registry verify --repair
    """
    reg = open_registry(registry)
    if repair:
        for r in reg.repair():
            err_console.print(f"removed {r.status} {r.path}", highlight=False)
    if gallery is not None:
        results = reg.verify_galleries(gallery)
    else:
        results = reg.verify(name) + (reg.verify_galleries() if name is None else [])
    bad = [r for r in results if r.status in ("missing", "altered")]
    if as_json:
        echo_json(results)
    else:
        t = table(f"artifact check of {reg.root}", ("name", "status", "path", "detail"))
        colour = {"ok": "green", "orphan": "yellow", "leftover": "yellow", "unverified": "yellow"}
        for r in results:
            shown = Path(r.path).relative_to(reg.root) if Path(r.path).is_relative_to(reg.root) else r.path
            t.add_row(r.name, f"[{colour.get(r.status, 'red')}]{r.status}[/]", str(shown), r.detail)
        console.print(t)
        if any(r.status in ("orphan", "leftover") for r in results):
            console.print("orphans and leftovers are debris of interrupted runs: `harmony registry verify --repair` "
                          "deletes them")
    if bad:
        raise typer.Exit(1)


@app.command("rm")
@handle_errors
def rm_cmd(name: str, registry: RegistryOpt = None) -> None:
    """Remove a version (refused while an alias, gallery, migration, child version or transform
    uses it) or a transform (refused while a migration in flight converts through it).

    Example: harmony registry rm v2-trial
    """
    reg = open_registry(registry)
    if any(e.name == name for e in reg.transforms()):
        reg.remove_transform(name)
        console.print(f"removed transform {name} (its name stays reserved)")
        return
    reg.remove_version(name)
    console.print(f"removed version {name} (its name stays reserved)")


@app.command("export")
@handle_errors
def export_cmd(out: Annotated[Path, typer.Option("--out", help="Folder to write one file per table to.")],
               format: Annotated[ExportFormat, typer.Option("--format", help="parquet or json.")] = ExportFormat.parquet,
               registry: RegistryOpt = None) -> None:
    """Export every registry table to parquet or JSON files.

    Example: harmony registry export --format parquet --out backup/
    """
    for path in open_registry(registry).export(out, format.value):
        console.print(str(path))


def _floats(text: str, what: str) -> list[float]:
    from harmony.errors import InvalidInput

    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise InvalidInput(f"--{what} {text!r} is not a comma-separated list of numbers",
                           hint=f"e.g. --{what} 0.5,0.5,0.5") from None


@app.command("add-external")
@handle_errors
def add_external(
    name: Annotated[str, typer.Argument(help="Name of the new version.")],
    adapter: Annotated[Adapter, typer.Option("--adapter", help="torchscript, onnx or dlib.")],
    file: Annotated[Optional[Path], typer.Option("--file", help="The model file (torchscript, onnx); its FILE.json "
                                                 "sidecar, when present, supplies the pipeline.")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="dlib: aligned (face chips) or detect.")] = Mode.aligned,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Input size (torchscript; onnx when "
                                                      "the graph's is dynamic).")] = None,
    colour: Annotated[Optional[Colour], typer.Option("--colour", help="onnx: channel order the model takes "
                                                     "(default rgb).")] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", help="Per-channel mean: torchscript of x/255 (default "
                                                "0.5); onnx of 0..255 pixels (default 127.5, or 0 when the graph "
                                                "normalises internally).")] = None,
    std: Annotated[Optional[str], typer.Option("--std", help="Per-channel std, same units as --mean (defaults 0.5; "
                                               "onnx 127.5, or 1).")] = None,
    dim: Annotated[Optional[int], typer.Option("--dim", help="Embedding dim (checked; inferred if omitted).")] = None,
    parent: Annotated[Optional[str], typer.Option("--parent", help="Version this one descends from.")] = None,
    align: Annotated[Optional[Align], typer.Option("--align", help="Face alignment of raw photos before the "
                                                   "model: dlib-chip, facenet or none (inputs are crops). "
                                                   "dlib: use --mode.")] = None,
    align_size: Annotated[Optional[int], typer.Option("--align-size", help="Side of the aligned crop "
                                                      "(default: --image-size).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a model harmony did not train (TorchScript or ONNX file, or dlib's face ResNet) as a version.

    Example: harmony registry add-external arcface --adapter onnx --file w600k_r50.onnx --align dlib-chip
    Example: harmony registry add-external legacy --adapter dlib --mode detect
    """
    from harmony.errors import InvalidInput

    reg = open_registry(registry)
    mean_ = _floats(mean, "mean") if mean is not None else None
    std_ = _floats(std, "std") if std is not None else None
    if adapter is Adapter.dlib:
        from harmony.models.dlib_model import register_dlib

        if file is not None:
            raise InvalidInput("the dlib adapter takes no --file", hint="drop --file; it uses dlib's own model")
        if align is not None or align_size is not None:
            raise InvalidInput("the dlib adapter aligns by its --mode",
                               hint="--mode detect (dlib-chip 150 on raw photos) or --mode aligned (face chips)")
        v = register_dlib(reg, name, mode=mode.value, parent=parent)
    elif file is None:
        raise InvalidInput(f"the {adapter.value} adapter needs --file", hint=f"e.g. --file model.{adapter.value}")
    elif adapter is Adapter.onnx:
        from harmony.models.onnx_model import register_onnx

        v = register_onnx(reg, name, file, image_size=image_size, colour=colour.value if colour else None,
                          mean=mean_, std=std_, dim=dim, parent=parent,
                          align=align_spec(align, align_size, image_size))
    else:
        from harmony.models.torchscript import register_torchscript

        if colour is not None:
            raise InvalidInput("--colour is for the onnx adapter", hint="the torchscript adapter feeds RGB")
        v = register_torchscript(reg, name, file, image_size=image_size, mean=mean_, std=std_, dim=dim, parent=parent,
                                 align=align_spec(align, align_size, image_size))
    console.print(f"registered external version {v.name} ({v.backbone}, dim {v.dim}, sha256 {v.sha256[:12]})")


@app.command("export-model")
@handle_errors
def export_model_cmd(
    name: VersionArg,
    format: Annotated[ModelFormat, typer.Option("--format", help="onnx or torchscript.")],
    out: Annotated[Path, typer.Option("--out", help="The model file to write; its pipeline goes to OUT.json.")],
    registry: RegistryOpt = None,
) -> None:
    """Write a harmony-trained version as a standalone ONNX or TorchScript model, its input pipeline
    (size, colour order, mean/std, dim, source version and sha256) in OUT.json beside it.

    Example: harmony registry export-model v2 --format onnx --out v2.onnx
    """
    from harmony.models.export import export_model

    e = export_model(open_registry(registry), name, format.value, out)
    console.print(f"wrote {e.path} ({e.pipeline['image_size']} px RGB {e.pipeline['mean_std_of']}, dim "
                  f"{e.pipeline['dim']}) and {e.sidecar}; register it with `harmony registry add-external NAME "
                  f"--adapter {format.value} --file {e.path}`")


@app.command("sql")
@handle_errors
def sql_cmd(query: Annotated[str, typer.Argument(help="A read-only SQL statement.")],
            registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """Run read-only SQL over the registry tables (versions, aliases, evaluations, compatibility, ...).

    Example: harmony registry sql "SELECT name, dim FROM versions WHERE kind = 'harmonic'"
    """
    columns, rows = open_registry(registry).query(query)
    if as_json:
        echo_json([dict(zip(columns, r)) for r in rows])
        return
    t = table(None, columns)
    for r in rows:
        t.add_row(*("" if x is None else str(x) for x in r))
    console.print(t)
    err_console.print(f"{len(rows)} row(s)", style="dim")
