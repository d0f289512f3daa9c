"""The lane's store port: where hand-off records wait for their table's committer.

Adapters: ``lakeroute.local.lane.FolderLane`` (a folder under the home) and
``lakeroute.aws.lane.S3Lane`` (a prefix of the warehouse bucket, signalled through an SQS
FIFO queue whose message group is the table, so one committer at a time runs per table).
"""

from __future__ import annotations

from typing import Protocol


class LaneStore(Protocol):
    root: str  # where hand-offs' blobs are written, with the table's FileIO (path or s3:// URI)

    def publish(self, table: str, handoff_id: str, body: bytes) -> None:
        """Write the record, whole or not at all (it marks the hand-off complete)."""
        ...

    def pending(self, table: str) -> list[str]:
        """The table's complete hand-offs, oldest first."""
        ...

    def load(self, table: str, handoff_id: str) -> bytes | None:
        """A record's body (None: already committed and removed)."""
        ...

    def remove(self, table: str, handoff_id: str) -> None:
        """Delete a record (idempotent); its blobs are deleted by the committer."""
        ...

    def tables(self) -> list[str]:
        """Tables with waiting hand-offs (the sweep for records whose signal was lost)."""
        ...

    def signal(self, table: str, handoff_id: str) -> None:
        """Tell the table's committer there is work (AWS: a FIFO message; locally: nothing)."""
        ...
