"""The embedded default: routes from a folder, landing folders, SQLite catalog under home."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.pipeline import Pipeline
from ..core.routes import RouteTable, load_routes
from .ledger import SqliteLedger
from .objects import LocalObjectSource, LocalQuarantine

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog

CATALOG_NAME = "lakeroute"


@dataclass(frozen=True)
class LocalPaths:
    routes: Path
    home: Path
    landing: Path

    @property
    def catalog_db(self) -> Path:
        return self.home / "catalog.db"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"


def local_catalog(home: Path) -> SqlCatalog:
    from pyiceberg.catalog.sql import SqlCatalog

    home.mkdir(parents=True, exist_ok=True)
    (home / "warehouse").mkdir(exist_ok=True)
    def make() -> SqlCatalog:
        return SqlCatalog(
            CATALOG_NAME,
            uri=f"sqlite:///{(home / 'catalog.db').resolve()}",
            warehouse=(home / "warehouse").resolve().as_uri(),
        )

    try:
        return make()
    except Exception as e:  # two processes creating the catalog tables of a fresh home at once
        if "already exists" not in str(e):
            raise
        return make()


def local_pipeline(paths: LocalPaths) -> Pipeline:
    routes = RouteTable.of(load_routes(paths.routes))
    catalog = local_catalog(paths.home)
    return Pipeline(
        routes=routes,
        source=LocalObjectSource(paths.landing),
        catalog=catalog,
        ledger=SqliteLedger(str(paths.home / "ledger.db")),
        quarantine=LocalQuarantine(paths.quarantine),
    )
