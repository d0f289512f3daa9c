"""One column's bounds in a data file's metadata, and whether sorted values may lie in them."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table.metadata import TableMetadata


def bounds_reader(metadata: TableMetadata, column: str) -> Callable[[DataFile], tuple[Any, Any] | None]:
    """``bounds`` of one column for many files: the field looked up once (a schema lookup
    costs more than decoding the bounds)."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import PrimitiveType

    f = metadata.schema().find_field(column)
    fid, kind = f.field_id, f.field_type

    def read(data_file: DataFile) -> tuple[Any, Any] | None:
        lo, hi = data_file.lower_bounds or {}, data_file.upper_bounds or {}
        if not isinstance(kind, PrimitiveType) or fid not in lo or fid not in hi:
            return None
        return from_bytes(kind, lo[fid]), from_bytes(kind, hi[fid])

    return read


def may_hold(sorted_values: list[Any], rng: tuple[Any, Any] | None) -> bool:
    """Whether any of ``sorted_values`` lies within the bounds (no bounds: maybe)."""
    if rng is None:
        return True
    i = bisect.bisect_left(sorted_values, rng[0])
    return i < len(sorted_values) and sorted_values[i] <= rng[1]
