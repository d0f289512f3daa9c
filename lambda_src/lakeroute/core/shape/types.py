"""Arrow types of a route's result, mapped to what an Iceberg table can hold, and safe casts.

A result column becomes a table column of the nearest Iceberg type that holds *every* value
of the DuckDB type: small ints widen to int/long, ``uint64`` goes to long (a value above
2^63-1 then fails its cast), timestamps and times go to microseconds (a value with a
sub-microsecond part fails its cast), dictionaries decode. Types with no Iceberg
counterpart (INTERVAL, UNION, VARINT, BIT, NULL, durations) are refused with the fix
(cast in the SQL). Casts into the table are *safe* and checked by value: a value that fits
lands whatever its source type (a JSON BIGINT into ``decimal(18,0)``), one that does not
quarantines the object, named; it is never truncated, rounded or wrapped; a time zone is
never added or dropped implicitly; strings cast to ``uuid`` only when they are canonical UUIDs.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..errors import ObjectError, shortened
from ..read.nanos import shown_value

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


def cast_column(col: pa.Array, target: pa.DataType, route: str, column: str, *,
                name_value: bool = True) -> pa.Array:
    """``col`` as ``target``, or an ObjectError naming the value that does not fit
    (``name_value``: look for it, a few more casts; callers that isolate values themselves
    skip that)."""
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
        return _value_cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        why = shortened(str(e), 200)
        if name_value:
            value = _first_misfit(col, target)
            if value is not None:
                raise _fail(route, column, f"cannot cast {source} to {target}: value {value} does not "
                            f"fit ({why}){_fix(source, target)}") from e
        raise _fail(route, column, f"cannot cast {source} to {target}: {why}{_fix(source, target)}") from e


# Decimal digits of the largest value of each integer type: an int fits decimal(p, s) by value
# when p - s covers *its* digits, whatever the type could hold.
_INT_DIGITS = {"int8": 3, "int16": 5, "int32": 10, "int64": 19, "uint8": 3, "uint16": 5,
               "uint32": 10, "uint64": 20}
# Relative error within which a float *is* the decimal it rounds to (a few units in the last
# place of a float64 / float32): 0.1 is 0.10, 0.125 is not 0.12.
_FLOAT_TOLERANCE = {"double": 2.0 ** -50, "float": 2.0 ** -21, "halffloat": 2.0 ** -8}


def _value_cast(col: pa.Array, target: pa.DataType) -> pa.Array:
    """Arrow's safe cast, plus the value checks it lacks (it checks types only, or not at all):
    an int into a decimal too narrow for its *type* lands when each *value* fits; a float into
    a decimal must be that decimal (Arrow rounds 0.125 to 0.12 silently); a double into a
    float must not overflow to infinity (rounding to the nearest float is what float means)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pt

    source = col.type
    if pt.is_integer(source) and pt.is_decimal(target):
        digits = _INT_DIGITS[str(source)] + target.scale
        if digits > target.precision:
            wide = pa.decimal128(digits, target.scale) if digits <= 38 else pa.decimal256(digits, target.scale)
            return col.cast(wide, safe=True).cast(target, safe=True)
    out = col.cast(target, safe=True)
    if pt.is_floating(source) and pt.is_decimal(target):
        x = col.cast(pa.float64())
        off = pc.abs(pc.subtract(out.cast(pa.float64()), x))
        bad = pc.greater(off, pc.multiply(pc.abs(x), _FLOAT_TOLERANCE[str(source)]))
        if pc.any(bad).as_py():
            first = pc.index(bad, True).as_py()
            raise pa.ArrowInvalid(f"{x[first].as_py()!r} is not a decimal of scale {target.scale} "
                                  f"(it would be rounded to {out[first].as_py()})")
    elif pt.is_floating(source) and pt.is_floating(target) and target.bit_width < source.bit_width:
        overflow = pc.and_(pc.is_inf(out), pc.invert(pc.is_inf(col)))
        if pc.any(overflow).as_py():
            raise pa.ArrowInvalid(f"{col[pc.index(overflow, True).as_py()].as_py()!r} overflows {target}")
    return out


def _first_misfit(col: pa.Array, target: pa.DataType) -> str | None:
    """The first value of ``col`` that does not cast, shown (bisection: ~2 casts of ``col``)."""
    import pyarrow as pa

    try:
        _value_cast(col.slice(0, 0), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None  # the types do not cast at all: no value is to blame
    start, length = 0, len(col)
    while length > 1:
        half = length // 2
        try:
            _value_cast(col.slice(start, half), target)
            start, length = start + half, length - half
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            length = half
    if length != 1:
        return None
    try:
        _value_cast(col.slice(start, 1), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return shown_value(col, start)
    return None


def _fix(source: pa.DataType, target: pa.DataType) -> str:
    """The deliberate way to change such values, where one exists."""
    import pyarrow.types as pt

    if pt.is_timestamp(source) and pt.is_timestamp(target) and source.unit == "ns":
        return ("; Iceberg v2 keeps microseconds: to truncate deliberately, cast it in the SQL "
                f"(CAST(col AS {'TIMESTAMPTZ' if target.tz else 'TIMESTAMP'}))")
    if not pt.is_decimal(target):
        return ""
    if pt.is_floating(source) or pt.is_string(source) or (pt.is_decimal(source) and source.scale > target.scale):
        return f"; to round deliberately, cast it in the SQL (e.g. round(col, {target.scale}))"
    return ""


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
