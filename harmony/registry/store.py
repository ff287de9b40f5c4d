"""The registry: a catalog of immutable embedding versions in one DuckDB file, artifacts beside it.

Layout under the root (default ``./registry``): ``harmony.duckdb`` and ``artifacts/<name>/<file>``.
Every method opens its own short-lived connection (see ``connection``) and each change is one
transaction, so a long job never holds the database and a kill -9 never leaves half a change.
Versions are immutable; ``remove_version`` only marks a row deleted (its name stays taken, so
old evaluations and compatibility rows never describe a different model) and deletes the file.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import duckdb
import numpy as np

from harmony import scratch
from harmony.errors import AlreadyExists, DiskFull, Incompatible, IntegrityError, InUse, InvalidInput, NotFound
from harmony.registry import artifacts, catalog, galleries, maintenance, schema
from harmony.registry import transforms as edges
from harmony.registry.connection import reading, writing
from harmony.registry.lookup import resolve_in, version_in
from harmony.registry.records import (
    KINDS, TRANSFORM_COLUMNS, VERSION_COLUMNS, Compat, Gallery, Migration, TransformEdge, Version, VerifyResult,
    check_name, to_json, version_from_row,
)

DB_NAME = "harmony.duckdb"
MIN_FREE_BYTES = 16 << 20  # below this a DuckDB commit or an index write is likely to fail midway


@dataclass(frozen=True)
class CompatRecord:
    """A compatibility measurement of a version being registered against an older ``old``."""

    old: str
    dataset: str
    far: float
    table: Mapping[str, Any]
    compatible: bool


def default_root(root: Path | str | None = None) -> Path:
    """Flag, then $HARMONY_REGISTRY, then ./registry."""
    if root is not None and str(root) != "":
        return Path(root)
    env = os.environ.get("HARMONY_REGISTRY")
    return Path(env) if env else Path("registry")


def command_line() -> str:
    """The command that is running, as a user would type it (recorded as ``created_by``)."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog == "__main__.py":
        prog = "python -m harmony"
    return " ".join([prog, *sys.argv[1:]])


