"""Row-level rejects (``source.on_error: rows``): bad rows set aside with line numbers, the
good ones committed, nothing dropped silently.

- CSV: DuckDB's own ``store_rejects`` (its ``reject_errors`` table): every line that does not
  parse (missing or extra columns, a broken quote) or whose value does not cast to the column
  type (a hint, or what the sniffer found) is skipped by the reader and recorded with its
  line number, the column, the error and the raw line.
- JSON (newline-delimited): DuckDB's ``read_json(ignore_errors := true)`` gives a malformed
  line as a row of NULLs and a value that does not cast as NULL, with no record of either,
  so lakeroute makes its own line pass first: the object read as lines by DuckDB's CSV
  reader into a ``JSON``-typed column with ``store_rejects`` (a line that is not JSON fails
  the cast and is recorded with its number), plus the count of lines that are JSON but not
  an object. Only when some line is bad is a clean copy (the good lines, byte for byte)
  written to scratch for ``read_json``; a clean file costs the pass alone (measured in
  docs/schema-drift.md).
- Values that do not cast to the *table* (after the SQL, so no line number: the result row
  and its values are recorded) are rejected by ``core.policy`` under the same setting.

The rejects go into the object's quarantine entry as ``rejects.<table>.jsonl`` (one JSON
record per rejected row: line, column, error, the raw text), beside its summary record;
counts go into the outcome, the journal, the snapshot summary and the metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ObjectError, TransientError, one_line
from ..routes.column_types import parse_type
from ..sql_text import sql_literal
from . import depth
from .long_lines import long_line_message
from .streams import open_stream

if TYPE_CHECKING:
    import duckdb

MAX_LINE = 16 * 1024 * 1024  # read_json's default maximum_object_size: the same lines fit
# A JSON line holds no raw control character, so \x01 as the "delimiter" never splits a good
# line; a line that contains one is not JSON and is rejected like any other.
_LINES = ("read_csv({path}, columns := {{'line': 'JSON'}}, header := false, delim := '\x01', "
          "quote := '', escape := '', auto_detect := false, store_rejects := true, "
          "max_line_size := {max_line}{compression})")


@dataclass
class Reject:
    """One rejected row: ``line`` in the object (None after the SQL), why, and its text."""

    line: int | None
    reason: str
    text: str | None
    column: str | None = None
    kind: str = "parse"  # parse | cast | table-cast

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowRejects:
    """An object's rejected rows for one target, filled while it is read."""

    items: list[Reject] = field(default_factory=list)
    good_lines: int | None = None  # JSON: the lines that parsed (None: not counted)

    def __len__(self) -> int:
        return len(self.items)

    def jsonl(self) -> bytes:
        return b"".join(json.dumps(r.as_dict(), ensure_ascii=False, default=str).encode("utf-8",
                        "backslashreplace") + b"\n" for r in self.items)

    def summary(self, limit: int = 3) -> str:
        shown = "; ".join(f"{'line ' + str(r.line) if r.line else 'a result row'}: {r.reason}"
                          for r in self.items[:limit])
        more = f" (+{len(self.items) - limit} more)" if len(self.items) > limit else ""
        return shown + more


def csv_options(options: dict[str, Any]) -> dict[str, Any]:
    """The reader options that make DuckDB record, not raise on, bad CSV lines."""
    return {**{k: v for k, v in options.items() if k != "ignore_errors"}, "store_rejects": True}


def collect_csv(con: duckdb.DuckDBPyConnection, into: RowRejects) -> None:
    """DuckDB's reject table after the read: one Reject per bad line (its errors joined)."""
    rows = _reject_rows(con, "SELECT line, column_name, error_type, csv_line, error_message "
                             "FROM reject_errors ORDER BY line, column_idx")
    by_line: dict[int, Reject] = {}
    errors: dict[int, list[tuple[str, str]]] = {}  # line -> (kind, message) as DuckDB recorded them
    for line, column, kind, text, message in rows:
        errors.setdefault(int(line), []).append((str(kind or ""), str(message)))
        reason = f"{kind}: {message}" if kind else str(message)
        if kind == "LINE SIZE OVER MAXIMUM":
            reason = (long_line_message(str(message)) or reason).split(";")[0]
            if text is not None:  # DuckDB keeps the start of such a line only
                reason += f"; the text is its first {len(text):,} characters"
        got = by_line.get(int(line))
        if got is None:
            by_line[int(line)] = Reject(int(line), reason, text, column, "cast" if kind == "CAST" else "parse")
        elif reason not in got.reason:
            got.reason += f"; {reason}"
    for line, reject in by_line.items():
        said = csv_reason(errors[line])
        if said is not None:
            reject.reason, reject.kind = said
    into.items.extend(by_line.values())


