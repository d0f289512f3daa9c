"""Schema policy (``target.schema``): what a result that does not match its table does.

- ``evolve`` (default without declared columns): result columns the table lacks are added,
  and a column whose result type is a wider Iceberg type (int -> long, float -> double,
  decimal precision up, same scale) is widened, in the same commit as the rows; a column is
  never narrowed (a narrower result casts up). A value that does not cast (a string into a
  long column, a fraction into an int one) quarantines the file, naming the column, both
  types, the value and the fixes.
- ``strict`` (default with declared columns): the table never changes: a result column it
  lacks, or a value that does not cast, quarantines the file. Values that cast exactly (ISO
  strings into timestamps, ints into longs) are cast, as always.
- ``rescue``: the table never changes except for ``_rescued_data`` (string): per row, a JSON
  object of what did not fit, column -> original value: columns the table lacks and values
  that do not cast (those land as NULL); NULL on rows with nothing rescued. The rest of the
  row lands.

Under ``source.on_error: rows`` (and not rescue), a value that does not cast rejects its row
(``core.rejects``) instead of the file. Casts are ``core.types.cast_column``'s safe casts; a
column that fails is split until the failing values are isolated, so a clean batch costs one
cast per column and a dirty one a few more per bad value.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ObjectError
from ..read.json_columns import JSON_COLUMNS_KEY
from ..read.nanos import python_values
from ..read.rejects import Reject, RowRejects
from ..routes import Route
from ..routes.target import OBJECT_COLUMN, RESCUED_COLUMN
from .json_text import as_text, original
from .table_schema import iceberg_schema, widens
from .types import cast_column

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.table.update.schema import UpdateSchema
    from pyiceberg.types import IcebergType


def rescued_field() -> pa.Field:
    import pyarrow as pa

    return pa.field(RESCUED_COLUMN, pa.string(), True)


def creation_schema(route: Route, result: pa.Schema) -> pa.Schema:
    """The schema a table created from this result gets (rescue: plus ``_rescued_data``)."""
    if route.target.schema_policy == "rescue" and result.get_field_index(RESCUED_COLUMN) < 0:
        return result.append(rescued_field())
    return result


def growth(route: Route, result: pa.Schema) -> pa.Schema | None:
    """What the commit may add to the table for this object (``Staged.result_schema``)."""
    import pyarrow as pa

    policy = route.target.schema_policy
    if policy == "evolve":
        return result
    if policy == "rescue":
        return pa.schema([rescued_field()])
    return None


# ------------------------------------------------------------ table changes (evolve)


def _iceberg_types(result: pa.Schema) -> dict[str, IcebergType]:
    return {f.name: f.field_type for f in iceberg_schema(result).fields}


def changes_for(current: Schema, results: list[pa.Schema]) -> tuple[list[pa.Field], list[str]]:
    """The result fields to union into ``current`` (new columns and widened types, in result
    order) and one line per change, for the outcome."""
    have = {f.name: f for f in current.fields}
    fields: dict[str, pa.Field] = {}
    lines: list[str] = []
    for result in results:
        types = _iceberg_types(result)
        for f in result:
            old = have.get(f.name)
            if f.name in fields:
                continue
            if old is None:
                fields[f.name] = f
                lines.append(f"added column {f.name} ({types[f.name]})")
            elif widens(old.field_type, types[f.name]):
                fields[f.name] = f
                lines.append(f"widened {f.name} {old.field_type} -> {types[f.name]}")
    return list(fields.values()), lines


def apply_changes(update: UpdateSchema, current: Schema, results: list[pa.Schema]) -> list[str]:
    """Add and widen, in one schema update (the commit's, or the staging draft's)."""
    import pyarrow as pa

    fields, lines = changes_for(current, results)
    if fields:
        update.union_by_name(pa.schema(fields))
    return lines


def evolve_table(table: Table, metadata: TableMetadata, route: Route, result: pa.Schema
                 ) -> tuple[TableMetadata | None, list[str]]:
    """``metadata`` with this result's changes applied in memory (nothing is committed), or
    None when nothing changes; and what changed. Only ``growth`` is applied: evolve adds and
    widens, rescue adds ``_rescued_data``, strict nothing."""
    from pyiceberg.table import StagedTable, Transaction

    grow = growth(route, result)
    if grow is None:
        return None, []
    current = metadata.schema()
    folded = {f.name.lower(): f.name for f in current.fields}
    for f in grow:
        if f.name not in folded.values() and f.name.lower() in folded:
            raise ObjectError("schema", f"route {route.name}: result column {f.name!r} differs only in case "
                              f"from the table's column {folded[f.name.lower()]!r}; Glue, Athena and Spark "
                              "fold case: rename it in the SQL", route.name)
    fields, lines = changes_for(current, [grow])
    if not fields:
        return None, []
    draft = StagedTable(identifier=table.name(), metadata=metadata,
                        metadata_location=table.metadata_location, io=table.io, catalog=table.catalog)
    txn = Transaction(draft, autocommit=False)
    with txn.update_schema() as update:
        apply_changes(update, current, [grow])
    return txn.table_metadata, lines


# ------------------------------------------------------------ rows (all policies)


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal | uuid.UUID | dt.timedelta):
        return str(v)
    raise TypeError(type(v).__name__)


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_value, sort_keys=False)


def _cast_isolating(col: pa.Array, target: pa.DataType, route: str, name: str) -> tuple[pa.Array, list[int]]:
    """``col`` cast, with the values that do not cast as NULL, and their positions."""
    import pyarrow as pa

    bad: list[int] = []
    parts: list[pa.Array] = []

    def go(start: int, length: int) -> None:
        piece = col.slice(start, length)
        try:
            parts.append(cast_column(piece, target, route, name, name_value=False))
        except ObjectError:
            if length == 1:
                bad.append(start)
                parts.append(pa.nulls(1, target))
                return
            half = length // 2
            go(start, half)
            go(start + half, length - half)

    go(0, len(col))
    return pa.concat_arrays(parts) if parts else pa.array([], target), bad


class Shaper:
    """Casts an object's result batches to the table schema under the route's policy,
    counting rescued and rejected rows; ``observe`` sees each shaped batch (expectations)."""

    def __init__(self, route: Route, schema: pa.Schema, rejects: RowRejects | None,
                 observe: Callable[[pa.RecordBatch], None] | None = None,
                 fill: dict[str, str] | None = None) -> None:
        self.route = route
        self.schema = schema  # the Arrow schema of the table metadata the files are written with
        # Columns lakeroute sets per object (mode replace: the writing object).
        self.fill = fill or {}
        # mode upsert's CDC operation column becomes the delete flag in staging: a column the
        # table has (declared, or kept from before) is cast and written like any other; one it
        # lacks is passed on to staging as it is, never written.
        op = route.target.operation
        self.passthrough = op.column if op is not None and schema.get_field_index(op.column) < 0 else None
        self.out_schema = schema
        self.policy = route.target.schema_policy
        self.rows_mode = route.source.on_error == "rows" and rejects is not None
        self.rejects = rejects
        self.observe = observe
        self.rescued = 0
        self.rejected = 0
        self.json_columns: dict[str, Any] = {}  # result columns holding DuckDB JSON: their shapes
        self._row = 0  # result rows seen, for the rejects of values that do not cast

    def reader(self, reader: pa.RecordBatchReader, finish: Callable[[], None] | None = None
               ) -> pa.RecordBatchReader:
        import pyarrow as pa

        self.json_columns = json.loads((reader.schema.metadata or {}).get(JSON_COLUMNS_KEY, b"{}"))
        op = self.passthrough
        if op is not None and reader.schema.get_field_index(op) >= 0:
            self.out_schema = self.schema.append(reader.schema.field(op))
        else:
            self.passthrough = None

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                shaped = self.shape(batch)
                if self.observe is not None:
                    self.observe(shaped)
                yield shaped
            if finish is not None:
                finish()

        return pa.RecordBatchReader.from_batches(self.out_schema, batches())

    def _original(self, column: str, value: Any) -> Any:
        """A value as the file had it: JSON text parsed back (DuckDB JSON, at any depth)."""
        return original(value, self.json_columns.get(column))

    def _fail_extra(self, extra: list[str]) -> ObjectError:
        return ObjectError("schema", f"route {self.route.name}: result columns {', '.join(extra)} are not "
                           f"in table {self.route.target.table} (schema: {self.policy}); declare them in "
                           "target.columns, drop them in the SQL, or set target.schema: rescue to keep "
                           f"them in {RESCUED_COLUMN}" + (" or evolve to add them" if self.policy == "strict"
                                                          else ""), self.route.name)

    def shape(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        route, n = self.route.name, batch.num_rows
        kept = None
        if self.passthrough is not None:
            kept = batch.column(batch.schema.get_field_index(self.passthrough))
            shape = self.json_columns.get(self.passthrough)
            kept = kept if shape is None else as_text(kept, shape)
            batch = batch.drop_columns([self.passthrough])
        names = batch.schema.names
        extra = [c for c in names if self.schema.get_field_index(c) < 0]
        rescue = self.policy == "rescue"
        if extra and not rescue:
            raise self._fail_extra(extra)
        rescued: dict[int, dict[str, Any]] = {}
        rejected: dict[int, Reject] = {}
        arrays: list[pa.Array] = []
        for f in self.schema:
            if rescue and f.name == RESCUED_COLUMN:
                arrays.append(pa.nulls(n, f.type))  # filled below
                continue
            if f.name not in names:
                fill = self.fill.get(f.name)
                arrays.append(pa.nulls(n, f.type) if fill is None else pa.array([fill] * n, f.type))
                continue
            raw = batch.column(names.index(f.name))
            shape = self.json_columns.get(f.name)
            col = raw if shape is None else as_text(raw, shape)  # JSON values as their text
            try:
                arrays.append(cast_column(col, f.type, route, f.name,
                                          name_value=not (rescue or self.rows_mode)))
                continue
            except ObjectError as e:
                if not (rescue or self.rows_mode):
                    raise ObjectError("schema", f"{e.message} (table {self.route.target.table}, schema: "
                                      f"{self.policy}); cast or filter it in the SQL, set target.schema: "
                                      f"rescue to keep such values in {RESCUED_COLUMN}, or source.on_error: "
                                      "rows to set such rows aside", route) from e
                reason = e.message.removeprefix(f"route {route}: ")
            cast, bad = _cast_isolating(col, f.type, route, f.name)
            arrays.append(cast)
            for i in bad:
                value = self._original(f.name, python_values(raw.slice(i, 1))[0])
                if rescue:
                    rescued.setdefault(i, {})[f.name] = value
                else:
                    got = rejected.get(i)
                    why = f"{f.name}: {value!r:.80} does not cast to {f.type}"
                    if got is None:
                        rejected[i] = Reject(None, why, None, f.name, "table-cast")
                    else:
                        got.reason += f"; {why}"
            if not bad:  # the whole column failed but no value alone does: not a value problem
                raise ObjectError("schema", reason, route)
        if rescue:
            for c in extra:
                for i, value in enumerate(python_values(batch.column(names.index(c)))):
                    if value is not None:
                        rescued.setdefault(i, {})[c] = self._original(c, value)
            if rescued:
                text = [to_json(rescued[i]) if i in rescued else None for i in range(n)]
                arrays[self.schema.get_field_index(RESCUED_COLUMN)] = pa.array(text, pa.string())
                self.rescued += len(rescued)
        if kept is not None:
            arrays.append(kept)
        out = pa.RecordBatch.from_arrays(arrays, schema=self.out_schema)
        if rejected:
            at = sorted(rejected)
            part = batch.take(pa.array(at))  # the rejected rows only, as the result had them
            values = {name: python_values(column) for name, column in zip(names, part.columns, strict=True)}
            for j, i in enumerate(at):
                r = rejected[i]
                r.text = to_json({name: values[name][j] for name in names})
                r.reason = f"result row {self._row + i + 1}: {r.reason}"
            assert self.rejects is not None
            self.rejects.items.extend(rejected[i] for i in sorted(rejected))
            self.rejected += len(rejected)
            keep = pa.array([i not in rejected for i in range(n)])
            out = out.filter(keep)
        self._row += n
        return out


def shaped(route: Route, schema: pa.Schema, reader: pa.RecordBatchReader, staged: Any,
           rejects: RowRejects | None) -> pa.RecordBatchReader:
    """The object's result as the table's rows under its policy, checked against its
    expectations; when the stream ends, the counts are on ``staged`` (``Staged.rescued``,
    ``Staged.rejected``) and a failed expectation raises."""
    from .expectations import Checker

    checker = Checker(route.target.expect, route.name, route.target.table) if route.target.expect else None
    fill = {OBJECT_COLUMN: staged.object_name} if route.target.mode == "replace" else None
    shaper = Shaper(route, schema, rejects, checker.observe if checker else None, fill)

    def finish() -> None:
        staged.rescued = shaper.rescued
        staged.rejected = len(rejects) if rejects is not None else 0
        if checker is not None:
            checker.finish()

    return shaper.reader(reader, finish)


def committed_message(staged: Any) -> str:
    """What an outcome says about a committed object: rows, and what was changed or set aside."""
    parts = [f"{staged.rows} rows"]
    if staged.rejected:
        parts.append(f"{staged.rejected} rejected -> {staged.rejects_to}")
    if staged.rescued:
        parts.append(f"{staged.rescued} with {RESCUED_COLUMN}")
    parts += list(staged.changes)
    return "; ".join(parts)
