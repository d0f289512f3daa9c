"""Run moto as a real HTTP server, with optimistic locking on Glue UpdateTable.

moto 5.2's Glue backend ignores ``UpdateTable(VersionId=...)``: every update wins,
so two writers committing to one Iceberg table through the Glue catalog silently
lose a commit (the later writer overwrites ``metadata_location``). Real Glue
rejects an update whose ``VersionId`` is not the table's current version with
``ConcurrentModificationException``; pyiceberg maps that to
``CommitFailedException`` and retries. moto also ignores ``SkipArchive`` (every
update is archived as a table version); real Glue keeps no archived version when
it is true. This module patches moto so tests see the same behaviour, then serves
all moto services on one port.

Run it as either of::

    python tests/support/moto_glue_locking.py --port 5000
    python -m tests.support.moto_glue_locking --port 5000   # from the repo root

``--port`` falls back to ``$MOTO_PORT`` (default 5000; ``0`` picks a free port).
``--host`` defaults to 127.0.0.1. Once listening, one line is printed to stdout::

    MOTO_SERVER_READY http://127.0.0.1:5000

SIGTERM / SIGINT shut the server down cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

READY_PREFIX = "MOTO_SERVER_READY"

# Serialises the version check and the update: the werkzeug server is threaded,
# so without this two concurrent UpdateTable calls could both pass the check.
_UPDATE_TABLE_LOCK = threading.Lock()
_PATCHED = False


def _concurrent_modification_exception() -> type[Exception]:
    """moto.glue.exceptions.ConcurrentModificationException, or an equivalent."""
    from moto.glue import exceptions as glue_exceptions

    existing = getattr(glue_exceptions, "ConcurrentModificationException", None)
    if existing is not None:
        return existing

    class ConcurrentModificationException(glue_exceptions.GlueClientError):
        # GlueClientError is moto's JsonRESTError with HTTP 400, like the
        # other Glue client errors; the error type is what boto3 maps on.
        def __init__(self, msg: str):
            super().__init__("ConcurrentModificationException", msg)

    glue_exceptions.ConcurrentModificationException = ConcurrentModificationException  # type: ignore[attr-defined]
    return ConcurrentModificationException


def _truthy(value: Any) -> bool:
    """A JSON boolean, or its text form (some clients send "true")."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def patch_glue_update_table_locking() -> None:
    """Make moto's Glue UpdateTable honour ``VersionId`` (idempotent).

    Only ``GlueResponse.update_table`` is replaced; the backend and FakeTable are
    untouched. ``SkipArchive=true`` is honoured as in real Glue: the replaced version is
    not kept as an archived table version (moto 5.2 ignores the flag and archives every
    version). ``FakeTable.update`` already stores a new version and bumps the
    current version id by one on every update, which is what real Glue does; the
    patch asserts that, so a moto upgrade that changes it fails loudly instead of
    quietly disabling the lock.
    """
    global _PATCHED
    if _PATCHED:
        return

    from moto.core.responses import EmptyResult
    from moto.glue.responses import GlueResponse

    exc_cls = _concurrent_modification_exception()

    def update_table(self: GlueResponse) -> Any:
        params = self.parameters
        database_name = params.get("DatabaseName")
        table_input = params.get("TableInput") or {}
        table_name = table_input.get("Name")
        expected = params.get("VersionId")
        backend = self.glue_backend
        with _UPDATE_TABLE_LOCK:
            table = backend.get_table(database_name, table_name)  # raises EntityNotFound
            current = str(table.as_dict()["VersionId"])
            if expected is not None and str(expected) != current:
                raise exc_cls(
                    f"Update table failed due to concurrent modifications: "
                    f"VersionId {expected} is not the current version {current} "
                    f"of {database_name}.{table_name}."
                )
            backend.update_table(database_name, table_name, table_input)
            new = str(table.as_dict()["VersionId"])
            if int(new) != int(current) + 1:  # pragma: no cover - moto behaviour guard
                raise AssertionError(
                    f"moto Glue did not advance VersionId on update ({current} -> {new})"
                )
            if _truthy(params.get("SkipArchive")):
                # Real Glue keeps no archived copy of the replaced version; moto keeps
                # every version (GetTableVersions would grow by one per commit).
                table.versions.pop(current, None)
        return EmptyResult()

    GlueResponse.update_table = update_table  # type: ignore[method-assign]
    _PATCHED = True


