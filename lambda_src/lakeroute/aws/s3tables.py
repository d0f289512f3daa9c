"""A PyIceberg catalog over the Amazon S3 Tables API (a stage's ``catalog: s3tables``).

PyIceberg 0.12 has no S3 Tables catalog: it reaches S3 Tables through the Iceberg REST
endpoint (SigV4) or Glue's federated ``s3tablescatalog``, neither of which moto emulates. This
catalog does what AWS's own Java client catalog (``software.amazon.s3tables:s3-tables-catalog-
for-iceberg``) does, over boto3's ``s3tables`` client:

- the table bucket (``warehouse``: its ARN) holds namespaces, which hold tables;
- ``CreateTable`` gives a table its storage (``warehouseLocation``, an S3 location managed by
  the service); the first metadata file is written there, then registered with
  ``UpdateTableMetadataLocation`` and the table's version token;
- a commit writes the next metadata file and moves the pointer with the version token read
  before it: a concurrent commit changed the token, S3 Tables rejects the update
  (``ConflictException``) and PyIceberg's ``CommitFailedException`` follows (PyIceberg and
  lakeroute's commit retry it).

S3 Tables storage answers neither ListObjects nor DeleteObject (moto neither): files nothing
references (a rejected commit's metadata, staged files of a commit that did not happen, the
files of expired snapshots) are removed by S3 Tables' unreferenced file removal, never by
lakeroute. The tables' FileIO (``TableStorageIO``) therefore deletes nothing there (the deletes
lakeroute makes, best effort, would each be refused); elsewhere (the commit lane's hand-offs)
it deletes as usual.

A table created for a first commit that never happened (lakeroute stages the first rows of an
undeclared table before its first commit, and the staged files need the table's storage) has
no metadata location: it counts as absent until a commit gives it one.
Metadata is written without the existence check PyIceberg's default writer makes (it lists).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import MetastoreCatalog, PropertiesUpdateSummary
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.io import PY_IO_IMPL, load_file_io
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties

from ..core.errors import ConfigError
from .clients import aws_client

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table import StagedTable
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.update import TableRequirement, TableUpdate
    from pyiceberg.view import View

# S3 Tables names: lowercase letters, digits and underscores, starting with a letter or digit
# (namespaces and tables; 1-255 characters).
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,254}$")
TABLE_STORAGE_SUFFIX = "--table-s3"
ARN = re.compile(r"^arn:aws[a-z-]*:s3tables:[a-z0-9-]+:\d{12}:bucket/[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _code(e: Exception) -> str:
    return str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))


def check_name(kind: str, name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"S3 Tables {kind} name {name!r} is not valid: rename it in the route's "
                          "target.table with lowercase letters, digits and underscores, "
                          "starting with a letter or digit")
    return name


class StorageFile(PyArrowFile):
    def exists(self) -> bool:
        # PyArrow's check lists the "directory" after a 404 (refused here); a read is a HEAD + GET.
        try:
            with self.open(seekable=False):
                return True
        except FileNotFoundError:
            return False


class TableStorageIO(PyArrowFileIO):
    """PyArrow's FileIO for S3 Tables storage: deletes are left to S3 Tables (see above), and
    existence is checked without listing."""

    def new_input(self, location: str) -> PyArrowFile:
        return self._storage_file(location)

    def new_output(self, location: str) -> PyArrowFile:
        return self._storage_file(location)

    def _storage_file(self, location: str) -> StorageFile:
        plain = super().new_input(location)
        return StorageFile(location=location, path=plain._path, fs=plain._filesystem,
                           buffer_size=plain._buffer_size)

    def delete(self, location: Any) -> None:
        path = location if isinstance(location, str) else location.location
        if not in_table_storage(path):  # e.g. the commit lane's hand-offs in a general-purpose bucket
            super().delete(location)


def in_table_storage(path: str) -> bool:
    """S3 Tables storage: a table's ``warehouseLocation``, a bucket whose name ends in ``--table-s3``."""
    return path.startswith("s3://") and path[5:].split("/", 1)[0].endswith(TABLE_STORAGE_SUFFIX)


