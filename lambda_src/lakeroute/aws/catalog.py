"""PyIceberg's Glue catalog (or another catalog type), configured from the environment."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from .clients import endpoint_for, region_name
from .config import AwsConfig

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def catalog_properties(warehouse: str) -> dict[str, str]:
    """PyIceberg properties for Glue + S3 from the standard AWS environment variables."""
    props = {"warehouse": warehouse}
    region = region_name()
    if region:
        props.update({"glue.region": region, "s3.region": region})
    for service in ("glue", "s3"):
        endpoint = endpoint_for(service)
        if endpoint:
            props[f"{service}.endpoint"] = endpoint
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = os.environ.get("AWS_SESSION_TOKEN")
    if key and secret:  # else each library's default credential chain (profile, SSO, ...)
        for service in ("glue", "s3"):
            props[f"{service}.access-key-id"] = key
            props[f"{service}.secret-access-key"] = secret
            if token:
                props[f"{service}.session-token"] = token
    return props


def glue_catalog(warehouse: str, name: str = "lakeroute") -> Catalog:
    from pyiceberg.catalog.glue import GlueCatalog
    from pyiceberg.exceptions import CommitFailedException

    class _GlueCatalog(GlueCatalog):
        """GlueCatalog that removes the metadata.json of a commit Glue rejected.

        PyIceberg writes the new metadata file before UpdateTable; when Glue rejects the
        stale VersionId the file is referenced by nothing and would stay forever (hundreds
        under concurrent writers). The rejection proves the update did not happen.
        """

        def _update_glue_table(self, database_name: str, table_name: str, table_input: Any,
                               version_id: str) -> None:
            try:
                super()._update_glue_table(database_name=database_name, table_name=table_name,
                                           table_input=table_input, version_id=version_id)
            except CommitFailedException:
                location = (table_input.get("Parameters") or {}).get("metadata_location")
                if location:
                    with contextlib.suppress(Exception):
                        self._load_file_io(location=location).delete(location)
                raise

    return _GlueCatalog(name, **catalog_properties(warehouse))


def make_catalog(config: AwsConfig) -> Catalog:
    if config.catalog == "glue":
        return glue_catalog(config.warehouse)
    from pyiceberg.catalog import load_catalog

    # Other catalogs (e.g. `rest` for S3 Tables) are configuration: PyIceberg merges
    # PYICEBERG_CATALOG__LAKEROUTE__* variables into these properties.
    return load_catalog("lakeroute", **{"type": config.catalog, "warehouse": config.warehouse})
