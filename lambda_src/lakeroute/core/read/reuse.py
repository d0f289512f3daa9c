"""One locked-down DuckDB database that reads the small objects of a batch, one after another.

A fresh database costs ~10 ms (its function catalog), more than reading a small object. So
the engine (``core.read.engine``) keeps one per batch for local objects of at most
``small_object_bytes``, locked down once, and isolates the objects from each other instead:

- **Files**: its allow-list (locked) is one *window* folder of its own. Each object is linked
  into it (``<window>/source<extensions>``; with folders, ``<window>/<uuid>/<key, sanitized>``)
  just before it is read and unlinked right after, so the route SQL of an object finds only
  that object there: the path holds no earlier object's bytes, and no other path is allowed.
- **State**: the route SQL is exactly one SELECT (no DDL, no ``SET``). The ``source`` view
  stays for a next object of the same Parquet schema (``core.read.source_view.make_view``:
  its recorded columns are then that object's own); after each object the
  tables and variables the database holds must be those it held right after lockdown (the
  variables: the lineage variables this database set, see below), and its spill folder must
  be empty. Otherwise, and after any error, time-out or
  unfinished read, the database is discarded and the next object gets a new one. (Macros,
  views, types, sequences, prepared statements, databases, secrets and settings cannot be
  made by one SELECT under a locked configuration; tests/integration/test_reuse_isolation.py
  tries each.)
- **Lineage variables**: an object whose read may look at them (its route SQL names a
  variable, or could run SQL text: ``query``, ``execute``; or the ``filename`` option) gets
  all five set to its own values; a value equal to the one already set (the bucket) is not
  set again. An object whose read cannot look at them sets none, and a database that held
  some from an earlier object resets them first: no object can see another's lineage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..objects import SourceObject
from .scratch import EXTENSIONS, MAX_SCRATCH_PATH, pid_alive, remove_tree, sanitized_key

if TYPE_CHECKING:
    import duckdb

LINEAGE_VARIABLES = ("source_bucket", "source_key", "source_uri", "source_etag", "ingested_at")

# A route's SQL that may read the lineage variables: it names one (getvariable,
# duckdb_variables) or may run SQL text (query, query_table, json_execute_serialized_sql).
_READS_LINEAGE = re.compile(r"variable|query|execute", re.IGNORECASE)
_UNSET = object()


def reads_lineage(sql: str, options: Mapping[str, Any]) -> bool:
    """Whether a read of ``sql`` with these reader options may look at the lineage variables."""
    return bool(options.get("filename")) or _READS_LINEAGE.search(sql) is not None


def lineage_values(obj: SourceObject) -> dict[str, Any]:
    """``LINEAGE_VARIABLES`` with ``obj``'s values, in that order."""
    return dict(zip(LINEAGE_VARIABLES, (obj.bucket, obj.key, obj.uri, obj.version, dt.datetime.now(dt.UTC)),
                    strict=True))


