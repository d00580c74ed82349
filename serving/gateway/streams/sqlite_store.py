"""Streams in one SQLite file in WAL mode: the embedded store for `make run` and single-host use.

Every gateway worker opens the same file; WAL lets readers go on while one writer commits. A write holds
SQLite's lock for one short statement only (the forecast runs before it), so streams do not block each
other. The revision check and the write are one UPDATE ... WHERE revision = ?, atomic in SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.gateway.streams.store import Record, StoreUnavailable, TooManyStreams

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    expires REAL NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS streams_expires ON streams (expires);
"""
SCHEMA_RETRY_SECONDS = 0.02


class SqliteStore:
    """The StreamStore of one SQLite file (one connection per thread of a worker)."""

    def __init__(self, path: str, *, timeout_seconds: float) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self._local = threading.local()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    def _create_schema(self) -> None:
        """Switch the file to WAL and create the table, retried while another process holds the file.

        Every gateway worker does this as it boots, all at once. On a new file SQLite can answer "database is
        locked" at once instead of waiting out the busy timeout (it refuses to wait where two connections could
        deadlock, as when both switch the journal mode), and a worker that failed here would stop the gateway.
        """
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            try:
                with self._cursor() as cursor:
                    cursor.executescript(SCHEMA)
                return
            except StoreUnavailable as exc:
                busy = getattr(exc.__cause__, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(SCHEMA_RETRY_SECONDS)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self.timeout_seconds, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process crash
            self._local.connection = connection
        return connection

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        try:
            cursor = self._connection().cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except sqlite3.OperationalError as exc:  # locked past the timeout, unreadable file, disk full
            self._local.connection = None
            raise StoreUnavailable(f"stream store {self.path}: {exc}") from exc

    def create(self, owner: str, stream_id: str, blob: bytes, ttl_seconds: float, max_streams: int) -> None:
        now = time.time()
        with self._cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute("DELETE FROM streams WHERE expires <= ?", (now,))
                if max_streams:
                    cursor.execute("SELECT COUNT(*) FROM streams WHERE owner = ? AND id != ?", (owner, stream_id))
                    if cursor.fetchone()[0] >= max_streams:
                        raise TooManyStreams(max_streams)
                # a re-created stream moves its revision on, so an append that read the old one cannot land
                cursor.execute(
                    "INSERT INTO streams VALUES (?, ?, 1, ?, ?) ON CONFLICT (owner, id) DO UPDATE SET "
                    "revision = revision + 1, expires = excluded.expires, state = excluded.state",
                    (owner, stream_id, now + ttl_seconds, blob),
                )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def get(self, owner: str, stream_id: str) -> Record | None:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT state, revision FROM streams WHERE owner = ? AND id = ? AND expires > ?",
                (owner, stream_id, time.time()),
            )
            row = cursor.fetchone()
        return None if row is None else Record(bytes(row[0]), int(row[1]))

    def replace(self, owner: str, stream_id: str, revision: int, blob: bytes, ttl_seconds: float) -> bool:
        now = time.time()
        with self._cursor() as cursor:
            cursor.execute(
                "UPDATE streams SET state = ?, revision = revision + 1, expires = ? "
                "WHERE owner = ? AND id = ? AND revision = ? AND expires > ?",
                (blob, now + ttl_seconds, owner, stream_id, revision, now),
            )
            return cursor.rowcount == 1

    def delete(self, owner: str, stream_id: str) -> bool:
        with self._cursor() as cursor:
            cursor.execute(
                "DELETE FROM streams WHERE owner = ? AND id = ? AND expires > ?", (owner, stream_id, time.time())
            )
            return cursor.rowcount == 1

    def count(self) -> int:
        with self._cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM streams WHERE expires > ?", (time.time(),))
            return int(cursor.fetchone()[0])

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
