"""Spark 3.5 + Iceberg 1.10 as a co-writer of lakeroute's local catalog, in a subprocess.

``.spark/`` is built by ``tests/spark/setup_spark.sh`` (``make spark``, a prerequisite of
``make test``; best-effort). When it is missing or failed, the tests that need Spark skip with
the reason the set-up wrote. One JVM serves a whole test module (``tests/spark/driver.py``,
driven over stdin/stdout), so the pytest process stays light.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPARK_DIR = Path(os.environ.get("LAKEROUTE_SPARK_DIR", ROOT / ".spark"))
DRIVER = ROOT / "tests" / "spark" / "driver.py"
START_SECONDS = 240.0  # a JVM start on 2 busy cores
STATEMENT_SECONDS = 300.0


class SparkError(Exception):
    pass


class Spark:
    """``sql(text)`` runs one statement in the module's Spark session and returns its rows."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        self.proc, self.log = proc, log
        self.seconds = 0.0  # time spent in statements, for the module's budget

    def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SparkError(f"no answer from Spark within {timeout:.0f} s; its log: {self.log}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise SparkError(f"Spark exited ({self.proc.poll()}); its log: {self.log}\n{self._tail()}")
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    def _tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def sql(self, text: str) -> list[list[Any]]:
        assert self.proc.stdin is not None
        start = time.monotonic()
        self.proc.stdin.write(json.dumps({"sql": text}) + "\n")
        self.proc.stdin.flush()
        answer = self._answer(STATEMENT_SECONDS)
        self.seconds += time.monotonic() - start
        if not answer["ok"]:
            raise SparkError(f"{text}\n-> {answer['error']}")
        return answer["rows"]  # type: ignore[no-any-return]


def spark_or_skip() -> dict[str, str]:
    """The set-up (``python``, ``jars``, ``java_home``), or skip the test with its reason."""
    ready, unavailable = SPARK_DIR / "ready", SPARK_DIR / "unavailable"
    if not ready.is_file():
        why = (unavailable.read_text().strip() if unavailable.is_file()
               else f"{SPARK_DIR} is not set up: run `make spark` (tests/spark/setup_spark.sh)")
        pytest.skip(why)
    return dict(line.split("=", 1) for line in ready.read_text().splitlines() if "=" in line)


@contextmanager
def spark_session(home: Path) -> Iterator[Spark]:
    """A Spark session whose Iceberg catalog ``lakeroute`` is the SQLite catalog under ``home``."""
    conf = spark_or_skip()
    python, jars = conf["python"], conf["jars"]
    log = home.parent / "spark.log"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": python,
           "JAVA_TOOL_OPTIONS": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"}
    if conf.get("java_home"):
        env["JAVA_HOME"] = conf["java_home"]
    with open(log, "w") as err:
        proc = subprocess.Popen([python, str(DRIVER), str(home), jars], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    spark = Spark(proc, log)
    try:
        started = spark._answer(START_SECONDS)
        if not started.get("ok"):
            raise SparkError(f"Spark did not start: {started}")
        yield spark
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
