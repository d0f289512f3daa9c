"""Where a result holds DuckDB ``JSON`` values, at any depth.

DuckDB types a JSON field whose lines disagree (a string here, a number there) as ``JSON``, and
hands JSON values to Arrow as their JSON *text*: the string ``hello`` arrives as ``"hello"``
(quotes included), the number 5 as ``5``. So the result's schema says where they are (schema
metadata ``JSON_COLUMNS_KEY``: column -> shape), and the cast into the table
(``core.shape.json_text``) turns a JSON value into the text it holds.

A shape is ``true`` (this value is JSON), ``{"fields": {name: shape}}`` (a struct with JSON
inside), ``{"element": shape}`` (a list) or ``{"key": shape, "value": shape}`` (a map); columns
without JSON are absent.
"""

from __future__ import annotations

from typing import Any

JSON_COLUMNS_KEY = b"lakeroute.json_columns"  # result schema metadata: JSON shapes by column


def json_shapes(names: list[str], types: list[Any]) -> dict[str, Any]:
    """The JSON shape of each result column holding JSON (``types``: DuckDB's)."""
    out = {}
    for name, t in zip(names, types, strict=True):
        shape = _shape(t)
        if shape is not None:
            out[name] = shape
    return out


def _shape(t: Any) -> Any:
    if str(t) == "JSON":
        return True
    kind = getattr(t, "id", "")
    if kind not in ("struct", "list", "array", "map"):
        return None
    children = [(n, _shape(c)) for n, c in t.children]
    if kind == "struct":
        fields = {n: s for n, s in children if s is not None}
        return {"fields": fields} if fields else None
    if kind == "map":
        key, value = (s for _, s in children)
        return {"key": key, "value": value} if key is not None or value is not None else None
    element = children[0][1]
    return {"element": element} if element is not None else None
