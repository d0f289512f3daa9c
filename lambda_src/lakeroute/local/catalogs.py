"""Which catalog the local CLI opens: ``<home>/catalog.db`` by default, else any PyIceberg catalog.

``--catalog NAME`` / ``LAKEROUTE_CATALOG=NAME`` names a catalog configured the way PyIceberg
configures one (``pyiceberg.catalog.load_catalog``): a ``catalog: NAME:`` entry in
``.pyiceberg.yaml`` (in ``$PYICEBERG_HOME``, else ``~``, else the working folder) and/or
``PYICEBERG_CATALOG__<NAME>__<PROPERTY>`` environment variables. lakeroute adds no format of
its own. The configuration is read when a command opens the catalog, not when PyIceberg is
first imported (PyIceberg caches it at import), so a worker process and a test see the
environment of the moment.

The ledger, journal, quarantine and commit lane stay under the home folder whatever the
catalog: they are per home (see the catalogs docs page for what that means for two homes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, one_line
from ..core.maintain.references import FileInfo, Lister

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

CATALOG_ENV = "LAKEROUTE_CATALOG"


class CatalogUnreachable(ConfigError):
    """A configured catalog that cannot be opened now (server down, refused credentials)."""


def selected_name(name: str | None) -> str | None:
    """``None`` (the SQLite default under the home folder) for a missing or blank name."""
    name = (name or "").strip()
    return name or None


def config_files() -> list[str]:
    """Where PyIceberg looks for ``.pyiceberg.yaml``, in its order (``Config._from_configuration_files``)."""
    from pyiceberg.utils.config import PYICEBERG_HOME, PYICEBERG_YML

    dirs = [os.environ.get(PYICEBERG_HOME), os.path.expanduser("~"), os.getcwd()]
    return [os.path.join(d, PYICEBERG_YML) for d in dirs if d]


def catalog_properties(name: str) -> dict[str, str]:
    """The properties PyIceberg would use for catalog ``name``, read now; a ConfigError when none."""
    from pyiceberg.utils.config import Config

    try:
        props = Config().get_catalog_config(name)
    except Exception as e:  # a .pyiceberg.yaml that is not YAML, a variable that clashes with it
        raise ConfigError(f"catalog {name}: PyIceberg's configuration cannot be read: {one_line(e, 160)}; "
                          f"fix {' or '.join(_existing_files()) or 'the PYICEBERG_CATALOG__* variables'}") from e
    if not props:
        found = _existing_files()
        looked = (f"{found[0]} (no catalog: {name}: entry)" if found
                  else f"no .pyiceberg.yaml in {', '.join(config_files())}")
        raise ConfigError(
            f"catalog {name} is not configured: PyIceberg looked in {looked} and found no "
            f"PYICEBERG_CATALOG__{name.upper()}__* variable; add `catalog: {{{name}: {{uri: ..., ...}}}}` "
            f"to .pyiceberg.yaml or set PYICEBERG_CATALOG__{name.upper()}__URI (and the catalog's other "
            f"properties), or leave out --catalog/{CATALOG_ENV} for the local SQLite catalog")
    return {str(k): str(v) for k, v in props.items()}


def _existing_files() -> list[str]:
    files = [f for f in config_files() if os.path.isfile(f)]
    return files[:1]  # PyIceberg reads the first it finds, and only that one


def configured_catalog(name: str) -> Catalog:
    """PyIceberg's ``load_catalog(name)`` on the configuration of the moment, errors as one line."""
    from pyiceberg.catalog import load_catalog

    props = catalog_properties(name)
    try:
        return load_catalog(name, **props)
    except Exception as e:
        where = props.get("uri") or props.get("type") or "its entry"
        raise CatalogUnreachable(f"catalog {name} ({where}) cannot be opened: {type(e).__name__}: {one_line(e, 200)}; "
                          "check that the server is up and the catalog's properties (uri, credential, "
                          "warehouse, s3.*) in .pyiceberg.yaml or PYICEBERG_CATALOG__* variables") from e


def plan_catalog(home: Path, name: str | None, notes: list[str]) -> Catalog | None:
    """The catalog ``validate`` plans against, or None: no local catalog yet (nothing to plan
    against, and none is created), or a named one that cannot be opened now (a note in
    ``notes`` says why: the route files are checked all the same)."""
    from .runtime import local_catalog

    chosen = selected_name(name)
    if chosen is None and not (home / "catalog.db").is_file():
        return None
    try:
        return local_catalog(home, chosen)
    except CatalogUnreachable as e:
        notes.append(f"no plan: {e}")
        return None


def catalog_lister(catalog: Catalog) -> Lister:
    """Lists a table location for orphan-file removal: the file system for local locations, else
    the pyarrow file system PyIceberg's own FileIO would use with the catalog's properties."""
    from .files import local_lister

    def lister(location: str) -> Iterator[FileInfo]:
        if location.startswith("file:") or "://" not in location:
            yield from local_lister(location)
            return
        yield from _fs_listing(catalog, location)

    return lister


def _fs_listing(catalog: Catalog, location: str) -> Iterator[FileInfo]:
    from urllib.parse import urlparse

    from pyarrow.fs import FileSelector, FileType
    from pyiceberg.io import load_file_io
    from pyiceberg.io.pyarrow import PyArrowFileIO

    io = load_file_io(dict(catalog.properties), location)
    if not isinstance(io, PyArrowFileIO):
        raise ConfigError(f"orphan-file removal lists {location} with pyarrow, but this catalog's FileIO is "
                          f"{type(io).__name__}; set py-io-impl to pyiceberg.io.pyarrow.PyArrowFileIO")
    url = urlparse(location)
    fs = io.fs_by_scheme(url.scheme, url.netloc)
    root = f"{url.netloc}{url.path}".rstrip("/")
    for info in fs.get_file_info(FileSelector(root, recursive=True, allow_not_found=True)):
        if info.type != FileType.File:
            continue
        # Without a time the file counts as new: kept, never taken for an old orphan.
        modified = info.mtime.timestamp() if info.mtime is not None else time.time()
        yield FileInfo(f"{url.scheme}://{info.path}", int(info.size or 0), modified)
