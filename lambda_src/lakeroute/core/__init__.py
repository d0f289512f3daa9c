"""The pipeline core: pure, runs unchanged in Lambda, in a container task, locally and in tests.

One package per step of an object's journey, in the order an object passes through them:

- ``routes``   which route an object takes: the route model, route files, matching
- ``read``     the object as DuckDB's relation ``source``, the route SQL over it, Arrow out
               (reader views and hints, row rejects, stream checks, scratch copies, time limits)
- ``shape``    the result made to fit its table: types and casts, schema policy and plans,
               declared tables, expectations
- ``write``    rows staged as data files, the write modes planned and committed in one snapshot
- ``ledger``   what happened to each object: committed sources, attempts, quarantine records
- ``maintain`` compaction, snapshot expiry, orphan files (beside the journey, on the same tables)
- ``pipeline`` orchestrates the journey per object and per table (and ``preview``, ``checks``)
- ``lane``     the commit lane on top: stagers hand off, one committer per table commits

At the bottom, shared by all: ``errors`` (lakeroute's exceptions), ``objects`` (an object
version and the ports that bring objects in and put bad ones aside), ``sql_text`` (quoting),
``startup`` (a cold start's imports, once, with the garbage collector paused).

Imports point down this list only: lane > pipeline > maintain > write > shape > read > routes,
ledger > errors, objects, sql_text, startup (``routes`` and ``ledger`` do not import each other).
The ledger sits low because the journey asks it first (already ingested?) and the commit
records into it last. ``tests/unit/test_layout.py`` checks the order, the absence of import
cycles and of imports of another module's private names.

Nothing here imports boto3 or an adapter (``lakeroute.local``, ``lakeroute.aws``) or a shell:
adapters implement the ports, shells wire them.
"""
