"""A process that is reading one object (inside its crash marker) when the test kills it.

``python -m tests.reliability.crash_worker ROOT BUCKET KEY``: resolves the object and its
route as the pipeline does, enters the engine's crash guard for it, prints ``reading`` and
waits to be killed (``kill -9``: no clean-up runs, as in a crash).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.support.workspace import Workspace


def main(root: str, bucket: str, key: str) -> None:
    pipe = Workspace(Path(root)).pipeline()
    obj = pipe.source.resolve(bucket, key)
    route = pipe.routes.match(bucket, key, lambda: {})
    guard = pipe.engine.crash_guard
    assert guard is not None
    with guard.watch(route, obj, pipe.engine.settings(), None, rows=False):
        print("reading", flush=True)
        time.sleep(120)


if __name__ == "__main__":
    main(*sys.argv[1:4])
