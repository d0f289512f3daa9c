"""The stage's PyIceberg catalog, configured from the environment: Glue (default), S3 Tables
(``aws.s3tables``), or any other PyIceberg catalog type by its own configuration."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from .clients import aws_client, botocore_session, endpoint_for, region_name
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


def glue_catalog(warehouse: str, name: str = "lakeroute", core: Any = None) -> Catalog:
    """``core``: the runtime's botocore session, whose loaded data the Glue client's session
    reads too (``clients.botocore_session``)."""
    from pyiceberg.catalog import BOTOCORE_SESSION
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

    props: dict[str, Any] = dict(catalog_properties(warehouse))
    if core is not None:
        props[BOTOCORE_SESSION] = botocore_session(like=core)
    return _GlueCatalog(name, **props)


def s3tables_catalog(table_bucket_arn: str, name: str = "lakeroute", core: Any = None) -> Catalog:
    """The tables of one S3 table bucket (``aws.s3tables``); its storage read and written with
    the same S3 properties as Glue's warehouse. ``core``: as for ``glue_catalog``."""
    import boto3

    from .s3tables import S3TablesCatalog

    client = None if core is None else aws_client(
        "s3tables", boto3.session.Session(botocore_session=botocore_session(like=core)))
    return S3TablesCatalog(name, client=client, **catalog_properties(table_bucket_arn))


def catalog_for(kind: str, warehouse: str, table_bucket: str | None = None, core: Any = None) -> Catalog:
    """``glue`` over ``warehouse``, ``s3tables`` over ``table_bucket`` (its ARN), or another
    PyIceberg catalog type. ``core``: the caller's botocore session, whose loaded data their
    clients' sessions read too (``clients.botocore_session``)."""
    if kind == "glue":
        return glue_catalog(warehouse, core=core)
    if kind == "s3tables":
        if not table_bucket:
            raise ConfigError("catalog s3tables needs the table bucket's ARN (LAKEROUTE_TABLE_BUCKET_ARN, "
                              "or the stack output TableBucketArn)")
        return s3tables_catalog(table_bucket, core=core)
    from pyiceberg.catalog import load_catalog

    # Other catalogs (e.g. `rest` for S3 Tables' Iceberg REST endpoint) are configuration:
    # PyIceberg merges PYICEBERG_CATALOG__LAKEROUTE__* variables into these properties.
    return load_catalog("lakeroute", **{"type": kind, "warehouse": warehouse})


def make_catalog(config: AwsConfig, core: Any = None) -> Catalog:
    return catalog_for(config.catalog, config.warehouse, config.table_bucket, core=core)


def catalog_from_env(warehouse: str) -> Catalog:
    """The catalog ``LAKEROUTE_CATALOG`` names (glue by default) over ``warehouse``."""
    kind = os.environ.get("LAKEROUTE_CATALOG", "").strip() or "glue"
    return catalog_for(kind, warehouse, os.environ.get("LAKEROUTE_TABLE_BUCKET_ARN", "").strip() or None)
