"""Routes from the DynamoDB routing table, cached in the warm container."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError
from ..core.routes import Route, RouteTable
from .clients import aws_client, aws_errors, transient
from .dynamo_values import item_values
from .reference import reference_route, route_from_item

if TYPE_CHECKING:
    from ..core.pipeline import ObjectRef

log = logging.getLogger("lakeroute.aws")


class DynamoRouteStore:
    """Routes from the routing table: one Query per bucket, cached for ``ttl`` seconds.

    ``route_table(refs)`` builds the RouteTable for a batch. A bucket's native routes come
    from ``Query(bucket = B)``. Reference-design items are looked up only for objects no
    native route's prefix/pattern covers: ``GetItem(PartitionKey = bucket)`` and
    ``GetItem(PartitionKey = first key segment)`` on ``reference_table``, both cached. Items
    in the routing table itself that carry ``query_sql`` instead of ``route`` are converted
    the same way. A failing lookup serves the stale cache entry when there is one.
    """

    def __init__(self, table: str, *, ddb: Any = None, reference_table: str | None = None,
                 ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.table = table
        self.reference_table = reference_table
        self.ddb = ddb if ddb is not None else aws_client("dynamodb")
        self.ttl = ttl
        self.clock = clock
        self._buckets: dict[str, tuple[float, tuple[Route, ...]]] = {}
        self._refs: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.lookups = 0  # DynamoDB requests made (Query pages + GetItems)

    def route_table(self, refs: Iterable[ObjectRef]) -> RouteTable:
        routes: dict[tuple[str, str], Route] = {}
        for ref in refs:
            native = self.bucket_routes(ref.bucket)
            for r in native:
                routes.setdefault((r.source.bucket, r.name), r)
            if self.reference_table and not any(r.matches_key(ref.key) for r in native):
                for r in self.reference_routes(ref.bucket, ref.key):
                    routes.setdefault((r.source.bucket, r.name), r)
        return RouteTable.of(routes.values())

    def bucket_routes(self, bucket: str) -> tuple[Route, ...]:
        cached = self._buckets.get(bucket)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            items = self._query(bucket)
        except aws_errors() as e:
            if cached is not None:
                log.warning("routing table %s: %s; using routes cached %.0fs ago", self.table, e,
                            self.clock() - cached[0])
                return cached[1]
            raise transient(f"routing table {self.table}", e) from e
        routes = []
        for item in items:
            origin = f"routing table {self.table} item ({bucket}, {item.get('name')})"
            try:
                route = route_from_item(item, origin)
            except ConfigError as e:
                log.error("ignoring invalid route item: %s", e)
                continue
            if route.source.bucket != bucket:
                log.error("ignoring %s: its route is for bucket %s", origin, route.source.bucket)
                continue
            routes.append(route)
        result = tuple(routes)
        self._buckets[bucket] = (self.clock(), result)
        return result

    def reference_routes(self, bucket: str, key: str) -> list[Route]:
        keys = [bucket] + ([key.split("/", 1)[0]] if "/" in key else [])
        routes = []
        for pk in dict.fromkeys(keys):
            item = self._reference_item(pk)
            if item is None:
                continue
            origin = f"reference table {self.reference_table} item PartitionKey={pk!r}"
            try:
                routes.append(reference_route({**item, "PartitionKey": pk}, bucket, origin))
            except ConfigError as e:
                log.error("ignoring invalid reference item: %s", e)
        return routes

    def _query(self, bucket: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "#b = :b",
                                "ExpressionAttributeNames": {"#b": "bucket"},
                                "ExpressionAttributeValues": {":b": {"S": bucket}}}
        while True:
            self.lookups += 1
            page = self.ddb.query(**args)
            items.extend(item_values(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _reference_item(self, pk: str) -> dict[str, Any] | None:
        cached = self._refs.get(pk)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            self.lookups += 1
            raw = self.ddb.get_item(TableName=self.reference_table,
                                    Key={"PartitionKey": {"S": pk}}).get("Item")
        except aws_errors() as e:
            if cached is not None:
                return cached[1]
            raise transient(f"reference table {self.reference_table}", e) from e
        item = item_values(raw) if raw else None
        self._refs[pk] = (self.clock(), item)
        return item
