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
