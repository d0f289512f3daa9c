"""The target half of a route: table, write mode and its settings, schema policy, columns,
partitioning, expectations, maintenance; and fan-out items (``targets:``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .column_types import check_type
from .fields import IDENT_RE, TABLE_RE, TRANSFORM_RE, StrictModel, nonempty_sql, partition_column

# How long a CDC delete is remembered (its tombstone), from its commit. 14 days: the longest a
# change can wait in lakeroute's own queues (the dead-letter queue keeps a message 14 days,
# SQS's maximum, counted from its first enqueue; the ingest queue 4), so any change the stack
# redelivers or redrives late still meets the delete it is older than.
TOMBSTONE_DAYS = 14.0


class Operation(StrictModel):
    """CDC files: rows whose ``column`` holds one of ``delete`` delete their key. With
    ``order_by``, a delete leaves a tombstone for ``tombstone_days`` (``core.write.tombstones``):
    a change older than the delete that arrives later does not bring the key back."""

    column: Annotated[str, Field(pattern=IDENT_RE)]
    delete: Annotated[list[str], Field(min_length=1)]
    tombstone_days: Annotated[float, Field(ge=0, le=36_500)] = TOMBSTONE_DAYS  # 0: no tombstones


MODES = ("append", "upsert", "replace", "overwrite")
# mode replace: which object (logical bucket/key) wrote each row; its exact per-file bounds
# let a new version find the files of the previous one from the manifests alone.
OBJECT_COLUMN = "_lakeroute_object"


class Maintenance(StrictModel):
    """Table maintenance (``core.maintenance``): what ``lakeroute maintain`` and the scheduled
    maintenance keep the table to, and when an ingest commit expires snapshots by itself.

    Defaults: 128 MB data files (what DuckDB, Athena and Spark read well, and one compaction
    bin of that size fits a 3 GB function); at most the newest 20 snapshots and none older
    than 7 days: PyIceberg copies the whole metadata several times per commit, so a commit's
    cost grows with the snapshots kept (~1.5 ms each, benchmarks/ "maintenance"), and 20
    keeps the 1,000th commit within 1.5x of the 10th; orphans only after 3 days (no commit
    takes that long, so one in flight is never harmed).
    """

    target_file_mb: Annotated[int, Field(ge=1, le=4096)] = 128
    keep_snapshots: Annotated[int, Field(ge=1, le=100_000)] = 20
    keep_days: Annotated[float, Field(gt=0, le=36_500)] = 7
    orphan_days: Annotated[float, Field(ge=1, le=36_500)] = 3
    # Expire right after an ingest commit once keep_snapshots is passed by a margin (metadata only).
    auto_expire: bool = True


RESCUED_COLUMN = "_rescued_data"  # schema: rescue: per row, JSON of what did not fit


class Expect(StrictModel):
    """Checks on a file's rows (cast to the table) before they commit; a failing file is
    quarantined with the failed expectation and example rows (``core.expectations``)."""

    not_null: list[Annotated[str, Field(pattern=IDENT_RE)]] = Field(default_factory=list)
    unique: list[Annotated[str, Field(pattern=IDENT_RE)]] = Field(default_factory=list)  # together, per file
    accepted_values: dict[str, Annotated[list[str | int | float | bool], Field(min_length=1)]] = Field(
        default_factory=dict)
    min_rows: Annotated[int, Field(ge=0)] | None = None

    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.not_null, *self.unique, *self.accepted_values]))


class Commit(StrictModel):
    """The table's commit-lane triggers: commit what waits when it reaches ``max_files``
    objects, ``max_mb`` of staged data, or when the oldest has waited ``max_seconds`` —
    whichever comes first. Unset fields take the stage's defaults (``cdk.json``), then
    lakeroute's (``core.lane.triggers``)."""

    max_files: Annotated[int, Field(ge=1, le=100_000)] | None = None
    max_mb: Annotated[float, Field(gt=0, le=100_000)] | None = None
    max_seconds: Annotated[float, Field(ge=0, le=3600)] | None = None


