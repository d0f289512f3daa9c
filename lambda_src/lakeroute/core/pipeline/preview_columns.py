"""`preview`: the result's columns and types beside the table's, and what a commit would do
to each (added, widened, cast, refused, rescued, left null).

Shown before any row is read, so a route whose rows fail still shows what DuckDB made of
the file (``1.326,05`` read as a string, a CSV sniffed as one column) next to what the table
expects. Types are Iceberg's, the vocabulary of ``target.columns``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ObjectError, shortened
from ..routes import OBJECT_COLUMN, RESCUED_COLUMN, Route
from ..shape.table_schema import iceberg_schema, widens
from ..shape.types import cast_column

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.types import IcebergType


def type_text(t: IcebergType) -> str:
    """An Iceberg type as a route file writes it: ``decimal(12,2)``, ``struct<a: long>``."""
    from pyiceberg.types import DecimalType, ListType, MapType, StructType

    if isinstance(t, DecimalType):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, StructType):
        return "struct<" + ", ".join(f"{f.name}: {type_text(f.field_type)}" for f in t.fields) + ">"
    if isinstance(t, ListType):
        return f"list<{type_text(t.element_type)}>"
    if isinstance(t, MapType):
        return f"map<{type_text(t.key_type)}, {type_text(t.value_type)}>"
    return str(t)


@dataclass(frozen=True)
class ColumnView:
    """One column: its result type ("" when the SQL does not produce it), its table type
    ("" when the table lacks it) and what a commit would do with it ("" for nothing)."""

    name: str
    result: str
    table: str
    change: str


def _never_casts(route: Route, source: pa.DataType, target: pa.DataType, name: str) -> str | None:
    import pyarrow as pa

    try:
        cast_column(pa.array([], type=source), target, route.name, name)
    except ObjectError as e:
        return shortened(e.message.removeprefix(f"route {route.name}: column {name}: "), 80)
    except Exception:  # a type the check cannot build: the rows will tell
        return None
    return None


def column_views(route: Route, result: pa.Schema, table: Schema, exists: bool) -> list[ColumnView]:
    """Each result column against the table (``table``: the table's schema, or the one its
    first commit would create), then the table's columns the result lacks."""
    import pyarrow.types as pt

    policy = route.target.schema_policy
    created = not exists and route.target.table_columns is None
    made = {f.name: f.field_type for f in iceberg_schema(result).fields}
    have = {f.name: f.field_type for f in table.fields}
    arrow = table.as_arrow()
    op = route.target.operation
    views: list[ColumnView] = []
    for f in result:
        mine, theirs = made[f.name], have.get(f.name)
        if op is not None and f.name == op.column and theirs is None:
            views.append(ColumnView(f.name, type_text(mine), "", "read, not written (target.operation)"))
            continue
        if theirs is None:
            change = {"evolve": "added", "rescue": f"refused: kept in {RESCUED_COLUMN}"}.get(
                policy, "refused: not in the table (schema: strict)")
            views.append(ColumnView(f.name, type_text(mine), "", change))
            continue
        if created or mine == theirs:
            change = "new table" if created else ""
        elif widens(theirs, mine):
            change = (f"widened {type_text(theirs)} -> {type_text(mine)}" if policy == "evolve"
                      else "cast: each value must fit")
        else:
            target = arrow.field(arrow.get_field_index(f.name)).type
            never = _never_casts(route, f.type, target, f.name)
            if never:
                change = f"refused: {never}"
            elif pt.is_string(f.type) or pt.is_large_string(f.type):
                change = "cast: each value must parse"
            else:
                change = "cast: each value must fit"
        views.append(ColumnView(f.name, type_text(mine), type_text(theirs), change))
    for name, theirs in have.items():
        if name in made:
            continue
        change = {OBJECT_COLUMN: "set by lakeroute (mode replace)",
                  RESCUED_COLUMN: "values that do not fit (schema: rescue)"}.get(name, "null: not in the result")
        views.append(ColumnView(name, "", type_text(theirs), change))
    return views
