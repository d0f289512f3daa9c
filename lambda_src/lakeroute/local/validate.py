"""`lakeroute validate` over a local routes folder: every route checked, bound against a sample file."""

from __future__ import annotations

from pathlib import Path

from ..core.engine import bind_check
from ..core.errors import ObjectError
from ..core.objects import SourceObject
from ..core.routes import Route, collect_routes
from .objects import LocalObjectSource

SAMPLE_SCAN_LIMIT = 2000


def find_sample(route: Route, landing: Path) -> SourceObject | None:
    """The first file under landing/<bucket>/<prefix> that this route would match."""
    source = LocalObjectSource(landing)
    root = landing / route.source.bucket
    if not root.is_dir():
        return None
    for i, f in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        if i >= SAMPLE_SCAN_LIMIT:
            break
        key = f.relative_to(root).as_posix()
        if not route.matches_key(key) or f.name.endswith(".error.json"):
            continue
        obj = SourceObject(route.source.bucket, key, str(f.resolve()), "sample", f.stat().st_size)
        if route.source.metadata:
            try:
                meta = source.metadata(obj)
            except ObjectError:
                continue
            if any(meta.get(k) != v for k, v in route.source.metadata.items()):
                continue
        return obj
    return None


def validate_routes(routes_dir: Path, landing: Path) -> tuple[list[str], list[str], int]:
    """(problems, notes, number of routes) — one line per problem, naming the file."""
    routes, origins, problems = collect_routes(routes_dir)
    notes: list[str] = []
    for route in routes:
        origin = origins[route.name]
        sample = find_sample(route, landing)
        if sample is None and route.source.columns is None:
            notes.append(f"{origin}: sql: not bound: no sample under {landing}/"
                         f"{route.source.bucket}/{route.source.prefix} and no source.columns")
            continue
        try:
            columns = bind_check(route, sample)
        except ObjectError as e:
            against = f"sample {sample.path}" if sample else "source.columns"
            problems.append(f"{origin}: sql: {e.message.removeprefix(f'route {route.name}: ')} "
                            f"(bound against {against})")
            continue
        declared = route.target.columns
        if declared is not None:
            extra = [name for name, _ in columns if name not in declared]
            if extra:
                problems.append(f"{origin}: sql: result columns {', '.join(extra)} are not in "
                                "target.columns; declare them or drop them in the SQL")
    return problems, notes, len(routes)
