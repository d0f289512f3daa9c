"""Physical names of a stage: logical landing buckets and namespaces -> AWS names.

Route files hold LOGICAL names (``source.bucket``, the namespace of ``target.table``); they
are what users write and what the local pipeline uses. In AWS each stage maps them to names
that cannot collide with another stage, account or region (S3 bucket names are global):

- landing bucket, by default: ``<logical>-<stage>[-g<N>]-<account id>-<region>``, the account
  and region as CloudFormation pseudo parameters (the template stays environment-agnostic).
  When that could exceed 63 characters the logical part is cut and ends in ``-`` + the first
  8 hex digits of its sha256, so two long logical names never meet. The budget assumes a
  region code of up to ``REGION_BUDGET`` characters, whatever the real region: a name never
  depends on where it is synthesized.
- ``buckets.<logical>.name`` in the stage config: that exact name instead;
  ``buckets.<logical>.existing: true``: that bucket (the given or the default name) exists and
  is imported, not created; a route with ``source.existing: true``: the logical name is the
  physical one and is imported.
- Glue database: ``<namespace>_<stage>[_g<N>]`` (``databases: stage``) or the namespace itself
  (``databases: account``: one stage per account); lowercase, as Glue stores it.

Pure functions: the account and region are passed in (tokens in the stack, literals in tests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import StageConfig
from .route_plan import LandingBucketPlan, RoutePlanError

MAX_BUCKET_NAME = 63
ACCOUNT_ID_LENGTH = 12
# Longest region code today is 14 characters (ap-southeast-1, eusc-de-east-1); 2 to spare.
REGION_BUDGET = 16
HASH_LENGTH = 8


def stage_tag(config: StageConfig) -> str:
    """The stage part of generated names: ``dev``, or ``dev-g2`` from generation 2 on."""
    return config.name if config.generation == 1 else f"{config.name}-g{config.generation}"


def bucket_stem(logical: str, tag: str) -> str:
    """The logical part of a generated bucket name, cut (with a hash) to fit 63 characters."""
    fixed = len(f"-{tag}-") + ACCOUNT_ID_LENGTH + 1 + REGION_BUDGET
    budget = MAX_BUCKET_NAME - fixed
    if len(logical) <= budget:
        return logical
    digest = hashlib.sha256(logical.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    head = logical[: budget - HASH_LENGTH - 1].rstrip(".-")
    return f"{head}-{digest}"


def generated_bucket_name(logical: str, tag: str, account: str, region: str) -> str:
    """``<logical>-<tag>-<account>-<region>`` (logical part cut when needed)."""
    return f"{bucket_stem(logical, tag)}-{tag}-{account}-{region}"


def database_name(namespace: str, config: StageConfig) -> str:
    """The Glue database of one Iceberg namespace in this stage."""
    name = namespace.lower()
    if config.databases == "stage":
        name = f"{name}_{config.name}"
    if config.generation > 1:
        name = f"{name}_g{config.generation}"
    return name


@dataclass(frozen=True, kw_only=True)
class LandingBucket:
    """One landing bucket of the stage: its logical and physical name, created or imported."""

    logical: str
    physical: str  # may hold CloudFormation tokens (pseudo parameters)
    imported: bool
    plan: LandingBucketPlan

    @property
    def notified_prefixes(self) -> tuple[str, ...]:
        """What S3 notifies the ingest queue about (and so what the function reads): every key
        of a bucket the stack creates, so that a file no route takes is quarantined "no route"
        rather than never seen; the route prefixes of an imported bucket, which may hold
        other data (and whose own notification rules a whole-bucket rule could overlap)."""
        return self.plan.notification_prefixes if self.imported else ("",)


@dataclass(frozen=True, kw_only=True)
class StageNames:
    """Every physical name the stage derives from the route set."""

    buckets: tuple[LandingBucket, ...]
    databases: Mapping[str, str]  # namespace -> Glue database

    def bucket_map(self) -> dict[str, str]:
        return {b.logical: b.physical for b in self.buckets}


def stage_names(config: StageConfig, plans: Sequence[LandingBucketPlan], namespaces: Sequence[str],
                *, account: str, region: str) -> StageNames:
    """Physical names of the stage's landing buckets and Glue databases.

    Raises ``RoutePlanError`` for a ``buckets`` entry no route uses, one that contradicts a
    route's ``existing: true``, or two names that would collide.
    """
    tag = stage_tag(config)
    by_name = {p.name: p for p in plans}
    where = f"cdk.json context lakeroute:stages.{config.name}.buckets"
    unused = sorted(set(config.buckets) - set(by_name))
    if unused:
        raise RoutePlanError(
            f"{where}: no route uses the bucket(s) {', '.join(unused)}; the keys are the logical "
            f"names of source.bucket ({', '.join(sorted(by_name)) or 'none'})")
    buckets = []
    for plan in plans:
        override = config.buckets.get(plan.name)
        if plan.existing:
            if override is not None:
                raise RoutePlanError(
                    f"{where}.{plan.name}: its routes say source.existing: true (the name is used "
                    "as given in every stage); drop the override or the route's existing flag")
            buckets.append(LandingBucket(logical=plan.name, physical=plan.name, imported=True, plan=plan))
            continue
        physical = (override.name if override is not None and override.name
                    else generated_bucket_name(plan.name, tag, account, region))
        imported = override is not None and override.existing
        buckets.append(LandingBucket(logical=plan.name, physical=physical, imported=imported, plan=plan))
    _no_duplicates(where, {b.logical: b.physical for b in buckets})
    databases = {ns: database_name(ns, config) for ns in namespaces}
    _no_duplicates(f"Glue databases of stage {config.name}", databases)
    return StageNames(buckets=tuple(buckets), databases=databases)


def _no_duplicates(where: str, mapping: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for logical, physical in mapping.items():
        if physical in seen:
            raise RoutePlanError(f"{where}: {seen[physical]!r} and {logical!r} both map to {physical!r}")
        seen[physical] = logical


def output_id(prefix: str, name: str) -> str:
    """A CloudFormation output id (alphanumeric) for a logical name: ``LandingBucketAcmeSales``."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    return prefix + "".join(p[:1].upper() + p[1:] for p in parts)
