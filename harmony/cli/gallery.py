"""`harmony gallery ...`: build, grow, search and inspect FAISS galleries of registered versions.

Thin commands over harmony.gallery.catalog (search: harmony.migration.search); torch and faiss are imported inside them."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import typer

from harmony.cli.common import (DeviceOpt, JsonOpt, QuietOpt, RegistryOpt, console, echo_json, err_console,
                                field_table, handle_errors, open_registry, print_first, table)

app = typer.Typer(help="Galleries: FAISS indexes of face embeddings, registered with their version and FAR.\n\n"
                  "Example: harmony gallery build --name prod --version v1 --data faces/", no_args_is_help=True)


class GpuMode(str, Enum):
    shard = "shard"
    replicate = "replicate"


class Codec(str, Enum):
    flat = "flat"
    sq8 = "sq8"
    ivf = "ivf"
    ivf_sq8 = "ivf-sq8"


NameOpt = Annotated[str, typer.Option("--name", "-n", help="Gallery name.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per embedding batch.")]


def list_unreadable(paths: Sequence[str], what: str = "unreadable image(s) skipped") -> None:
    if paths:
        print_first(f"{len(paths)} {what}", paths)


@app.command("build")
@handle_errors
def build(
    name: NameOpt,
    version: Annotated[str, typer.Option("--version", "-v", help="Embedding version (name or alias).")],
    data: Annotated[Path, typer.Option("--data", help="Image folder ROOT/<identity>/<image>.")],
    codec: Annotated[Codec, typer.Option("--codec", help="flat (exact), sq8 (128 B/face), ivf, ivf-sq8.")] = Codec.flat,
    far: Annotated[float, typer.Option("--far", help="The gallery's operating FAR: migrations read "
                                       "compatibility verdicts at it.")] = 1e-3,
    nlist: Annotated[Optional[int], typer.Option("--nlist", min=1, help="IVF lists (default about 4 sqrt(n)).")] = None,
    shards: Annotated[int, typer.Option("--shards", min=1, max=256, help="CPU searches run over this many index "
                                        "shards in parallel threads (same results as one index).")] = 1,
    gpu_mode: Annotated[GpuMode, typer.Option("--gpu-mode", help="With several GPUs: shard the vectors over all "
                                              "of them (memory), or replicate to each (query throughput).")]
    = GpuMode.shard,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Embed an image folder with a version, index it and register it as a gallery.

    Item id = path relative to --data (<identity>/<file>), identity = sub-folder, source = the
    absolute path (so a migration can re-embed it). Stored under <registry>/galleries/<name>/.
    IVF and sq8 codecs train on a seeded sample; the output says how large it was.

    Example: harmony gallery build --name prod --version v1 --data faces/ --codec sq8 --far 1e-3 --shards 4
    """
    from harmony.cli.progress import rich_progress
    from harmony.gallery.catalog import build_gallery

    reg = open_registry(registry)
    with rich_progress(not (quiet or as_json)) as progress:
        r = build_gallery(reg, name, version, data, codec=codec.value, far=far, nlist=nlist, batch_size=batch_size,
                          device=device, progress=progress, shards=shards, gpu_mode=gpu_mode.value)
    if as_json:
        echo_json(r)
        return
    console.print(f"built gallery [bold]{r.gallery}[/]: {r.n_items} items of {r.n_identities} identities, "
                  f"version {r.version}, codec {r.codec}, FAR {r.far:g} in {r.total_s:.1f} s "
                  f"(embedding {r.embed_s:.1f} s, {r.n_items / max(r.embed_s, 1e-9):,.0f} items/s; "
                  f"indexing {r.index_s:.1f} s)", highlight=False)
    if r.train_sample:
        console.print(f"codec {r.codec} trained on a seeded sample of {r.train_sample:,} of {r.n_items:,} vectors",
                      highlight=False)
    if r.shards > 1:
        console.print(f"searches run over {r.shards} CPU shards (GPUs: {r.gpu_mode})", highlight=False)
    list_unreadable(r.unreadable)


