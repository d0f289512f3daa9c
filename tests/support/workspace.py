"""A throwaway local workspace: routes/, landing/, and a home with a real SQLite catalog."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from lakeroute.core.ledger.quarantine import entry_dir
from lakeroute.core.pipeline import IngestReport, ObjectRef, Pipeline
from lakeroute.local import LocalPaths, local_catalog, local_pipeline


@dataclass
class Workspace:
    root: Path

    @property
    def paths(self) -> LocalPaths:
        return LocalPaths(self.root / "routes", self.root / ".lakeroute", self.root / "landing")

    def route(self, name: str, source: dict[str, Any], target: dict[str, Any],
              sql: str = "SELECT * FROM source") -> None:
        self.paths.routes.mkdir(parents=True, exist_ok=True)
        doc = {"name": name, "source": source, "target": target, "sql": sql}
        (self.paths.routes / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def put(self, bucket: str, key: str, data: bytes | pa.Table,
            metadata: dict[str, str] | None = None) -> Path:
        path = self.paths.landing / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, pa.Table):
            if metadata:
                data = data.replace_schema_metadata(metadata)
            buf = io.BytesIO()
            pq.write_table(data, buf)
            data = buf.getvalue()
        path.write_bytes(data)
        return path

    def pipeline(self) -> Pipeline:
        return local_pipeline(self.paths)

    def ingest(self, *refs: tuple[str, str]) -> IngestReport:
        return self.pipeline().ingest([ObjectRef(b, k) for b, k in refs])

    def catalog(self):  # type: ignore[no-untyped-def]
        return local_catalog(self.paths.home)

    def rows(self, table: str) -> list[dict[str, Any]]:
        cat = self.catalog()
        if not cat.table_exists(table):
            return []
        return cat.load_table(table).scan().to_arrow().to_pylist()

    def quarantined(self, bucket: str, key: str) -> list[tuple[Path, dict[str, Any]]]:
        """(entry folder, error record) of every quarantined version of one key."""
        folder = (self.paths.quarantine / entry_dir(bucket, key, None, max_bytes=3800, max_segment=250)).parent
        return [(e, json.loads((e / "error.json").read_text())) for e in sorted(folder.glob("~*"))
                if (e / "error.json").is_file()]

    def record(self, bucket: str, key: str) -> dict[str, Any]:
        """The error record of the one quarantined version of a key."""
        [(_, record)] = self.quarantined(bucket, key)
        return record

    def snapshots(self, table: str) -> list[Any]:
        return list(self.catalog().load_table(table).snapshots())


def orders(n: int = 3, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "amount": pa.array([1.25 * i for i in range(n)], pa.float64())})
