"""The time budget of one invocation: which objects may still start before the deadline.

A Lambda that is killed at its timeout commits nothing and answers nothing: every message
of the batch comes back, and the good ones end in the DLQ with the bad. So the pipeline
starts an object only when the time left covers it: an estimate from its size (from the
event) at the throughput measured so far in this container (a conservative default before
the first object), plus a fixed per-object cost, keeping a reserve for the commit(s) and
the answer to SQS. Objects that do not fit are failed back without being read; what was
staged commits. An object already running gets at most the time left (the engine's
watchdog interrupts it), and an object stopped that way is failed back too, not
quarantined: it was not its fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Budget:
    deadline: float  # time.monotonic() by which every object must be staged
    reserve: float = 5.0  # kept back for the commits and the response
    per_object: float = 0.3  # resolve + route + connect + commit share, seconds
    default_rate: float = 20e6  # bytes per second before anything was measured
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _bytes: int = 0
    _seconds: float = 0.0

    def now(self) -> float:
        return self.clock()

    @property
    def rate(self) -> float:
        if self._seconds <= 0 or self._bytes < 1_000_000:
            return self.default_rate
        return max(1e5, self._bytes / self._seconds)

    def estimate(self, size: int | None) -> float:
        return self.per_object + (size or 0) / self.rate

    def left(self) -> float:
        """Seconds an object may still run."""
        return self.deadline - self.reserve - self.now()

    def allows(self, size: int | None) -> bool:
        return self.estimate(size) <= self.left()

    def measured(self, size: int | None, seconds: float) -> None:
        if size:
            self._bytes += size
            self._seconds += max(0.0, seconds)