class Target(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    table: Annotated[str, Field(pattern=TABLE_RE)]
    # append: add rows; upsert: per key the newest row (by order_by, else the later commit);
    # replace: a new version of an object key replaces the rows its previous version wrote;
    # overwrite: the partitions present in the file (or the whole table) are replaced.
    mode: Literal["append", "upsert", "replace", "overwrite"] = "append"
    key: list[Annotated[str, Field(pattern=IDENT_RE)]] | None = None
    order_by: Annotated[str, Field(pattern=IDENT_RE)] | None = None
    operation: Operation | None = None
    overwrite: Literal["partitions", "table"] | None = None
    partition_by: list[str] = Field(default_factory=list)
    columns: dict[str, str] | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    # evolve: new columns added, types widened (int->long, float->double, decimal precision
    # up) in the commit of the rows; strict: the table never changes; rescue: what does not
    # fit goes, per row, into _rescued_data. Default: strict with columns, evolve without.
    # (`schema` is the file's spelling; the attribute name avoids pydantic's own `schema`.)
    schema_mode: Literal["evolve", "strict", "rescue"] | None = Field(default=None, alias="schema")
    expect: Expect | None = None
    commit: Commit | None = None  # commit-lane triggers (stage in parallel, commit per table)

    @property
    def schema_policy(self) -> str:
        return self.schema_mode or ("strict" if self.columns is not None else "evolve")

    @property
    def table_columns(self) -> dict[str, str] | None:
        """The declared table schema: ``columns``, plus the columns lakeroute manages:
        ``_rescued_data`` under rescue, ``_lakeroute_object`` in mode replace."""
        if self.columns is None:
            return None
        managed = {RESCUED_COLUMN: "string"} if self.schema_policy == "rescue" else {}
        if self.mode == "replace":
            managed[OBJECT_COLUMN] = "string"
        return {**self.columns, **managed}

    @model_validator(mode="after")
    def _schema_fields(self) -> Target:
        rescued = (self.columns or {}).get(RESCUED_COLUMN)
        if rescued is not None and (self.schema_policy != "rescue" or rescued != "string"):
            raise ValueError(f"{RESCUED_COLUMN} is the column schema: rescue fills (a string of "
                             "JSON); declare it only with schema: rescue, as string, or not at all")
        if self.expect is not None and self.columns is not None:
            unknown = [c for c in self.expect.columns() if c not in self.columns]
            if unknown:
                raise ValueError(f"expect names {', '.join(unknown)}, not in target.columns; "
                                 "declare them or fix the expectation")
        return self

    @model_validator(mode="after")
    def _upsert_properties(self) -> Target:
        # The auto upsert mode's thresholds (core.write.merge_on_read.choose_mode)
        for name in ("lakeroute.upsert.auto-rows-per-batch-row", "lakeroute.upsert.auto-min-bytes"):
            value = self.properties.get(name)
            if value is None:
                continue
            try:
                ok = float(value) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"properties: {name} is {value!r}; write a number >= 0 (as a string)")
        return self

    @model_validator(mode="after")
    def _mode_fields(self) -> Target:
        if self.mode == "upsert":
            if not self.key:
                raise ValueError("mode 'upsert' needs key: [columns] (the row identity)")
            if len(set(self.key)) != len(self.key):
                raise ValueError(f"key {self.key} names a column twice")
            if self.order_by in self.key:
                raise ValueError(f"order_by {self.order_by!r} is a key column; order by a version "
                                 "or timestamp column instead")
            if self.operation is not None and self.operation.column in self.key:
                raise ValueError(f"operation column {self.operation.column!r} is a key column")
            if (self.operation is not None and self.order_by is None
                    and "tombstone_days" in self.operation.model_fields_set):
                raise ValueError("operation.tombstone_days needs order_by: without an order the later "
                                 "commit wins and a delete leaves no tombstone; add order_by or remove "
                                 "tombstone_days")
        else:
            for name in ("key", "order_by", "operation"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to mode 'upsert' only (this target's mode "
                                     f"is {self.mode!r}); remove it or set mode: upsert")
        if self.mode == "overwrite" and self.overwrite is None:
            raise ValueError("mode 'overwrite' needs overwrite: partitions (replace the partitions "
                             "present in the file) or overwrite: table")
        if self.overwrite == "partitions" and not self.partition_by:
            raise ValueError("overwrite: partitions needs partition_by (an unpartitioned table "
                             "has one partition); for the whole table write overwrite: table")
        if self.mode != "overwrite" and self.overwrite is not None:
            raise ValueError(f"overwrite: {self.overwrite} applies to mode 'overwrite' only")
        if self.columns is not None and OBJECT_COLUMN in self.columns:
            raise ValueError(f"{OBJECT_COLUMN} is managed by lakeroute (mode replace): remove it "
                             "from target.columns")
        if self.columns is not None:
            for name in [*(self.key or []), *([self.order_by] if self.order_by else [])]:
                if name not in self.columns:
                    raise ValueError(f"{name!r} (key/order_by) is not in target.columns")
        return self

    @field_validator("partition_by")
    @classmethod
    def _partition(cls, v: list[str]) -> list[str]:
        for t in v:
            m = TRANSFORM_RE.match(t.strip())
            if m and m.group("n") is not None and int(m.group("n")) < 1:
                raise ValueError(f"bad partition transform {t!r}: {m.group('pfn')} needs N >= 1")
            if not TRANSFORM_RE.match(t.strip()):
                raise ValueError(
                    f"bad partition transform {t!r}; use col, identity(col), year|month|day|hour(col),"
                    " bucket(N, col) or truncate(N, col)"
                )
        return [t.strip() for t in v]

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return None
        for name in v:
            if not re.match(IDENT_RE, name):
                raise ValueError(f"column name {name!r} is not an identifier")
        return {k: check_type(t) for k, t in v.items()}

    @model_validator(mode="after")
    def _partition_columns_declared(self) -> Target:
        if self.columns is not None:
            for t in self.partition_by:
                col = partition_column(t)
                if col not in self.columns:
                    raise ValueError(f"partition column {col!r} is not in target.columns")
        return self

    @property
    def namespace(self) -> str:
        return self.table.split(".", 1)[0]


    def settings(self) -> dict[str, Any]:
        """What every route feeding this table must agree on."""
        return {"partition_by": self.partition_by, "columns": self.columns,
                "properties": self.properties, "mode": self.mode, "key": self.key,
                "order_by": self.order_by, "overwrite": self.overwrite, "schema": self.schema_policy,
                "operation": None if self.operation is None else self.operation.model_dump(),
                "maintenance": self.maintenance.model_dump(),
                "commit": None if self.commit is None else self.commit.model_dump()}


class FanTarget(Target):
    """One item of ``targets:`` (fan-out): a target plus the SQL that feeds it."""

    sql: str = "SELECT * FROM source"

    @field_validator("sql")
    @classmethod
    def _sql(cls, v: str) -> str:
        return nonempty_sql(v)
