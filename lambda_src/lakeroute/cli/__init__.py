"""The `lakeroute` command: a thin shell over the pipeline (contract: shared/DESIGN.md §4).

``app`` holds the Typer app, global options and shared output; one module per command
group: ``ingest`` (validate, ingest, watch), ``warehouse`` (query, tables, history),
``setup`` (demo, sync). Shells depend on adapters and core, never the other way round.
"""

from __future__ import annotations

import os

from . import ingest, recovery, setup, warehouse  # noqa: F401  (registers the commands, in help order)
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    os.environ.setdefault("PYICEBERG_DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE", "true")
    app()
