"""SQL text that lakeroute writes itself: quoted identifiers and literals of trusted values.

Untrusted values (object keys, lineage) never become SQL text; they are bound as values.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """Render a trusted configuration value as a DuckDB literal (quotes escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"reader option value {value!r} has an unsupported type")