class S3TablesCatalog(MetastoreCatalog):
    """Iceberg tables in one S3 table bucket (``warehouse``: the table bucket's ARN).

    Properties: ``warehouse`` (required), the S3 FileIO's usual ``s3.*`` properties (region,
    endpoint, credentials) for the table storage. The ``s3tables`` client follows boto3's own
    configuration (``AWS_ENDPOINT_URL_S3TABLES``, region, credentials) unless ``client`` is given.
    """

    def __init__(self, name: str, client: Any = None, **properties: str) -> None:
        properties = {PY_IO_IMPL: f"{TableStorageIO.__module__}.{TableStorageIO.__name__}", **properties}
        super().__init__(name, **properties)
        arn = properties.get("warehouse", "")
        if not ARN.match(arn):
            raise ValueError(f"S3 Tables catalog: warehouse {arn!r} is not a table bucket ARN "
                             "(arn:aws:s3tables:REGION:ACCOUNT:bucket/NAME)")
        self.bucket_arn = arn
        self.client = client if client is not None else aws_client("s3tables")

    # ------------------------------------------------------------ names

    def _split(self, identifier: str | Identifier, missing: type[Exception] = NoSuchTableError) -> tuple[str, str]:
        namespace, table = self.identifier_to_database_and_table(identifier, missing)  # type: ignore[arg-type]
        return check_name("namespace", namespace), check_name("table", table)

    def _pointer(self, namespace: str, table: str) -> tuple[str | None, str, str]:
        """(metadata location or None, version token, warehouse location) of an existing table."""
        try:
            got = self.client.get_table_metadata_location(tableBucketARN=self.bucket_arn,
                                                          namespace=namespace, name=table)
        except Exception as e:
            if _code(e) == "NotFoundException":
                raise NoSuchTableError(f"Table does not exist: {namespace}.{table}") from None
            raise
        return got.get("metadataLocation") or None, str(got["versionToken"]), str(got["warehouseLocation"])

    def _storage(self, namespace: str, table: str) -> tuple[str, str]:
        """(version token, warehouse location) of the table, created in the service when absent
        (a table without metadata yet, left by a first commit that did not happen, is reused)."""
        try:
            self.client.create_table(tableBucketARN=self.bucket_arn, namespace=namespace, name=table,
                                     format="ICEBERG")
        except Exception as e:
            code = _code(e)
            if code == "NotFoundException":
                raise NoSuchNamespaceError(f"Namespace does not exist: {namespace}") from None
            if code != "ConflictException":
                raise
            location, token, warehouse = self._pointer(namespace, table)
            if location is not None:
                raise TableAlreadyExistsError(f"Table {namespace}.{table} already exists") from None
            return token, warehouse
        _, token, warehouse = self._pointer(namespace, table)
        return token, warehouse

    # ------------------------------------------------------------ tables

    def _create_staged_table(self, identifier: str | Identifier, schema: Schema | pa.Schema,
                             location: str | None = None,
                             partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
                             sort_order: SortOrder = UNSORTED_SORT_ORDER,
                             properties: Properties = EMPTY_DICT) -> StagedTable:
        if location:
            raise ValueError("S3 Tables manage their tables' storage: a table location cannot be given")
        namespace, table = self._split(identifier)
        _, warehouse = self._storage(namespace, table)
        return super()._create_staged_table((namespace, table), schema, warehouse.rstrip("/"),
                                            partition_spec, sort_order, properties)

    def create_table(self, identifier: str | Identifier, schema: Schema | pa.Schema,
                     location: str | None = None,
                     partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
                     sort_order: SortOrder = UNSORTED_SORT_ORDER,
                     properties: Properties = EMPTY_DICT) -> Table:
        staged = self._create_staged_table(identifier, schema, location, partition_spec, sort_order, properties)
        namespace, table = self._split(identifier)
        _, token, _ = self._pointer(namespace, table)
        self._publish(namespace, table, staged.metadata, staged.metadata_location, token)
        return Table(identifier=(namespace, table), metadata=staged.metadata,
                     metadata_location=staged.metadata_location, io=staged.io, catalog=self)

    def _publish(self, namespace: str, table: str, metadata: TableMetadata, location: str, token: str) -> None:
        """Write ``metadata`` at ``location`` and point the table at it, guarded by ``token``."""
        io = self._load_file_io(metadata.properties, location)
        ToOutputFile.table_metadata(metadata, io.new_output(location), overwrite=True)
        try:
            self.client.update_table_metadata_location(
                tableBucketARN=self.bucket_arn, namespace=namespace, name=table,
                versionToken=token, metadataLocation=location)
        except Exception as e:
            # Rejected, the file stays unreferenced: S3 Tables' unreferenced file removal takes it.
            if _code(e) == "ConflictException":
                raise CommitFailedException(f"{namespace}.{table} was changed by a concurrent commit "
                                            "(S3 Tables version token)") from e
            if _code(e) == "NotFoundException":
                raise NoSuchTableError(f"Table does not exist: {namespace}.{table}") from None
            raise

    def load_table(self, identifier: str | Identifier) -> Table:
        namespace, table = self._split(identifier)
        location, _, _ = self._pointer(namespace, table)
        if location is None:
            raise NoSuchTableError(f"Table does not exist: {namespace}.{table} (no metadata yet)")
        return self._table((namespace, table), location)

    def _table(self, identifier: Identifier, location: str) -> Table:
        io = load_file_io(properties=self.properties, location=location)
        metadata = FromInputFile.table_metadata(io.new_input(location))
        return Table(identifier=identifier, metadata=metadata, metadata_location=location,
                     io=self._load_file_io(metadata.properties, location), catalog=self)

    def commit_table(self, table: Table, requirements: tuple[TableRequirement, ...],
                     updates: tuple[TableUpdate, ...]) -> CommitTableResponse:
        namespace, name = self._split(table.name())
        try:
            location, token, _ = self._pointer(namespace, name)
        except NoSuchTableError:
            location = None
            token, _ = self._storage(namespace, name)  # a create-table transaction's first commit
        current = self._table((namespace, name), location) if location is not None else None
        staged = self._update_and_stage_table(current, (namespace, name), requirements, updates)
        if current is not None and staged.metadata == current.metadata:
            return CommitTableResponse(metadata=current.metadata,  # type: ignore[call-arg]  # pydantic alias
                                       metadata_location=current.metadata_location)
        self._publish(namespace, name, staged.metadata, staged.metadata_location, token)
        if current is not None:
            self._delete_old_metadata(staged.io, current.metadata, staged.metadata)
        return CommitTableResponse(metadata=staged.metadata,  # type: ignore[call-arg]  # pydantic alias
                                   metadata_location=staged.metadata_location)

    def table_exists(self, identifier: str | Identifier) -> bool:
        try:
            self.load_table(identifier)
        except NoSuchTableError:
            return False
        return True

    def drop_table(self, identifier: str | Identifier) -> None:
        namespace, table = self._split(identifier)
        try:
            self.client.delete_table(tableBucketARN=self.bucket_arn, namespace=namespace, name=table)
        except Exception as e:
            if _code(e) == "NotFoundException":
                raise NoSuchTableError(f"Table does not exist: {namespace}.{table}") from None
            raise

    def purge_table(self, identifier: str | Identifier) -> None:
        self.drop_table(identifier)  # S3 Tables delete the table's storage with it

    def rename_table(self, from_identifier: str | Identifier, to_identifier: str | Identifier) -> Table:
        namespace, table = self._split(from_identifier)
        to_namespace, to_table = self._split(to_identifier)
        self.client.rename_table(tableBucketARN=self.bucket_arn, namespace=namespace, name=table,
                                 newNamespaceName=to_namespace, newName=to_table)
        return self.load_table((to_namespace, to_table))

    def register_table(self, identifier: str | Identifier, metadata_location: str, overwrite: bool = False) -> Table:
        raise NotImplementedError("S3 Tables keep table metadata in their own storage: register is not supported")

    def list_tables(self, namespace: str | Identifier) -> list[Identifier]:
        ns = check_name("namespace", self.namespace_to_string(namespace, NoSuchNamespaceError))
        out: list[Identifier] = []
        try:
            for page in self.client.get_paginator("list_tables").paginate(tableBucketARN=self.bucket_arn,
                                                                          namespace=ns):
                out += [(ns, t["name"]) for t in page.get("tables", [])]
        except Exception as e:
            if _code(e) == "NotFoundException":
                raise NoSuchNamespaceError(f"Namespace does not exist: {ns}") from None
            raise
        return out

    # ------------------------------------------------------------ namespaces

    def create_namespace(self, namespace: str | Identifier, properties: Properties = EMPTY_DICT) -> None:
        ns = check_name("namespace", self.namespace_to_string(namespace))
        try:
            self.client.create_namespace(tableBucketARN=self.bucket_arn, namespace=[ns])
        except Exception as e:
            if _code(e) == "ConflictException":
                raise NamespaceAlreadyExistsError(f"Namespace already exists: {ns}") from None
            raise

    def drop_namespace(self, namespace: str | Identifier) -> None:
        ns = check_name("namespace", self.namespace_to_string(namespace, NoSuchNamespaceError))
        if self.list_tables(ns):
            raise NamespaceNotEmptyError(f"Namespace {ns} is not empty")
        try:
            self.client.delete_namespace(tableBucketARN=self.bucket_arn, namespace=ns)
        except Exception as e:
            if _code(e) == "NotFoundException":
                raise NoSuchNamespaceError(f"Namespace does not exist: {ns}") from None
            raise

    def list_namespaces(self, namespace: str | Identifier = ()) -> list[Identifier]:
        if namespace:
            return []  # S3 Tables namespaces are flat
        out: list[Identifier] = []
        for page in self.client.get_paginator("list_namespaces").paginate(tableBucketARN=self.bucket_arn):
            out += [tuple(n["namespace"]) for n in page.get("namespaces", [])]
        return out

    def load_namespace_properties(self, namespace: str | Identifier) -> Properties:
        ns = self.namespace_to_string(namespace, NoSuchNamespaceError)
        if not NAME.match(ns):
            raise NoSuchNamespaceError(f"Namespace does not exist: {ns}")
        try:
            self.client.get_namespace(tableBucketARN=self.bucket_arn, namespace=ns)
        except Exception as e:
            if _code(e) == "NotFoundException":
                raise NoSuchNamespaceError(f"Namespace does not exist: {ns}") from None
            raise
        return {}

    def update_namespace_properties(self, namespace: str | Identifier, removals: set[str] | None = None,
                                    updates: Properties = EMPTY_DICT) -> PropertiesUpdateSummary:
        raise NotImplementedError("S3 Tables namespaces have no properties")

    # ------------------------------------------------------------ views (none in S3 Tables)

    def list_views(self, namespace: str | Identifier) -> list[Identifier]:
        return []

    def view_exists(self, identifier: str | Identifier) -> bool:
        return False

    def load_view(self, identifier: str | Identifier) -> View:
        raise NotImplementedError("S3 Tables have no views")

    def drop_view(self, identifier: str | Identifier) -> None:
        raise NotImplementedError("S3 Tables have no views")

    def register_view(self, identifier: str | Identifier, metadata_location: str) -> View:
        raise NotImplementedError("S3 Tables have no views")