@app.command("add")
@handle_errors
def add(
    name: NameOpt,
    paths: Annotated[list[Path], typer.Argument(help="Image files, identity folders or image folders.")],
    identity: Annotated[Optional[str], typer.Option("--identity", help="Identity of every image given "
                                                    "(default: the folder each file is in).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace items whose <identity>/<file> id belongs "
                                          "to another file (default: refuse, before any embedding).")] = False,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed images with the gallery's version and add them.

    Item id = <identity>/<file>. Adding the same file again replaces its item; an id that
    belongs to a different file (e.g. another folder with the same names) is refused unless
    --replace.

    Example: harmony gallery add --name prod faces/id00042/ new/alice.jpg --identity alice
    """
    from harmony.cli.progress import rich_progress
    from harmony.gallery.catalog import add_to_gallery

    with rich_progress(not as_json) as progress:
        r = add_to_gallery(open_registry(registry), name, paths, identity=identity, replace=replace,
                           batch_size=batch_size, device=device, progress=progress)
    if as_json:
        echo_json(r)
        return
    console.print(f"gallery [bold]{r.gallery}[/] ({r.version}): {r.added} added, {r.replaced} replaced", highlight=False)
    list_unreadable(r.unreadable)


@app.command("remove")
@handle_errors
def remove(
    name: NameOpt,
    item_ids: Annotated[list[str], typer.Argument(help="Item ids (<identity>/<file>), or identities (every "
                                                 "item under them).")],
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove items (every version's vector) from a gallery.

    Example: harmony gallery remove --name prod id00042/0003.png id00077
    """
    from harmony.gallery.catalog import remove_from_gallery

    removed = remove_from_gallery(open_registry(registry), name, item_ids)
    if as_json:
        echo_json({"gallery": name, "removed": removed})
        return
    console.print(f"removed {len(removed)} item(s) from gallery [bold]{name}[/]", highlight=False)


@app.command("rm")
@handle_errors
def rm(
    name: Annotated[str, typer.Argument(help="Gallery name.")],
    force: Annotated[bool, typer.Option("--force", help="Also discard a migration in flight.")] = False,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a gallery: its registry rows and its folder (refused while a migration is in
    flight, unless --force). Works when the folder is missing or fails its check.

    Example: harmony gallery rm old-prod
    """
    from harmony.gallery.catalog import remove_gallery

    r = remove_gallery(open_registry(registry), name, force=force)
    if as_json:
        echo_json(r)
        return
    dropped = f", discarded migration(s) {', '.join(f'#{i}' for i in r.discarded_migrations)}" \
        if r.discarded_migrations else ""
    where = "and its folder" if r.folder_removed else f"(folder {r.path} not removed: missing or outside the registry)"
    console.print(f"removed gallery [bold]{name}[/] {where}{dropped}", highlight=False)


@app.command("search")
@handle_errors
def search(
    name: NameOpt,
    query: Annotated[Path, typer.Option("--query", help="A query image, or a folder of them.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Results per query.")] = 5,
    version: Annotated[Optional[str], typer.Option("--version", "-v", help="Embed queries with this version "
                                                   "(default: the gallery's, or a compatible migration target).")] = None,
    batch_size: BatchOpt = 256,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The k nearest gallery items of each query image: item id, identity, squared L2 distance.

    Another version than the gallery's is allowed only with a passing compatibility verdict at
    the gallery's FAR; mid-migration the search is mixed (each item once, its newest vector).

    Example: harmony gallery search --name prod --query probe.jpg -k 5 --version v2
    """
    from harmony.migration.search import search_gallery

    r = search_gallery(open_registry(registry), name, query, k, version, batch_size=batch_size, device=device)
    if as_json:
        echo_json({"gallery": r.gallery, "query_version": r.query_version, "gallery_version": r.gallery_version,
                   "mode": r.mode, "unreadable": list(r.unreadable),
                   "results": [{"query": q, "hits": [{"rank": i + 1, "item_id": h.item_id, "identity": h.label,
                                                      "distance": h.distance, "version": h.version}
                                                     for i, h in enumerate(hits)]}
                               for q, hits in zip(r.queries, r.hits)]})
        return
    how = {"direct": "", "cross": f" against its {r.gallery_version} vectors",
           "mixed": f" mixed over {r.gallery_version} and {r.query_version} vectors"}[r.mode]
    for q, hits in zip(r.queries, r.hits):
        t = table(f"{q}: {r.query_version} query on gallery {r.gallery}{how}",
                  ("rank", "item", "identity", "distance", "vector"), right=("rank", "distance"), title_justify="left")
        for i, h in enumerate(hits):
            t.add_row(str(i + 1), h.item_id, h.label, f"{h.distance:.4f}", h.version)
        console.print(t)
    list_unreadable(r.unreadable, "unreadable query image(s) skipped")


def _info_rows(view: Any) -> list[tuple[str, str]]:
    g, i, m = view.record, view.info, view.migration
    rows = [("name", g.name), ("registry version", g.version), ("operating FAR", f"{g.far:g}"), ("codec", g.codec)]
    if i is not None:
        rows += [("serving version", i.active), ("previous (rollback)", i.previous or "-"), ("dim", str(i.dim)),
                 ("items", str(i.n_items)),
                 ("items by newest vector", ", ".join(f"{k}: {v}" for k, v in i.items_by_version.items()) or "-"),
                 ("converted, not embedded", ", ".join(f"{v} via {k}" for k, v in i.converted_by_transform.items())
                  or "-"),
                 ("vectors per index", ", ".join(f"{k}: {v}" for k, v in i.vectors_by_version.items()) or "-"),
                 ("codec trained on", ", ".join(f"{v}: {t['sample']:,} of {t['pool']:,} vectors (seeded sample)"
                                                for v, t in (i.trained_on or {}).items()) or "-"),
                 ("search placement", f"{i.shards} CPU shard(s); several GPUs: {i.gpu_mode}"),
                 ("backfills in progress", ", ".join(i.backfills) or "-"),
                 ("bytes on disk", f"{i.bytes_on_disk:,}")]
    rows.append(("newest migration", f"#{m.id} {m.source} -> {m.target}: {m.state}" if m else "-"))
    rows.append(("path", i.path if i is not None else g.path))
    return rows


@app.command("info")
@handle_errors
def info(
    name: NameOpt,
    items: Annotated[int, typer.Option("--items", min=0, help="Also list the first N items.")] = 0,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a gallery: versions, items, indexes, the newest migration, disk use.

    Example: harmony gallery info --name prod --items 10
    """
    from harmony.gallery.catalog import gallery_view, items_of, open_gallery

    reg = open_registry(registry)
    view = gallery_view(reg, name)
    listed = items_of(open_gallery(reg, name, use_gpu=False)[1], items) if items and view.info else []
    if as_json:
        echo_json({"gallery": view.record, "store": view.info, "migration": view.migration,
                   "warnings": list(view.warnings), "items": listed})
        return
    console.print(field_table(f"gallery {name}", _info_rows(view)))
    if listed:
        it = table(f"first {len(listed)} items", ("item", "identity", "source"))
        for s in listed:
            it.add_row(s.item_id, s.label, s.source)
        console.print(it)
    for w in view.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)


@app.command("list")
@handle_errors
def list_cmd(registry: RegistryOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered galleries.

    Example: harmony gallery list --json
    """
    from harmony.gallery.catalog import list_gallery_views

    reg = open_registry(registry)
    views = list_gallery_views(reg)
    if as_json:
        echo_json([{"gallery": v.record, "store": v.info, "migration": v.migration, "warnings": list(v.warnings)}
                   for v in views])
        return
    if not views:
        console.print(f"no galleries in {reg.root} yet; build one with `harmony gallery build`")
        return
    t = table(f"galleries in {reg.root}", ("name", "version", "FAR", "codec", "items", "migration", "warnings"),
              right=("items",))
    for v in views:
        m = v.migration
        t.add_row(v.record.name, v.info.active if v.info else v.record.version, f"{v.record.far:g}", v.record.codec,
                  str(v.info.n_items) if v.info else "?", f"#{m.id} -> {m.target}: {m.state}" if m else "-",
                  str(len(v.warnings)) if v.warnings else "")
    console.print(t)
