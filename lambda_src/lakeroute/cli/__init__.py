"""The `lakeroute` command: a thin shell over the pipeline (contract: shared/DESIGN.md §4).

``app`` holds the Typer app, global options and shared output; one module per command
group: ``ingest`` (validate, ingest, watch), ``warehouse`` (query, tables, history),
``setup`` (demo, sync), ``maintain``, ``recovery`` (replay, reset, preview),
``quarantine`` (ls, show, dismiss, purge), ``backfill``. Shells depend on adapters and core, never the other way round.
"""

from __future__ import annotations

import os
import sys

from ..core.errors import ConfigError, one_line
from ..core.startup import gc_paused

with gc_paused():  # typer and every command module: the command's cold start (core.startup)
    from . import backfill, ingest, maintain, quarantine, recovery, setup, warehouse  # noqa: F401  (registers the commands, in help order)
    from .app import app
    from .connect import connect  # noqa: F401  (registers `connect`, after the commands above in help)

__all__ = ["app", "main"]


def main() -> None:
    """The console script: no traceback ever reaches the user (one ``error:`` line, exit 1)."""
    os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except ConfigError as e:  # something to change (a file, a setting) that no command caught
        sys.stderr.write(f"error: {one_line(e)}\n")
        sys.exit(2)
    except Exception as e:  # a library error no command foresaw: say what, not where
        from botocore.exceptions import NoRegionError

        if isinstance(e, NoRegionError):  # a client no --stage check guarded: the same fix
            from ..aws.clients import NO_REGION

            sys.stderr.write(f"error: {NO_REGION}\n")
            sys.exit(2)
        text = one_line(e)
        sys.stderr.write(f"error: {type(e).__name__}: {text}\n")
        sys.exit(1)