class Registry:
    """Store API over the DuckDB catalog; see the module docstring for the guarantees."""

    def __init__(self, root: Path, timeout_s: float):
        self.root = root
        self.db_path = root / DB_NAME
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, root: Path | str | None = None, *, timeout_s: float = 10.0) -> "Registry":
        """Open (creating or upgrading in place) the registry at ``root``."""
        reg = cls(default_root(root).absolute(), float(timeout_s))
        (reg.root / "artifacts").mkdir(parents=True, exist_ok=True)
        if reg.db_path.exists():
            with reading(reg.db_path, reg.timeout_s) as con:
                found = schema.stored_version(con)
            schema.check_supported(found, reg.db_path)
            if found == schema.CURRENT:
                return reg
        with writing(reg.db_path, reg.timeout_s) as con:
            schema.create_or_upgrade(con, reg.root, reg.db_path)
        return reg

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def require_writable(self, need_bytes: int = 0) -> None:
        """Refuse up front, before any embedding or training, when nothing could be committed:
        a read-only registry, or less free space than ``need_bytes`` (and MIN_FREE_BYTES)."""
        import errno
        import shutil
        import tempfile

        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            why = "read-only" if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else (err.strerror or str(err))
            raise InvalidInput(f"registry {self.root} is not writable ({why})",
                               hint="pass a writable --registry (or $HARMONY_REGISTRY), or fix its permissions") from None
        free = shutil.disk_usage(self.root).free
        need = max(int(need_bytes), MIN_FREE_BYTES)
        if free < need:
            raise DiskFull(f"registry {self.root} has {free / 2**20:.0f} MiB free, this needs about "
                           f"{need / 2**20:.0f} MiB", hint="free some disk space, or use another --registry")

    @contextmanager
    def _read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with reading(self.db_path, self.timeout_s) as con:
            yield con

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with writing(self.db_path, self.timeout_s) as con:
            yield con

    # -- versions -------------------------------------------------------------------------------

    @staticmethod
    def _check_new_name(con: duckdb.DuckDBPyConnection, name: str) -> None:
        row = con.execute("SELECT status FROM versions WHERE name = ?", [name]).fetchone()
        if row is not None:
            was = " (removed; names are never reused)" if row[0] != "ready" else ""
            raise AlreadyExists(f"version '{name}' already exists{was}", hint="choose another --name")
        if con.execute("SELECT 1 FROM aliases WHERE alias = ?", [name]).fetchone():
            raise AlreadyExists(f"'{name}' is already an alias", hint="choose another --name")
        if edges.is_transform(con, name):
            raise AlreadyExists(f"'{name}' is already a transform", hint="choose another --name")

    def add_version(self, name: str, *, kind: str, artifact: Path | str, backbone: str, dim: int,
                    recipe: str = "", parent: str | None = None, metrics: Mapping[str, Any] | None = None,
                    meta: Mapping[str, Any] | None = None, command: str | None = None,
                    evaluations: Sequence[tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str]] = (),
                    compatibility: Sequence[CompatRecord] = ()) -> Version:
        """Copy ``artifact`` into the store (durably) and register it as version ``name``.

        ``evaluations`` ``(dataset, metrics[, against])`` and ``compatibility`` rows measured before
        registration commit in the same transaction as the version row, so a kill can never leave
        a version without the figures its training measured."""
        check_name(name)
        if kind not in KINDS:
            raise InvalidInput(f"unknown version kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or int(dim) <= 0:
            raise InvalidInput(f"embedding dim must be a positive integer, got {dim!r}", hint="pass e.g. dim=128")
        values = [to_json(metrics), to_json(meta)]
        src = Path(artifact)
        scratch.sweep(self.root)  # debris of killed registrations goes before new work begins
        self.require_writable(src.stat().st_size if src.is_file() else 0)
        with self._read() as con:  # fail fast before copying a large file
            self._check_new_name(con, name)
            if parent is not None:
                resolve_in(con, parent)
        folder = self.root / "artifacts" / name
        try:
            tmp, sha, size = artifacts.stage_copy(src, folder)
        except BaseException:
            try:
                folder.rmdir()  # the copy failed (a full disk): no empty folder left behind
            except OSError:
                pass
            raise
        rel = f"artifacts/{name}/{src.name}"
        try:
            with self._write() as con:
                self._check_new_name(con, name)
                parent_name = resolve_in(con, parent) if parent is not None else None
                artifacts.place(tmp, self.root / rel)
                con.execute(
                    f"INSERT INTO versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [name, kind, str(backbone), int(dim), str(recipe), parent_name, rel, sha, size, *values,
                     schema.utcnow(), command if command is not None else command_line(), "ready"])
                for dataset, figures, *against in evaluations:
                    catalog.record_evaluation(con, name, dataset, figures, against[0] if against else None)
                for c in compatibility:
                    catalog.record_compatibility(con, name, c.old, c.dataset, c.far, c.table, c.compatible)
        except AlreadyExists:  # another process won the name: the folder is now its
            tmp.unlink(missing_ok=True)
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            (self.root / rel).unlink(missing_ok=True)  # placed, but its row rolled back
            try:
                folder.rmdir()  # only succeeds when nothing else is there
            except OSError:
                pass
            raise
        return self.get_version(name)

    def get_version(self, name_or_alias: str) -> Version:
        with self._read() as con:
            return version_in(con, name_or_alias)

    def list_versions(self, include_deleted: bool = False) -> list[Version]:
        where = "" if include_deleted else "WHERE status = 'ready'"
        with self._read() as con:
            rows = con.execute(f"SELECT {VERSION_COLUMNS} FROM versions {where} ORDER BY created, name").fetchall()
        return [version_from_row(r) for r in rows]

    def resolve(self, name_or_alias: str) -> str:
        with self._read() as con:
            return resolve_in(con, name_or_alias)

    def lineage(self, name: str) -> list[Version]:
        """``name``, its parent, grandparent, ... (parents cannot be removed while children exist)."""
        chain: list[Version] = []
        with self._read() as con:
            v = version_in(con, name)
            while True:
                chain.append(v)
                if v.parent is None or any(c.name == v.parent for c in chain):
                    return chain
                row = con.execute(f"SELECT {VERSION_COLUMNS} FROM versions WHERE name = ?", [v.parent]).fetchone()
                if row is None:
                    return chain
                v = version_from_row(row)

    def artifact_path(self, name: str, verify: bool = True) -> Path:
        """The artifact file of a version, checked to exist and (by default) to match its sha256."""
        v = self.get_version(name)
        return self._checked_artifact(v.artifact, v.sha256, f"version '{v.name}'", "model", verify)

    def _checked_artifact(self, artifact: str, sha256: str, owner: str, what: str, verify: bool) -> Path:
        """An artifact of a version or a transform: present, and (``verify``) its recorded sha256."""
        path = self.root / artifact
        if not path.is_file():
            raise IntegrityError(f"artifact {path} of {owner} is missing",
                                 hint="restore it from a backup; `harmony registry verify` lists every problem")
        if verify:
            actual = artifacts.sha256_file(path)
            if actual != sha256:
                raise IntegrityError(
                    f"artifact {path} of {owner} was altered: sha256 {actual[:12]}... != recorded {sha256[:12]}...",
                    hint=f"restore the original file; a changed {what} must be registered under a new name")
        return path

    def remove_version(self, name: str) -> None:
        """Mark a version deleted and delete its artifact; refused while anything refers to it."""
        with self._write() as con:
            target = resolve_in(con, name)
            if target != name:
                raise InUse(f"'{name}' is an alias of '{target}'", hint=f"`harmony registry alias rm {name}`")
            for (alias,) in con.execute("SELECT alias FROM aliases WHERE version = ?", [name]).fetchall():
                raise InUse(f"version '{name}' is the target of alias '{alias}'",
                            hint=f"`harmony registry alias rm {alias}` or point it at another version")
            for (gallery,) in con.execute("SELECT name FROM galleries WHERE version = ?", [name]).fetchall():
                raise InUse(f"version '{name}' serves gallery '{gallery}'",
                            hint="migrate the gallery to another version or remove it first")
            for mid, gallery in con.execute(
                    "SELECT id, gallery FROM migrations WHERE (source = ? OR target = ?) "
                    "AND state NOT IN ('rolled_back', 'failed')", [name, name]).fetchall():
                raise InUse(f"version '{name}' is part of migration #{mid} of gallery '{gallery}'",
                            hint="finish or roll back the migration, or remove the gallery")
            for (child,) in con.execute(
                    "SELECT name FROM versions WHERE parent = ? AND status = 'ready'", [name]).fetchall():
                raise InUse(f"version '{name}' is the parent of version '{child}'",
                            hint=f"remove version '{child}' first: `harmony registry rm {child}`")
            for edge in edges.users_of_version(con, name):
                raise InUse(f"version '{name}' is an end of transform '{edge}'",
                            hint=f"remove the transform first: `harmony registry rm {edge}`")
            con.execute("UPDATE versions SET status = 'deleted' WHERE name = ?", [name])
        artifacts.remove_folder(self.root / "artifacts" / name)

    # -- transforms (transforms.py) -------------------------------------------------------------

    def add_transform(self, name: str, *, from_version: str, to_version: str, artifact: Path | str, in_dim: int,
                      out_dim: int, recipe: str = "", metrics: Mapping[str, Any] | None = None,
                      meta: Mapping[str, Any] | None = None, command: str | None = None) -> TransformEdge:
        """Copy ``artifact`` (h's checkpoint) into ``transforms/<name>/`` and register the edge
        ``from_version -> to_version`` with its measured table (``metrics``), in one transaction.

        The dims must be the two versions' (InvalidInput otherwise): an edge is only ever applied
        to vectors of ``from_version`` and compared with ``to_version``'s."""
        check_name(name, "transform")
        for key, d in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or int(d) <= 0:
                raise InvalidInput(f"transform {key} must be a positive integer, got {d!r}", hint="pass e.g. 128")
        values = [to_json(metrics), to_json(meta)]
        src = Path(artifact)
        scratch.sweep(self.root)
        self.require_writable(src.stat().st_size if src.is_file() else 0)
        with self._read() as con:  # fail fast before copying
            self._check_edge(con, name, from_version, to_version, int(in_dim), int(out_dim))
        folder = self.root / edges.FOLDER / name
        try:
            tmp, sha, size = artifacts.stage_copy(src, folder)
        except BaseException:
            try:
                folder.rmdir()
            except OSError:
                pass
            raise
        rel = f"{edges.FOLDER}/{name}/{src.name}"
        try:
            with self._write() as con:
                a, b = self._check_edge(con, name, from_version, to_version, int(in_dim), int(out_dim))
                artifacts.place(tmp, self.root / rel)
                con.execute(f"INSERT INTO transforms ({TRANSFORM_COLUMNS}) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [name, a, b, int(in_dim), int(out_dim), rel, sha, size, str(recipe), *values,
                             schema.utcnow(), command if command is not None else command_line(), "ready"])
        except AlreadyExists:
            tmp.unlink(missing_ok=True)
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            (self.root / rel).unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass
            raise
        return self.get_transform(name)

    @staticmethod
    def _check_edge(con: duckdb.DuckDBPyConnection, name: str, from_version: str, to_version: str, in_dim: int,
                    out_dim: int) -> tuple[str, str]:
        edges.check_free(con, name)
        a, b = version_in(con, from_version), version_in(con, to_version)
        if a.name == b.name:
            raise InvalidInput(f"a transform needs two different versions, got {a.name} twice",
                               hint="pass --from OLD --to NEW")
        if (a.dim, b.dim) != (in_dim, out_dim):
            raise Incompatible(f"transform {name} maps {in_dim}-D to {out_dim}-D vectors, but {a.name} embeds in "
                               f"{a.dim}-D and {b.name} in {b.dim}-D",
                               hint="train the transform on embeddings of these two versions")
        return a.name, b.name

    def check_transform(self, name: str, from_version: str, to_version: str) -> tuple[Version, Version]:
        """Refuse up front (before any embedding) a transform name that is taken, an unknown
        version or one version twice; returns the two versions."""
        check_name(name, "transform")
        with self._read() as con:
            edges.check_free(con, name)
            a, b = version_in(con, from_version), version_in(con, to_version)
        if a.name == b.name:
            raise InvalidInput(f"a transform needs two different versions, got {a.name} twice",
                               hint="pass --from OLD --to NEW")
        return a, b

    def get_transform(self, name: str) -> TransformEdge:
        """The transform edge ``name`` (NotFound when there is none, or it was removed)."""
        with self._read() as con:
            return edges.get_transform(con, name)

    def transforms(self, from_version: str | None = None, to_version: str | None = None,
                   include_deleted: bool = False) -> list[TransformEdge]:
        """Transform edges, oldest first, optionally only those from / to a version (names or aliases)."""
        with self._read() as con:
            a = resolve_in(con, from_version) if from_version is not None else None
            b = resolve_in(con, to_version) if to_version is not None else None
            return edges.list_transforms(con, a, b, include_deleted)

    def transform_artifact_path(self, name: str, verify: bool = True) -> Path:
        """h's checkpoint file, checked to exist and (by default) to match its recorded sha256."""
        t = self.get_transform(name)
        return self._checked_artifact(t.artifact, t.sha256, f"transform '{t.name}'", "transform", verify)

    def remove_transform(self, name: str) -> None:
        """Mark a transform deleted and delete its artifact; refused while a migration in flight uses it."""
        with self._write() as con:
            t = edges.get_transform(con, name)
            for mid, gallery in con.execute(
                    "SELECT id, gallery FROM migrations WHERE json_extract_string(plan, '$.via') = ? "
                    "AND state IN ('planned', 'backfilling', 'ready')", [t.name]).fetchall():
                raise InUse(f"transform '{name}' converts gallery '{gallery}' in migration #{mid}",
                            hint="finish (swap) or roll back the migration first")
            con.execute("UPDATE transforms SET status = 'deleted' WHERE name = ?", [t.name])
        artifacts.remove_folder(self.root / edges.FOLDER / name)

    # -- aliases --------------------------------------------------------------------------------

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at a version (creating or moving it); an alias of an alias resolves now."""
        check_name(alias, "alias")
        with self._write() as con:
            if con.execute("SELECT 1 FROM versions WHERE name = ?", [alias]).fetchone():
                raise InvalidInput(f"alias '{alias}' would shadow the version of that name",
                                   hint="choose another alias name")
            if edges.is_transform(con, alias):
                raise InvalidInput(f"alias '{alias}' would shadow the transform of that name",
                                   hint="choose another alias name")
            target = resolve_in(con, version)
            con.execute("INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (alias) DO UPDATE "
                        "SET version = excluded.version, updated = excluded.updated",
                        [alias, target, schema.utcnow()])

    def remove_alias(self, alias: str) -> None:
        with self._write() as con:
            if not con.execute("SELECT 1 FROM aliases WHERE alias = ?", [alias]).fetchone():
                raise NotFound(f"no alias named '{alias}'", hint="see `harmony registry alias list`")
            con.execute("DELETE FROM aliases WHERE alias = ?", [alias])

    def aliases(self) -> dict[str, str]:
        with self._read() as con:
            return dict(con.execute("SELECT alias, version FROM aliases ORDER BY alias").fetchall())

    # -- evaluations and compatibility (catalog.py) ------------------------------------------------

    def record_evaluation(self, version: str, dataset: str, metrics: Mapping[str, Any],
                          against: str | None = None) -> int:
        with self._write() as con:
            return catalog.record_evaluation(con, version, dataset, metrics, against)

    def evaluations(self, version: str | None = None) -> list[dict[str, Any]]:
        with self._read() as con:
            return catalog.evaluations(con, version)

    def record_compatibility(self, new: str, old: str, dataset: str, far: float, table: Mapping[str, Any],
                             compatible: bool) -> None:
        with self._write() as con:
            catalog.record_compatibility(con, new, old, dataset, far, table, compatible)

    def compatibility(self, new: str, old: str) -> list[Compat]:
        with self._read() as con:
            return catalog.compatibility(con, new, old)

    def all_compatibility(self, far: float | None = None) -> list[Compat]:
        """The newest measurement of every (new, old, dataset, FAR), optionally at one FAR."""
        with self._read() as con:
            return catalog.newest_compatibility(con, far)

    # -- galleries and migrations (galleries.py) ---------------------------------------------------

    def add_gallery(self, name: str, *, version: str, path: Path | str, far: float = 1e-3, codec: str = "flat",
                    meta: Mapping[str, Any] | None = None) -> Gallery:
        with self._write() as con:
            return galleries.add_gallery(con, name, version, path, far, codec, meta)

    def get_gallery(self, name: str) -> Gallery:
        with self._read() as con:
            return galleries.get_gallery(con, name)

    def list_galleries(self) -> list[Gallery]:
        with self._read() as con:
            return galleries.list_galleries(con)

    def update_gallery(self, name: str, **fields: Any) -> Gallery:
        with self._write() as con:
            return galleries.update_gallery(con, name, fields)

    def remove_gallery(self, name: str, *, busy: Sequence[str] = ()) -> None:
        """Delete a gallery's row and migrations; InUse while one is in a ``busy`` state."""
        with self._write() as con:
            galleries.remove_gallery(con, name, busy)

    def add_migration(self, gallery: str, source: str, target: str, plan: Mapping[str, Any], *, state: str,
                      busy: Sequence[str]) -> Migration:
        """Insert a migration row in ``state`` (harmony.migration.states.begin decides which)."""
        with self._write() as con:
            return galleries.add_migration(con, gallery, source, target, plan, state, busy)

    def update_migration(self, mid: int, *, state: str | None = None, cursor: int | None = None,
                         counts: Mapping[str, Any] | None = None, report: Mapping[str, Any] | None = None,
                         from_states: Sequence[str] | None = None) -> Migration:
        """Store fields of a migration row; with ``from_states``, only if it is in one of them
        (else StateConflict). harmony.migration.states.advance computes them from its table."""
        with self._write() as con:
            return galleries.update_migration(con, mid, state, cursor, counts, report, from_states)

    def get_migration(self, mid: int) -> Migration:
        with self._read() as con:
            return galleries.get_migration(con, mid)

    def migrations(self, gallery: str | None = None, *, states: Sequence[str] | None = None) -> list[Migration]:
        """Migration rows, oldest first, of one gallery (or all), in one of ``states`` (or any)."""
        with self._read() as con:
            return galleries.migrations(con, gallery, states)

    # -- maintenance (maintenance.py) ----------------------------------------------------------------

    def verify(self, name: str | None = None) -> list[VerifyResult]:
        """Re-hash artifacts: ok | missing | altered per version and transform (``name``: one of
        them), plus orphan folders and files."""
        if name is not None:
            with self._read() as con:
                is_edge = edges.is_transform(con, name)
            if is_edge:
                return [maintenance.verify_file(self.root, self.get_transform(name))]
        versions = [self.get_version(name)] if name is not None else self.list_versions()
        results = [maintenance.verify_version(self.root, v) for v in versions]
        if name is None:
            transforms = self.transforms()
            results += [maintenance.verify_file(self.root, t) for t in transforms]
            results += maintenance.orphans(self.root, versions)
            results += maintenance.orphans(self.root, transforms, edges.FOLDER, "transform")
            results += maintenance.leftovers(self.root, [g.path for g in self.list_galleries()])
        return results

    def verify_galleries(self, name: str | None = None) -> list[VerifyResult]:
        """Re-hash gallery files: one row per file (ok | missing | altered | unverified)."""
        gs = [self.get_gallery(name)] if name is not None else self.list_galleries()
        return [r for g in gs for r in maintenance.verify_gallery(self.root, g)]

    def repair(self) -> list[VerifyResult]:
        """Remove what :meth:`verify` reports as orphan or leftover (debris of killed runs);
        registered artifacts and live runs are never touched. Returns what was removed."""
        return maintenance.repair(self.root, self.verify())

    def export(self, out_dir: Path | str, format: str = "parquet") -> list[Path]:
        """Write every table to ``out_dir`` (one file per table) as parquet or JSON."""
        with self._read() as con:
            return maintenance.export(con, Path(out_dir), format)

    def query(self, sql: str, params: list[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run read-only SQL against the catalog; returns (column names, rows).

        The statement runs sandboxed (connection.SANDBOX_CONFIG): it cannot write the catalog,
        read or write any file, attach another database or load an extension."""
        with reading(self.db_path, self.timeout_s, sandbox=True) as con:
            try:
                cur = con.execute(sql, params or [])
            except duckdb.Error as err:
                raise InvalidInput(f"query failed: {str(err).splitlines()[0]}",
                                   hint="only read-only SQL (SELECT, DESCRIBE, SHOW) over the registry tables "
                                        "works; files, ATTACH and extensions are off") from None
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()
