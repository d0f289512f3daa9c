"""Iceberg tables declared by routes: schema, partition spec, creation and evolution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ObjectError
from .routes import DECIMAL_RE, TRANSFORM_RE, Route, Target

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

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


def ensure_table(catalog: Catalog, target: Target, result_schema: pa.Schema | None = None) -> Table:
    """Load the target table, creating it (and its namespace) on first use.

    Declared ``columns`` give the schema; otherwise the SQL result schema does.
    """
    from pyiceberg.exceptions import (
        NamespaceAlreadyExistsError,
        NoSuchTableError,
        TableAlreadyExistsError,
    )

    try:
        return catalog.load_table(target.table)
    except NoSuchTableError:
        pass
    if target.columns is not None:
        schema: Schema | pa.Schema = declared_schema(target.columns)
    elif result_schema is not None:
        schema = _nullable(result_schema)
    else:
        raise ObjectError("schema", f"table {target.table} has no declared columns and no "
                          "result to take its schema from")
    # Check first: in AWS the namespace is a Glue database the stack created, and the
    # function may read it (GetDatabase) but not create one.
    if not catalog.namespace_exists(target.namespace):
        try:
            catalog.create_namespace(target.namespace)
        except NamespaceAlreadyExistsError:
            pass
        except Exception:
            # A concurrent creator can surface as a raw database error (SqlCatalog raises
            # sqlalchemy's IntegrityError for the losing INSERT): fine if it exists now.
            if not catalog.namespace_exists(target.namespace):
                raise
    properties = {**DEFAULT_PROPERTIES, **target.properties, **OWN_RETRY_PROPERTIES}
    try:
        if target.partition_by:
            from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
            from pyiceberg.schema import assign_fresh_schema_ids

            if not hasattr(schema, "find_field"):
                schema = assign_fresh_schema_ids(visit_pyarrow(schema, _ConvertToIcebergWithoutIDs()))
            spec = partition_spec(schema, target.partition_by)
            return catalog.create_table(target.table, schema=schema, partition_spec=spec,
                                        properties=properties)
        return catalog.create_table(target.table, schema=schema, properties=properties)
    except TableAlreadyExistsError:  # a concurrent writer created it first
        return catalog.load_table(target.table)
    except Exception:
        if catalog.table_exists(target.table):  # the same race, reported as a raw DB error
            return catalog.load_table(target.table)
        raise


def _nullable(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([f.with_nullable(True) for f in schema])


def evolve_schema(table: Table, result_schema: pa.Schema) -> Table:
    """Add result columns the table lacks (routes without declared columns only)."""
    existing = {f.name for f in table.schema().fields}
    new = [f for f in result_schema if f.name not in existing]
    if not new:
        return table
    import pyarrow as pa

    with table.update_schema() as update:
        update.union_by_name(_nullable(pa.schema(new)))
    return table


def ensure_declared_tables(catalog: Catalog, routes: list[Route]) -> list[str]:
    """Create every declared table; add declared columns an existing table lacks."""
    lines = []
    done: set[str] = set()
    for route in routes:
        target = route.target
        if target.columns is None or target.table in done:
            continue
        done.add(target.table)
        existed = catalog.table_exists(target.table)
        table = ensure_table(catalog, target)
        if not existed:
            lines.append(f"created table {target.table}")
            continue
        have = {f.name for f in table.schema().fields}
        missing = [n for n in target.columns if n not in have]
        if missing:
            wanted = declared_schema({n: target.columns[n] for n in missing})
            with table.update_schema() as update:
                for field in wanted.fields:
                    update.add_column(field.name, field.field_type)
            lines.append(f"evolved table {target.table}: added {', '.join(missing)}")
        else:
            lines.append(f"table {target.table} up to date")
    return lines