class ReusedDatabase:
    """A locked-down database whose only readable folder is its window (and its spill)."""

    def __init__(self, config: dict[str, Any], root: str, temp_directory: str | None) -> None:
        import duckdb

        self.config = config
        self.pid = os.getpid()
        tag = f"{self.pid}-{uuid.uuid4().hex}"
        self.window = os.path.join(root, f"window-{tag}")
        # Its spill folder stays out of the window: route SQL may list and read only the object.
        self.spill = os.path.join(temp_directory or root, f"spill-{tag}")
        _remove_stale(root)
        os.makedirs(self.window)  # the root too, on first use
        self._current: tuple[str, str] | None = None  # the object's folder in the window, its path
        self.lineage: dict[str, Any] = {}  # the lineage variables set, with their values
        # (query, Parquet schema) of the ``source`` view it holds (core.read.source_view.make_view)
        self.view: tuple[str, Any] | None = None
        try:
            # No cache of file contents or Parquet footers across objects (DuckDB's external file
            # cache is on by default): successive objects are read at one path (``admit``).
            self.con: duckdb.DuckDBPyConnection = duckdb.connect(
                config={**config, "enable_external_file_cache": False})
            self.con.execute("SET parquet_metadata_cache = false")  # the default, locked below
            self.con.execute("SET temp_directory = ?", [self.spill])
            # The check after each object runs these two listings: prepared once, each costs
            # half as much as planning it again (~0.1 ms instead of ~0.2 ms per listing).
            self.con.execute("PREPARE lakeroute_tables AS SELECT count(*) FROM duckdb_tables()")
            self.con.execute("PREPARE lakeroute_variables AS SELECT name FROM duckdb_variables()")
            # a trailing separator: DuckDB matches allowed directories as string prefixes
            self.con.execute("SET allowed_directories = ?", [[self.window + os.sep]])
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            self.baseline = self.fingerprint()
        except BaseException:
            shutil.rmtree(self.window, ignore_errors=True)
            raise
        # a database dropped without close() (an engine never released) leaves no folder behind
        self._finalizer = weakref.finalize(self, _remove_folders, self.window, self.spill)

    def fingerprint(self) -> tuple[int, tuple[str, ...]]:
        """(tables, variable names): two plain listings, prepared (one UNION query of both
        costs more to plan than both to run). A route cannot drop them (one SELECT); were
        they gone, the check fails and the database is discarded."""
        (tables,) = self.con.execute("EXECUTE lakeroute_tables").fetchone() or (-1,)
        names = self.con.execute("EXECUTE lakeroute_variables").fetchall()
        return int(tables), tuple(sorted(n for (n,) in names))

    def set_lineage(self, obj: SourceObject, wanted: bool) -> None:
        """The lineage variables as ``obj``'s read may see them: its own values (bound, never
        SQL text), or, when it cannot read them, none at all."""
        if not wanted:
            for name in list(self.lineage):
                self.con.execute(f"RESET VARIABLE {name}")
                del self.lineage[name]
            return
        for name, value in lineage_values(obj).items():
            if self.lineage.get(name, _UNSET) != value:
                self.con.execute(f"SET VARIABLE {name} = ?", [value])
                self.lineage[name] = value

    def admit(self, obj: SourceObject, folders: bool = False) -> SourceObject:
        """The object as this database reads it: linked into the window (a hard link pins the
        bytes; across file systems, a symbolic link). ``folders``: in a fresh folder of the
        window, under the key's folders (a reader option reads them, e.g.
        ``hive_partitioning``); else as ``source<extensions>``, the same path for every object
        with those extensions, the previous one's link removed first: the ``source`` view
        made for one object then reads the next as it is (``core.read.engine``), and no
        folder is created or removed per object."""
        rel = sanitized_key(obj.key)
        name = rel.rsplit("/", 1)[-1][-100:]
        if folders:
            folder = os.path.join(self.window, uuid.uuid4().hex)
            path = os.path.join(folder, rel)
            if len(path) > MAX_SCRATCH_PATH:
                path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path))
        else:
            extensions = EXTENSIONS.search(name)  # DuckDB infers compression from them
            path = folder = os.path.join(self.window, "source" + (extensions.group(0) if extensions else ""))
        self.withdraw()
        self._current = (folder, path)
        try:
            os.link(obj.path, path)
        except OSError:
            os.symlink(os.path.abspath(obj.path), path)
        return replace(obj, path=path)

    def withdraw(self) -> None:
        """The current object's link and folder are gone (before the next object is admitted)."""
        current, self._current = self._current, None
        if current is not None:
            remove_tree(*current)

    def reset(self) -> bool:
        """Back to the state right after lockdown; False: it is not (discard this database)."""
        try:
            self.withdraw()
            # The ``source`` view stays: it names the window's path, which holds no file until
            # the next object is admitted. The lineage variables stay until the next object
            # sets or resets them, before its SQL runs.
            if self.fingerprint() != (self.baseline[0], tuple(sorted(self.lineage))):
                return False
            return not any(files for _, _, files in os.walk(self.spill))
        except Exception:  # a connection that cannot say it is clean is not reused
            return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()
        self._current = None
        self._finalizer()


def _remove_stale(root: str) -> None:
    """Windows of processes that ended without closing them (killed, timed out)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        pid = name.split("-")[1] if name.startswith("window-") and name.count("-") >= 2 else ""
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _remove_folders(*folders: str) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def set_variables(con: duckdb.DuckDBPyConnection, obj: SourceObject) -> None:
    """The lineage variables, bound as values (never SQL text): a fresh database's."""
    for name, value in lineage_values(obj).items():
        con.execute(f"SET VARIABLE {name} = ?", [value])
