"""One thread that fires the per-object time limits (``core.engine``'s watchdogs)."""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from typing import Protocol


class Watchdog(Protocol):
    cancelled: bool

    def _fire(self) -> None: ...


class Alarms:
    """One daemon thread for every watchdog of the process: a thread per object (what
    threading.Timer does) costs more than reading a small object."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Watchdog]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wakes_at = float("inf")  # when the thread wakes up by itself (inf: only when told)

    def add(self, at: float, dog: Watchdog) -> None:
        with self._cv:
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._heap, self._pid, self._wakes_at = [], os.getpid(), float("inf")
                self._thread = threading.Thread(target=self._run, name="lakeroute-watchdog", daemon=True)
                self._thread.start()
            while self._heap and self._heap[0][2].cancelled:  # done objects' alarms, not left to pile up
                heapq.heappop(self._heap)
            heapq.heappush(self._heap, (at, next(self._ids), dog))
            # Told only when due before the thread wakes up anyway: the next object's alarm is
            # mostly later than the previous (cancelled) one the thread waits for, and waking
            # the thread per object costs a switch and the GIL.
            if self._heap[0][2] is dog and at < self._wakes_at:
                self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wakes_at = float("inf")
                    self._cv.wait()
                    continue
                at, _, dog = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wakes_at = at
                    self._cv.wait(wait)
                    continue
                self._wakes_at = float("inf")
                heapq.heappop(self._heap)
            if not dog.cancelled:
                dog._fire()
