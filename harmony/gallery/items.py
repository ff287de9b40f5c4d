"""Image files and folders -> gallery items: (item id, source, identity).

One naming rule everywhere: an item's id is ``<identity>/<file name>``, its identity the name of
the folder holding the file (or ``identity=`` when given), its source the absolute path, so the
backfill can read it again. For an image folder ``ROOT/<identity>/<image>`` that id is the path
relative to ROOT, so adding the same folder (or one of its files) again replaces items instead of
duplicating them; an id already held by a different file is refused unless replacing is
explicit (catalog.check_collisions). Files are not decoded here: unreadable ones are found, and
reported, when they are embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from harmony.data.images import IMAGE_EXTENSIONS, list_images
from harmony.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ItemSpec:
    item_id: str
    source: str  # absolute path of the image file
    label: str  # identity


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _spec(path: Path, identity: str | None) -> ItemSpec:
    path = path.absolute()
    label = identity or path.parent.name
    if not label:
        raise InvalidInput(f"cannot tell the identity of {path}", hint="pass --identity NAME")
    return ItemSpec(f"{label}/{path.name}", str(path), label)


def folder_items(root: Path | str) -> list[ItemSpec]:
    """Every image of an image folder ``ROOT/<identity>/<image>``, sorted by item id."""
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"image folder {root} does not exist", hint="pass a folder with one sub-folder per identity")
    out = [_spec(f, None) for d in sorted(p for p in root.iterdir() if p.is_dir()) for f in list_images(d)]
    if not out:
        raise InvalidInput(f"no images in {root}/<identity>/", hint="expected layout: ROOT/<identity>/<image>.png")
    return out


def path_items(paths: Sequence[Path | str], identity: str | None = None) -> list[ItemSpec]:
    """Items for ``gallery add``: image files, identity folders (images directly inside) and image
    folders (``ROOT/<identity>/<image>``), in the order given. ``identity`` overrides the folder name."""
    out: list[ItemSpec] = []
    for raw in paths:
        p = Path(raw)
        if _is_image(p):
            out.append(_spec(p, identity))
        elif p.is_file():
            raise InvalidInput(f"{p} is not an image file", hint=f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
        elif p.is_dir():
            found = [_spec(f, identity) for f in list_images(p)]
            found += [_spec(f, identity) for d in sorted(q for q in p.iterdir() if q.is_dir()) for f in list_images(d)]
            if not found:
                raise InvalidInput(f"no images in {p} or its sub-folders", hint="pass image files or an image folder")
            out += found
        else:
            raise NotFound(f"{p} does not exist", hint="pass image files or folders")
    return unique_items(out)


def unique_items(items: Iterable[ItemSpec]) -> list[ItemSpec]:
    """Drop repeats of the same file; two different files under one item id are an error."""
    seen: dict[str, ItemSpec] = {}
    for it in items:
        other = seen.get(it.item_id)
        if other is not None and other.source != it.source:
            raise InvalidInput(f"{other.source} and {it.source} would both be item {it.item_id!r}",
                               hint="add them in separate calls, or rename one of them")
        seen.setdefault(it.item_id, it)
    return list(seen.values())


def query_images(path: Path | str) -> list[str]:
    """Query images: one file, or every image under a folder (recursively, sorted)."""
    p = Path(path)
    if _is_image(p):
        return [str(p.absolute())]
    if p.is_file():
        raise InvalidInput(f"{p} is not an image file", hint=f"use one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    if not p.is_dir():
        raise NotFound(f"query {p} does not exist", hint="pass an image file or a folder of images")
    found = sorted(str(f.absolute()) for f in p.rglob("*") if _is_image(f))
    if not found:
        raise InvalidInput(f"no images under {p}", hint="pass an image file or a folder of images")
    return found
