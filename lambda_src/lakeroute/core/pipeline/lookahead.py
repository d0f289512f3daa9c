"""One ledger lookup per table per batch, not one per object.

Before the batch's objects are read, each is resolved (S3: its HEAD, locally: its private
link and hash; work every object needs anyway) and routed, and the ledger is asked once per
table for every version the batch brings (``core.ledger.rule.held``: DynamoDB's BatchGetItem
takes 100 keys a call, SQLite one query). Each object then finds its answer in its plan.

Only an optimisation: whatever fails here (resolving, routing, opening the table, the ledger)
is left for the object's own journey to meet again, where it fails that object alone. Objects
of fan-out routes keep their own lookups. The resolved objects are handed to the journey, so
each is released exactly once (``Resolved.release_rest``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ledger.rule import held
from ..objects import ObjectSource, SourceObject
from ..routes import Route, RouteTable
from .outcomes import ObjectRef
from .plans import TablePlan, open_plan

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from ..ledger.rule import Ledger

log = logging.getLogger("lakeroute.pipeline")

Ask = tuple[str, str, "int | None"]  # (ledger id, content id, uploaded at): held()'s question


@dataclass
class Resolved:
    """The batch's objects resolved ahead, by position in the batch."""

    source: ObjectSource
    objects: dict[int, SourceObject] = field(default_factory=dict)

    def take(self, index: int) -> SourceObject | None:
        return self.objects.pop(index, None)

    def release_rest(self) -> None:
        """Objects never handed to a journey (not started: the time budget, an interruption)."""
        while self.objects:
            _, obj = self.objects.popitem()
            try:
                self.source.release(obj)
            except Exception as e:
                log.warning("could not release %s: %s", obj.uri, e)


def look_ahead(refs: Sequence[ObjectRef], routes: RouteTable, source: ObjectSource, catalog: Catalog,
               ledger: Ledger, plans: dict[str, TablePlan]) -> Resolved:
    """Resolve and route the batch; fill each table plan's ``answers`` with one ledger lookup."""
    resolved = Resolved(source)
    asks: dict[str, tuple[Route, list[Ask]]] = {}
    for i, ref in enumerate(refs):
        if routes.ignored(ref.bucket, ref.key) is not None:
            continue
        try:
            obj = source.resolve(ref.bucket, ref.key, ref.version)
        except Exception:  # the journey resolves it again and says what is wrong
            continue
        resolved.objects[i] = obj
        try:
            route = routes.match(ref.bucket, ref.key, lambda o=obj: source.metadata(o))  # type: ignore[misc]
        except Exception:
            continue
        if route.targets is None:
            ask = (obj.ledger_id(route.target.mode), obj.source_id, obj.uploaded_ms)
            asks.setdefault(route.target.table, (route, []))[1].append(ask)
    for name, (route, wanted) in asks.items():
        try:
            plan = plans.get(name)
            if plan is None:
                plan = plans[name] = open_plan(catalog, ledger, route)
            if plan.state is None or plan.blocked:
                continue
            found = held(ledger, plan.state, name, wanted)
        except Exception as e:  # each object's journey meets it again, and fails alone
            log.info("no look-ahead for %s: %s", name, e)
            continue
        plan.answers.update({ask: ask[0] in found for ask in wanted})
    return resolved
