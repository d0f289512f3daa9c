"""Route files: loading with file and field-path messages, and checks across routes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .matching import could_tie
from .model import Route


def _field_path(loc: Iterable[int | str]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_route(data: Any, origin: str) -> Route:
    """Validate one route document; errors name the origin and the field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with name, source, target, sql")
    try:
        return Route.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see the route file contract)"
            elif err["type"] == "string_pattern_mismatch":
                msg = f"{err.get('input')!r} does not match {err['ctx']['pattern']}"
            lines.append(f"{origin}: {_field_path(err['loc'])}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_route_file(path: Path) -> Route:
    import yaml  # route files only: the Lambda reads its routes from the routing table

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start}); save the route file as UTF-8") from None
    return parse_route(data, str(path))


def route_files(routes_dir: Path) -> list[Path]:
    if not routes_dir.is_dir():
        raise ConfigError(f"{routes_dir}: routes directory not found; create it or pass --routes DIR")
    return sorted(p for p in routes_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_routes(routes_dir: Path) -> list[Route]:
    """Every route under ``routes_dir``, checked together; raises one ConfigError listing all."""
    routes, _, problems = collect_routes(routes_dir)
    if problems:
        raise ConfigError("\n".join(problems))
    return routes


def collect_routes(routes_dir: Path) -> tuple[list[Route], dict[str, str], list[str]]:
    """(valid routes, route name -> file, one line per problem) for a routes folder."""
    problems: list[str] = []
    routes: list[Route] = []
    origins: dict[str, str] = {}
    for path in route_files(routes_dir):
        try:
            route = load_route_file(path)
        except ConfigError as e:
            problems.extend(str(e).splitlines())
            continue
        if route.name in origins:
            problems.append(f"{path}: name: {route.name!r} is already used by {origins[route.name]}")
            continue
        origins[route.name] = str(path)
        routes.append(route)
    problems.extend(cross_check(routes, origins))
    return routes, origins, problems


# ---------------------------------------------------------------- static checks


def cross_check(routes: list[Route], origins: Mapping[str, str] | None = None) -> list[str]:
    """Ambiguous routes and disagreeing table settings, one line per problem."""
    origins = origins or {}

    def where(r: Route) -> str:
        return origins.get(r.name, f"route {r.name}")

    problems = []
    for i, a in enumerate(routes):
        for b in routes[i + 1:]:
            if could_tie(a, b):
                problems.append(
                    f"{where(b)}: source: ambiguous with route {a.name!r} ({where(a)}): both can "
                    f"match the same key in bucket {a.source.bucket!r} with equal specificity; "
                    "make one prefix longer, add a pattern or metadata, or merge them"
                )
    by_table: dict[str, Route] = {}
    for r in (leg for route in routes for leg in route.legs()):
        first = by_table.setdefault(r.target.table, r)
        if first is not r and first.target.settings() != r.target.settings():
            diff = [k for k, v in r.target.settings().items() if first.target.settings()[k] != v]
            problems.append(
                f"{where(r)}: target: settings for table {r.target.table!r} disagree with route "
                f"{first.name!r} ({where(first)}) on {', '.join(diff)}; routes feeding one table "
                "must declare the same table settings"
            )
    return problems