def patch_ecs_awsvpc_tasks() -> None:
    """moto 5.2's ECS ``RunTask`` with ``awsvpc`` networking (every Fargate task) fails with
    a 500: its Task reads ``private_dns_name`` from the ENI it creates, which moto's EC2
    NetworkInterface does not have. Give it the name real ENIs have."""
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = property(  # type: ignore[attr-defined]
            lambda self: f"ip-{str(self.private_ip_address).replace('.', '-')}.ec2.internal")


_S3TABLES_LOCK = threading.Lock()


def patch_s3tables() -> None:
    """Two gaps of moto 5.2's S3 Tables that lakeroute's S3 Tables catalog meets:

    - ``UpdateTableMetadataLocation`` compares the version token and replaces it in two steps
      on a threaded server: two concurrent commits with one token could both pass. Real S3
      Tables apply it atomically; a lock makes moto do the same.
    - ``Get/PutTableMaintenanceConfiguration`` are not implemented. They are stored and
      returned as sent (the service's validation of the values is not emulated: the 64-512 MB
      range is checked by ``aws.s3tables_maintenance`` itself), so the sync's configuration can
      be read back.
    """
    import json
    from urllib.parse import unquote

    from moto.s3tables import models, urls
    from moto.s3tables.responses import S3TablesResponse

    if getattr(models.Table, "_lakeroute_patched", False):
        return
    update = models.Table.update_metadata_location

    def update_metadata_location(self: Any, metadata_location: str, version_token: str) -> None:
        with _S3TABLES_LOCK:
            update(self, metadata_location, version_token)

    models.Table.update_metadata_location = update_metadata_location  # type: ignore[method-assign]
    models.Table._lakeroute_patched = True  # type: ignore[attr-defined]

    def _table(self: Any) -> Any:
        parts = self.raw_path.lstrip("/").split("/")
        i = parts.index("maintenance")
        arn = unquote("/".join(parts[1:i - 2]))
        return self.s3tables_backend.get_table(table_bucket_arn=arn, namespace=parts[i - 2], name=parts[i - 1])

    def put_table_maintenance_configuration(self: Any) -> Any:
        table = _table(self)
        kind = self.raw_path.rstrip("/").rsplit("/", 1)[-1]
        config = getattr(table, "maintenance", {})
        config[kind] = json.loads(self.body)["value"]
        table.maintenance = config
        return 204, {}, ""

    def get_table_maintenance_configuration(self: Any) -> Any:
        table = _table(self)
        return 200, self.default_response_headers, json.dumps(
            {"tableARN": table.arn, "configuration": getattr(table, "maintenance", {})})

    S3TablesResponse.put_table_maintenance_configuration = put_table_maintenance_configuration  # type: ignore[attr-defined]
    S3TablesResponse.get_table_maintenance_configuration = get_table_maintenance_configuration  # type: ignore[attr-defined]
    for arn in ("(?P<tableBucketARN>[^/]+)", "(?P<tableBucketARN_pt_1>[^/]+)/(?P<tableBucketARN_pt_2>[^/]+)"):
        base = "{0}/tables/" + arn + "/(?P<namespace>[^/]+)/(?P<name>[^/]+)/maintenance"
        urls.url_paths[base + "$"] = S3TablesResponse.dispatch
        urls.url_paths[base + "/(?P<type>[^/]+)$"] = S3TablesResponse.dispatch


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MOTO_PORT", "5000")),
        help="port (default $MOTO_PORT or 5000; 0 = any free port)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request (werkzeug access log)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    patch_glue_update_table_locking()
    patch_ecs_awsvpc_tasks()
    patch_s3tables()

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Some moto responses (e.g. SQS queue URLs) build URLs from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    print(f"{READY_PREFIX} http://{host}:{port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
