"""AWS adapters: the pipeline's ports on S3, DynamoDB, Glue and S3 Tables, and the runtime wiring them.

One module per concern: ``config`` (the handler's environment), ``clients`` (boto3 clients and
error translation), ``s3_source`` / ``s3_quarantine`` (objects in and bad objects out),
``route_store`` + ``reference`` (routes from DynamoDB, reference-design items translated),
``ledger`` (the DynamoDB ledger), ``catalog`` (the stage's catalog: PyIceberg's Glue catalog,
or ``s3tables``, a PyIceberg catalog over the S3 Tables API, whose own maintenance
``s3tables_maintenance`` configures), ``duckdb_s3``
(DuckDB's S3 secret), ``route_sync`` (the routing table made equal to the route files),
``events`` (Lambda events to object refs), ``runtime`` (everything the handler keeps warm).

Dependencies point inward: these modules import ``lakeroute.core``, never a shell
(``handler``, ``sync``, ``cli``). Every client honours ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_<SERVICE>`` (boto3 natively; PyIceberg and DuckDB are given the endpoint
explicitly), so the same code runs on moto.
"""
