"""A route run on one object without committing: its rows cast to the table, and the plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .engine import Engine
from .modes import table_result
from .objects import SourceObject
from .routes import OBJECT_COLUMN, Route
from .staging import align
from .types import table_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog


@dataclass
class Preview:
    sample: pa.Table
    rows: int
    plan: str


def preview_route(route: Route, obj: SourceObject, catalog: Catalog, limit: int = 10) -> Preview:
    """Everything ingest would do up to the commit: read, SQL, types, cast. Raises ObjectError
    (the reason ingest would quarantine the object)."""
    import pyarrow as pa

    from .tables import declared_schema, iceberg_schema

    name = route.target.table
    exists = catalog.table_exists(name)
    with Engine(prepare_next=False).run(route, obj) as reader:
        result = table_result(route.target, table_schema(reader.schema, route.name))
        if exists:
            schema = catalog.load_table(name).schema()
        elif route.target.all_columns is not None:
            schema = declared_schema(route.target.all_columns)
        else:
            schema = iceberg_schema(result)
        have = {f.name for f in schema.fields}
        new = [f.name for f in result if f.name not in have]
        arrow = schema.as_arrow()
        if new and route.target.columns is None:
            arrow = pa.schema([*arrow, *[result.field(n) for n in new]])
        batches: list[pa.RecordBatch] = []
        count = 0
        op = route.target.operation
        fill = {OBJECT_COLUMN: f"{route.source.bucket}/{obj.key}"}
        for batch in reader:
            if op is not None and op.column in batch.schema.names:
                batch = batch.drop_columns([op.column])
            aligned = align(batch, arrow, route.name, fill)
            count += aligned.num_rows
            if sum(b.num_rows for b in batches) < limit:
                batches.append(aligned.slice(0, limit))
    sample = pa.Table.from_batches(batches, schema=arrow).slice(0, limit) if batches else arrow.empty_table()
    if not exists:
        plan = f"a commit would create table {name} ({len(arrow)} columns)"
    elif new:
        plan = f"a commit would write to {name} and add column(s) {', '.join(new)}"
    else:
        plan = f"a commit would write {count} row(s) to {name}"
    return Preview(sample, count, plan + f" (mode {route.target.mode}); nothing was committed")
