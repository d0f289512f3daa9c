"""Fan-out (``targets:``): one object, several target tables, each exactly once on its own."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import ObjectError, TransientError, translated

if TYPE_CHECKING:
    from .objects import SourceObject
    from .pipeline import ObjectRef, Outcome, Pipeline
    from .routes import Route

log = logging.getLogger("lakeroute.pipeline")


def fan_out(pipeline: Pipeline, ref: ObjectRef, obj: SourceObject, route: Route, plans: dict[str, Any],
            seen: set[str], step: Any) -> list[Outcome]:
    """``targets:``: each target's journey on its own, so that a failure in one quarantines
    the object for that target only (the message names the table) and the others commit.
    The object is fetched once; the ledger is per table, so a target that committed is
    skipped on redelivery while a failed one is tried again."""
    from .pipeline import _INFRA_STAGES
    from .pipeline import Outcome as _Outcome

    outcomes: list[Outcome] = []
    for leg in route.legs():
        table = leg.target.table
        try:
            try:
                one = pipeline._journey(ref, obj, leg, plans, seen, step)
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except BaseException as e:
                err = translated(e, step.stage, leg.name, infra=step.stage in _INFRA_STAGES)
                if err is e:
                    raise
                raise err from e
        except ObjectError as e:
            e.message = f"target {table}: {e.message}"
            outcomes.append(pipeline._quarantine(ref, obj, leg, e))
        except TransientError as e:
            log.warning("will retry %s/%s for %s: %s", ref.bucket, ref.key, table, e)
            outcomes.append(_Outcome(ref, "failed", f"target {table}: {e}", leg.name, table,
                                    source_id=obj.source_id, stage=step.stage))
        else:
            if one is not None:
                outcomes.append(one)
    return outcomes
