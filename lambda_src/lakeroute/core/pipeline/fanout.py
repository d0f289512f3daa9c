"""Fan-out (``targets:``): one object, several target tables, each exactly once on its own."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from ..errors import ObjectError, TransientError
from .outcomes import Outcome

if TYPE_CHECKING:
    from ..objects import SourceObject
    from ..routes import Route
    from .outcomes import ObjectRef
    from .plans import Step, TablePlan

log = logging.getLogger("lakeroute.pipeline")


class Journeys(Protocol):
    """What fan-out asks of the pipeline (``core.pipeline.ingest.Pipeline``)."""

    def journey(self, ref: ObjectRef, obj: SourceObject, route: Route, plans: dict[str, TablePlan],
                seen: set[str], step: Step) -> Outcome | None: ...

    def quarantined(self, ref: ObjectRef, obj: SourceObject | None, route: Route | None,
                    e: ObjectError, table_name: str | None = None) -> Outcome: ...


def fan_out(pipeline: Journeys, ref: ObjectRef, obj: SourceObject, route: Route, plans: dict[str, TablePlan],
            seen: set[str], step: Step) -> list[Outcome]:
    """``targets:``: each target's journey on its own, so that a failure in one quarantines
    the object for that target only (the message names the table) and the others commit.
    The object is fetched once; the ledger is per table, so a target that committed is
    skipped on redelivery while a failed one is tried again."""
    outcomes: list[Outcome] = []
    for leg in route.legs():
        table = leg.target.table
        try:
            try:
                one = pipeline.journey(ref, obj, leg, plans, seen, step)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:
                err = step.translated(e, leg.name)
                if err is e:
                    raise
                raise err from e
        except ObjectError as e:
            e.message = f"target {table}: {e.message}"
            outcomes.append(pipeline.quarantined(ref, obj, leg, e))
        except TransientError as e:
            log.warning("will retry %s/%s for %s: %s", ref.bucket, ref.key, table, e)
            outcomes.append(Outcome(ref, "failed", f"target {table}: {e}", leg.name, table,
                                    source_id=obj.source_id, stage=step.stage))
        else:
            if one is not None:
                outcomes.append(one)
    return outcomes
