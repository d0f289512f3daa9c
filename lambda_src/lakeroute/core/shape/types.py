"""Arrow types of a route's result, mapped to what an Iceberg table can hold, and safe casts.

A result column becomes a table column of the nearest Iceberg type that holds *every* value
of the DuckDB type: small ints widen to int/long, ``uint64`` goes to long (a value above
2^63-1 then fails its cast), timestamps and times go to microseconds (a value with a
sub-microsecond part fails its cast), dictionaries decode. Types with no Iceberg
counterpart (INTERVAL, UNION, VARINT, BIT, NULL, durations) are refused with the fix
(cast in the SQL). Casts into the table are *safe*: a value that does not fit quarantines
the object, it is never truncated, rounded or wrapped; a time zone is never added or
dropped implicitly; strings cast to ``uuid`` only when they are canonical UUIDs.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..errors import ObjectError, shortened

if TYPE_CHECKING:
    import pyarrow as pa


def _fail(route: str, column: str, what: str) -> ObjectError:
    return ObjectError("schema", f"route {route}: column {column}: {what}", route)


def table_type(t: pa.DataType, route: str, column: str) -> pa.DataType:
    """The Arrow type of the table column a result column of type ``t`` becomes."""
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        return table_type(t.value_type, route, column)
    if pt.is_boolean(t) or pt.is_int32(t) or pt.is_int64(t) or pt.is_float32(t) or pt.is_float64(t):
        return t
    if pt.is_int8(t) or pt.is_int16(t) or pt.is_uint8(t) or pt.is_uint16(t):
        return pa.int32()
    if pt.is_uint32(t) or pt.is_uint64(t):
        return pa.int64()
    if pt.is_float16(t):
        return pa.float32()
    if pt.is_string(t) or pt.is_large_string(t) or getattr(pt, "is_string_view", lambda _: False)(t):
        return pa.string()
    if pt.is_binary(t) or pt.is_large_binary(t) or getattr(pt, "is_binary_view", lambda _: False)(t):
        return pa.binary()
    if pt.is_fixed_size_binary(t):
        return t
    if pt.is_date(t):
        return pa.date32()
    if pt.is_timestamp(t):
        return pa.timestamp("us", tz=t.tz)
    if pt.is_time(t):
        return pa.time64("us")
    if pt.is_decimal(t):
        if t.precision > 38:
            raise _fail(route, column, f"decimal({t.precision},{t.scale}) exceeds Iceberg's 38 digits; "
                        "cast it in the SQL (e.g. to DECIMAL(38, s) or VARCHAR)")
        return pa.decimal128(t.precision, t.scale)
    if pt.is_struct(t):
        return pa.struct([pa.field(f.name, table_type(f.type, route, f"{column}.{f.name}"), True)
                          for f in t])
    if pt.is_map(t):
        return pa.map_(table_type(t.key_type, route, f"{column}.key"),
                       table_type(t.item_type, route, f"{column}.value"))
    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return pa.list_(table_type(t.value_type, route, f"{column}.element"))
    if isinstance(t, pa.ExtensionType) and t.extension_name == "arrow.uuid":
        return t
    raise _fail(route, column, f"type {t} has no Iceberg counterpart; cast it in the SQL "
                "(e.g. to VARCHAR, BIGINT or DOUBLE)")


def table_schema(schema: pa.Schema, route: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, table_type(f.type, route, f.name), True) for f in schema])


def cast_column(col: pa.Array, target: pa.DataType, route: str, column: str) -> pa.Array:
    """``col`` as ``target``, or an ObjectError naming the value that does not fit."""
    import pyarrow as pa
    import pyarrow.types as pt

    source = col.type
    if source == target:
        return col
    if pt.is_dictionary(source):
        col = col.dictionary_decode()
        source = col.type
    if pt.is_timestamp(source) and pt.is_timestamp(target) and (source.tz is None) != (target.tz is None):
        raise _fail(route, column, f"{source} into {target} would {'add' if target.tz else 'drop'} a "
                    "time zone; convert it in the SQL (e.g. ts AT TIME ZONE 'UTC', or ::TIMESTAMPTZ)")
    if _is_uuid(target) and (pt.is_string(source) or pt.is_large_string(source)):
        return _uuid_from_strings(col, target, route, column)
    try:
        return col.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise _fail(route, column, f"cannot cast {source} to {target}: {e}") from e


def _is_uuid(t: pa.DataType) -> bool:
    import pyarrow as pa

    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def _uuid_from_strings(col: pa.Array, target: pa.DataType, route: str, column: str) -> pa.Array:
    import pyarrow as pa

    values: list[bytes | None] = []
    for v in col.to_pylist():
        if v is None:
            values.append(None)
            continue
        try:
            parsed = uuid.UUID(v)
        except (ValueError, AttributeError, TypeError):
            raise _fail(route, column, f"{shortened(str(v), 60)!r} is not a UUID") from None
        values.append(parsed.bytes)
    storage = pa.array(values, pa.binary(16))
    return pa.ExtensionArray.from_storage(target, storage)