def csv_reason(errors: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(reason, kind) in lakeroute's words for a line's reject errors (kind, message), or None
    to keep DuckDB's. DuckDB records a short line once per missing column ("Found: 3",
    "Found: 4", ...), a long one once per extra value, and a long line's shifted values fail
    their casts too: such a line has one problem, its column count. A value that does not
    cast is said as the column, the value and the type."""
    from .messages import COLUMN_COUNT, CONVERT

    counts = [(k, c) for k, m in errors if k in ("MISSING COLUMNS", "TOO MANY COLUMNS")
              and (c := COLUMN_COUNT.search(m)) is not None]
    if counts:
        expected = int(counts[0][1].group(1))
        found = [int(c.group(2)) for _, c in counts]
        if counts[0][0] == "MISSING COLUMNS":
            return f"only {min(found)} of {expected} columns", "parse"
        return f"{max(found)} values for {expected} columns", "parse"
    casts = [c for k, m in errors if k == "CAST" and (c := CONVERT.search(m)) is not None]
    if casts and len(casts) == len(errors):
        return "; ".join(f"{c.group(1)}: {c.group(2)!r} is not a {c.group(3)}" for c in casts), "cast"
    return None


def _hint_condition(hints: dict[str, str]) -> tuple[str, str, list[str]]:
    """SQL over a ``line`` (JSON): the hinted top-level fields extracted in one parse of the
    line (``lakeroute_v``), a condition true when one holds a value that does not cast to its
    hint (what would fail ``read_json(columns := …)``), and per hint its test. Names and paths
    are quoted literals; types are validated hints."""
    if not hints:
        return "", "false", []
    paths = ", ".join(sql_literal("$." + json.dumps(name)) for name in hints)
    tests = []
    for i, text in enumerate(hints.values(), start=1):
        t = parse_type(text)
        value = f"lakeroute_v[{i}]"
        source = value if t.nested else f"json_extract_string({value}, '$')"
        # TRY(CAST(…)), not TRY_CAST: a struct with a bad field is NULL, not a struct of NULLs.
        tests.append(f"(json_type({value}) <> 'NULL' AND TRY(CAST({source} AS {t.duck()})) IS NULL)")
    return f", json_extract(line, [{paths}]) AS lakeroute_v", " OR ".join(tests), tests


def _physical(numbers: list[int], skipped: list[int]) -> list[int]:
    """Row numbers of the line read (which skips the rejected lines) as line numbers."""
    out = []
    for n in numbers:
        line = n
        for s in skipped:  # sorted
            if s <= line:
                line += 1
        out.append(line)
    return out


def json_rows(path: str, compression: str | None, options: dict[str, Any], into: RowRejects, *, route: str,
              memory_limit: str | None = None, limit: float | None = None,
              hints: dict[str, str] | None = None) -> str | None:
    """The rejects of a newline-delimited JSON object: lines nesting deeper than DuckDB can
    read (``core.read.depth``), then the line pass (``json_line_pass``). Returns the path of
    what ``read_json`` reads instead of the object (a copy of the good lines), or None."""
    if path.startswith("s3://"):
        return json_line_pass(path, options, into, route=route, memory_limit=memory_limit, limit=limit,
                              hints=hints)
    found = depth.checked_scan(path, compression, route, per_line=True, first_only=False)
    if not found.deep:
        return json_line_pass(path, options, into, route=route, memory_limit=memory_limit, limit=limit,
                              hints=hints)
    # DuckDB never sees the deep lines: the line pass reads a copy without them, and its line
    # numbers are mapped back to the object's.
    lines = [line for line, _ in found.deep]
    shallow, texts, kept = _without_lines(path, compression, set(lines))
    why = f"nests deeper than the {found.limit} levels lakeroute reads (DuckDB would crash on it)"
    deep = [Reject(line, f"{why}: {levels} levels", texts.get(line)) for line, levels in found.deep]
    if kept == 0:
        remove(shallow)
        into.items += deep
        raise ObjectError("read", f"route {route}: every row was rejected ({into.summary()}); nothing of it "
                          "is committed", route)
    rest = RowRejects()
    try:
        clean = json_line_pass(shallow, {k: v for k, v in options.items() if k != "compression"}, rest,
                               route=route, memory_limit=memory_limit, limit=limit, hints=hints)
    except BaseException:
        remove(shallow)
        raise
    for r in rest.items:
        if r.line is not None:
            r.line = _physical([r.line], lines)[0]
    into.items += sorted(deep + rest.items, key=lambda r: (r.line is None, r.line or 0))
    into.good_lines = rest.good_lines
    if clean is None:
        return shallow
    remove(shallow)
    return clean


def _without_lines(path: str, compression: str | None, drop: set[int]) -> tuple[str, dict[int, str], int]:
    """A copy of the object (decompressed) without the lines ``drop`` (numbers from 1): its
    path, the dropped lines' text, how many lines it kept."""
    copy = path + ".shallow.jsonl"
    texts: dict[int, str] = {}
    kept = 0
    try:
        with open_stream(path, compression) as src, open(copy, "wb") as out:
            for n, line in enumerate(src, start=1):
                if n in drop:
                    texts[n] = line.rstrip(b"\r\n").decode("utf-8", "replace")
                else:
                    out.write(line)
                    kept += 1
    except BaseException:
        remove(copy)
        raise
    return copy, texts, kept


