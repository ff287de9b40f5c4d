"""The item table of a gallery: one row per item, columnar numpy, saved as a small .npz.

Columns: ``ids`` int64 (the FAISS id, assigned once per item id string and kept when the item is
replaced), ``seqs`` int64 (a gallery-wide change counter: bumped whenever a row is (re)written, so
a backfill can tell what changed behind its cursor), ``versions`` (the version of the item's
newest stored vector), ``item_ids`` (unique strings such as relative paths), ``sources`` (where to
read the item again for re-embedding), ``labels`` (identity), ``via`` (the transform that produced
the newest vector from a stored one without reading the source, ``harmony migrate gallery --via``;
"" when it was embedded from the source: a later backfill re-embeds converted items). Rows stay
sorted by id, so id -> row is a binary search. Strings are stored as NUL-joined UTF-8, so loading
needs no pickle; a table saved before ``via`` existed loads with every item embedded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from harmony.errors import IntegrityError, InvalidInput

_STR_COLUMNS = ("versions", "item_ids", "sources", "labels", "via")


def _strings(values, what: str, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    vals = list(values)
    if len(vals) != n:
        raise InvalidInput(f"{len(vals)} {what} for {n} items", hint=f"pass one {what[:-1]} per item")
    for i, v in enumerate(vals):
        s = str(v)
        if "\0" in s:
            raise InvalidInput(f"{what} must not contain NUL characters (row {i})")
        out[i] = s
    return out


@dataclass(frozen=True)
class ItemTable:
    ids: np.ndarray
    seqs: np.ndarray
    versions: np.ndarray
    item_ids: np.ndarray
    sources: np.ndarray
    labels: np.ndarray
    via: np.ndarray

    @staticmethod
    def empty() -> "ItemTable":
        o = np.empty(0, dtype=object)
        return ItemTable(np.empty(0, np.int64), np.empty(0, np.int64), o, o.copy(), o.copy(), o.copy(), o.copy())

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @cached_property
    def row_of_item(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.item_ids)}

    def rows_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Row index per int64 id, -1 for ids not in the table."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, max(len(self) - 1, 0))
        found = (pos < len(self)) & (self.ids[pos_c] == ids) if len(self) else np.zeros(ids.shape, bool)
        return np.where(found, pos_c, -1)

    def take(self, rows: np.ndarray) -> "ItemTable":
        return ItemTable(*(getattr(self, f)[rows] for f in ("ids", "seqs", *_STR_COLUMNS)))

    def count_by_version(self) -> dict[str, int]:
        v, c = np.unique(self.versions.astype(str), return_counts=True) if len(self) else ([], [])
        return {str(a): int(b) for a, b in zip(v, c)}

    @property
    def converted(self) -> np.ndarray:
        """Bool mask: the item's newest vector came from a transform, not from its source."""
        return self.via.astype(str) != "" if len(self) else np.zeros(0, bool)

    def count_converted(self) -> dict[str, int]:
        """Items whose newest vector was converted, per transform name."""
        v, c = np.unique(self.via[self.converted].astype(str), return_counts=True) if len(self) else ([], [])
        return {str(a): int(b) for a, b in zip(v, c)}

    # -- changes (each returns a new table) ----------------------------------------------------

    def upsert(self, item_ids, sources, labels, version: str, next_id: int, next_seq: int
               ) -> tuple["ItemTable", np.ndarray, np.ndarray, int, int]:
        """Insert or replace rows; return (table, ids of the given items, mask of those that were
        already present, next_id, next_seq).

        A replaced item keeps its int64 id and gets a fresh seq.
        """
        names = _strings(item_ids, "item_ids", len(item_ids))
        n = names.shape[0]
        if len(set(names)) != n:
            raise InvalidInput("item_ids repeat within one call", hint="deduplicate them")
        srcs = _strings(sources, "sources", n)
        labs = _strings(labels, "labels", n)
        rows = np.array([self.row_of_item.get(s, -1) for s in names], dtype=np.int64)
        old = rows >= 0
        seqs = np.arange(next_seq, next_seq + n, dtype=np.int64)
        ids = np.empty(n, np.int64)
        ids[old] = self.ids[rows[old]]
        n_new = int((~old).sum())
        ids[~old] = np.arange(next_id, next_id + n_new, dtype=np.int64)
        cols = {f: getattr(self, f).copy() for f in ("ids", "seqs", *_STR_COLUMNS)}
        r = rows[old]
        cols["seqs"][r] = seqs[old]
        cols["versions"][r] = version
        cols["sources"][r] = srcs[old]
        cols["labels"][r] = labs[old]
        cols["via"][r] = ""  # new content, embedded from its source
        new = ~old
        vers = np.empty(n_new, dtype=object)
        vers[:] = version
        via = np.empty(n_new, dtype=object)
        via[:] = ""
        add = {"ids": ids[new], "seqs": seqs[new], "versions": vers, "item_ids": names[new],
               "sources": srcs[new], "labels": labs[new], "via": via}
        table = ItemTable(**{f: np.concatenate([cols[f], add[f]]) for f in cols})
        return table, ids, old, next_id + n_new, next_seq + n

    def without_ids(self, ids: np.ndarray) -> "ItemTable":
        return self.take(~np.isin(self.ids, np.asarray(ids, dtype=np.int64)))

    def with_versions(self, ids: np.ndarray, version: str, via: str = "") -> "ItemTable":
        """Set the newest-vector version of ``ids`` (their seqs are unchanged: content is the same)
        and how it was made: ``via`` a transform's name, or "" (embedded from the source)."""
        rows = self.rows_of_ids(ids)
        rows = rows[rows >= 0]
        versions, vias = self.versions.copy(), self.via.copy()
        versions[rows] = version
        vias[rows] = str(via)
        return replace(self, versions=versions, via=vias)

    # -- persistence ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays = {"ids": self.ids, "seqs": self.seqs}
        for f in _STR_COLUMNS:
            arrays[f] = np.frombuffer("\0".join(getattr(self, f)).encode("utf-8"), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, n=np.int64(len(self)), **arrays)
        return buf.getvalue()

    @staticmethod
    def load(path: Path) -> "ItemTable":
        try:
            with np.load(path, allow_pickle=False) as z:
                n = int(z["n"])
                cols = {"ids": z["ids"].astype(np.int64), "seqs": z["seqs"].astype(np.int64)}
                for f in _STR_COLUMNS:
                    if f == "via" and f not in z.files:  # saved before conversions existed: all embedded
                        cols[f] = np.full(n, "", dtype=object)
                        continue
                    parts = z[f].tobytes().decode("utf-8").split("\0") if n else []
                    arr = np.empty(n, dtype=object)
                    arr[:] = parts
                    cols[f] = arr
        except (OSError, KeyError, ValueError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise IntegrityError(f"item table {path} is unreadable: {e}",
                                 hint="restore the gallery folder from a backup") from None
        t = ItemTable(**cols)
        if any(getattr(t, f).shape[0] != n for f in cols) or (n > 1 and (np.diff(t.ids) <= 0).any()):
            raise IntegrityError(f"item table {path} is inconsistent", hint="restore the gallery folder")
        return t
