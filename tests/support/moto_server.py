"""Start moto as a real HTTP server subprocess for AWS-side tests.

Usage::

    from tests.support.moto_server import aws_env, reset, start_moto_server

    with start_moto_server() as moto:
        env = aws_env(moto.endpoint)     # pass to subprocesses / monkeypatch.setenv
        ...
        reset(moto.endpoint)             # wipe all moto state between tests

The server is ``tests/support/moto_glue_locking.py``: plain moto (S3, DynamoDB,
Glue, SQS, ... on one port) plus optimistic locking on Glue ``UpdateTable``
``VersionId``, so lost Iceberg commits surface as ``CommitFailedException``.
Because it is a separate process, other processes (CLI runs, worker pools) can
share it through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from tests.support.patience import patience

__all__ = ["MotoServer", "MotoServerError", "aws_env", "reset", "start_moto_server"]

SERVER_SCRIPT = Path(__file__).with_name("moto_glue_locking.py")
HOST = "127.0.0.1"
REGION = "us-east-1"

_live_servers: set[MotoServer] = set()


class MotoServerError(RuntimeError):
    """The moto server subprocess failed to start (message includes its output)."""


class MotoServer:
    """A running moto server subprocess. Use as a context manager or call stop()."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, stdout: IO[bytes], stderr: IO[bytes]
    ):
        self.process = process
        self.port = port
        self.host = HOST
        self.endpoint = f"http://{HOST}:{port}"
        self._stdout = stdout
        self._stderr = stderr

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited({self.process.returncode})"
        return f"<MotoServer {self.endpoint} pid={self.process.pid} {state}>"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def env(self) -> dict[str, str]:
        """Shorthand for ``aws_env(self.endpoint)``."""
        return aws_env(self.endpoint)

    def reset(self) -> None:
        """Shorthand for ``reset(self.endpoint)``."""
        reset(self.endpoint)

    def output(self) -> str:
        """Everything the server wrote so far (stdout then stderr)."""
        return _read(self._stdout) + _read(self._stderr)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the subprocess (SIGTERM, then SIGKILL after ``timeout``). Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()
        _live_servers.discard(self)

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment variables pointing every AWS SDK client at ``endpoint`` with dummy creds."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def reset(endpoint: str, timeout: float = 10.0) -> None:
    """Wipe all moto state (every service, account and region) on the server."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=patience(timeout)) as resp:
        if resp.status != 200:  # pragma: no cover - moto always answers 200
            raise MotoServerError(f"moto reset failed: HTTP {resp.status}")


def start_moto_server(timeout: float = 120.0, attempts: int = 3) -> MotoServer:
    """Start the locking moto server on a free 127.0.0.1 port; return once it answers HTTP.

    Retries on a new port if the chosen one was taken between picking and
    binding (possible under pytest-xdist). Raises MotoServerError, with the
    server's output, if it exits or does not answer within ``timeout`` seconds.
    """
    last_error: MotoServerError | None = None
    for _ in range(attempts):
        try:
            return _start_once(_free_port(), timeout)
        except MotoServerError as e:
            last_error = e
            if "address already in use" not in str(e).lower():
                raise
    assert last_error is not None
    raise last_error


def _start_once(port: int, timeout: float) -> MotoServer:
    stdout = _log_file("moto-server-out-")
    stderr = _log_file("moto-server-err-")
    env = dict(os.environ)
    env["MOTO_PORT"] = str(port)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Logs go to temp files, not pipes: an undrained pipe would block the server.
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--host", HOST, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
    )
    server = MotoServer(process, port, stdout, stderr)
    _live_servers.add(server)

    deadline = time.monotonic() + patience(timeout)
    while True:
        if process.poll() is not None:
            output = server.output()
            server.stop()
            raise MotoServerError(
                f"moto server exited with code {process.returncode} before answering "
                f"on {server.endpoint}:\n{output}"
            )
        if _answers_http(server.endpoint):
            return server
        if time.monotonic() >= deadline:
            output = server.output()
            server.stop()
            raise MotoServerError(
                f"moto server did not answer on {server.endpoint} within {timeout:.0f}s:\n{output}"
            )
        time.sleep(0.1)


def _answers_http(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (OSError, urllib.error.URLError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _log_file(prefix: str) -> IO[bytes]:
    """An anonymous temp file opened O_APPEND.

    The child shares the open file description (and so its offset); with
    O_APPEND its writes always land at the end, so reading it here with pread
    can never make the child overwrite earlier output.
    """
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".log")
    os.close(fd)
    f = open(path, "ab+")  # noqa: SIM115 - closed by MotoServer.stop()
    os.unlink(path)
    return f


def _read(f: IO[bytes]) -> str:
    if f.closed:
        return ""
    fd = f.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live_servers):
        server.stop()
