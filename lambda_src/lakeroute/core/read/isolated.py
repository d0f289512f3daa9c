"""The child process of ``core.read.crash``: one object read as the parent would read it.

``python -m lakeroute.core.read.isolated`` reads a job (route, object, engine settings, the
seconds left, rows mode) as JSON on stdin, reads the object to the end and throws the rows
away, and prints one JSON line: ``{"rows": n}``, or the read's error (``{"stage", "message"}``
or ``{"transient"}``). A crash ends only this process; the parent sees its signal.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ..errors import ObjectError, TransientError, one_line
from ..objects import SourceObject
from ..routes import Route
from .engine import Engine
from .rejects import RowRejects


def read(job: dict[str, Any]) -> dict[str, Any]:
    route = Route.model_validate(job["route"])
    obj = SourceObject(**job["object"])
    settings = dict(job["engine"])
    settings["s3_setup"] = [(stmt, list(params)) for stmt, params in settings.get("s3_setup", [])]
    engine = Engine(**settings, prepare_next=False, reuse=False)
    seconds = job.get("seconds")
    until = None if seconds is None else time.monotonic() + float(seconds)
    rejects = RowRejects() if job.get("rows") else None
    try:
        with engine.run(route, obj, until=until, rejects=rejects) as reader:
            rows = sum(batch.num_rows for batch in reader)
    except ObjectError as e:
        return {"stage": e.stage, "message": e.message}
    except TransientError as e:
        return {"transient": str(e)}
    except Exception as e:  # reported as the parent would have met it
        return {"stage": "read", "message": f"route {route.name}: {type(e).__name__}: {one_line(e)}"}
    return {"rows": rows}


def main() -> None:
    try:  # a crash here is expected now and then: no core file of DuckDB's memory in scratch
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):
        pass
    answer = read(json.load(sys.stdin))
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
