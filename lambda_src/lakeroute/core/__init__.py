"""The pipeline core: pure, runs unchanged in Lambda, in a container task, locally and in tests.

``routes`` (the route model, route files, matching), ``objects`` (an object version and the
ports that bring objects in and put bad ones aside), ``engine`` (DuckDB: the object as
``source``, the route SQL, Arrow out), ``tables`` (declared tables: schema, partitioning,
creation, evolution), ``staging`` (rows cast and written as data files), ``ledger`` (the
index of committed sources, reconciled from snapshot summaries), ``commit`` (one snapshot per
table, exactly once), ``pipeline`` (objects in, outcomes out), ``history`` (reading load
history back from any catalog), ``errors``.

Nothing here imports boto3 or an adapter (``lakeroute.local``, ``lakeroute.aws``) or a shell:
adapters implement the ports, shells wire them.
"""
