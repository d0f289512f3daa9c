"""The routing table made equal to a route set (``lakeroute sync``, the deploy-time sync)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.errors import ConfigError
from ..core.routes import parse_route
from .clients import aws_client, aws_errors, error_code, transient
from .dynamo_values import item_values, plain, to_attr
from .reference import route_from_item
from .route_store import ROUTES_VERSION_BUCKET, ROUTES_VERSION_NAME


def physical_items(items: Iterable[Mapping[str, Any]], *, buckets: Mapping[str, str] | None = None,
                   namespaces: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Route items (``Route.to_item()``) with a stage's physical names in place of logical ones.

    Route files name logical buckets and namespaces; a deployed stage maps them
    (``buckets``: logical bucket -> S3 bucket, ``namespaces``: namespace -> Glue database),
    so the routing table must hold the physical ones: S3 events carry the physical bucket and
    the tables live in the stage's databases. ``source.bucket`` (and the item's ``bucket``)
    and the namespace of every target table (``ns.t`` -> ``<database>.t``) are rewritten;
    the result is validated and has the shape of ``Route.to_item()``. Without a mapping the
    names stay as they are (``lakeroute sync`` with logical names); with one, a name missing
    from it is an error, never silently kept.
    """
    if buckets is None and namespaces is None:
        return [dict(item) for item in items]
    result = []
    for item in items:
        origin = f"route item {item.get('name')!r}"
        data = route_from_item(item, origin).model_dump(mode="json", exclude_none=True, by_alias=True)
        if buckets is not None:
            data["source"]["bucket"] = _mapped(buckets, data["source"]["bucket"], "bucket", origin)
        if namespaces is not None:
            # One target, or (fan-out routes) several: each names its own table.
            targets = [data["target"]] if "target" in data else list(data.get("targets") or [])
            for target in targets:
                namespace, _, table = target["table"].partition(".")
                target["table"] = f"{_mapped(namespaces, namespace, 'namespace', origin)}.{table}"
        result.append(parse_route(data, origin).to_item())
    return result


def _mapped(mapping: Mapping[str, str], name: str, what: str, origin: str) -> str:
    if name not in mapping:
        known = ", ".join(sorted(mapping)) or "none"
        raise ConfigError(f"{origin}: {what} {name!r} has no physical name in the stage's "
                          f"mapping (mapped: {known})")
    return str(mapping[name])


def sync_route_items(table_name: str, items: list[dict[str, Any]], *, ddb: Any = None) -> list[str]:
    """Make the routing table hold exactly ``items`` (``Route.to_item()`` dicts).

    Upserts new and changed routes, deletes lakeroute items whose route is gone (items
    without a ``route`` attribute, e.g. reference-design items, are left alone), then writes
    the routes-version item (a hash of the route set): warm functions drop their cached routes
    when it changes (``aws.route_store``). Returns one human line per change.
    """
    ddb = ddb if ddb is not None else aws_client("dynamodb")
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        origin = f"route item {item.get('name')!r}"
        if "route" not in item:
            raise ConfigError(f"{origin}: no `route` attribute (expected Route.to_item())")
        parsed = route_from_item(item, origin)
        if (item.get("bucket"), item.get("name")) != (parsed.source.bucket, parsed.name):
            raise ConfigError(f"{origin}: bucket/name do not match the route's source.bucket/name")
        data = item["route"]
        wanted[(parsed.source.bucket, parsed.name)] = plain(
            json.loads(data) if isinstance(data, str) else json.loads(json.dumps(data)))
    existing: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        args: dict[str, Any] = {"TableName": table_name}
        while True:
            page = ddb.scan(**args)
            for raw in page.get("Items", []):
                it = item_values(raw)
                if it.get("bucket") == ROUTES_VERSION_BUCKET:
                    continue
                existing[(str(it.get("bucket")), str(it.get("name")))] = it
            if "LastEvaluatedKey" not in page:
                break
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        lines: list[str] = []
        unchanged = 0
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for (bucket, name), route in sorted(wanted.items()):
            old = existing.get((bucket, name))
            old_route = old.get("route") if old else None
            if isinstance(old_route, str):
                try:
                    old_route = json.loads(old_route)
                except ValueError:
                    old_route = None
            if old_route == route:
                unchanged += 1
                continue
            ddb.put_item(TableName=table_name, Item={
                "bucket": {"S": bucket}, "name": {"S": name}, "route": to_attr(route),
                "updated_at": {"S": now}})
            where = f"s3://{bucket}/{route.get('source', {}).get('prefix', '')}"
            lines.append(f"{'updated' if old else 'added'} route {name} ({where} -> "
                         f"{route.get('target', {}).get('table')})")
        for (bucket, name), old in sorted(existing.items()):
            if (bucket, name) not in wanted and "route" in old:
                ddb.delete_item(TableName=table_name, Key={"bucket": {"S": bucket}, "name": {"S": name}})
                lines.append(f"removed route {name} (bucket {bucket})")
        # Last: a function that reads this version reads the routes written above.
        ddb.put_item(TableName=table_name, Item={
            "bucket": {"S": ROUTES_VERSION_BUCKET}, "name": {"S": ROUTES_VERSION_NAME},
            "version": {"S": routes_version(wanted)}, "updated_at": {"S": now}})
    except aws_errors() as e:
        code, _, message = error_code(e)
        if code == "ResourceNotFoundException":
            raise ConfigError(f"routing table {table_name!r} not found: {message}") from e
        raise transient(f"routing table {table_name}", e) from e
    if unchanged:
        lines.append(f"{unchanged} route{'s' if unchanged != 1 else ''} unchanged in {table_name}")
    return lines


def routes_version(routes: Mapping[tuple[str, str], Any]) -> str:
    """A route set's version: the hash of its canonical JSON (the same routes, the same version)."""
    canonical = json.dumps(sorted([list(k), v] for k, v in routes.items()), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
