"""When a table's waiting work is committed: a file count, a size or an age, whichever first.

The committer commits everything waiting in one snapshot, so under load snapshots grow on
their own (the Kafka Connect sink's coordinator, Firehose's buffering hints): an idle table
commits its one object after ``max_seconds``, a busy one commits up to ``max_files`` objects
or ``max_mb`` of data per snapshot, one commit in flight per table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..routes import Target

# Defaults (a stage overrides them in cdk.json, a route in target.commit): an object is
# visible a few seconds after it is staged, and a snapshot carries at most ~1,000 objects.
DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_MB = 512.0
DEFAULT_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class Triggers:
    max_files: int = DEFAULT_MAX_FILES
    max_mb: float = DEFAULT_MAX_MB
    max_seconds: float = DEFAULT_MAX_SECONDS

    def for_target(self, target: Target) -> Triggers:
        """These defaults with the route's ``target.commit`` settings on top."""
        c = target.commit
        if c is None:
            return self
        return replace(self, **{k: v for k, v in c.model_dump().items() if v is not None})

    def wait(self, files: int, mb: float, oldest_age: float) -> float:
        """Seconds to wait for more work before committing (0: commit now)."""
        if files >= self.max_files or mb >= self.max_mb:
            return 0.0
        return max(0.0, self.max_seconds - oldest_age)
