"""Expectations (``target.expect``): checks on a file's rows before they commit (dbt's
not_null, unique, accepted_values; and min_rows).

They run on the rows as they are written (cast to the table, after rescue and rejects), batch
by batch while the object streams; ``finish`` decides at the end, before the object is
offered to the commit. A failing file is quarantined (stage ``expect``) with every failed
expectation, the number of offending rows and up to 5 example rows. ``unique`` is checked
within the file (the columns together); it keeps those columns of every row in memory
(a few bytes a row), the others keep counts and examples only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ObjectError, shortened
from ..routes.target import Expect

if TYPE_CHECKING:
    import pyarrow as pa

EXAMPLES = 5


@dataclass
class _Failure:
    what: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rows: list[dict[str, Any]], count: int) -> None:
        self.count += count
        self.examples.extend(rows[: EXAMPLES - len(self.examples)])


def _value_set(values: list[Any], typ: pa.DataType) -> pa.Array:
    """The accepted values in the column's type, else as strings (compared as strings)."""
    import pyarrow as pa

    try:
        return pa.array(values).cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([str(v).lower() if isinstance(v, bool) else str(v) for v in values], pa.string())


class Checker:
    def __init__(self, expect: Expect, route: str, table: str) -> None:
        self.expect, self.route, self.table = expect, route, table
        self.rows = 0
        self.failures: dict[str, _Failure] = {}
        self._keys: list[pa.Table] = []
        self._sets: dict[str, pa.Array] = {}

    def _fail(self, key: str) -> _Failure:
        return self.failures.setdefault(key, _Failure(key))

    def _column(self, batch: pa.RecordBatch, name: str) -> pa.Array:
        i = batch.schema.get_field_index(name)
        if i < 0:
            raise ObjectError("expect", f"route {self.route}: expect names column {name!r}, which table "
                              f"{self.table} does not have; fix target.expect or the SQL", self.route)
        return batch.column(i)

    def observe(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        e = self.expect
        for name in e.not_null:
            mask = pc.is_null(self._column(batch, name))
            bad = pc.sum(mask).as_py() or 0
            if bad:
                self._fail(f"not_null({name})").add(batch.filter(mask).slice(0, EXAMPLES).to_pylist(), bad)
        for name, values in e.accepted_values.items():
            col = self._column(batch, name)
            allowed = self._sets.get(name)
            if allowed is None:
                allowed = self._sets[name] = _value_set(values, col.type)
            probe = col if allowed.type == col.type else pc.cast(col, pa.string())
            mask = pc.and_(pc.invert(pc.is_in(probe, value_set=allowed)), pc.is_valid(col))
            bad = pc.sum(mask).as_py() or 0
            if bad:
                self._fail(f"accepted_values({name}: {values})").add(
                    batch.filter(mask).slice(0, EXAMPLES).to_pylist(), bad)
        if e.unique:
            cols = [self._column(batch, c) for c in e.unique]
            self._keys.append(pa.Table.from_arrays(cols, names=list(e.unique)))
        self.rows += batch.num_rows

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        e = self.expect
        if e.unique and self._keys:
            keys = pa.concat_tables(self._keys)
            counts = keys.group_by(list(e.unique)).aggregate([([], "count_all")])
            dups = counts.filter(pc.greater(counts["count_all"], 1))
            if dups.num_rows:
                rows = [{**{c: r[c] for c in e.unique}, "rows": r["count_all"]}
                        for r in dups.slice(0, EXAMPLES).to_pylist()]
                self._fail(f"unique({', '.join(e.unique)})").add(rows, dups.num_rows)
        if e.min_rows is not None and self.rows < e.min_rows:
            self._fail(f"min_rows({e.min_rows})").add([{"rows": self.rows}], 1)
        if self.failures:
            parts = []
            for f in self.failures.values():
                shown = shortened(json.dumps(f.examples, ensure_ascii=False, default=str), 1200)
                unit = "rows" if not f.what.startswith(("unique", "min_rows")) else (
                    "duplicated keys" if f.what.startswith("unique") else "file")
                parts.append(f"{f.what} failed ({f.count} {unit}; e.g. {shown})" if unit != "file"
                             else f"{f.what} failed (the file has {self.rows} rows)")
            raise ObjectError("expect", f"route {self.route}: expectations failed for {self.table}: "
                              + "; ".join(parts) + "; nothing of it is committed: fix the file or the "
                              "route (target.expect), then `lakeroute replay`", self.route)
