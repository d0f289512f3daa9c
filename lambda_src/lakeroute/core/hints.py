"""Schema hints (``source.columns``): type strings, nested ones included, and the reader view
that applies them at ingest.

A hint names a source column and its type: a primitive (``long``, ``string``, ``decimal(12,2)``,
…) or a nested type, ``struct<a: string, b: long>``, ``list<long>``, ``map<string, long>``,
nested to any depth. Hints are applied to the reader, not only to ``validate``, so a route can
reference an optional field that some files lack:

- JSON: the reader's own detected columns (DuckDB's rendering of its types, which quotes
  names) plus the hints go to ``read_json(columns := …)``, so hinted fields are parsed with
  their declared type in every line, not only those DuckDB sampled, and a hinted field that
  no line carries reads as a typed NULL;
- CSV: hinted columns present in the header go to ``types := …``; absent ones are typed NULLs;
- Parquet: present hinted columns are cast (structs by field name), absent ones typed NULLs.

Everything that reaches SQL text is either DuckDB's own type rendering, a validated type
from the route file, or a quoted literal; column names are quoted identifiers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ObjectError

if TYPE_CHECKING:
    import duckdb

PRIMITIVE_DUCK = {
    "boolean": "BOOLEAN", "int": "INTEGER", "integer": "INTEGER", "long": "BIGINT", "bigint": "BIGINT",
    "float": "FLOAT", "double": "DOUBLE", "string": "VARCHAR", "date": "DATE", "time": "TIME",
    "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ", "binary": "BLOB", "uuid": "UUID",
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_OPTIONS = ("filename", "hive_partitioning", "hive_types", "hive_types_autocast")
NESTED_HELP = "struct<name: type, ...>, list<type> or map<key type, value type>"


@dataclass(frozen=True)
class HintType:
    """A parsed type: ``kind`` is a primitive name, ``decimal``, ``struct``, ``list`` or ``map``."""

    kind: str
    fields: tuple[tuple[str, HintType], ...] = ()  # struct fields
    args: tuple[HintType, ...] = ()  # list: (element,), map: (key, value)
    precision: int = 0
    scale: int = 0

    def text(self) -> str:
        """The canonical spelling (lower case, one space after ':' and ',')."""
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.kind == "struct":
            return "struct<" + ", ".join(f"{n}: {t.text()}" for n, t in self.fields) + ">"
        if self.kind in ("list", "map"):
            return f"{self.kind}<" + ", ".join(t.text() for t in self.args) + ">"
        return self.kind

    def duck(self) -> str:
        """The DuckDB type."""
        if self.kind == "decimal":
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.kind == "struct":
            return "STRUCT(" + ", ".join(f"{quote_ident(n)} {t.duck()}" for n, t in self.fields) + ")"
        if self.kind == "list":
            return self.args[0].duck() + "[]"
        if self.kind == "map":
            return f"MAP({self.args[0].duck()}, {self.args[1].duck()})"
        return PRIMITIVE_DUCK[self.kind]

    @property
    def nested(self) -> bool:
        return self.kind in ("struct", "list", "map")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.text!r}: {what} at character {self.pos + 1}; nested types are {NESTED_HELP}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def eat(self, token: str) -> bool:
        self.skip()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.eat(token):
            raise self.fail(f"expected {token!r}")

    def ident(self) -> str:
        self.skip()
        m = _IDENT.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a name")
        self.pos = m.end()
        return m.group(0)

    def type(self) -> HintType:
        self.skip()
        m = _DECIMAL.match(self.text, self.pos)
        if m:
            self.pos = m.end()
            p, s = int(m.group(1)), int(m.group(2))
            if not (1 <= p <= 38 and s <= p):
                raise ValueError(f"{self.text!r}: Iceberg decimals have a precision of 1 to 38 and a "
                                 "scale of at most the precision")
            return HintType("decimal", precision=p, scale=s)
        name = self.ident()
        if name == "struct":
            self.expect("<")
            fields: list[tuple[str, HintType]] = []
            while True:
                field = self.ident()
                if field in dict(fields):
                    raise self.fail(f"struct field {field!r} twice")
                self.expect(":")
                fields.append((field, self.type()))
                if self.eat(">"):
                    return HintType("struct", fields=tuple(fields))
                self.expect(",")
        if name == "list":
            self.expect("<")
            element = self.type()
            self.expect(">")
            return HintType("list", args=(element,))
        if name == "map":
            self.expect("<")
            key = self.type()
            self.expect(",")
            value = self.type()
            self.expect(">")
            if key.nested:
                raise ValueError(f"{self.text!r}: a map key must be a primitive type")
            return HintType("map", args=(key, value))
        if name in PRIMITIVE_DUCK:
            return HintType(name)
        raise ValueError(f"unknown column type {name!r} in {self.text!r}; use one of "
                         f"{', '.join(sorted(PRIMITIVE_DUCK))}, decimal(P,S) or {NESTED_HELP}")


def parse_type(text: str) -> HintType:
    """A type string parsed, or ValueError naming what is wrong."""
    p = _Parser(text.strip().lower())
    t = p.type()
    p.skip()
    if p.pos != len(p.text):
        raise p.fail("unexpected text")
    return t


def duck_type(text: str) -> str:
    return parse_type(text).duck()


def _lookup(names: list[str], hint: str) -> str | None:
    """The source column a hint names: exact, else the one case-insensitive match."""
    if hint in names:
        return hint
    folded = [n for n in names if n.lower() == hint.lower()]
    return folded[0] if len(folded) == 1 else None


def hinted_view(con: duckdb.DuckDBPyConnection, fmt: str, options: dict[str, Any], path: str,
                hints: dict[str, str] | None) -> str:
    """The ``source`` view's query with the hints applied (``reader_sql`` without hints)."""
    from .engine import reader_sql

    plain = reader_sql(fmt, options, path)
    if not hints:
        return plain
    # What the reader finds on its own (binding only: Parquet reads its footer, CSV and JSON
    # sniff a sample).
    rel = con.sql(plain)
    names = list(rel.columns)
    present = {h: _lookup(names, h) for h in hints}
    missing = [h for h, n in present.items() if n is None]
    if fmt == "json" and "columns" not in options:
        # The file's own columns only: those path options add (filename, hive partitions) are
        # added again by the final reader, not looked for in each line.
        own = con.sql(reader_sql(fmt, {k: v for k, v in options.items() if k not in _PATH_OPTIONS}, path))
        cols = dict(zip(own.columns, [str(t) for t in own.types], strict=True))
        for h, n in present.items():
            cols[n or h] = duck_type(hints[h])
        return reader_sql(fmt, {**options, "columns": cols}, path)
    if fmt == "csv" and not any(present.values()):
        # A sniffer that found other columns than any hint names (one column "a;b;c") is far
        # likelier than a file lacking every hinted column: fail instead of reading NULLs.
        shown = ", ".join(names[:5])[:200]
        raise ObjectError("read", f"none of the hinted columns ({', '.join(hints)}) is among the CSV's "
                          f"columns ({shown}); check options (delim, header) or source.columns")
    if fmt == "csv" and "types" not in options and "columns" not in options:
        typed = {n: duck_type(hints[h]) for h, n in present.items() if n is not None}
        base = reader_sql(fmt, {**options, "types": typed}, path) if typed else plain
        casts: dict[str, str] = {}
    else:
        base = plain
        casts = {n: duck_type(hints[h]) for h, n in present.items() if n is not None}
    replace = ", ".join(f"CAST({quote_ident(n)} AS {t}) AS {quote_ident(n)}" for n, t in casts.items())
    nulls = "".join(f", NULL::{duck_type(hints[h])} AS {quote_ident(h)}" for h in missing)
    star = f"* REPLACE ({replace})" if replace else "*"
    if star == "*" and not nulls:
        return base
    return f"SELECT {star}{nulls} FROM ({base})"  # noqa: S608 - names quoted, types validated
