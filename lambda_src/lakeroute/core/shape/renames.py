"""Columns another writer renamed: a result column by the old name is refused, never added.

An Iceberg rename keeps the column's field id and changes its name; the table's earlier
schemas (``metadata.schemas``) still have the old one. A route that goes on selecting the
old name would, under ``schema: evolve``, add a *new* column of that name: the data splits
(upserted keys get NULL in the renamed column). So a result column that the current schema
lacks, but whose name the newest earlier schema that had it gave to a field id the table
still has under another name, is refused with both names and the fix. A column another
writer dropped and a route selects again is not a rename (its field id is gone): evolve adds
it as a new column, as it would any column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ObjectError

if TYPE_CHECKING:
    from pyiceberg.table.metadata import TableMetadata


def renamed_columns(metadata: TableMetadata, names: Iterable[str]) -> dict[str, str]:
    """Old name -> current name, for each of ``names`` that is a renamed column's old name."""
    current = metadata.schema()
    now = {f.field_id: f.name for f in current.fields}
    wanted = {n for n in names if n not in set(now.values())}
    out: dict[str, str] = {}
    if not wanted:
        return out
    for schema in sorted(metadata.schemas, key=lambda s: s.schema_id, reverse=True):  # newest first
        for f in schema.fields:
            if f.name in wanted:
                wanted.discard(f.name)  # the newest schema that had the name decides
                if f.field_id in now and now[f.field_id] != f.name:
                    out[f.name] = now[f.field_id]
        if not wanted:
            break
    return out


def renamed_message(table: str, renamed: dict[str, str]) -> str:
    """One line: both names of each column, and the fixes."""
    pairs = ", ".join(f"{old!r} (now {new!r})" for old, new in renamed.items())
    old, new = next(iter(renamed.items()))
    return (f"result column{'s' if len(renamed) > 1 else ''} {pairs}: renamed in table {table} since "
            f"(same column, same field id; another writer's rename); select it by its new name "
            f"(e.g. {old} AS {new} in the SQL) or rename the table column back; it is never "
            "added as a new column")


def refuse_renamed(metadata: TableMetadata, names: Iterable[str], table: str, route: str | None) -> None:
    """Raise the object's error when ``names`` hold a renamed column's old name."""
    renamed = renamed_columns(metadata, names)
    if renamed:
        where = f"route {route}: " if route else ""
        raise ObjectError("schema", where + renamed_message(table, renamed), route)
