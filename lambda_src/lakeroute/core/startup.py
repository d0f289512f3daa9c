"""Cold start: a process's heavy imports done once, with the cyclic garbage collector paused.

A cold start creates about a million long-lived objects (pyiceberg's, SQLAlchemy's and the
route model's classes and schemas, pyarrow's and DuckDB's bindings). CPython's collector is
triggered by allocations, so while they are created it walks the growing heap again and again
and finds nothing to free: module-level objects live as long as the process. That walking was
a fifth of a cold start's CPU (benchmarks/ ``coldstart``). Pausing the collector for the
imports and then freezing what they left (``gc.freeze``: out of the generations the collector
walks, for good) removes it; afterwards the collector runs as before, only no longer re-walking
the modules' objects on every full collection.

Nothing here changes what is imported: the stack a pipeline needs is imported at its set-up
instead of by its first object, so the pause covers it.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# What every ingest imports by its first object: the reader, Arrow, PyIceberg's writer.
STACK = ("duckdb", "pyarrow", "pyiceberg.io.pyarrow")
# What a commit of staged files imports (the commit lane): PyIceberg's writer and file IO.
COMMIT_STACK = ("pyarrow", "pyiceberg.io.pyarrow")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The block runs with the collector paused; what it left is frozen after it, error or not."""
    if not gc.isenabled():  # nested, or a process that runs without the collector: leave it be
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


@contextmanager
def first_use(modules: tuple[str, ...] = STACK) -> Iterator[None]:
    """The first time in a process (some of ``modules`` not imported yet): import them, then run
    the block, all with the collector paused. Later (all imported): just the block, so a long
    process that sets up many pipelines (tests, ``watch``) freezes nothing more."""
    if all(name in sys.modules for name in modules):
        yield
        return
    with gc_paused():
        for name in modules:
            importlib.import_module(name)
        yield