def json_line_pass(path: str, options: dict[str, Any], into: RowRejects, *, route: str,
                   memory_limit: str | None = None, limit: float | None = None,
                   hints: dict[str, str] | None = None) -> str | None:
    """Find the bad lines of a newline-delimited JSON object; return the path of a clean copy
    (the good lines) when there are any bad ones, else None (read the object as it is).

    The pass runs on lakeroute's own connection, with access to the object and its clean
    copy only; both paths are lakeroute's scratch paths, quoted as literals.
    """
    import duckdb

    if path.startswith("s3://"):
        raise ObjectError("read", f"route {route}: on_error: rows reads the object from local scratch; "
                          "this object is read in place from S3 (set the source to download it)", route)
    clean = path + ".clean.jsonl"
    compression = options.get("compression")
    lines = _LINES.format(path=sql_literal(path), max_line=int(options.get("maximum_object_size", MAX_LINE)),
                          compression=f", compression := {sql_literal(str(compression))}" if compression else "")
    config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    timer = threading.Timer(limit, con.interrupt) if limit else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        con.execute("SET allowed_paths = ?", [[path, clean]])
        con.execute("SET enable_external_access = false")
        # count(line) makes DuckDB cast every line (a bare count(*) skips the cast, and with it
        # the rejects); a JSON object is the one JSON value that starts with '{'.
        extract, mistyped, tests = _hint_condition(hints or {})
        parsed, others, contradicting = con.execute(
            f"SELECT count(line), count(line) FILTER (NOT starts_with(ltrim(line::VARCHAR), '{{')), "  # noqa: S608
            f"count(line) FILTER ({mistyped}) FROM (SELECT line{extract} FROM {lines})"
        ).fetchall()[0]  # fetchall: the rejects are stored when the query ends
        for line, text, kinds in _reject_rows(con, "SELECT line, any_value(csv_line), list(DISTINCT error_type) "
                                                   "FROM reject_errors GROUP BY line ORDER BY line"):
            reason = _json_reason(kinds)
            if "LINE SIZE OVER MAXIMUM" in kinds:  # DuckDB keeps the start of such a line only
                reason += f"; the text is its first {len(text):,} characters"
            into.items.append(Reject(int(line), reason, text.strip("\r\n")))
        if others:  # valid JSON but not an object (an array, a number): no line number from the pass
            for (text,) in con.execute(f"SELECT line::VARCHAR FROM {lines} "  # noqa: S608
                                       "WHERE NOT starts_with(ltrim(line::VARCHAR), '{')").fetchall():
                into.items.append(Reject(None, "a JSON value that is not an object", text))
        keep = "starts_with(ltrim(line::VARCHAR), '{')"
        if contradicting:  # numbered in file order: one thread, then mapped past the rejected lines
            con.execute("SET threads = 1")
            numbered = f"(SELECT row_number() OVER () AS rn, line{extract} FROM {lines})"  # noqa: S608
            found = con.execute(f"SELECT rn, line::VARCHAR, [{', '.join(tests)}] FROM {numbered} "  # noqa: S608
                                f"WHERE {mistyped}").fetchall()
            skipped = sorted(r.line for r in into.items if r.line is not None)
            names = list(hints or {})
            for (_, text, flags), line in zip(found, _physical([int(r[0]) for r in found], skipped), strict=True):
                bad = [n for n, f in zip(names, flags, strict=True) if f]
                into.items.append(Reject(line, "; ".join(f"{n}: not a {(hints or {})[n]} (source.columns)"
                                                          for n in bad), text, bad[0], "cast"))
            con.execute("CREATE TEMP TABLE lakeroute_bad AS SELECT unnest(?::BIGINT[]) AS rn",
                        [[int(r[0]) for r in found]])
            lines, keep = numbered, keep + " AND rn NOT IN (SELECT rn FROM lakeroute_bad)"  # noqa: S608
            into.items.sort(key=lambda r: (r.line is None, r.line or 0))
        good = int(parsed) - int(others) - int(contradicting)
        into.good_lines = good
        if not into.items:
            return None
        if good == 0:
            raise ObjectError("read", f"route {route}: no line is a JSON object ({into.summary()}); is it "
                              "newline-delimited JSON? Nothing of it is committed", route)
        con.execute(f"COPY (SELECT line FROM {lines} WHERE {keep}) "  # noqa: S608
                    f"TO {sql_literal(clean)} (FORMAT csv, header false, quote '', escape '', delim '\x01')")
        return clean
    except duckdb.Error as e:
        if timer is not None and not timer.is_alive():
            raise ObjectError("timeout", f"route {route}: timed out after {limit:g} s in the line pass of "
                              "on_error: rows (source.timeout_seconds)", route) from e
        raise ObjectError("read", f"route {route}: reading it line by line (on_error: rows): "
                          f"{one_line(e)}", route) from e
    finally:
        if timer is not None:
            timer.cancel()
        con.close()


