"""What the route files ask of the infrastructure: pure functions, no CDK.

The stack is derived from the route set: one landing bucket per distinct ``source.bucket``
(imported when declared ``existing``), the S3 notification filters that cover every route of
that bucket, one Glue database per target namespace, and the payload of the deploy-time route
sync (its hash makes CloudFormation rerun the sync whenever a route file changes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lakeroute.core.routes import Route, load_routes


class RoutePlanError(ValueError):
    """The route set cannot be turned into infrastructure (e.g. contradicting flags)."""


@dataclass(frozen=True, kw_only=True)
class LandingBucketPlan:
    """One landing bucket and what the stack must do with it."""

    name: str
    existing: bool
    # Key prefixes that cover every route of the bucket; ("",) means the whole bucket. What S3
    # notifies the queue about for an IMPORTED bucket; a bucket the stack creates is notified
    # of every key whatever its routes (stacks.landing, ``LandingBucket.notified_prefixes``).
    notification_prefixes: tuple[str, ...]
    routes: tuple[str, ...]


def notification_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The minimal prefix set that covers every route of one bucket.

    The whole bucket (``("",)``) as soon as one route has no prefix: unroutable objects must
    still reach the function so they are quarantined with reason ``no route``. Nested prefixes
    collapse into the outer one, because S3 rejects overlapping notification filters.
    """
    if not prefixes or any(p == "" for p in prefixes):
        return ("",)
    kept: list[str] = []
    for p in sorted(set(prefixes), key=lambda s: (len(s), s)):
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return tuple(sorted(kept))


def landing_buckets(routes: Sequence[Route]) -> list[LandingBucketPlan]:
    """Landing buckets in name order (stable logical ids and template order)."""
    by_bucket: dict[str, list[Route]] = {}
    for r in routes:
        by_bucket.setdefault(r.source.bucket, []).append(r)
    plans = []
    for name in sorted(by_bucket):
        rs = by_bucket[name]
        flags = {r.source.existing for r in rs}
        if len(flags) > 1:
            owners = ", ".join(f"{r.name} (existing: {str(r.source.existing).lower()})" for r in rs)
            raise RoutePlanError(
                f"bucket {name!r}: routes disagree on source.existing: {owners}; a bucket is either "
                "created by the stack or imported, so set the same value in every route of it"
            )
        plans.append(LandingBucketPlan(
            name=name,
            existing=flags.pop(),
            notification_prefixes=notification_prefixes([r.source.prefix for r in rs]),
            routes=tuple(sorted(r.name for r in rs)),
        ))
    return plans


def namespaces(routes: Sequence[Route]) -> list[str]:
    """Distinct Iceberg namespaces (Glue databases) in name order."""
    return sorted({leg.target.namespace for r in routes for leg in r.legs()})


def routes_payload(routes: Sequence[Route]) -> str:
    """Canonical JSON of the routing-table items, sorted by (bucket, name)."""
    items = sorted((r.to_item() for r in routes), key=lambda i: (i["bucket"], i["name"]))
    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def routes_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_route_set(routes_dir: Path) -> list[Route]:
    """Routes of ``routes_dir``; a missing directory is an empty route set.

    Validation errors (``lakeroute.core.errors.ConfigError``) propagate: a bad route file must
    fail the synth before anything is deployed.
    """
    if not routes_dir.is_dir():
        return []
    return load_routes(routes_dir)
