"""Column type strings of route files (``long``, ``decimal(12,2)``, ``struct<a: string>``, …):
checked, parsed, spelled canonically, and rendered as DuckDB types."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..sql_text import quote_ident

PRIMITIVE_TYPES = {
    "boolean", "int", "integer", "long", "bigint", "float", "double", "string", "date",
    "time", "timestamp", "timestamptz", "binary", "uuid",
}
DECIMAL_RE = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
PRIMITIVE_DUCK = {
    "boolean": "BOOLEAN", "int": "INTEGER", "integer": "INTEGER", "long": "BIGINT", "bigint": "BIGINT",
    "float": "FLOAT", "double": "DOUBLE", "string": "VARCHAR", "date": "DATE", "time": "TIME",
    "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ", "binary": "BLOB", "uuid": "UUID",
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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


def check_type(value: str, nested: bool = False) -> str:
    """A column type in its canonical spelling; ``nested``: struct/list/map allowed (hints)."""
    v = value.strip().lower()
    if nested and v.startswith(("struct", "list", "map")):
        return parse_type(v).text()
    m = DECIMAL_RE.match(v)
    if m and not (1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1))):
        raise ValueError(f"{value!r}: Iceberg decimals have a precision of 1 to 38 and a scale of "
                         "at most the precision")
    if v in PRIMITIVE_TYPES or m:
        return v
    raise ValueError(
        f"unknown column type {value!r}; use one of {', '.join(sorted(PRIMITIVE_TYPES))} "
        "or decimal(P,S)" + (", or struct<name: type, ...>, list<type>, map<key, value>" if nested else "")
    )
