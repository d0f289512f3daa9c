"""The query of the ``source`` view: DuckDB's reader for the format, with the route's options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sql_text import quote_ident, sql_literal

if TYPE_CHECKING:
    import duckdb

    from .reuse import ReusedDatabase

READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}


def reader_sql(fmt: str, options: dict[str, Any], path: str) -> str:
    """The ``source`` view's query. Option names are validated identifiers and values quoted
    literals from the route file; ``path`` is lakeroute's own scratch path (a literal) or an
    s3:// URL (then read through the lineage variable, never pasted)."""
    opts = "".join(f", {name} := {sql_literal(v)}" for name, v in options.items())
    where = "getvariable('source_uri')" if path.startswith("s3://") else sql_literal(path)
    query = f"SELECT * FROM {READERS[fmt]}({where}{opts})"  # noqa: S608
    column = options.get("filename")
    if column:  # the object's URI, the same in Lambda, in a task and locally
        name = column if isinstance(column, str) else "filename"
        query = f"SELECT * REPLACE (getvariable('source_uri') AS {quote_ident(name)}) FROM ({query})"  # noqa: S608
    return query


def make_view(con: duckdb.DuckDBPyConnection, db: ReusedDatabase | None, view: str, footer: Any) -> bool:
    """The ``source`` view over ``view`` (a reader query); whether an earlier object's was kept.

    A reused database keeps the view of its previous object (saving its creation and binding,
    ~0.5 ms per small object) only when nothing about that object can show through it: the
    same query (the same path and options: ``ReusedDatabase.admit``) over a Parquet file whose
    schema (``footer``, as read for the nanosecond check) equals the one the view was made
    for, so the columns DuckDB recorded for the view, which ``duckdb_columns()`` shows, are
    this object's own. Anything else (another schema, CSV, JSON, no footer read) makes it
    again. Should a kept view still not bind, the caller makes it again (``footer`` None)."""
    if db is not None and footer is not None and db.view == (view, footer):
        return True
    con.execute("CREATE OR REPLACE TEMP VIEW source AS " + view)
    if db is not None:
        db.view = (view, footer) if footer is not None else None
    return False
