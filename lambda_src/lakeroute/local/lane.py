"""The commit lane's store on the embedded default: hand-offs in ``<home>/lane/<table>/``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class FolderLane:
    """``core.lane.store.LaneStore`` over a folder. Records are written to a temporary name
    and renamed (atomic on one file system), so a listing never sees half a record."""

    def __init__(self, root: Path) -> None:
        self.path = root
        self.root = str(root.resolve())

    def publish(self, table: str, handoff_id: str, body: bytes) -> None:
        folder = self.path / table
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{handoff_id}.json.tmp"
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{handoff_id}.json")

    def pending(self, table: str) -> list[str]:
        folder = self.path / table
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))

    def load(self, table: str, handoff_id: str) -> bytes | None:
        try:
            return (self.path / table / f"{handoff_id}.json").read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, table: str, handoff_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / table / f"{handoff_id}.json").unlink()
        with contextlib.suppress(OSError):  # the blobs' folder, once the committer deleted them
            (self.path / table / handoff_id).rmdir()

    def tables(self) -> list[str]:
        try:
            return sorted(d.name for d in self.path.iterdir() if d.is_dir() and self.pending(d.name))
        except FileNotFoundError:
            return []

    def signal(self, table: str, handoff_id: str) -> None:
        """Nothing: the process that ran the staging workers commits the lane afterwards."""
