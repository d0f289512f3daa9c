"""The embedded default: routes from a folder, landing folders, SQLite catalog under home."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, one_line
from ..core.pipeline import Pipeline
from ..core.read.crash import CrashGuard
from ..core.read.engine import DEFAULT_TIMEOUT_SECONDS, Engine
from ..core.routes import RouteTable, load_routes
from ..core.startup import first_use
from .journal import SqliteJournal
from .ledger import SqliteLedger
from .objects import LocalObjectSource, LocalQuarantine

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

CATALOG_NAME = "lakeroute"


@dataclass(frozen=True)
class LocalPaths:
    routes: Path
    home: Path
    landing: Path
    catalog: str | None = None  # a PyIceberg catalog name (local.catalogs); None: <home>/catalog.db

    @property
    def catalog_db(self) -> Path:
        return self.home / "catalog.db"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"


def local_catalog(home: Path, name: str | None = None) -> Catalog:
    """The catalog ``name`` configured for PyIceberg, or (no name) the SQLite one under ``home``."""
    from pyiceberg.catalog.sql import SqlCatalog

    from .catalogs import configured_catalog, selected_name

    chosen = selected_name(name)
    if chosen is not None:
        return configured_catalog(chosen)
    home.mkdir(parents=True, exist_ok=True)
    (home / "warehouse").mkdir(exist_ok=True)
    def make() -> SqlCatalog:
        return SqlCatalog(
            CATALOG_NAME,
            uri=f"sqlite:///{(home / 'catalog.db').resolve()}",
            warehouse=(home / "warehouse").resolve().as_uri(),
        )

    # Processes opening a fresh home at once all create the catalog's tables: SQLAlchemy checks,
    # then creates each of its two tables, so a slower process can find, once per table, one
    # that another just made. Each such error means progress (a table now exists): try again.
    attempt = 1
    while True:
        try:
            return make()
        except Exception as e:
            if "already exists" not in str(e) or attempt == _CREATE_ATTEMPTS:
                raise _catalog_error(home / "catalog.db", e) from e
            attempt += 1


_CREATE_ATTEMPTS = 5  # the catalog has two tables: at most two such errors per process


def _catalog_error(path: Path, e: Exception) -> Exception:
    """SQLite's complaint about catalog.db as one line naming the file and the fix."""
    import sqlite3

    from .sqlite_file import blocked_message, damaged

    cause = getattr(e, "orig", None)  # SQLAlchemy keeps the driver's error there
    if not isinstance(cause, sqlite3.Error):
        return e
    if damaged(cause):
        return ConfigError(f"catalog {path}: {one_line(cause, 120)}; it is the tables' registry, not an index "
                           "lakeroute can rebuild: restore it from a backup (the tables' files are under "
                           f"{path.parent / 'warehouse'})")
    return ConfigError(f"catalog {blocked_message(str(path), cause, 5.0)}")


_MEMORY_RE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB|%)$", re.IGNORECASE)


def checked_memory(name: str, value: str) -> str:
    """A DuckDB memory limit as written (``300MB``, ``2GiB``, ``50%``), or a ConfigError."""
    if not _MEMORY_RE.match(value.strip()):
        raise ConfigError(f"{name}={value!r} is not a memory size; write e.g. 512MB, 2GB or 50%")
    return value.strip()


def duckdb_memory_limit(env: Mapping[str, str] | None = None) -> str:
    """``LAKEROUTE_DUCKDB_MEMORY``, else half of this machine's memory (the Lambda's rule:
    half the function's memory), so a runaway route spills or fails instead of swapping."""
    env = os.environ if env is None else env
    explicit = env.get("LAKEROUTE_DUCKDB_MEMORY", "").strip()
    if explicit:
        return checked_memory("LAKEROUTE_DUCKDB_MEMORY", explicit)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2GB"
    return f"{max(256, total // 2 // (1024 * 1024))}MB"


def local_pipeline(paths: LocalPaths) -> Pipeline:
    # A process's first pipeline imports the whole stack here, with the collector paused.
    with first_use():
        routes = RouteTable.of(load_routes(paths.routes))
        catalog = local_catalog(paths.home, paths.catalog)
    spill = paths.home / "tmp" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    timeout = os.environ.get("LAKEROUTE_OBJECT_TIMEOUT_SECONDS", "").strip()
    try:
        seconds = float(timeout) if timeout else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"LAKEROUTE_OBJECT_TIMEOUT_SECONDS={timeout!r} must be a positive number of seconds")
    return Pipeline(
        routes=routes,
        source=LocalObjectSource(paths.landing, scratch=paths.home / "tmp" / "objects"),
        catalog=catalog,
        ledger=SqliteLedger(str(paths.home / "ledger.db")),
        journal=SqliteJournal(str(paths.home / "ledger.db")),
        quarantine=LocalQuarantine(paths.quarantine),
        engine=Engine(memory_limit=duckdb_memory_limit(), temp_directory=str(spill),
                      timeout_seconds=seconds, window_root=str(paths.home / "tmp" / "read"),
                      crash_guard=CrashGuard(str(paths.home / "tmp" / "crash"))),
    )
