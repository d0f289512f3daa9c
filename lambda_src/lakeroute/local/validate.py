"""`lakeroute validate` over a local routes folder: ingest's rules, checked before any file arrives.

Every route's SQL is checked under the ingest lockdown (``core.checks.bind_check``): exactly
one SELECT always, and bound against a sample file (read the way ingest reads it: routed
to this route, through ``LocalObjectSource``'s private scratch copy) or the declared
``source.columns``. A bound result is checked for what would fail every object at ingest
(errors) and for what readers downstream struggle with (warnings).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

from ..core.errors import ObjectError
from ..core.objects import SourceObject
from ..core.pipeline.checks import Finding, bind_check, hint_problems, name_findings, policy_findings, result_problems
from ..core.routes import Route, RouteTable, collect_routes
from .objects import LocalObjectSource

SAMPLE_SCAN_LIMIT = 2000


class Validation(NamedTuple):
    """One line per finding, each naming the route file; ``checked`` routes were checked."""

    problems: list[str]
    warnings: list[str]
    notes: list[str]
    checked: int


def find_sample(route: Route, landing: Path, source: LocalObjectSource | None = None,
                table: RouteTable | None = None) -> SourceObject | None:
    """The first file under landing/<bucket>/<prefix> that ingest would read and route to
    this route (of ``table``'s routes), resolved as ingest resolves it: a private scratch
    copy that DuckDB reads. The caller releases it (``source.release``)."""
    source = source or LocalObjectSource(landing)
    table = table or RouteTable.of([route])
    bucket = route.source.bucket
    root = landing / bucket
    if not root.is_dir():
        return None
    for i, f in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        if i >= SAMPLE_SCAN_LIMIT:
            break
        key = f.relative_to(root).as_posix()
        if (not route.matches_key(key) or f.name.startswith(".") or f.stat().st_size == 0
                or f.name.endswith((".partial", ".error.json")) or table.ignored(bucket, key)):
            continue  # not this route's, or never read by ingest
        obj: SourceObject | None = None
        try:
            if table.needs_metadata(bucket, key):
                obj = source.resolve(bucket, key)
                winner = table.match(bucket, key, partial(source.metadata, obj))
            else:
                winner = table.match(bucket, key)
                if winner.name == route.name:
                    obj = source.resolve(bucket, key)
        except ObjectError:  # not readable (a symlink leaving landing), unrouted or ambiguous
            winner = None
        if obj is not None and winner is not None and winner.name == route.name:
            return obj
        if obj is not None:
            source.release(obj)
    return None


def validate_routes(routes_dir: Path, landing: Path) -> Validation:
    """Every route file checked; problems are errors (exit 2), warnings and notes are not."""
    routes, origins, problems = collect_routes(routes_dir)
    warnings: list[str] = []
    notes: list[str] = []
    source = LocalObjectSource(landing)
    table = RouteTable.of(routes)
    produced: dict[str, set[str] | None] = {}  # table -> result names of its routes (None: unknown)

    for whole in routes:
        sample = find_sample(whole, landing, source, table)
        try:
            if sample is not None:  # the hints are the source's: checked once per route
                problems += _lines(origins[whole.name], hint_problems(whole, sample))
            for i, route in enumerate(whole.legs()):
                origin = origins[whole.name] + ("" if whole.targets is None else f": targets[{i}]")
                _check_leg(route, origin, sample, landing, problems, warnings, notes, produced)
        finally:
            if sample is not None:
                source.release(sample)

    # Declared columns no route of the table produces (known only when every route bound).
    first: dict[str, Route] = {}
    for route in (leg for r in routes for leg in r.legs()):
        first.setdefault(route.target.table, route)
    for name, route in first.items():
        made, declared = produced[name], route.target.columns
        never = [c for c in declared or {} if made is not None and c not in made]
        if never:
            warnings.append(f"{origins[route.name]}: target.columns: {', '.join(never)}: declared "
                            f"but never produced by the SQL of any route feeding {name}, so null "
                            "in every row; select them in the SQL or drop them")
    return Validation(problems, warnings, notes, len(routes))


def _check_leg(route: Route, origin: str, sample: SourceObject | None, landing: Path, problems: list[str],
               warnings: list[str], notes: list[str], produced: dict[str, set[str] | None]) -> None:
    """One target's SQL bound and its result checked (a fan-out route has one per target)."""
    result = None
    try:
        result = bind_check(route, sample)
        if result is None:
            notes.append(f"{origin}: sql: not bound: no sample under {landing}/"
                         f"{route.source.bucket}/{route.source.prefix} and no source.columns")
    except ObjectError as e:
        message = e.message.removeprefix(f"route {route.name}: ")
        if sample is not None:  # the landing file, not the scratch copy DuckDB read
            shown = str(landing / sample.bucket / sample.key)
            message = message.replace(sample.path, shown) + f" (bound against sample {shown})"
        elif route.source.columns is not None:
            message += " (bound against source.columns)"
        problems.append(f"{origin}: sql: {message}")
    errors, warned = name_findings(route, result)
    policy_errors, policy_warnings = policy_findings(route, result)
    errors, warned = errors + policy_errors, warned + policy_warnings
    problems += _lines(origin, errors + (result_problems(route, result) if result is not None else []))
    warnings += _lines(origin, warned)
    names = produced.setdefault(route.target.table, set())
    produced[route.target.table] = None if result is None or names is None else names | set(result.names)


def _lines(origin: str, findings: list[Finding]) -> list[str]:
    return [f"{origin}: {field}: {message}" for field, message in findings]


def ignored_notes(routes_dir: Path, landing: Path, limit: int = SAMPLE_SCAN_LIMIT) -> list[str]:
    """One note per route folder holding files the ignore rules skip (never read, never
    quarantined): how many, and an example with its reason."""

    routes, origins, _ = collect_routes(routes_dir)
    table = RouteTable.of(routes)
    notes = []
    for route in routes:
        root = landing / route.source.bucket / route.source.prefix
        if not root.is_dir():
            continue
        hits: list[tuple[str, str]] = []
        for i, f in enumerate(sorted(root.rglob("*"))):
            if i >= limit:
                break
            if f.is_file():
                key = route.source.prefix + f.relative_to(root).as_posix()
                why = table.ignored(route.source.bucket, key)
                if why:
                    hits.append((key, why))
        if hits:
            key, why = hits[0]
            notes.append(f"{origins[route.name]}: ignores {len(hits)} file(s) under {root} "
                         f"(e.g. {key}: {why})")
    return notes
