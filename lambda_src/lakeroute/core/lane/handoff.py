"""The lane's entrance: a staging batch's objects for one table, handed off durably."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import records

log = logging.getLogger("lakeroute.lane")

if TYPE_CHECKING:
    from ..pipeline.plans import TablePlan
    from .store import LaneStore


@dataclass
class LaneHandOff:
    """``core.pipeline.plans.HandOff`` over a ``LaneStore``: blobs first, then the record,
    then the signal. A crash before the record leaves only unreferenced files (``maintain``
    removes orphans); after it, the committer's own listing finds the hand-off."""

    store: LaneStore

    def hand_off(self, table: str, plan: TablePlan) -> None:
        arrivals = {id(s): s.picked_at for _, s in plan.staged if s.picked_at}
        hid, body = records.write(plan.home.io, self.store.root, table, plan, arrivals)
        self.store.publish(table, hid, body)
        try:
            self.store.signal(table, hid)
        except Exception as e:  # the record is durable: the next signal or the sweep finds it
            log.warning("hand-off %s for %s is waiting without a signal (the sweep signals it): %s", hid, table, e)
