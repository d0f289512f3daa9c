"""lakeroute's own SQLite file, ``<home>/ledger.db`` (the ledger and the journal), opened so that
a damaged file never stops ingest and a blocked one says what to do.

- **Damaged** (SQLite: "file is not a database", "database disk image is malformed"): the
  file is set aside as ``ledger.db.corrupt-<UTC time>`` (its ``-wal``/``-shm`` beside it) and
  a new one is created; a warning in the log (on stderr in the CLI) names both. Nothing is lost that
  matters: the ledger is an index over the tables' snapshot summaries and lakeroute's source
  archives (``core.ledger.rule``, ``core.ledger.archive``), so the next reconcile of each
  table rebuilds its entries (a new ledger has no watermark: it reads the retained ancestry
  and the archive chain) and exactly-once holds. The journal (``lakeroute history``) starts
  empty: its earlier attempts stay in the set-aside file, which the warning says. Damage
  found mid-batch heals the same way and the operation runs again on the new file.
- **Blocked** (locked by another process past the timeout, a file or folder this user cannot
  open or write, a full or failing disk): nothing is set aside, the file is not damaged. On
  opening, a ``ConfigError`` (the CLI's one ``error:`` line, exit 2); during a batch, a
  ``TransientError`` (the objects are failed for a retry, never quarantined for it). Either
  way one line naming the file and the fix.

Two connections of one process (ledger and journal), or two processes, may meet the damage at
once: the file is set aside only while it is still the very file (device, inode) this
connection failed on, under an exclusive lock beside it; the others just open the new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..core.errors import ConfigError, TransientError, one_line

# The CLI prints this logger's warnings on stderr (it silences the rest of the library's log).
STATE_LOGGER = "lakeroute.state"
log = logging.getLogger(STATE_LOGGER)
T = TypeVar("T")

# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xff).
_DAMAGED = {11, 26}  # SQLITE_CORRUPT ("malformed"), SQLITE_NOTADB ("not a database")
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_FIX = {
    3: "make it and its folder readable and writable by this user, or use another --home",  # PERM
    8: "make it and its folder writable by this user, or use another --home",  # READONLY
    10: "the disk failed to read or write it: check the disk, or use another --home",  # IOERR
    13: "the disk is full: free some space",  # FULL
    14: "make sure it is a file (not a folder) that this user can open, in a writable folder, "
        "or use another --home",  # CANTOPEN
}
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def add_columns(con: sqlite3.Connection, table: str, columns: list[tuple[str, str]]) -> None:
    """Columns a file written by an earlier lakeroute lacks (name, SQL type with default),
    added in place; a concurrent process that migrated first is fine."""
    have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
    for column, kind in columns:
        if column not in have:
            try:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as e:
                if "duplicate column" not in str(e):
                    raise


def _code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def damaged(e: BaseException) -> bool:
    """SQLite says the file is not a database, or a malformed one."""
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    code = _code(e)
    if code is not None:
        return code in _DAMAGED
    text = str(e)
    return "file is not a database" in text or "malformed" in text


def blocked_message(path: str, e: sqlite3.Error, timeout: float) -> str:
    """One line: which file, what SQLite said, and the fix."""
    code = _code(e)
    if code in _BUSY or "locked" in str(e):
        fix = (f"another process has held it for over {timeout:g} s (a `lakeroute` that hangs, or a "
               "tool with a transaction open): stop it, then run again")
    else:
        fix = _FIX.get(code or 0, "check that this user can read and write it, or use another --home")
    return f"{path}: {one_line(e, 200)}; {fix}"


class SqliteFile:
    """One connection to ``path`` that heals a damaged file (see the module docstring).

    ``setup`` creates or migrates the tables (idempotent; run on every new connection);
    ``what`` names the file's role in messages ("ledger", "journal").
    """

    def __init__(self, path: str, what: str, setup: Callable[[sqlite3.Connection], None],
                 timeout: float = 60.0) -> None:
        self.path = path
        self.what = what
        self.timeout = timeout
        self._setup = setup
        self._identity: tuple[int, int] | None = None
        try:
            self._con = self._connect()
        except sqlite3.DatabaseError as e:
            if not damaged(e):
                raise ConfigError(f"{what} {blocked_message(path, e, timeout)}") from e
            self._set_aside(e)
            try:
                self._con = self._connect()
            except sqlite3.DatabaseError as again:
                raise ConfigError(f"{what} {blocked_message(path, again, timeout)}") from again

    def _connect(self) -> sqlite3.Connection:
        try:  # the file this connection opens, should it turn out damaged (see _set_aside)
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            self._identity = None
        con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            self._setup(con)
            st = os.stat(self.path)
        except BaseException:
            con.close()
            raise
        self._identity = (st.st_dev, st.st_ino)
        return con

    def run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` on the connection; on damage, once more on a new file."""
        try:
            return op(self._con)
        except sqlite3.DatabaseError as e:
            if not damaged(e):
                raise TransientError(f"{self.what} {blocked_message(self.path, e, self.timeout)}") from e
            self._set_aside(e)
            try:
                self._con = self._connect()
                return op(self._con)
            except sqlite3.DatabaseError as again:
                raise TransientError(f"{self.what} {blocked_message(self.path, again, self.timeout)}") from again

    def _set_aside(self, e: sqlite3.DatabaseError) -> None:
        with contextlib.suppress(Exception):
            self._con.close()
        with _healing(self.path):
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return  # already set aside by another connection
            if self._identity is None or (st.st_dev, st.st_ino) != self._identity:
                return  # another connection set it aside and made a new one meanwhile
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            aside = f"{self.path}.corrupt-{stamp}"
            os.rename(self.path, aside)
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.path + suffix, aside + suffix)
        self._identity = None
        log.warning("%s is damaged (%s): set aside as %s; a new one is made. The ledger is rebuilt from "
                    "the tables' snapshot summaries as each table is next ingested into (nothing is "
                    "ingested twice); the attempt history (`lakeroute history`) starts empty, its earlier "
                    "records stay in %s", self.path, one_line(e, 120), aside, os.path.basename(aside))


@contextlib.contextmanager
def _healing(path: str) -> Iterator[None]:
    """Exclusive between this process's connections (a lock per path) and other processes
    (``flock`` on ``<path>.heal-lock``, where the platform has it)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(os.path.abspath(path), threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): the in-process lock only
            yield
            return
        fd = os.open(path + ".heal-lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
