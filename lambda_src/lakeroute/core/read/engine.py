"""DuckDB: the object as relation ``source``, the route SQL over it, Arrow batches out.

Safety model: every lineage value enters DuckDB as a *value* (``SET VARIABLE x = ?``),
never as SQL text, and the route SQL sees only those variables. The path DuckDB reads is one
lakeroute made (a scratch download or link, ``core.scratch``: safe characters only), written
as a quoted literal; an object read in place from S3 (httpfs) is read through
``getvariable('source_uri')``. Reader options come from the route file (trusted
configuration) and are rendered as quoted literals; ``filename`` shows the object's URI, not
a scratch path. After set-up the connection is locked down: external access off except the
one source path, configuration locked, no extension autoload, and the route SQL must be
exactly one SELECT. Each object has a time limit (``source.timeout_seconds``, else the
engine's default): a watchdog interrupts DuckDB. A compressed object is checked to be whole
(``core.streams``) while it is read. Anything else fails with an ``ObjectError`` and commits
nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import LakerouteError, ObjectError, TransientError
from ..objects import SourceObject
from ..routes import Route
from .absent import answer_absent
from .crash import CrashGuard
from .depth import refuse_deep_json
from .hints import hinted_view
from .json_columns import JSON_COLUMNS_KEY, json_shapes
from .long_lines import long_line_options
from .messages import empty_file_message
from .nanos import check_nanoseconds
from .rejects import RowRejects, collect_csv, csv_options, json_rows, remove
from .result_checks import check_result_names, check_result_types, check_single_select
from .reuse import ReusedDatabase, reads_lineage, set_variables
from .source_view import make_view
from .streams import compression_of, start_check
from .watchdog import Watchdog

if TYPE_CHECKING:
    from concurrent.futures import Future

    import duckdb
    import pyarrow as pa

DEFAULT_TIMEOUT_SECONDS = 900.0


@dataclass
class Engine:
    """Settings shared by every connection.

    A fresh DuckDB database costs ~10 ms to set up (its function catalog), more than reading
    a small object. So a local object of at most ``small_object_bytes`` (outside rows mode)
    is read by the batch's one reused, locked-down database (``core.read.reuse``: only that
    object's file in its allow-list, its state checked back to pristine after each object,
    discarded after any failure); ``release`` closes it at the end of the batch. Any other
    object gets a fresh locked database; from the second on, one is kept ready, created on a
    background thread while the current object is read.

    DuckDB threads per object, unless ``threads`` is set (then it holds for every object):
    an object of at most ``small_object_bytes`` gets ``small_object_threads`` (worker threads
    to start and join cost more than they save on a file one core reads in milliseconds); a
    bigger one, or one of unknown size, gets every core but one, which the Writer uses
    meanwhile to encode the previous chunk. Settings go in at connect time where they can.
    """

    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: str | None = None
    batch_rows: int = 262_144
    s3_setup: list[tuple[str, list[Any]]] = field(default_factory=list)
    small_object_bytes: int = 8 * 1024 * 1024
    small_object_threads: int = 1
    prepare_next: bool = True  # keep a pristine database ready for the next object
    reuse: bool = True  # small local objects: one reused database per batch (core.read.reuse)
    window_root: str | None = None  # where its window folders go (default: the system's temp folder)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS  # per object, unless the route sets one
    crash_guard: CrashGuard | None = None  # markers, and a child read after a crash (core.read.crash)
    _spare: Any = field(default=None, init=False, repr=False, compare=False)
    _spare_pool: Any = field(default=None, init=False, repr=False, compare=False)
    _spare_pid: int = field(default=0, init=False, repr=False, compare=False)
    _reused: ReusedDatabase | None = field(default=None, init=False, repr=False, compare=False)
    _connects: int = field(default=0, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"autoinstall_known_extensions": False,
                                  "autoload_known_extensions": False}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        return config

    def _reusable(self, obj: SourceObject, rows: bool) -> bool:
        """Objects the batch's reused database reads: local, small (its thread count fits)."""
        return self.reuse and not rows and not obj.path.startswith("s3://") and (
            self.threads is not None or 0 < obj.size <= self.small_object_bytes)

    def _take_reused(self) -> ReusedDatabase:
        config = {**self._config(), "threads": self.threads or self.small_object_threads}
        with self._lock:
            db, self._reused = self._reused, None
        if db is not None and (db.pid != os.getpid() or db.config != config):
            if db.pid == os.getpid():  # a forked child leaves its parent's database alone
                db.close()
            db = None
        return db if db is not None else ReusedDatabase(config, self.window_root or tempfile.gettempdir(),
                                                          self.temp_directory)

    def _give_back(self, db: ReusedDatabase, clean: bool) -> None:
        if not (clean and db.reset()):
            db.close()
            return
        with self._lock:
            extra, self._reused = self._reused, db
        if extra is not None:  # another thread's, returned meanwhile: one is enough
            extra.close()

    def release(self) -> None:
        """Close the batch's reused database (and its window folder)."""
        with self._lock:
            db, self._reused = self._reused, None
        if db is not None and db.pid == os.getpid():
            db.close()

    def _connect(self, obj: SourceObject, spill: str | None = None) -> duckdb.DuckDBPyConnection:
        import duckdb

        config = self._config()
        spare_threads = self.threads or self.small_object_threads
        threads = self.threads
        if threads is None:
            if 0 < obj.size <= self.small_object_bytes:
                threads = self.small_object_threads
            else:
                cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
                threads = max(1, (cores or 2) - 1)

        con: duckdb.DuckDBPyConnection | None = None
        spare_config = {**config, "threads": spare_threads}
        with self._lock:
            spare, self._spare = self._spare, None
            self._connects += 1
            prepare = self.prepare_next and self._connects > 1
            if self._spare_pid != os.getpid():  # forked: the parent's thread and database are not ours
                spare, self._spare_pool, self._spare_pid = None, None, os.getpid()
        if spare is not None:
            made_with, future = spare
            try:
                con = future.result()
            except Exception:  # set-up failed on the background thread: connect here instead
                con = None
            if con is not None and made_with != spare_config:  # settings changed since
                con.close()
                con = None
        if con is not None and threads != spare_threads:
            con.execute("SET threads = ?", [threads])
        if con is None:
            con = duckdb.connect(config={**config, "threads": threads})
        if prepare:
            from concurrent.futures import ThreadPoolExecutor

            with self._lock:
                if self._spare_pool is None:
                    self._spare_pool = ThreadPoolExecutor(1, thread_name_prefix="lakeroute-duckdb")
                if self._spare is None:
                    self._spare = (spare_config, self._spare_pool.submit(duckdb.connect, config=spare_config))

        if obj.path.startswith("s3://"):
            import duckdb_ext

            duckdb_ext.init(con)
            con.execute("SET home_directory = ?", [os.environ.get("TMPDIR", "/tmp")])
            con.execute("LOAD httpfs")
            for stmt, params in self.s3_setup:
                con.execute(stmt, params)
        set_variables(con, obj)
        if spill:  # DuckDB lets SQL read its temp folder: one per object, empty at the start
            con.execute("SET temp_directory = ?", [spill])
        con.execute("SET allowed_paths = ?", [[obj.path]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    @contextmanager
    def run(self, route: Route, obj: SourceObject, until: float | None = None,
            rejects: RowRejects | None = None) -> Iterator[pa.RecordBatchReader]:
        """Stream the route's result over ``obj`` as Arrow record batches, within its time
        limit, and, with ``until`` (a time.monotonic() value: the batch's deadline), no later.
        ``rejects``: under ``source.on_error: rows``, bad CSV/JSON lines are set aside there
        (``core.rejects``) instead of failing the object. With a ``crash_guard``, an object
        that crashed an earlier process is read in a child first (``core.read.crash``)."""
        guard = self.crash_guard
        watch = (guard.watch(route, obj, self.settings(), until, rejects is not None) if guard is not None
                 else contextlib.nullcontext())
        with watch, self._read(route, obj, until, rejects) as reader:
            yield reader

    def settings(self) -> dict[str, Any]:
        """What a child process needs to read an object as this engine would (JSON)."""
        return {"memory_limit": self.memory_limit, "threads": self.threads,
                "temp_directory": self.temp_directory, "batch_rows": self.batch_rows,
                "s3_setup": [[stmt, list(params)] for stmt, params in self.s3_setup],
                "small_object_bytes": self.small_object_bytes,
                "small_object_threads": self.small_object_threads, "timeout_seconds": self.timeout_seconds}

    @contextmanager
    def _read(self, route: Route, obj: SourceObject, until: float | None,
              rejects: RowRejects | None) -> Iterator[pa.RecordBatchReader]:
        import duckdb

        answer_absent()
        fmt = route.file_format(obj.key)
        limit = route.source.timeout_seconds or self.timeout_seconds
        by_deadline = until is not None and until - time.monotonic() < limit
        if until is not None:
            limit = max(0.001, min(limit, until - time.monotonic()))
        options, read, clean = route.source.options, obj, None
        if is_empty(obj):
            raise ObjectError("read", f"route {route.name}: {empty_file_message()}", route.name)
        rows = rejects is not None and route.source.on_error == "rows"
        kind = None if obj.path.startswith("s3://") else compression_of(obj.key, route.source.options)
        if fmt == "json" and not rows and not obj.path.startswith("s3://"):
            refuse_deep_json(obj.path, kind, route.name)  # before DuckDB: it would crash on it
        if rows and fmt == "json":
            assert rejects is not None
            clean = json_rows(obj.path, kind, options, rejects, route=route.name,
                              memory_limit=self.memory_limit, limit=limit, hints=route.source.columns)
            if clean is not None:  # DuckDB reads the good lines (uncompressed), allowed alone
                read = replace(obj, path=clean)
                options = {k: v for k, v in options.items() if k not in ("compression", "ignore_errors")}
        elif rows and fmt == "csv":
            options = csv_options(options)
        db: ReusedDatabase | None = None
        spill = None
        try:
            if self._reusable(read, rows):
                db = self._take_reused()
                read = db.admit(read, folders=bool(options.get("hive_partitioning")))
                con = db.con
                db.set_lineage(read, reads_lineage(route.sql, options))
            else:
                spill = os.path.join(self.temp_directory, uuid.uuid4().hex) if self.temp_directory else None
                con = self._connect(read, spill)
        except BaseException as e:
            if db is not None:
                db.close()
            remove(clean)
            if isinstance(e, OSError):  # the window link: scratch space, not the object
                raise TransientError(f"route {route.name}: could not link {obj.key!r} for reading: {e}") from e
            raise
        watchdog = Watchdog(con, limit, by_deadline)
        watchdog.scrub = (read.path, f"{obj.bucket}/{obj.key}") if read.path != obj.uri else None
        watchdog.lines = (read.path, kind) if fmt == "csv" else None
        check = start_check(obj.path, kind) if kind and fmt in ("csv", "json") else None
        after = (lambda: collect_csv(con, rejects)) if rows and fmt == "csv" and rejects is not None else None
        try:
            check_single_select(con, route)
            try:
                footer = None  # the file's Parquet schema, when read for the check below
                if fmt == "parquet":  # sub-microsecond values DuckDB would drop
                    footer = check_nanoseconds(con, route, read.path)
                try:
                    view = hinted_view(con, fmt, options, read.path, route.source.columns)
                    kept = make_view(con, db, view, footer)
                except duckdb.Error as e:  # rows mode: a line too long for the sniffer (core.read.rejects)
                    again = long_line_options(con, e, read.path, options, route.source.columns) if (
                        rows and fmt == "csv") else None
                    if again is None:
                        raise
                    view = hinted_view(con, fmt, again, read.path, route.source.columns)
                    kept = make_view(con, db, view, None)
                try:  # on the connection, not as a relation (which binds it again to fetch it)
                    con.execute(route.sql)
                except duckdb.BinderException:
                    if not kept:  # the route's own error
                        raise
                    make_view(con, db, view, None)  # a kept view that does not bind: made again
                    con.execute(route.sql)
                names = [d[0] for d in con.description or []]
                types = [d[1] for d in con.description or []]
                check_result_names(route, names)
                check_result_types(route, names, [str(x) for x in types])
                reader = con.fetch_record_batch(self.batch_rows)
                # DuckDB's JSON values arrive as JSON text: where they are goes in the schema's
                # metadata, so that the cast lands their text and rescue keeps their JSON.
                json_columns = json_shapes(names, types)
            except duckdb.Error as e:
                raise watchdog.error(route, e) from e
            yield _guarded(reader, route, watchdog, check, after, json_columns)
        finally:
            watchdog.cancel()
            if db is None:
                con.close()
            else:  # reused only after a read to its end that left nothing behind
                self._give_back(db, watchdog.ended and not watchdog.fired)
            remove(clean)
            if spill:
                shutil.rmtree(spill, ignore_errors=True)


def is_empty(obj: SourceObject) -> bool:
    """A local object of 0 bytes (not even a header): nothing a reader could type or count
    (DuckDB would invent a column ``column0`` or ``json`` for it). An object read in place
    from S3 (httpfs) is not checked; a 0-byte object always fits in /tmp, so the default
    reader fetches it and it is checked here."""
    if obj.path.startswith("s3://"):
        return False
    try:
        return os.path.getsize(obj.path) == 0
    except OSError:
        return False


def _guarded(reader: pa.RecordBatchReader, route: Route, watchdog: Watchdog,
             check: Future[str | None] | None, after: Callable[[], None] | None = None,
             json_columns: dict[str, Any] | None = None) -> pa.RecordBatchReader:
    """The result stream with DuckDB's errors (mid-stream too) as ObjectErrors; it ends only
    after the stream check passed, so a truncated file never yields its last batch."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                if watchdog.fired:
                    raise watchdog.error(route, TimeoutError())
                yield batch
            if after is not None:  # e.g. the CSV reader's rejects, complete once the stream ended
                after()
        except LakerouteError:
            raise
        except Exception as e:
            raise watchdog.error(route, e) from e
        if check is not None:
            problem = check.result()
            if problem:
                raise ObjectError("read", f"route {route.name}: {problem}; nothing of it is "
                                  "committed", route.name)
        watchdog.ended = True

    schema = reader.schema
    if json_columns:
        schema = schema.with_metadata({**(schema.metadata or {}), JSON_COLUMNS_KEY: json.dumps(json_columns)})
    return pa.RecordBatchReader.from_batches(schema, batches())

