"""The evaluation sets `harmony eval` accepts, fixed before any model sees them.

Two shapes:
- :class:`LabelledSet`: images with identity labels (``--synthetic N``: held-out test-split
  identities of the procedural generator; ``--data DIR``: an image folder, identity = sub-folder).
  Every pair of images is a verification pair; identification and clustering apply.
- :class:`PairsSet`: an explicit list of verification pairs in folds (``--lfw-pairs pairs.txt``
  with ``--data LFW_ROOT``, or ``--pairs-csv FILE`` with columns path_a,path_b,same), scored by
  the LFW protocol. Images a pair names but that do not exist are listed in ``missing``.

Unreadable files are not detected here (that would decode every file on every run, even when
all embeddings are cached): they come back as unreadable rows from the embedding step, and the
evaluation lists and skips them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmony.errors import InvalidInput
from harmony.data.sources import FileSource, ImageSource, SyntheticSource


@dataclass(frozen=True, eq=False)
class LabelledSet:
    """``source`` images with ``labels`` ``(n,)``; ``identities[label]`` names a label when known."""

    source: ImageSource
    labels: np.ndarray
    title: str  # registry data set name; "{px}" is filled with the size the versions saw
    identities: tuple[str, ...] | None = None
    skipped_identities: tuple[str, ...] = ()

    def name(self, sizes: set[int]) -> str:
        px = f"{next(iter(sizes))}px" if len(sizes) == 1 else "native-px"
        return self.title.replace("{px}", px)


@dataclass(frozen=True, eq=False)
class PairsSet:
    """Pairs ``(a[i], b[i])`` indexing ``source`` (-1: a missing image), ``same``, ``folds``."""

    source: FileSource
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    n_folds: int
    missing: tuple[str, ...]
    title: str

    @property
    def n_pairs(self) -> int:
        return int(self.same.size)

    def name(self, sizes: set[int]) -> str:
        return self.title


EvalData = LabelledSet | PairsSet


def synthetic_set(n_identities: int, per_identity: int = 8, size: int | None = None, seed: int = 0) -> LabelledSet:
    """Held-out (test-split) synthetic identities; training never sees them."""
    src = SyntheticSource(n_identities, per_identity, "test", seed, size)
    return LabelledSet(src, src.labels, f"synthetic:test:seed{seed}:{n_identities}x{per_identity}:{{px}}")


def folder_set(root: str | Path, min_images: int = 2) -> LabelledSet:
    """``root/<identity>/<image>``; identities with fewer than ``min_images`` files are skipped."""
    from harmony.data.folder import scan_folder

    index = scan_folder(root, min_images=min_images, verify=False)
    if len(index.identities) < 2:
        raise InvalidInput(f"{root} has {len(index.identities)} identity with {min_images}+ images; "
                           "verification needs at least 2", hint="add identities (one sub-folder each)")
    return LabelledSet(FileSource.of(index.paths), index.labels, f"folder:{Path(root).absolute()}",
                       tuple(index.identities), tuple(index.skipped_identities))


def _pairs_set(ps, title: str) -> PairsSet:
    missing = {str(Path(p).absolute()) for p in ps.missing}
    paths = sorted({str(Path(p).absolute()) for pair in ps.pairs for p in (pair.path_a, pair.path_b)} - missing)
    pos = {p: i for i, p in enumerate(paths)}
    a = np.array([pos.get(str(Path(p.path_a).absolute()), -1) for p in ps.pairs], np.int64)
    b = np.array([pos.get(str(Path(p.path_b).absolute()), -1) for p in ps.pairs], np.int64)
    return PairsSet(FileSource.of(paths), a, b, ps.same, ps.folds, ps.n_folds, tuple(sorted(missing)), title)


def lfw_pairs_set(pairs_txt: str | Path, root: str | Path) -> PairsSet:
    """The standard LFW ``pairs.txt`` (10 folds) over the images under ``root``."""
    from harmony.metrics import read_lfw_pairs

    return _pairs_set(read_lfw_pairs(pairs_txt, root), f"lfw-pairs:{Path(pairs_txt).absolute()}")


def csv_pairs_set(csv_file: str | Path, root: str | Path | None = None) -> PairsSet:
    """A ``path_a,path_b,same`` CSV (relative paths against ``root``, default the CSV's folder)."""
    from harmony.metrics import read_pairs_csv

    return _pairs_set(read_pairs_csv(csv_file, root), f"pairs-csv:{Path(csv_file).absolute()}")


def resolve_data(*, data: Path | None = None, synthetic: int | None = None, per_identity: int = 8,
                 size: int | None = None, seed: int = 0, lfw_pairs: Path | None = None,
                 pairs_csv: Path | None = None, min_images: int = 2) -> EvalData:
    """The CLI's data options to one evaluation set, refusing ambiguous combinations."""
    if size is not None and synthetic is None:
        raise InvalidInput("--size applies to --synthetic only", hint="files load at each version's input size")
    if lfw_pairs is not None and pairs_csv is not None:
        raise InvalidInput("--lfw-pairs and --pairs-csv are two pair lists; pass one",
                           hint="evaluate one pair list per run")
    if lfw_pairs is not None or pairs_csv is not None:
        flag = "--lfw-pairs" if lfw_pairs is not None else "--pairs-csv"
        if synthetic is not None:
            raise InvalidInput(f"{flag} scores files on disk; --synthetic renders images",
                               hint=f"drop --synthetic (write synthetic faces with `harmony data synth` to use {flag})")
        if lfw_pairs is not None:
            if data is None:
                raise InvalidInput("--lfw-pairs needs --data LFW_ROOT (the folder holding <name>/<name>_0001.jpg)",
                                   hint="harmony eval --version v1 --lfw-pairs pairs.txt --data lfw/")
            return lfw_pairs_set(lfw_pairs, data)
        return csv_pairs_set(pairs_csv, data)  # type: ignore[arg-type]
    if (data is None) == (synthetic is None):
        raise InvalidInput("pass exactly one of --data DIR and --synthetic N" if data is None else
                           "--data and --synthetic both given; pass exactly one",
                           hint="--synthetic 300 (held-out synthetic identities) or --data faces/ "
                                "(ROOT/<identity>/<image>)")
    if synthetic is not None:
        return synthetic_set(synthetic, per_identity, size, seed)
    return folder_set(data, min_images)  # type: ignore[arg-type]
