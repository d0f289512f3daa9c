"""`lakeroute validate` over a local routes folder: ingest's rules, checked before any file arrives.

Every route's SQL is checked under the ingest lockdown (``core.checks.bind_check``): exactly
one SELECT always, and bound against a sample file (read the way ingest reads it: routed
to this route, through ``LocalObjectSource``'s private scratch copy) or the declared
``source.columns``. A bound result is checked for what would fail every object at ingest
(errors) and for what readers downstream struggle with (warnings).
"""

from __future__ import annotations

import fnmatch
from functools import partial
from pathlib import Path
from typing import NamedTuple

from ..core.errors import ObjectError
from ..core.objects import SourceObject
from ..core.pipeline.checks import Finding, bind_check, hint_problems, name_findings, policy_findings, result_problems
from ..core.pipeline.sample_casts import string_cast_findings
from ..core.routes import Route, RouteTable, collect_routes
from ..core.routes.nearest import near_miss, prefix_near_miss, why_not
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
        files = _folder_keys(whole, landing)
        warnings += _lines(origins[whole.name], exclude_findings(whole, files))
        missing = None
        if sample is None:  # say why, when the folder holds files: a near miss is likely a typo
            missing = no_sample_reason(whole, files, landing, source, table)
            if missing is not None:
                (warnings if missing[2] else notes).append(f"{origins[whole.name]}: {missing[0]}: {missing[1]}")
        try:
            if sample is not None:  # the hints are the source's: checked once per route
                problems += _lines(origins[whole.name], hint_problems(whole, sample))
            for i, route in enumerate(whole.legs()):
                origin = origins[whole.name] + ("" if whole.targets is None else f": targets[{i}]")
                _check_leg(route, origin, sample, landing, problems, warnings, notes, produced,
                           missing[0] if missing else None)
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
               warnings: list[str], notes: list[str], produced: dict[str, set[str] | None],
               missing: str | None = None) -> None:
    """One target's SQL bound and its result checked (a fan-out route has one per target)."""
    result = None
    try:
        result = bind_check(route, sample)
        if result is None:
            why = (f"no sample ({missing}: see above)" if missing else
                   f"no sample under {landing}/{route.source.bucket}/{route.source.prefix}")
            notes.append(f"{origin}: sql: not bound: {why} and no source.columns")
    except ObjectError as e:
        message = e.message.removeprefix(f"route {route.name}: ")
        if sample is not None:  # the landing file, not the scratch copy DuckDB read
            shown = str(landing / sample.bucket / sample.key)
            message = message.replace(sample.path, shown) + f" (bound against sample {shown})"
        elif route.source.columns is not None:
            message += " (bound against source.columns)"
        problems.append(f"{origin}: sql: {message}")
    if result is not None:  # string results into typed declared columns, on the sample's values
        sample_name = str(landing / sample.bucket / sample.key) if sample is not None else None
        try:
            cast_errors, cast_warnings = string_cast_findings(route, result, sample, sample_name)
            problems += _lines(origin, cast_errors)
            warnings += _lines(origin, cast_warnings)
        except ObjectError as e:
            message = e.message.removeprefix(f"route {route.name}: ")
            problems.append(f"{origin}: sql: fails over the sample {sample_name}: {message}")
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


def _folder_keys(route: Route, landing: Path, limit: int = SAMPLE_SCAN_LIMIT) -> list[str]:
    """Keys of the data files under landing/<bucket>/ (hidden, partial and empty files left
    out, as ingest and find_sample leave them), sorted, at most ``limit``."""
    root = landing / route.source.bucket
    if not root.is_dir():
        return []
    keys: list[str] = []
    for f in sorted(root.rglob("*")):
        if len(keys) >= limit:
            break
        if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".partial") and f.stat().st_size:
            keys.append(f.relative_to(root).as_posix())
    return keys


def no_sample_reason(route: Route, keys: list[str], landing: Path, source: LocalObjectSource,
                     table: RouteTable) -> tuple[str, str, bool] | None:
    """(field, why, near miss) no file under the route's bucket folder is a sample for it;
    None when that folder holds no file at all. A near miss (a file the prefix or pattern
    misses by case or extension) is a warning: most likely a typo that would leave every
    file unrouted."""
    src = route.source
    if not keys:
        return None
    where = f"{landing}/{src.bucket}/{src.prefix}"
    under = [k for k in keys if k.startswith(src.prefix)]
    if not under:
        near = next((n for k in keys if (n := prefix_near_miss(src.prefix, k))), None)
        if near:
            return "source.prefix", f"prefix {src.prefix!r} matches none of the {len(keys)} file(s) under " \
                                    f"{landing}/{src.bucket}/; {near}", True
        return "source.prefix", f"no file under {where} (e.g. {keys[0]!r} is elsewhere in the bucket)", False
    rests = [k[len(src.prefix):] for k in under]
    if src.pattern is not None:
        matching = [r for r in rests if fnmatch.fnmatchcase(r, src.pattern)]
        if not matching:
            near = near_miss(src.pattern, rests)
            said = f"pattern {src.pattern!r} matches none of the {len(rests)} file(s) under {where}"
            return "source.pattern", said + (f"; {near}" if near else f" (e.g. {rests[0]!r})"), near is not None
        rests = matching
    kept = [r for r in rests if not table.ignored(src.bucket, src.prefix + r)]
    if not kept:
        key = src.prefix + rests[0]
        return "source.exclude", f"all {len(rests)} matching file(s) under {where} are ignored (e.g. " \
                                 f"{key!r}: {table.ignored(src.bucket, key)})", False
    key = src.prefix + kept[0]
    try:
        obj = source.resolve(src.bucket, key)
    except ObjectError as e:
        return "source", f"{key!r} cannot be read: {e.message}", False
    try:
        metadata = source.metadata(obj) if src.metadata else {}
        rank, reason = why_not(route, key, metadata)
        if src.metadata and rank == 0 and reason.startswith("it requires metadata"):
            return "source.metadata", (f"{len(kept)} file(s) under {where} match its prefix and pattern, "
                                       f"but e.g. {key!r} does not carry its metadata: {reason}"), False
        winner = table.match(src.bucket, key, lambda: metadata).name
        why = f"{len(kept)} file(s) match, but e.g. {key!r} goes to route {winner} (more specific)"
    except ObjectError as e:
        why = f"{key!r}: {e.message}"
    finally:
        source.release(obj)
    return "source", why, False


def exclude_findings(route: Route, keys: list[str]) -> list[Finding]:
    """``source.exclude`` globs that match none of the route's files but miss some by case or
    extension (a ``*.TMP`` that never catches ``x.tmp`` lets it be read and quarantined)."""
    src = route.source
    rests = [k[len(src.prefix):] for k in keys if k.startswith(src.prefix)]
    findings: list[Finding] = []
    for glob in src.exclude:
        if any(fnmatch.fnmatchcase(r, glob) for r in rests):
            continue
        near = near_miss(glob, rests, extension=False)  # most excludes match nothing yet: case only
        if near:
            findings.append(("source.exclude", f"{glob!r} matches none of the {len(rests)} file(s) under "
                             f"the prefix; {near}"))
    return findings
