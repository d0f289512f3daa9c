"""JSON values as the text they hold, before the cast into the table.

A DuckDB ``JSON`` value reaches Arrow as JSON text (``core.read.json_columns``): cast as it is,
the string ``hello`` would land as ``"hello"`` in a string column, and ``"42"`` would not cast
to a long although ``42`` does. So, in every schema policy, a JSON string becomes its text
(``hello``, escapes decoded), a number or boolean its JSON text (``5``, ``1.5``, ``true``),
JSON ``null`` a NULL, and an object or array stays JSON text (``{"a":1}``). A value keeps its
original JSON where it is set aside (``_rescued_data``, rejects): ``original``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def as_text(arr: pa.Array, shape: Any) -> pa.Array:
    """``arr`` with the JSON values that ``shape`` marks turned into their text."""
    import pyarrow as pa
    import pyarrow.types as pt

    t = arr.type
    if shape is True and (pt.is_string(t) or pt.is_large_string(t)):
        return _text(arr)
    if not isinstance(shape, dict):
        return arr
    mask = arr.is_null() if arr.null_count else None
    if pt.is_struct(t) and "fields" in shape:
        children = [as_text(child, shape["fields"].get(f.name)) for f, child in zip(t, arr.flatten(), strict=True)]
        return pa.StructArray.from_arrays(children, fields=list(t), mask=mask)
    if (pt.is_list(t) or pt.is_large_list(t)) and "element" in shape:
        build = pa.ListArray if pt.is_list(t) else pa.LargeListArray
        return build.from_arrays(arr.offsets, as_text(arr.values, shape["element"]), type=t, mask=mask)
    if pt.is_map(t) and ("key" in shape or "value" in shape):
        return pa.MapArray.from_arrays(arr.offsets, as_text(arr.keys, shape.get("key")),
                                       as_text(arr.items, shape.get("value")), type=t, mask=mask)
    return arr


def _text(arr: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    quoted = pc.starts_with(arr, '"')
    nulls = pc.equal(arr, "null")
    if not (pc.any(quoted).as_py() or pc.any(nulls).as_py()):
        return arr  # numbers, booleans, objects, arrays: their JSON text is their text
    if pc.any(pc.and_(quoted, pc.match_substring(arr, "\\"))).as_py():
        # escapes (\n, \u00e9, \"): decoded by the JSON parser, value by value
        return pa.array([_decoded(v) for v in arr.to_pylist()], arr.type)
    inner = pc.if_else(quoted, pc.utf8_slice_codeunits(arr, 1, -1), arr)
    return pc.if_else(nulls, pa.scalar(None, arr.type), inner)


def _decoded(value: str | None) -> str | None:
    if value is None or value == "null":
        return None
    return json.loads(value) if value.startswith('"') else value


def original(value: Any, shape: Any) -> Any:
    """A value as the file had it: the JSON that ``shape`` marks parsed back."""
    if value is None or shape is None:
        return value
    if shape is True:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict) and "fields" in shape:
        return {k: original(v, shape["fields"].get(k)) for k, v in value.items()}
    if isinstance(value, list) and "element" in shape:
        return [original(v, shape["element"]) for v in value]
    if isinstance(value, list) and ("key" in shape or "value" in shape):  # a map: (key, value) pairs
        return [(original(k, shape.get("key")), original(v, shape.get("value"))) for k, v in value]
    return value
