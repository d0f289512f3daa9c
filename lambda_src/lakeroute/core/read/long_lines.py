"""CSV lines longer than ``max_line_size``: read as rejects under ``on_error: rows`` (DuckDB's
sniffer would fail the whole file on them, naming line 1), and named by their number and the
fix otherwise."""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Any

from ..routes.column_types import duck_type
from ..sql_text import sql_literal
from .streams import open_stream

if TYPE_CHECKING:
    import duckdb

# Room for the lines of the sniff sample when one of them is over max_line_size (below).
SNIFF_LINE = 256 * 1024 * 1024
# Options the sniff has settled (names as DuckDB spells them, and their aliases).
_SNIFFED = {"auto_detect", "delim", "sep", "delimiter", "quote", "escape", "new_line", "skip", "comment",
            "header", "columns", "names", "column_names", "types", "dtypes", "column_types", "all_varchar",
            "auto_type_candidates", "sample_size", "normalize_names", "dateformat", "date_format",
            "timestampformat", "timestamp_format", "store_rejects", "max_line_size"}
_LINE_SIZE = re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+) bytes")


def long_line_options(con: duckdb.DuckDBPyConnection, error: BaseException, path: str, options: dict[str, Any],
                      hints: dict[str, str] | None) -> dict[str, Any] | None:
    """Under ``on_error: rows``, a CSV whose sniff sample (its first lines) holds a line over
    ``max_line_size``: DuckDB's sniffer fails the whole file ("CSV Error on Line: 1", the
    wrong line), while its reader would record that line as a reject. So the dialect and
    column types are sniffed again with room for long lines, and handed to the reader
    (auto-detection off, the limit as it was, hints as column types): the long line becomes a
    reject with its own number. None when ``error`` is something else."""
    if path.startswith("s3://") or not _LINE_SIZE.search(str(error)):
        return None
    sniff = {k: v for k, v in options.items() if k not in ("store_rejects", "max_line_size")}
    opts = "".join(f", {name} := {sql_literal(v)}" for name, v in sniff.items())
    room = max(int(options.get("max_line_size", 2_000_000)), min(SNIFF_LINE, os.path.getsize(path) + 1))
    found = con.execute(
        f"SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, HasHeader, Columns, "  # noqa: S608
        f"DateFormat, TimestampFormat FROM sniff_csv({sql_literal(path)}{opts}, max_line_size := {room})").fetchone()
    assert found is not None
    delim, quote, escape, new_line, comment, skip, header, columns, date_format, timestamp_format = found
    types = {c["name"]: c["type"] for c in columns}
    for hint, text in (hints or {}).items():
        name = hint if hint in types else next((n for n in types if n.lower() == hint.lower()), None)
        if name is not None:  # typed by the reader: a value that does not cast is a reject
            types[name] = duck_type(text)
    plain = {"(empty)": ""}
    out = {k: v for k, v in options.items() if k not in _SNIFFED}
    out.update(auto_detect=False, delim=delim, quote=plain.get(quote, quote), escape=plain.get(escape, escape),
               new_line=new_line, skip=int(skip), comment=plain.get(comment, comment), header=bool(header),
               columns=types, store_rejects=True)
    if "max_line_size" in options:
        out["max_line_size"] = options["max_line_size"]
    if date_format:
        out["dateformat"] = date_format
    if timestamp_format:
        out["timestampformat"] = timestamp_format
    return out


def long_line_message(message: str, path: str | None = None, compression: str | None = None) -> str | None:
    """DuckDB's "Maximum line size" error as one sentence with the fix, naming the line (the
    first one that long in ``path``, when given: DuckDB's sniffer says "Line: 1" whatever it is)."""
    m = _LINE_SIZE.search(message)
    if m is None:
        return None
    limit, size = int(m.group(1)), int(m.group(2))
    where = "a line"
    if path is not None and not path.startswith("s3://"):
        with contextlib.suppress(OSError, EOFError, ValueError), open_stream(path, compression) as f:
            for n, line in enumerate(f, start=1):
                if len(line.rstrip(b"\r\n")) > limit:
                    where, size = f"line {n}", len(line.rstrip(b"\r\n"))
                    break
    return (f"{where} of {size:,} bytes is longer than options.max_line_size ({limit:,} bytes); raise "
            "max_line_size, or set source.on_error: rows to set such lines aside")
