"""Routes from the DynamoDB routing table, cached in the warm container.

How long a warm container may use a route the stage no longer has: the route sync
(``aws.route_sync``) writes a routes-version item (``ROUTES_VERSION_BUCKET``,
``ROUTES_VERSION_NAME``) after every change of the routing table, and the store reads it
once per batch (one strongly consistent Query of one item, covered by the ``dynamodb:Query``
the function already has). A new version drops every cached route, so the first batch that
starts after a sync has finished uses the new route set. Without the item (a table synced by
an older release, or the read failing), the cache's ``ttl`` (30 s) is the bound.
"""

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

# The routes-version item: a partition no S3 bucket can have (bucket names have no '#').
ROUTES_VERSION_BUCKET = "#routes"
ROUTES_VERSION_NAME = "#version"


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
        self.lookups = 0  # DynamoDB requests made (Query pages + GetItems) for routes
        self.version: str | None = None  # the routes version the cache holds (None: unknown)
        self.version_checks = 0  # routes-version reads (one per batch)

    def route_table(self, refs: Iterable[ObjectRef]) -> RouteTable:
        self.check_version()
        routes: dict[tuple[str, str], Route] = {}
        for ref in refs:
            native = self.bucket_routes(ref.bucket)
            for r in native:
                routes.setdefault((r.source.bucket, r.name), r)
            if self.reference_table and not any(r.matches_key(ref.key) for r in native):
                for r in self.reference_routes(ref.bucket, ref.key):
                    routes.setdefault((r.source.bucket, r.name), r)
        return RouteTable.of(routes.values())

    def check_version(self) -> None:
        """Drop the cached routes when the sync has written another routes version since
        they were read. A failed read keeps the cache (``ttl`` still bounds it)."""
        try:
            self.version_checks += 1
            page = self.ddb.query(
                TableName=self.table, ConsistentRead=True, KeyConditionExpression="#b = :b AND #n = :n",
                ExpressionAttributeNames={"#b": "bucket", "#n": "name"},
                ExpressionAttributeValues={":b": {"S": ROUTES_VERSION_BUCKET}, ":n": {"S": ROUTES_VERSION_NAME}})
        except aws_errors() as e:
            log.warning("routing table %s: routes version not read (%s); cached routes are used for "
                        "at most %.0f s", self.table, e, self.ttl)
            return
        items = page.get("Items") or []
        version = str(item_values(items[0]).get("version") or "") if items else None
        if version != self.version:
            self._buckets.clear()
            self.version = version

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
        # Strongly consistent: read right after a new routes version, an eventually consistent
        # page could still hold a deleted route, and it would stay cached until the ttl.
        args: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True, "KeyConditionExpression": "#b = :b",
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
