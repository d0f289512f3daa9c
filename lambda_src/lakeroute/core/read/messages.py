"""DuckDB's reader errors in lakeroute's words: what is wrong, where, and the route's fix first.

DuckDB writes for DuckDB users: its advice names its own reader options (``strict_mode``,
``null_padding``, ``ignore_errors``) and it appends the sniffer's whole dialect. A route has
its own fixes (``source.on_error: rows``, ``source.options``, ``source.columns``), and
``ignore_errors`` would drop rows silently, so the errors a route author meets first are
said in those words, once, on one line. An error not recognised here keeps DuckDB's text.
"""

from __future__ import annotations

import re

from ..errors import shortened

ROWS_FIX = "set source.on_error: rows to set bad rows aside (the rest commits)"
_LINE = re.compile(r"CSV Error on Line: (\d+)")
_ORIGINAL = re.compile(r"Original Line: ?(.*)")
COLUMN_COUNT = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
CONVERT = re.compile(r'Error when converting column "(.+?)"\. Could not convert string "(.*?)" to \'(.+?)\'')
_JSON = re.compile(r"Malformed JSON in file .*?, at byte (\d+) in (?:line|record/value) (\d+): ([^.\n]+)")
_PARQUET = ("too small to be a Parquet file", "No magic bytes found at end of file")


def _shown(text: str, limit: int = 80) -> str:
    return repr(shortened(text, limit))


# Where DuckDB names the file it read (the scratch copy: the engine puts the object's name
# in its place).
_FILE = re.compile(r"""[Ff]ile '([^'\n]+)'|file \"([^"\n]+)\"|^\s*file = (\S.*)$""", re.MULTILINE)


def reader_message(text: str) -> str | None:
    """The route author's one line for a DuckDB reader error ``text`` (naming the file DuckDB
    names), or None when it is not one of those recognised here."""
    said = _said(text)
    if said is None:
        return None
    named = _FILE.search(text)
    name = next((g for g in named.groups() if g), None) if named else None
    return f"{name.strip()}: {said}" if name else said


def _said(text: str) -> str | None:
    line_no = _LINE.search(text)
    where = f"line {line_no.group(1)}" if line_no else "a line"
    original = _ORIGINAL.search(text)
    raw = f" ({_shown(original.group(1))})" if original and original.group(1).strip() else ""
    columns = COLUMN_COUNT.search(text)
    if columns:
        expected, found = int(columns.group(1)), int(columns.group(2))
        count = f"only {found} of {expected}" if found < expected else f"more than {expected}"
        return f"{where} has {count} columns{raw}: {ROWS_FIX}, or fix the file"
    convert = CONVERT.search(text)
    if convert:
        column, value, duck = convert.groups()
        if "auto-detected" in text:
            fix = (f"hint its type in source.columns (e.g. {column}: string, then cast it in the SQL), "
                   f"or {ROWS_FIX}")
            why = f"DuckDB guessed {duck} from the first rows"
        else:
            fix = f"fix source.columns.{column}, or {ROWS_FIX}"
            why = "its hinted type"
        return f"{where}: column {column}: {_shown(value)} is not a {duck} ({why}): {fix}"
    if "Invalid unicode" in text or "not utf-8 encoded" in text:
        return (f"not UTF-8 (first bad byte on {where}): set source.options.encoding to the file's "
                "encoding (latin-1 or utf-16)")
    if "Error when sniffing file" in text:
        return ("could not detect the CSV layout from the first rows (a row with another number of "
                f"columns, a stray quote, another encoding?): {ROWS_FIX}, or set source.options "
                "(delim, quote, header, encoding)")
    malformed = _JSON.search(text)
    if malformed:
        byte, line, why = malformed.groups()
        return (f"line {line} is not valid JSON ({why.strip()} at byte {byte}): {ROWS_FIX}, "
                "or fix the file")
    if any(s in text for s in _PARQUET):
        return ("not a Parquet file (no Parquet footer): check the file, or source.format (auto "
                "goes by the extension)")
    return None


def empty_file_message() -> str:
    return ("empty file (0 bytes): nothing to ingest; if the producer writes such files on "
            "purpose, leave them out with source.exclude")


_SQL_CONTEXT = re.compile(r"\n\s*LINE \d+:")


def error_stage(e: BaseException) -> str:
    """Where a DuckDB error stopped an object: ``read`` (the file) or ``sql`` (the route's query)."""
    text = str(e)
    if "Permission Error" in text:
        return "sql"
    if any(s in text for s in ("Invalid Input Error", "IO Error", "Conversion Error: CSV",
                               "Error reading", "No magic bytes", "not a parquet file",
                               "Malformed JSON", "sniff")):
        return "read"
    return "sql"


def duckdb_text(e: BaseException) -> str:
    """A DuckDB error's text on one line, without the query DuckDB appends."""
    text = _SQL_CONTEXT.split(str(e), 1)[0]  # DuckDB appends "LINE 1: <query> ^": noise here
    return shortened(text, 600)
