"""The ledger on DynamoDB (``core.ledger.Ledger``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..core.errors import TransientError
from ..core.ledger import Entry, Mark
from .clients import aws_client, aws_errors, backoff, batch_write, transient


class DynamoLedger:
    """core.ledger.Ledger on DynamoDB: pk = table name, sk = source id (one item per object
    version, with the table UUID, snapshot id and sequence number), plus one watermark item
    (sk ``#watermark``: snapshot id, table UUID, rolled-back snapshot ids) per table.

    Source ids longer than a sort key may be are stored under ``sha256:<hex>`` with the full
    id as an attribute. Reads are strongly consistent. ``ttl_days`` > 0 sets ``expires_at``
    (the table's TTL attribute) on entries; 0 keeps them: the index then never forgets, and
    the snapshot summaries remain the source of truth either way.
    """

    WATERMARK = "#watermark"

    def __init__(self, table: str, *, ddb: Any = None, ttl_days: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.ddb = ddb if ddb is not None else aws_client("dynamodb")
        self.ttl_days = ttl_days
        self.clock = clock

    @staticmethod
    def sort_key(source_id: str) -> str:
        if len(source_id.encode()) <= 1000:
            return source_id
        return "sha256:" + hashlib.sha256(source_id.encode()).hexdigest()

    def committed(self, table: str, uuid: str, source_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
        by_sk = {self.sort_key(s): s for s in dict.fromkeys(source_ids)}
        sks = list(by_sk)
        found: dict[str, tuple[int, int]] = {}
        try:
            for i in range(0, len(sks), 100):
                request: dict[str, Any] = {self.table: {
                    "Keys": [{"pk": {"S": table}, "sk": {"S": sk}} for sk in sks[i:i + 100]],
                    "ConsistentRead": True, "ProjectionExpression": "#sk, snapshot_id, seq, table_uuid",
                    "ExpressionAttributeNames": {"#sk": "sk"}}}
                for attempt in range(10):
                    response = self.ddb.batch_get_item(RequestItems=request)
                    for it in response["Responses"].get(self.table, []):
                        if it.get("table_uuid", {}).get("S") == uuid:
                            found[it["sk"]["S"]] = (int(it["snapshot_id"]["N"]),
                                                    int(it.get("seq", {}).get("N", "0")))
                    request = response.get("UnprocessedKeys") or {}
                    if not request:
                        break
                    backoff(attempt)
                else:
                    raise TransientError(f"ledger {self.table}: reads kept being throttled")
        except aws_errors() as e:
            raise transient(f"ledger {self.table}", e) from e
        return {by_sk[sk]: v for sk, v in found.items() if sk in by_sk}

    def watermark(self, table: str, uuid: str) -> Mark | None:
        try:
            item = self.ddb.get_item(TableName=self.table, ConsistentRead=True,
                                     Key={"pk": {"S": table}, "sk": {"S": self.WATERMARK}}).get("Item")
        except aws_errors() as e:
            raise transient(f"ledger {self.table}", e) from e
        if not item or item.get("table_uuid", {}).get("S") != uuid:
            return None
        rolled = item.get("rolled_back", {}).get("S", "[]")
        return Mark(int(item["snapshot_id"]["N"]), frozenset(json.loads(rolled)))

    def record(self, table: str, uuid: str, entries: list[Entry], watermark: Mark | None) -> None:
        """Entries first, then the watermark: a watermark never covers unrecorded entries."""
        now = self.clock()
        items: dict[str, dict[str, Any]] = {}
        for source_id, snapshot_id, seq, route in entries:
            sk = self.sort_key(source_id)
            item = {"pk": {"S": table}, "sk": {"S": sk}, "snapshot_id": {"N": str(snapshot_id)},
                    "seq": {"N": str(seq)}, "table_uuid": {"S": uuid},
                    "route": {"S": route}, "recorded_at": {"N": str(int(now))}}
            if sk != source_id:
                item["source_id"] = {"S": source_id}
            if self.ttl_days > 0:
                item["expires_at"] = {"N": str(int(now + self.ttl_days * 86400))}
            items[sk] = item
        try:
            batch_write(self.ddb, self.table, list(items.values()), "ledger")
            if watermark is not None:
                self.ddb.put_item(TableName=self.table, Item={
                    "pk": {"S": table}, "sk": {"S": self.WATERMARK}, "table_uuid": {"S": uuid},
                    "snapshot_id": {"N": str(watermark.snapshot_id)},
                    "rolled_back": {"S": json.dumps(sorted(watermark.rolled_back))},
                    "recorded_at": {"N": str(int(now))}})
        except aws_errors() as e:
            raise transient(f"ledger {self.table}", e) from e
