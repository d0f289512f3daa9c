"""lakeroute: one ingestion function, many sources; declarative routes land files into Iceberg.

Layers, and the one way dependencies point (shells -> adapters -> core):

- ``core/``: the pipeline, pure: route model and matching, DuckDB engine, tables, staging,
  ledger, commit, pipeline, errors. Imports no boto3, no adapter, no shell.
- ``local/`` and ``aws/``: adapters implementing the core's ports (objects in, quarantine,
  ledger, catalog, routes) for the embedded default and for AWS.
- shells: ``cli/`` (the ``lakeroute`` command), ``handler`` (the Lambda handler,
  ``lakeroute.handler.handler``), ``sync`` (``lakeroute sync`` and the deploy-time custom
  resource, ``lakeroute.sync.on_event``), ``demo``. They parse input and wire adapters.
"""
