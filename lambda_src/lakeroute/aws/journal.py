"""The journal on DynamoDB (``core.journal.Journal``), in the ledger table.

One item per attempt: pk ``#attempts#<table>`` (``#attempts#`` for objects that reached no
table), sk ``<UTC time>#<bucket>/<key>@<version>#<status>``. Written with BatchWriteItem
(the function's existing ledger permission); read with Query by ``lakeroute history --stage``
(the CLI user's permission). ``ttl_days`` > 0 sets ``expires_at`` like ledger entries; 0 keeps
the history without a window.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ..core.ledger.journal import NUMBERS, Attempt
from .clients import aws_client, aws_errors, batch_write, transient

PREFIX = "#attempts#"


class DynamoJournal:
    def __init__(self, table: str, *, ddb: Any = None, ttl_days: int = 0) -> None:
        self.table = table
        self.ddb = ddb if ddb is not None else aws_client("dynamodb")
        self.ttl_days = ttl_days

    def record(self, attempts: list[Attempt]) -> None:
        now = time.time()
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for a in attempts:
            pk, sk = PREFIX + a.table, f"{a.at}#{a.bucket}/{a.key}@{a.version}#{a.status}"[:1000]
            item = {"pk": {"S": pk}, "sk": {"S": sk},
                    **{k: {"S": str(v)} for k, v in a.as_dict().items() if k not in NUMBERS and v != ""},
                    **{k: {"N": str(getattr(a, k))} for k in NUMBERS}}
            if self.ttl_days > 0:
                item["expires_at"] = {"N": str(int(now + self.ttl_days * 86400))}
            items[(pk, sk)] = item
        try:
            batch_write(self.ddb, self.table, list(items.values()), "journal")
        except aws_errors() as e:
            raise transient(f"journal {self.table}", e) from e

    def read(self, table: str, since: dt.datetime | None = None, status: str | None = None) -> list[dict[str, Any]]:
        args: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                "ExpressionAttributeValues": {":pk": {"S": PREFIX + table}}}
        if since is not None:
            args["KeyConditionExpression"] += " AND sk >= :since"
            args["ExpressionAttributeValues"][":since"] = {
                "S": since.astimezone(dt.UTC).isoformat(timespec="milliseconds")}
        out = []
        while True:
            page = self.ddb.query(**args)
            for it in page.get("Items", []):
                row = {k: next(iter(v.values())) for k, v in it.items() if k not in ("pk", "sk", "expires_at")}
                for k in NUMBERS:
                    row[k] = int(row.get(k, 0))
                if status is None or row.get("status") == status:
                    out.append(row)
            if "LastEvaluatedKey" not in page:
                return out
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
