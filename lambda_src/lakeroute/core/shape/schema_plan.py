"""Declared tables against the catalog: which changes are safe to apply, which are not.

Safe (applied by ``sync``, listed by ``sync --plan``): a new column, int -> long,
float -> double, decimal precision up (same scale), required -> optional. Anything else
(another type, a column the route no longer declares, a declared column another writer
renamed, a different partitioning) is unsafe:
an error naming the route, the column, both types and the fix, and ingest quarantines the
table's objects rather than write into a column whose type differs from the declared one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..routes import Route, partition_column
from .renames import renamed_columns
from .table_schema import declared_schema, iceberg_type, widens

if TYPE_CHECKING:
    from pyiceberg.table import Table


@dataclass(frozen=True)
class Change:
    table: str
    route: str
    column: str | None
    kind: str  # add | widen | optional | type | renamed | dropped | partition
    old: str | None
    new: str | None

    @property
    def safe(self) -> bool:
        return self.kind in ("add", "widen", "optional")

    def describe(self) -> str:
        where = f"{self.table}" + (f".{self.column}" if self.column else "")
        if self.kind == "add":
            return f"{where}: add column ({self.new})"
        if self.kind == "widen":
            return f"{where}: widen {self.old} -> {self.new}"
        if self.kind == "optional":
            return f"{where}: make optional"
        if self.kind == "type":
            return (f"route {self.route}: {where}: the table has {self.old}, the route declares {self.new}; "
                    f"not a safe change: `lakeroute reset {self.table}` (drops its data) or declare a new column")
        if self.kind == "renamed":
            return (f"route {self.route}: {where}: declared column {self.column!r} was renamed to {self.old!r} "
                    f"in the table since (same field id; another writer's rename); declare {self.old} instead "
                    f"and select it by that name (e.g. {self.column} AS {self.old} in the SQL), or rename the "
                    "table column back; it is never added as a new column")
        if self.kind == "dropped":
            return (f"route {self.route}: {where}: in the table ({self.old}) but no longer declared; declare "
                    f"it again, or `lakeroute reset {self.table}`")
        return (f"route {self.route}: {self.table}: partitioned by {self.old} in the table, {self.new} in the "
                f"route; `lakeroute reset {self.table}` to repartition")


def plan_table(route: Route, table: Table) -> list[Change]:
    """The changes that make ``table`` what ``route`` declares (declared columns only)."""
    columns = route.target.table_columns
    if columns is None:
        return []
    evolve = route.target.schema_policy == "evolve"  # ingest may add columns and widen types
    name, changes = route.target.table, []
    current = {f.name: f for f in table.schema().fields}
    renamed = renamed_columns(table.metadata, columns)  # by another writer: never added again
    for f in declared_schema(columns).fields:
        have = current.get(f.name)
        if have is None and f.name in renamed:
            changes.append(Change(name, route.name, f.name, "renamed", renamed[f.name], None))
        elif have is None:
            changes.append(Change(name, route.name, f.name, "add", None, str(f.field_type)))
        elif have.field_type != f.field_type and evolve and widens(f.field_type, have.field_type):
            continue  # widened by ingest (schema: evolve): the declared type still fits
        elif have.field_type != f.field_type:
            kind = "widen" if widens(have.field_type, f.field_type) else "type"
            changes.append(Change(name, route.name, f.name, kind, str(have.field_type), str(f.field_type)))
        elif have.required:
            changes.append(Change(name, route.name, f.name, "optional", "required", "optional"))
    for column, have in current.items():
        if column not in columns and not evolve and column not in renamed.values():  # evolve: ingest added it
            changes.append(Change(name, route.name, column, "dropped", str(have.field_type), None))
    spec = table.spec()
    schema = table.schema()
    have_parts = [f"{p.transform}({schema.find_column_name(p.source_id)})" for p in spec.fields]
    want_parts = [_normal(t) for t in route.target.partition_by]
    if have_parts != want_parts:
        changes.append(Change(name, route.name, None, "partition", ", ".join(have_parts) or "nothing",
                              ", ".join(route.target.partition_by) or "nothing"))
    return changes


def _normal(transform: str) -> str:
    text = transform.replace(" ", "").lower()
    if "(" not in text:
        return f"identity({text})"
    col = partition_column(transform).lower()
    fn = text.split("(", 1)[0]
    if fn in ("bucket", "truncate"):
        n = text.split("(", 1)[1].split(",", 1)[0].strip("[]")
        return f"{fn}[{n}]({col})"
    return f"{fn}({col})"


def apply_safe(table: Table, changes: list[Change]) -> None:
    safe = [c for c in changes if c.safe]
    if not safe:
        return
    with table.update_schema() as update:
        for c in safe:
            assert c.column is not None
            if c.kind == "add":
                update.add_column(c.column, iceberg_type(_route_type(c.new)))
            elif c.kind == "widen":
                update.update_column(c.column, field_type=iceberg_type(_route_type(c.new)))
            else:
                update.make_column_optional(c.column)


def _route_type(printed: str | None) -> str:
    """PyIceberg's printed type back to the route file's spelling."""
    assert printed is not None
    mapping = {"int": "int", "long": "long", "float": "float", "double": "double", "string": "string",
               "boolean": "boolean", "date": "date", "time": "time", "timestamp": "timestamp",
               "timestamptz": "timestamptz", "binary": "binary", "uuid": "uuid"}
    text = printed.replace(" ", "")
    return mapping.get(text, text)
