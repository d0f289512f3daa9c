"""One target table within a batch, and where an object's journey stands.

A ``TablePlan`` holds the table (or the one its first commit creates), the metadata staged
files are written against, the ledger's view of it and the objects staged for its commit.
A ``Step`` names the stage an object reached, so an unforeseen error is told apart: an
object's fault (quarantine) or the infrastructure's (retry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..errors import translated
from ..ledger.rule import Ledger, TableState, reconcile
from ..shape.features import unsupported
from ..shape.renames import refuse_renamed
from ..shape.schema_plan import plan_table
from ..shape.tables import ensure_table, provisional_table

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import StagedTable, Table
    from pyiceberg.table.metadata import TableMetadata

    from ..objects import SourceObject
    from ..routes import Route, Target
    from ..write.staging import Staged, Writer
    from .outcomes import ObjectRef

# Stages whose unforeseen errors are about the infrastructure, not the object: retry.
INFRA_STAGES = ("table", "ledger")
# Snapshot summary: the commit-lane hand-offs a commit carries (JSON list of ids), so that a
# committer that crashed after its commit knows them committed and never deletes their files.
HANDOFFS_PROP = "lakeroute.handoffs"


class HandOff(Protocol):
    """The commit lane's entrance (``core.lane``): takes a table's staged objects, durably."""

    def hand_off(self, table: str, plan: TablePlan) -> None: ...


@dataclass
class TablePlan:
    """One target table within a batch (see the module docstring)."""

    target: Target
    table: Table | None = None
    provisional: StagedTable | None = None
    state: TableState | None = None
    metadata: TableMetadata | None = None
    writer: Writer | None = None
    staged: list[tuple[ObjectRef, Staged]] = field(default_factory=list)
    blocked: str | None = None  # why nothing may be written (declared types or names differ, unsupported table)
    tail_bytes: int = 0  # the staged objects' rows held in memory for shared data files
    handoffs: list[str] = field(default_factory=list)  # commit lane: the hand-offs this commit carries
    # (ledger id, content id, uploaded at) -> held: the batch's one ledger lookup (core.pipeline.lookahead)
    answers: dict[tuple[str, str, int | None], bool] = field(default_factory=dict)
    # (route, result schema, table metadata) that evolve_table found nothing to change for: the
    # next object with the same result skips it (a pure function of the three)
    settled: tuple[str, pa.Schema, TableMetadata] | None = None

    @property
    def home(self) -> Table:
        """Whichever table object can write and delete this table's files."""
        home = self.table if self.table is not None else self.provisional
        assert home is not None
        return home

    @property
    def evolve(self) -> bool:  # the commit may change the schema (core.shape.policy.growth)
        return self.target.schema_policy != "strict"

    def prepare(self, catalog: Catalog, result: pa.Schema) -> None:
        """The table to write into exists (declared) or is planned (from the first result).
        A result column by the old name of a column another writer renamed is refused, in
        every schema policy (``core.shape.renames``)."""
        if self.metadata is not None:
            refuse_renamed(self.metadata, result.names, self.target.table, None)
        if self.table is not None or self.provisional is not None:
            return
        if self.target.columns is not None:
            self.table = ensure_table(catalog, self.target)
            self.metadata = self.table.metadata
        else:
            self.provisional = provisional_table(catalog, self.target, result)
            self.metadata = self.provisional.metadata

    def is_settled(self, route: str, result: pa.Schema) -> bool:
        """Whether evolve_table already found nothing to change for this route's result."""
        last = self.settled
        return last is not None and last[0] == route and last[2] is self.metadata and \
            last[1].equals(result, check_metadata=True)

    def adopt(self, evolved: TableMetadata) -> None:
        """Write against ``evolved`` (the result's new columns, not committed yet) from now on."""
        from pyiceberg.table import StagedTable

        self.metadata, self.writer = evolved, None
        if self.provisional is not None:
            p = self.provisional
            self.provisional = StagedTable(identifier=p.name(), metadata=evolved,
                                           metadata_location=p.metadata_location, io=p.io, catalog=p.catalog)


def open_plan(catalog: Catalog, ledger: Ledger, route: Route) -> TablePlan:
    """The plan of ``route``'s table: loaded and reconciled with the ledger when it exists."""
    from pyiceberg.exceptions import NoSuchIcebergTableError, NoSuchTableError

    target = route.target
    plan = TablePlan(target)
    # One read of the table, not two: a metastore catalog's table_exists loads it too (in AWS
    # a Glue GetTable and an S3 GET of the metadata, per table per batch). A table of that
    # name that is not Iceberg (a Hive table in Glue) is not "missing": its error goes up.
    try:
        plan.table = catalog.load_table(target.table)
    except NoSuchIcebergTableError:
        raise
    except NoSuchTableError:
        pass
    if plan.table is not None:
        plan.metadata = plan.table.metadata
        plan.state = reconcile(plan.table, target.table, ledger)
        # Never write into a column whose table type (or name) differs from the declared one, nor
        # into a table whose features another engine gave it lakeroute cannot write (format v3, ...).
        clash = [c.describe() for c in plan_table(route, plan.table) if c.kind in ("type", "renamed")]
        plan.blocked = "; ".join(clash) or unsupported(target.table, plan.table.metadata, plan.table.io, target.mode)
    return plan


class Step:
    """Where an object's journey is, for the stage of an unforeseen error; and the object
    as fetched (read by every target of a fan-out, released once)."""

    def __init__(self) -> None:
        self.stage = "read"
        self.fetched: SourceObject | None = None

    def translated(self, e: BaseException, route: str | None) -> BaseException:
        """``e`` as lakeroute's error for this stage (``core.errors.translated``)."""
        return translated(e, self.stage, route, infra=self.stage in INFRA_STAGES)
