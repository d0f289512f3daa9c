"""Routes: the model (``model``), route files and static checks (``files``), matching (``matching``).

One pydantic model validates ``routes/*.yaml`` before deploy and parses routing-table items
at run time, so a route means the same thing everywhere. Nothing here imports a heavy
library: the CDK app and the Lambda cold start both import it.
"""

from .files import collect_routes, cross_check, load_route_file, load_routes, parse_route, route_files
from .matching import MetadataProvider, RouteTable, could_tie, globs_intersect
from .model import (
    BUCKET_RE,
    DECIMAL_RE,
    FORMATS,
    IDENT_RE,
    NAME_RE,
    OBJECT_COLUMN,
    PRIMITIVE_TYPES,
    TABLE_RE,
    TRANSFORM_RE,
    Maintenance,
    Route,
    Source,
    Target,
    check_type,
    format_from_key,
    partition_column,
)

__all__ = [
    "BUCKET_RE", "DECIMAL_RE", "FORMATS", "IDENT_RE", "NAME_RE", "OBJECT_COLUMN", "PRIMITIVE_TYPES",
    "TABLE_RE", "TRANSFORM_RE", "Maintenance", "MetadataProvider", "Route", "RouteTable", "Source",
    "Target", "check_type",
    "collect_routes", "could_tie", "cross_check", "format_from_key", "globs_intersect",
    "load_route_file", "load_routes", "parse_route", "partition_column", "route_files",
]
