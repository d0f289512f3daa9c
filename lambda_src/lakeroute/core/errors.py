"""lakeroute's own exceptions.

Two families: configuration errors (a bad route file, a bad option: exit 2, nothing runs)
and per-object failures (a bad file, a SQL error, a schema mismatch: that object is
quarantined, the others go on). Transient failures (commit conflicts, throttling) are
retried and only surface when the retries run out. Library errors are translated at the
boundary with ``raise ... from e`` so messages stay actionable.
"""

from __future__ import annotations


class LakerouteError(Exception):
    """Base of every error lakeroute raises on purpose."""


class ConfigError(LakerouteError):
    """A route file, option or environment is wrong; the message names it and the fix."""


class ObjectError(LakerouteError):
    """One object cannot be ingested; it is quarantined with this stage and message.

    ``stage`` is one of: route, read, sql, schema, commit.
    """

    def __init__(self, stage: str, message: str, route: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.route = route


class NoRouteError(ObjectError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__("route", f"no route for {bucket}/{key}")


class TransientError(LakerouteError):
    """Worth retrying later (commit conflicts that outlived their retries, throttling)."""


def translated(e: BaseException, stage: str, route: str | None, *, infra: bool = False) -> BaseException:
    """Any exception of one object's journey as ours: a route setting only the run reveals,
    or an unforeseen error (Rust panics derive from BaseException), ends that object only
    (an ObjectError at ``stage``); a failure of the infrastructure (``infra``, or an OSError
    while writing) is retried. Our own errors are returned as they are."""
    if isinstance(e, ConfigError):
        return ObjectError("route", str(e).replace("\n", "; "), route)
    if isinstance(e, LakerouteError):
        return e
    what = f"{type(e).__name__}: {' '.join(str(e).split())[:400] or type(e).__name__}"
    if infra or (stage == "write" and isinstance(e, OSError)):
        return TransientError(f"{stage}: {what}")
    return ObjectError(stage, f"route {route}: {what}" if route else what, route)