def _reject_rows(con: duckdb.DuckDBPyConnection, query: str) -> list[Any]:
    """DuckDB creates its reject tables at the first reject: none means no bad line."""
    import duckdb

    try:
        return con.execute(query).fetchall()
    except duckdb.CatalogException:
        return []


def _json_reason(kinds: list[str]) -> str:
    if "LINE SIZE OVER MAXIMUM" in kinds:
        return "longer than options.maximum_object_size (default 16 MiB)"
    if "TOO MANY COLUMNS" in kinds:
        return "not valid JSON (a raw control character)"
    return "not valid JSON"


def remove(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.remove(path)


def put_rejects(quarantine: Any, bucket: str, key: str, obj: Any, route: str, table: str, rows: int,
                rejects: RowRejects) -> str:
    """The rejects file, written before the good rows may commit: if it cannot be written,
    the object is retried, never committed without its rejects; a file whose every row was
    rejected is quarantined whole. Returns where the file is."""
    import logging

    if rows == 0:
        raise ObjectError("read", f"route {route}: every row was rejected ({rejects.summary()}); "
                          "nothing of it is committed", route)
    put = getattr(quarantine, "put_rejects", None)
    if put is None:
        raise TransientError("the quarantine cannot hold rejects files; nothing of it is committed")
    try:
        where: str = put(bucket, key, obj, route, table, rejects.jsonl(), len(rejects))
    except Exception as e:
        raise TransientError(f"rejects of {bucket}/{key} could not be written: {type(e).__name__}: "
                             f"{one_line(e, 300)}; it is retried") from e
    logging.getLogger("lakeroute.pipeline").warning("%s/%s: %d row(s) rejected -> %s", bucket, key,
                                                    len(rejects), where)
    return where
