"""`harmony cluster`: a folder of photos grouped into one folder per person (FaceNet Figure 7)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from harmony.cli.common import (
    DeviceOpt,
    JsonOpt,
    RegistryOpt,
    console,
    echo_json,
    handle_errors,
    open_registry,
    table,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from harmony.evaluation.cluster import ClusterRun

LISTED = 20  # cluster rows shown before "... and N more"


@handle_errors
def cluster_command(
    version: Annotated[str, typer.Option("--version", help="The version that embeds the photos (name or alias).")],
    data: Annotated[Path, typer.Option("--data", help="Folder of photos (any depth); only read, never changed.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: cluster_0001/ ..., unclustered/, "
                                      "contact_sheets/, clusters.json.")],
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", help="Squared L2 threshold. Default: the version's t* at --far from its latest evaluation "
        "in the registry; required when it has none.", show_default=False)] = None,
    far: Annotated[float, typer.Option("--far", help="Which recorded t* to use when --threshold is not given.")] = 1e-3,
    method: Annotated[str, typer.Option(
        "--method", help="agglomerative (average linkage: groups merge while their mean distance <= T) or "
        "components (connected components of pairs with D < T: single linkage).")] = "agglomerative",
    min_size: Annotated[int, typer.Option(
        "--min-size", min=1, help="Smaller clusters go together into unclustered/.")] = 2,
    force: Annotated[bool, typer.Option("--force", help="Replace a previous output of this command at --out.")] = False,
    hardlink: Annotated[bool, typer.Option(
        "--hardlink", help="Hard-link the photos instead of copying them (copy where linking fails).")] = False,
    score: Annotated[bool, typer.Option(
        "--score", help="Also score the clusters against the first-level folders of --data (pairwise P/R).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per encoder batch.")] = 512,
    device: DeviceOpt = None,
    registry: RegistryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cluster a folder of photos by person at the version's verification threshold.

    Writes one folder per cluster (largest first; copies, or --hardlink) with a contact sheet PNG
    each, and a clusters.json manifest. The output is built in a temp folder and renamed into
    place: a killed run leaves --out as it was. A non-empty --out is refused unless --force, and
    --force replaces only an earlier output of this command.

    Example: harmony cluster --version v1 --data photos/ --out clusters/ --method agglomerative
    """
    from harmony.cli.progress import rich_progress
    from harmony.evaluation.cluster import cluster_folder
    from harmony.metrics.fars import check_far

    far_ = check_far(far, "--far")
    reg = open_registry(registry)
    with rich_progress(not as_json) as progress:
        run = cluster_folder(reg, version, data, out, threshold=threshold, far=far_, method=method,
                             min_size=min_size, force=force, hardlink=hardlink, score=score,
                             batch_size=batch_size, device=device, progress=progress)
    if as_json:
        echo_json(run.as_dict())
        return
    for part in renderables(run):
        console.print(part, soft_wrap=isinstance(part, str))


def renderables(r: ClusterRun) -> list[RenderableType]:
    from harmony.cli.tables import pct

    t = table(f"{r.version}: {r.n_photos} photos -> {r.n_clusters} clusters ({r.method}, T = {r.threshold.value:.4g})",
              ("folder", "photos", "contact sheet"), right=("photos",), no_wrap=("contact sheet",))
    for c in r.clusters[:LISTED]:
        t.add_row(c.folder, str(c.size), c.sheet)
    if len(r.clusters) > LISTED:
        t.add_row(f"... and {len(r.clusters) - LISTED} more", str(sum(c.size for c in r.clusters[LISTED:])), "")
    t.caption = f"threshold: {r.threshold.source}; photos {'hard-linked' if r.linked == 'hardlink' else 'copied'}"
    out: list = [t]
    if r.scores is not None:
        s = r.scores
        out.append(f"against the {s['identities']} first-level folders: pairwise precision {pct(s['precision'])}, "
                   f"recall {pct(s['recall'])}, F1 {pct(s['f1'])}")
    if r.unusable:
        out.append(f"[yellow]{len(r.unusable)} photo(s) could not be embedded, left out[/] (see clusters.json)")
    out.append(f"written to [bold]{r.out}[/] (manifest {r.out}/clusters.json)")
    return out
