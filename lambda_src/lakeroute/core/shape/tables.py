"""Iceberg tables declared by routes: creation (now, or in the first commit) and evolution."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ObjectError
from ..routes import Route, Target
from .features import unsupported
from .schema_plan import apply_safe, plan_table
from .table_schema import declared_schema, iceberg_schema, partition_spec, table_properties
from .types import table_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import StagedTable, Table
    from pyiceberg.table.metadata import TableMetadata

def ensure_table(catalog: Catalog, target: Target, result_schema: pa.Schema | None = None) -> Table:
    """Load the target table, creating it (and its namespace) when it does not exist.

    Declared ``columns`` give the schema; otherwise ``result_schema`` does (``sync`` and
    tests; the pipeline creates undeclared tables in their first commit instead).
    """
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError

    try:
        return catalog.load_table(target.table)
    except NoSuchTableError:
        pass
    if target.table_columns is not None:
        schema = declared_schema(target.table_columns)
    elif result_schema is not None:
        schema = iceberg_schema(table_schema(result_schema, target.table))
    else:
        raise ObjectError("schema", f"table {target.table} has no declared columns and no "
                          "result to take its schema from")
    ensure_namespace(catalog, target.namespace)
    try:
        if target.partition_by:
            return catalog.create_table(target.table, schema=schema, properties=table_properties(target),
                                        partition_spec=partition_spec(schema, target.partition_by))
        return catalog.create_table(target.table, schema=schema, properties=table_properties(target))
    except TableAlreadyExistsError:  # a concurrent writer created it first
        return catalog.load_table(target.table)
    except Exception:
        if catalog.table_exists(target.table):  # the same race, reported as a raw DB error
            return catalog.load_table(target.table)
        raise


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    # Check first: in AWS the namespace is a Glue database the stack created, and the
    # function may read it (GetDatabase) but not create one.
    if catalog.namespace_exists(namespace):
        return
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    except Exception:
        # A concurrent creator can surface as a raw database error (SqlCatalog raises
        # sqlalchemy's IntegrityError for the losing INSERT): fine if it exists now.
        if not catalog.namespace_exists(namespace):
            raise


def provisional_table(catalog: Catalog, target: Target, result_schema: pa.Schema) -> StagedTable:
    """A table that does not exist yet, as it will be created *in the commit* of its first rows.

    Nothing is written to the catalog (only the namespace is made sure of): an object that
    is quarantined before the commit leaves no table behind.
    """
    from pyiceberg.table import StagedTable
    from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

    ensure_namespace(catalog, target.namespace)
    schema = iceberg_schema(table_schema(result_schema, target.table))
    spec = partition_spec(schema, target.partition_by) if target.partition_by else None
    create = getattr(catalog, "_create_staged_table", None)  # MetastoreCatalog (SQL, Glue): no call
    if create is None:
        # Other catalogs (REST) describe a table to be created only through the server: a
        # stage-create request (the REST spec's "stage-create": nothing is committed), which
        # also gets the location the server assigns and the FileIO settings it vends.
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC

        txn = catalog.create_table_transaction(target.table, schema, None, spec or UNPARTITIONED_PARTITION_SPEC,
                                               UNSORTED_SORT_ORDER, table_properties(target))
        staged = txn._table  # the StagedTable the transaction was made for (no public accessor)
        assert isinstance(staged, StagedTable)
        return staged
    if spec is None:
        return create(target.table, schema, None, properties=table_properties(target))
    return create(target.table, schema, None, spec, UNSORTED_SORT_ORDER, table_properties(target))


def with_new_columns(table: Table, metadata: TableMetadata, result_schema: pa.Schema) -> TableMetadata | None:
    """``metadata`` plus the result columns it lacks (in memory: nothing is committed), or
    None when nothing is new. Existing columns keep their ids and types."""
    import pyarrow as pa
    from pyiceberg.table import StagedTable, Transaction

    have = {f.name for f in metadata.schema().fields}
    folded = {n.lower(): n for n in have}
    for f in result_schema:
        if f.name not in have and f.name.lower() in folded:
            raise ObjectError("schema", f"result column {f.name!r} differs only in case from the table's "
                              f"column {folded[f.name.lower()]!r}; Glue, Athena and Spark fold case: rename "
                              "it in the SQL")
    new = [f for f in result_schema if f.name not in have]
    if not new:
        return None
    draft = StagedTable(identifier=table.name(), metadata=metadata,
                        metadata_location=table.metadata_location, io=table.io, catalog=table.catalog)
    txn = Transaction(draft, autocommit=False)
    with txn.update_schema() as update:
        update.union_by_name(pa.schema(new))
    return txn.table_metadata


def ensure_declared_tables(catalog: Catalog, routes: list[Route], *, plan: bool = False) -> list[str]:
    """Create every declared table; apply the safe changes to existing ones (``core.schema_plan``).

    Unsafe changes raise a ConfigError listing each (route, column, both types, the fix), so
    the deploy-time sync fails the deployment instead of ignoring them; so does any route's
    existing table that lakeroute cannot write (``core.shape.features``). ``plan``: only say
    what would be done.
    """
    lines: list[str] = []
    unsafe: list[str] = []
    refused: list[str] = []
    done: set[str] = set()
    for route in (leg for r in routes for leg in r.legs()):
        target = route.target
        if target.table in done:
            continue
        done.add(target.table)
        table = catalog.load_table(target.table) if catalog.table_exists(target.table) else None
        if table is not None:  # every route's table, declared or not: can lakeroute write it at all?
            why = unsupported(target.table, table.metadata, table.io, target.mode)
            if why is not None:
                refused.append(f"route {route.name}: {why}")
                continue
        if target.columns is None:
            continue
        if table is None:
            if not plan:
                ensure_table(catalog, target)
            lines.append(f"{'would create' if plan else 'created'} table {target.table}")
            continue
        changes = plan_table(route, table)
        unsafe += [c.describe() for c in changes if not c.safe]
        safe = [c for c in changes if c.safe]
        if not safe:
            lines.append(f"table {target.table} up to date" if not changes else
                         f"table {target.table}: no safe change to apply")
            continue
        if not plan and not any(not c.safe for c in changes):
            apply_safe(table, safe)
        verb = "would evolve" if plan or any(not c.safe for c in changes) else "evolved"
        lines.append(f"{verb} table {target.table}: " + _summary(safe, plan))
    if unsafe or refused:
        head = " and ".join(h for h, found in (("unsafe table changes", unsafe),
                                               ("tables lakeroute cannot write", refused)) if found)
        raise ConfigError(f"{head} (nothing was changed for these tables):\n" + "\n".join(unsafe + refused))
    return lines


def _summary(changes: list[Any], plan: bool) -> str:
    added = [c.column for c in changes if c.kind == "add"]
    parts = [f"{'add' if plan else 'added'} {', '.join(added)}"] if added else []
    parts += [f"{'widen' if plan else 'widened'} {c.column} {c.old} -> {c.new}" for c in changes if c.kind == "widen"]
    parts += [f"{'make' if plan else 'made'} {c.column} optional" for c in changes if c.kind == "optional"]
    return "; ".join(parts)


def unrouted_tables(catalog: Catalog, routes: list[Route], namespaces: Iterable[str] | None = None) -> list[str]:
    """One line per table of the catalog that no route writes any more (its route file was
    deleted or now names another table). Such a table is kept, never dropped by a sync: its
    rows are data, and dropping is ``lakeroute reset``'s job, asked for by name.

    ``namespaces``: where to look (default: every namespace of the catalog; a stage passes
    its own databases, the Glue catalog holds other tables too)."""
    routed = {leg.target.table for r in routes for leg in r.legs()}
    spaces = [".".join(n) for n in catalog.list_namespaces()] if namespaces is None else sorted(set(namespaces))
    lines = []
    for namespace in spaces:
        if not catalog.namespace_exists(namespace):
            continue
        for identifier in catalog.list_tables(namespace):
            name = ".".join(identifier)
            if name not in routed:
                lines.append(f"table {name} no longer has a route; kept — `lakeroute reset {name} --yes` to drop")
    return sorted(lines)
