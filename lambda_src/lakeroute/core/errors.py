"""lakeroute's own exceptions.

Two families: configuration errors (a bad route file, a bad option: exit 2, nothing runs)
and per-object failures (a bad file, a SQL error, a schema mismatch: that object is
quarantined, the others go on). Transient failures (commit conflicts, throttling) are
retried and only surface when the retries run out. Library errors are translated at the
boundary with ``raise ... from e`` so messages stay actionable.
"""

from __future__ import annotations

ELLIPSIS = "…"
MESSAGE_CHARS = 400  # an error message's length in outcomes, logs and the CLI
# A "word" longer than this (a pasted line of data, a path with no spaces) is shown by its
# start: a message of one 3 MB token must not become 400 characters of it.
LONG_WORD = 80


def shortened(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters, cut only between words, with an
    ellipsis where something was left out. When it is too long, a word longer than
    ``LONG_WORD`` first keeps only its start and an ellipsis; a single word longer than
    ``limit`` is the one case cut inside a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    line = " ".join(w if len(w) <= LONG_WORD else w[:LONG_WORD - 1] + ELLIPSIS for w in line.split(" "))
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit - 1)  # room for " …"
    if cut <= 0:
        return line[:max(1, limit - len(ELLIPSIS))] + ELLIPSIS
    return line[:cut].rstrip(" ,;:") + " " + ELLIPSIS


def one_line(e: BaseException, limit: int = MESSAGE_CHARS) -> str:
    """An exception's message, ``shortened``; its type's name when it has none."""
    return shortened(str(e), limit) or type(e).__name__


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
    what = f"{type(e).__name__}: {one_line(e)}"
    if infra or (stage == "write" and isinstance(e, OSError)):
        return TransientError(f"{stage}: {what}")
    return ObjectError(stage, f"route {route}: {what}" if route else what, route)
