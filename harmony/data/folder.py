"""Image-folder datasets (one sub-folder per identity, aligned crops), as real data arrives."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmony.data.images import Unusable, check_image, list_images
from harmony.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderIndex:
    """The scanned content of an image folder: paths, integer labels and identity names."""

    root: Path
    paths: list[str]
    labels: np.ndarray  # (n,) int64, index into identities
    identities: list[str]
    skipped_identities: list[str] = field(default_factory=list)  # fewer than min_images
    unusable: tuple[Unusable, ...] = ()  # files skipped, with the decoder's reason (what build reports)

    @property
    def unreadable(self) -> list[str]:
        """The paths of the files skipped as unusable."""
        return [u.path for u in self.unusable]

    def __len__(self) -> int:
        return len(self.paths)

    def item_ids(self) -> list[str]:
        """Stable item ids: paths relative to the root (what galleries key items by)."""
        return [str(Path(p).relative_to(self.root)) for p in self.paths]


def scan_folder(root: str | Path, min_images: int = 2, verify: bool = True) -> FolderIndex:
    """Scan ``root/<identity>/<image>``; skip (and report) tiny identities and unusable files.

    ``verify``: decode every file as a build would (:func:`~harmony.data.images.check_image`), so
    the files skipped here, and their reasons, are the ones a build or a migration would skip.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"image folder {root} does not exist", hint="pass a folder with one sub-folder per identity")
    paths: list[str] = []
    labels: list[int] = []
    names: list[str] = []
    skipped: list[str] = []
    unusable: list[Unusable] = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = list_images(d)
        if verify:
            checked = [(f, check_image(f)) for f in files]
            for _, u in checked:
                if u is not None:
                    log.warning("unusable image skipped: %s", u.reason)
                    unusable.append(u)
            files = [f for f, u in checked if u is None]
        if len(files) < min_images:
            skipped.append(d.name)
            continue
        lab = len(names)
        names.append(d.name)
        paths += [str(f) for f in files]
        labels += [lab] * len(files)
    if skipped:
        log.warning("%d identities with fewer than %d images skipped (e.g. %s)", len(skipped), min_images, skipped[0])
    if not names:
        raise InvalidInput(f"no identity in {root} has {min_images}+ readable images",
                           hint="expected layout: ROOT/<identity>/<image>.jpg")
    return FolderIndex(root, paths, np.asarray(labels, np.int64), names, skipped, tuple(unusable))


def identity_split(names: list[str], fractions: tuple[float, float, float], salt: str = "harmony") -> list[str]:
    """Assign each identity to train/val/test by a hash of its name: stable as folders grow."""
    out = []
    for n in names:
        u = int.from_bytes(hashlib.sha256(f"{salt}:{n}".encode()).digest()[:8], "big") / 2**64
        out.append("train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test")
    return out


def subset(index: FolderIndex, keep_identities: set[str]) -> FolderIndex:
    """Restrict an index to some identities, relabelling 0..m-1."""
    keep = [i for i, n in enumerate(index.identities) if n in keep_identities]
    remap = {old: new for new, old in enumerate(keep)}
    mask = np.isin(index.labels, keep)
    return FolderIndex(
        index.root,
        [p for p, m in zip(index.paths, mask) if m],
        np.asarray([remap[int(l)] for l in index.labels[mask]], np.int64),
        [index.identities[i] for i in keep],
        index.skipped_identities,
        index.unusable,
    )
