"""The JSON Schema of route files, generated from the route model (``lakeroute schema``).

Editors that speak the YAML language server complete and check route fields from it when a
route file starts with ``# yaml-language-server: $schema=<path or URL>``. It describes the
file's shape (fields, types, enums, patterns, bounds); what needs more than a shape (SQL,
column types, ambiguity, checks across routes) stays with ``lakeroute validate``.
"""

from __future__ import annotations

import json
from typing import Any

from .model import Route

SCHEMA_PATH = "schemas/route.schema.json"  # in the repository; route files refer to it relatively
DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic emits


def route_json_schema() -> dict[str, Any]:
    """The route model's validation schema, by the names a route file uses (aliases)."""
    schema = Route.model_json_schema(by_alias=True, mode="validation")
    # The model's "target (with sql) or targets, not both or neither" is a validator pydantic
    # cannot express; without it an editor would accept a route with neither.
    one_form = [{"required": [name], "properties": {name: {"type": ["object", "array"][i]}}}
                for i, name in enumerate(("target", "targets"))]
    return {"$schema": DIALECT, "title": "lakeroute route file",
            "description": "One route: which objects (source), the SQL over each (relation `source`), "
                           "the Iceberg table it lands in (target, or targets for fan-out). "
                           "`lakeroute validate` checks what a schema cannot.",
            **{k: v for k, v in schema.items() if k not in ("title", "description")},
            "oneOf": one_form}


def render_route_schema() -> str:
    """The committed text: stable key order (the model's), two-space indent, final newline."""
    return json.dumps(route_json_schema(), indent=2, ensure_ascii=False) + "\n"
