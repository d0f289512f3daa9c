"""The per-object time limits' one thread (core.read.alarms): an alarm due before the one the
thread waits for wakes it; a later one is picked up when the thread wakes by itself."""

from __future__ import annotations

import threading
import time

from lakeroute.core.read.alarms import Alarms

from tests.support.patience import patience


class Dog:
    def __init__(self) -> None:
        self.cancelled = False
        self.fired = threading.Event()

    def _fire(self) -> None:
        self.fired.set()


def test_an_earlier_alarm_wakes_the_thread_waiting_for_a_later_one() -> None:
    alarms = Alarms()
    late, soon = Dog(), Dog()
    alarms.add(time.monotonic() + 3600, late)
    time.sleep(0.05)  # let the thread settle into its hour-long wait (not a timing check)
    alarms.add(time.monotonic() + 0.1, soon)
    assert soon.fired.wait(patience(10))
    assert not late.fired.is_set()


def test_later_alarms_fire_without_being_told_and_cancelled_ones_never() -> None:
    alarms = Alarms()
    dogs = [Dog() for _ in range(5)]
    start = time.monotonic()
    for i, dog in enumerate(dogs):  # each later than the last: none of them notifies the thread
        alarms.add(start + 0.1 + 0.05 * i, dog)
    dogs[2].cancelled = True
    for i, dog in enumerate(dogs):
        if i != 2:
            assert dog.fired.wait(patience(10)), i
    assert not dogs[2].fired.is_set()


def test_the_next_objects_alarm_after_a_cancelled_one_still_fires() -> None:
    # The engine's pattern: object 1's alarm (due far later) is cancelled when it is read, then
    # object 2 adds its own, due later still, with a short time limit nowhere in sight.
    alarms = Alarms()
    first = Dog()
    alarms.add(time.monotonic() + 0.2, first)
    first.cancelled = True
    second = Dog()
    alarms.add(time.monotonic() + 0.3, second)
    assert second.fired.wait(patience(10))
    assert not first.fired.is_set()
