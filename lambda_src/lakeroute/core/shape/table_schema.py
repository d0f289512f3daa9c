"""Iceberg schemas, partition specs and table properties from a route's declarations, and the
type promotions a table allows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..routes import DECIMAL_RE, OBJECT_COLUMN, TRANSFORM_RE, Target

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.types import IcebergType

# lakeroute does its own commit retries (after re-checking which sources are already in the
# table); PyIceberg's built-in retry would re-apply an append without that check.
OWN_RETRY_PROPERTIES = {"commit.retry.num-retries": "0"}
DEFAULT_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    # Small commits add one manifest each; merge them on write so metadata stays bounded.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "50",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
}


def iceberg_type(name: str):  # type: ignore[no-untyped-def]
    from pyiceberg import types as t

    simple = {
        "boolean": t.BooleanType(), "int": t.IntegerType(), "integer": t.IntegerType(),
        "long": t.LongType(), "bigint": t.LongType(), "float": t.FloatType(),
        "double": t.DoubleType(), "string": t.StringType(), "date": t.DateType(),
        "time": t.TimeType(), "timestamp": t.TimestampType(), "timestamptz": t.TimestamptzType(),
        "binary": t.BinaryType(), "uuid": t.UUIDType(),
    }
    if name in simple:
        return simple[name]
    m = DECIMAL_RE.match(name)
    if m:
        return t.DecimalType(int(m.group(1)), int(m.group(2)))
    raise ConfigError(f"unknown column type {name!r}")


def declared_schema(columns: dict[str, str]) -> Schema:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    return Schema(*[NestedField(i, name, iceberg_type(typ), required=False)
                    for i, (name, typ) in enumerate(columns.items(), start=1)])


def partition_spec(schema: Schema, partition_by: list[str]) -> PartitionSpec:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import (
        BucketTransform,
        DayTransform,
        HourTransform,
        IdentityTransform,
        MonthTransform,
        Transform,
        TruncateTransform,
        VoidTransform,
        YearTransform,
    )

    fields = []
    for i, text in enumerate(partition_by):
        m = TRANSFORM_RE.match(text)
        assert m is not None  # validated by the route model
        col = m.group("col") or m.group("pcol") or m.group("bare")
        fn = m.group("fn") or m.group("pfn") or "identity"
        try:
            source_id = schema.find_field(col).field_id
        except ValueError:
            raise ConfigError(f"partition column {col!r} is not in the table schema") from None
        simple: dict[str, Transform[Any, Any]] = {
            "identity": IdentityTransform(), "year": YearTransform(), "month": MonthTransform(),
            "day": DayTransform(), "hour": HourTransform(), "void": VoidTransform(),
        }
        transform = simple.get(fn)
        if fn == "bucket":
            transform = BucketTransform(int(m.group("n")))
        elif fn == "truncate":
            transform = TruncateTransform(int(m.group("n")))
        name = col if fn == "identity" else f"{col}_{fn}"
        fields.append(PartitionField(source_id=source_id, field_id=1000 + i,
                                     transform=transform, name=name))
    return PartitionSpec(*fields)


REPLACE_MANIFEST_BYTES = 32 * 1024


def table_properties(target: Target) -> dict[str, str]:
    managed = {}
    if target.mode == "replace":  # exact bounds: a file holding one object's rows is found by them
        managed[f"write.metadata.metrics.column.{OBJECT_COLUMN}"] = "full"
        # Merged manifests stay small (~100 entries): replacing an object rewrites the one
        # that lists its file (core.write.snapshot_files.object_files).
        managed["commit.manifest.target-size-bytes"] = str(REPLACE_MANIFEST_BYTES)
    return {**DEFAULT_PROPERTIES, **managed, **target.properties, **OWN_RETRY_PROPERTIES}


def iceberg_schema(result_schema: pa.Schema) -> Schema:
    """An Iceberg schema (fresh field ids) for a table-ready Arrow schema."""
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
    from pyiceberg.schema import assign_fresh_schema_ids

    return assign_fresh_schema_ids(visit_pyarrow(result_schema, _ConvertToIcebergWithoutIDs()))


def widens(old: IcebergType, new: IcebergType) -> bool:
    """Iceberg's type promotions: int -> long, float -> double, decimal precision up."""
    from pyiceberg.types import DecimalType, DoubleType, FloatType, IntegerType, LongType

    if isinstance(old, IntegerType) and isinstance(new, LongType):
        return True
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    return (isinstance(old, DecimalType) and isinstance(new, DecimalType) and old.scale == new.scale
            and new.precision > old.precision)


def same_field_ids(written: Schema, table: Schema) -> bool:
    """Whether data files written with ``written`` read correctly under ``table``."""
    from pyiceberg.schema import index_by_id, index_name_by_id

    ours, theirs = index_by_id(written), index_by_id(table)
    our_names, their_names = index_name_by_id(written), index_name_by_id(table)
    for field_id, field in ours.items():
        other = theirs.get(field_id)
        if other is None or our_names[field_id] != their_names.get(field_id):
            return False
        if field.field_type.is_primitive and field.field_type != other.field_type and not widens(
                field.field_type, other.field_type):  # a promoted column reads the old files fine
            return False
    return True
