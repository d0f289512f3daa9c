"""A route run on one object without committing: its rows cast to the table, and the plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ObjectError
from ..objects import SourceObject
from ..read.engine import Engine
from ..routes import OBJECT_COLUMN, Route
from ..shape.features import unsupported
from ..shape.renames import refuse_renamed
from ..shape.types import table_schema
from ..write.modes import table_result
from .preview_columns import ColumnView, column_views

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog


@dataclass
class Preview:
    sample: pa.Table
    rows: int
    plan: str
    columns: list[ColumnView] = field(default_factory=list)


def preview_route(route: Route, obj: SourceObject, catalog: Catalog, limit: int = 10,
                  on_columns: Callable[[list[ColumnView]], None] | None = None) -> Preview:
    """Everything ingest would do up to the commit: read, SQL, types, the schema policy, row
    rejects, expectations. Raises ObjectError (the reason ingest would quarantine the object).
    ``on_columns`` gets the result's columns against the table's (``preview_columns``) as soon
    as they are known, before the rows are read."""
    import pyarrow as pa

    from ..read.rejects import RowRejects
    from ..shape.policy import Shaper, changes_for, creation_schema
    from ..shape.table_schema import declared_schema, iceberg_schema

    name = route.target.table
    exists = catalog.table_exists(name)
    if exists:  # a table lakeroute cannot write (another engine's format v3, ...) quarantines every object
        table = catalog.load_table(name)
        why = unsupported(name, table.metadata, table.io, route.target.mode)
        if why is not None:
            raise ObjectError("schema", why, route.name)
    rejects = RowRejects() if route.source.on_error == "rows" else None
    with Engine(prepare_next=False, reuse=False).run(route, obj, rejects=rejects) as reader:
        result = table_result(route.target, table_schema(reader.schema, route.name))
        if exists:
            refuse_renamed(table.metadata, result.names, name, route.name)
            schema = table.schema()
        elif route.target.table_columns is not None:
            schema = declared_schema(route.target.table_columns)
        else:
            schema = iceberg_schema(creation_schema(route, result))
        arrow = schema.as_arrow()
        changes: list[str] = []
        policy = route.target.schema_policy
        if policy != "strict":  # what the commit would add or widen (core.policy.growth)
            grow = result if policy == "evolve" else creation_schema(route, pa.schema([]))
            fields, changes = changes_for(schema, [grow])
            for f in fields:
                i = arrow.get_field_index(f.name)
                arrow = arrow.set(i, f) if i >= 0 else arrow.append(f)
        columns = column_views(route, result, schema, exists)
        if on_columns is not None:  # before any row: shown even when the rows then fail
            on_columns(columns)
        checker = None
        if route.target.expect is not None:
            from ..shape.expectations import Checker

            checker = Checker(route.target.expect, route.name, name)
        fill = {OBJECT_COLUMN: f"{route.source.bucket}/{obj.key}"} if route.target.mode == "replace" else None
        shaper = Shaper(route, arrow, rejects, checker.observe if checker else None, fill)
        batches: list[pa.RecordBatch] = []
        count = 0
        for aligned in shaper.reader(reader, checker.finish if checker else None):
            if shaper.passthrough is not None:  # the operation column, not a table column
                aligned = aligned.drop_columns([shaper.passthrough])
            count += aligned.num_rows
            if sum(b.num_rows for b in batches) < limit:
                batches.append(aligned.slice(0, limit))
    sample = pa.Table.from_batches(batches, schema=arrow).slice(0, limit) if batches else arrow.empty_table()
    aside = [f"{len(rejects)} row(s) would be rejected ({rejects.summary()})"] if rejects else []
    aside += [f"{shaper.rescued} row(s) would carry _rescued_data"] if shaper.rescued else []
    if not exists:
        plan = f"a commit would create table {name} ({len(arrow)} columns)"
    verb = {"append": "append", "upsert": "upsert"}.get(route.target.mode, "write")
    if exists and changes:
        plan = f"a commit would {verb} {count} row(s) to {name} and {'; '.join(changes)}"
    elif exists:
        plan = f"a commit would {verb} {count} row(s) to {name}"
    plan = "; ".join([plan, *aside])
    return Preview(sample, count, plan + f" (mode {route.target.mode}, schema {policy}); nothing was committed",
                   columns)
