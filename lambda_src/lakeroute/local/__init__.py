"""Local adapters: the embedded default, no AWS.

``runtime`` (paths under the home folder, the SQLite catalog, the wired pipeline),
``objects`` (``landing/<bucket>/<key>`` files and the local quarantine), ``ledger`` (SQLite),
``warehouse`` (DuckDB views over the local tables), ``validate`` (route files bound against
sample files under the landing folder). They implement ``lakeroute.core``'s ports and import
only the core; the shells (``cli``, ``demo``) wire them.
"""

from .runtime import CATALOG_NAME, LocalPaths, local_catalog, local_pipeline

__all__ = ["CATALOG_NAME", "LocalPaths", "local_catalog", "local_pipeline"]
