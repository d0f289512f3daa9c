"""Routes: which objects a route takes and what it does with them.

The model (``model``: source and route; ``target``: table, mode, policy; ``fields``: shared
patterns; ``column_types``: type strings), route files and checks across them (``files``),
matching (``matching``).

One pydantic model validates ``routes/*.yaml`` before deploy and parses routing-table items
at run time, so a route means the same thing everywhere. Nothing here imports a heavy
library: the CDK app and the Lambda cold start both import it.
"""

from .column_types import DECIMAL_RE, PRIMITIVE_TYPES, check_type
from .fields import BUCKET_RE, FORMATS, IDENT_RE, NAME_RE, TABLE_RE, TRANSFORM_RE, partition_column
from .files import collect_routes, cross_check, load_route_file, load_routes, parse_route, route_files
from .matching import MetadataProvider, RouteTable, could_tie, globs_intersect
from .model import Route, Source, format_from_key
from .target import OBJECT_COLUMN, RESCUED_COLUMN, Commit, Maintenance, Target

__all__ = [
    "BUCKET_RE", "DECIMAL_RE", "FORMATS", "IDENT_RE", "NAME_RE", "OBJECT_COLUMN", "PRIMITIVE_TYPES",
    "TABLE_RE", "TRANSFORM_RE", "Maintenance", "MetadataProvider", "Route", "RouteTable", "Source",
    "Commit", "RESCUED_COLUMN", "Target", "check_type",
    "collect_routes", "could_tie", "cross_check", "format_from_key", "globs_intersect",
    "load_route_file", "load_routes", "parse_route", "partition_column", "route_files",
]
