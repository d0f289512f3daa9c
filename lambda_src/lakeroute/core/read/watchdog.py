"""The per-object time limit: a watchdog interrupts DuckDB when it passes (``core.read.engine``)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from ..errors import LakerouteError, ObjectError, TransientError
from ..routes import Route
from .alarms import Alarms
from .long_lines import long_line_message
from .messages import duckdb_text, error_stage, reader_message

if TYPE_CHECKING:
    import duckdb


ALARMS = Alarms()


class Watchdog:
    """Interrupts DuckDB when an object's time limit passes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float, by_deadline: bool = False) -> None:
        self.seconds = seconds
        self.by_deadline = by_deadline  # the limit is the batch's deadline, not the object's
        self.scrub: tuple[str, str] | None = None  # (scratch path, object) in error messages
        self.lines: tuple[str, str | None] | None = None  # a CSV's (path, compression): long lines named
        self.fired = False
        self.cancelled = False
        self.ended = False  # the stream was read to its end and passed its check
        self._con: duckdb.DuckDBPyConnection | None = con
        self._firing = threading.Lock()
        ALARMS.add(time.monotonic() + seconds, self)

    def _fire(self) -> None:
        with self._firing:  # never after cancel(): the connection may read the next object by then
            con = self._con
            if con is None:
                return
            self.fired = True
            with contextlib.suppress(Exception):
                con.interrupt()

    def cancel(self) -> None:
        # The alarm leaves the heap when it reaches the top; it holds no connection meanwhile.
        with self._firing:
            self.cancelled = True
            self._con = None

    def error(self, route: Route, e: BaseException) -> LakerouteError:
        if self.fired and self.by_deadline:
            return TransientError(f"route {route.name}: stopped after {self.seconds:.1f} s: the batch's "
                                  "time ran out; it is retried")
        if self.fired:
            return ObjectError("timeout", f"route {route.name}: timed out after {self.seconds:g} s "
                               "(source.timeout_seconds)", route.name)
        if isinstance(e, ObjectError):
            return e
        stage = error_stage(e) if type(e).__module__.startswith(("duckdb", "_duckdb")) else "read"
        message = long_line_message(str(e), *(self.lines or (None, None))) or reader_message(str(e)) or duckdb_text(e)
        if self.scrub is not None:  # the reader names lakeroute's scratch copy; say which object
            message = message.replace(*self.scrub)
        return ObjectError(stage, f"route {route.name}: {message}", route.name)
