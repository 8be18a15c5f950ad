"""Storage for the relay: who may talk to it, held requests, signed statements (cold).

One interface, `Store`, with its SQL written once; the two databases differ only in how a
connection is had (`SqliteStore`: one connection per thread, WAL; `PostgresStore`: a pool, and
NOTIFY so that every server process sharing the database wakes its waiting long polls). All
methods are blocking: the application calls them from its thread pool.

Nothing stored here is trusted by a shim. Requests are kept as the agent submitted them
(canonical JSON) and decisions as the approver posted them; the status column is the shims'
report of how a hold ended, for approvers and notifications only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shim.errors import ShieldError
from shim.server.schema import MIGRATIONS, VERSION_TABLE

CHANNEL = "shield_events"  # PostgreSQL NOTIFY channel: the payload is a request id
STATUSES = ("pending", "approved", "denied", "expired", "cancelled")


class StoreError(ShieldError):
    """The database cannot be reached or used."""


class Conflict(ShieldError):
    """A row that must be new exists already."""


@dataclass(frozen=True)
class RequestRow:
    id: str
    agent: str
    digest: str
    body: str
    expires: float
    received: float
    status: str
    closed: float | None
    outcome: str | None


_REQUEST_COLUMNS = "id, agent, digest, body, expires, received, status, closed, outcome"


def _row(values: Any) -> RequestRow:
    return RequestRow(*values)


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class Store:
    """The SQL of the relay; subclasses say how to get a transaction."""

    dialect = ""
    # called with a request id after a commit that changed it (the hub wakes its long polls)
    on_change: Callable[[str], None] | None = None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a write transaction, committed when the block ends without error."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A cursor for reads only (no write lock; each statement sees committed data)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def announce(self, cur: Any, rid: str) -> None:
        """Tell the other server processes that `rid` changed (inside the transaction)."""

    def close(self) -> None:
        """Release every connection."""

    def _sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def _run(self, cur: Any, text: str, params: tuple = ()) -> Any:
        cur.execute(self._sql(text), params)
        return cur

    def _changed(self, rid: str) -> None:
        if self.on_change is not None:
            self.on_change(rid)

    # ------------------------------------------------------------------ schema
    def migrate(self) -> int:
        """Apply the missing migrations; return the schema version."""
        with self.transaction() as cur:
            self.lock_for_migration(cur)
            self._run(cur, VERSION_TABLE)
            row = self._run(cur, "SELECT MAX(version) FROM schema_version").fetchone()
            have = int(row[0] or 0)
            for version, statements in MIGRATIONS:
                if version <= have:
                    continue
                for statement in statements[self.dialect]:
                    self._run(cur, statement)
                self._run(cur, "INSERT INTO schema_version (version) VALUES (?)", (version,))
                have = version
            return have

    def lock_for_migration(self, cur: Any) -> None:
        """Serialise migrations between server processes (SQLite: BEGIN IMMEDIATE did)."""

    # ------------------------------------------------------------------ principals
    def add_principal(
        self, role: str, name: str, token_hash: str, now: float, replace: bool = False
    ) -> None:
        """Record who may talk to the server. Conflict when (role, name) exists, unless
        `replace` (the old token stops working)."""
        with self.transaction() as cur:
            found = self._run(
                cur, "SELECT id FROM principals WHERE role = ? AND name = ?", (role, name)
            ).fetchone()
            if found and not replace:
                raise Conflict(f"{role} {name!r} exists already")
            if found:
                self._run(
                    cur,
                    "UPDATE principals SET token_hash = ?, created = ? WHERE id = ?",
                    (token_hash, now, found[0]),
                )
            else:
                self._run(
                    cur,
                    "INSERT INTO principals (role, name, token_hash, created) VALUES (?, ?, ?, ?)",
                    (role, name, token_hash, now),
                )

    def principal(self, token_hash: str) -> tuple[str, str] | None:
        """(role, name) for a token's hash, or None."""
        with self.reading() as cur:
            row = self._run(
                cur, "SELECT role, name FROM principals WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def principals(self) -> list[tuple[str, str, float]]:
        with self.reading() as cur:
            rows = self._run(
                cur, "SELECT role, name, created FROM principals ORDER BY role, name"
            ).fetchall()
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    # ------------------------------------------------------------------ requests
    def submit(
        self, rid: str, agent: str, digest: str, body: str, expires: float, now: float
    ) -> tuple[str, RequestRow]:
        """Store a held request: ("created" | "same" | "conflict", the stored row). "same"
        when this agent submitted this very request before (a shim retrying after a lost
        answer or a server restart); "conflict" when the id belongs to another request."""
        with self.transaction() as cur:
            found = self._run(
                cur,
                f"INSERT INTO requests ({_REQUEST_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, NULL) ON CONFLICT (id) DO NOTHING "
                f"RETURNING {_REQUEST_COLUMNS}",
                (rid, agent, digest, body, expires, now),
            ).fetchone()
            created = found is not None
            if created:
                self.announce(cur, rid)
            else:
                found = self._run(
                    cur, f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (rid,)
                ).fetchone()
            row = _row(found)
        if created:
            self._changed(rid)
            return "created", row
        same = row.agent == agent and row.digest == digest
        return ("same" if same else "conflict"), row

    def request(self, rid: str) -> RequestRow | None:
        with self.reading() as cur:
            row = self._run(
                cur, f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (rid,)
            ).fetchone()
        return _row(row) if row else None

    def pending(self, now: float, limit: int = 1000) -> list[RequestRow]:
        """Requests still waiting for a decision, oldest first."""
        with self.reading() as cur:
            rows = self._run(
                cur,
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE status = 'pending' "
                "AND expires > ? ORDER BY received, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def pending_count(self, agent: str, now: float) -> int:
        """How many of this agent's requests are still waiting for a decision."""
        with self.reading() as cur:
            row = self._run(
                cur,
                "SELECT COUNT(*) FROM requests WHERE agent = ? AND status = 'pending' "
                "AND expires > ?",
                (agent, now),
            ).fetchone()
        return int(row[0])

    def close_request(self, rid: str, status: str, outcome: str, now: float) -> RequestRow | None:
        """Mark a pending request decided, expired or cancelled; the row when this call
        closed it, None when it was closed already (or unknown)."""
        with self.transaction() as cur:
            cur = self._run(
                cur,
                "UPDATE requests SET status = ?, closed = ?, outcome = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, now, outcome, rid),
            )
            if cur.rowcount != 1:
                return None
            row = self._run(
                cur, f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (rid,)
            ).fetchone()
            self.announce(cur, rid)
        self._changed(rid)
        return _row(row)

    def forget_closed(self, before: float) -> int:
        """Delete the requests closed (or expired) before `before`, with their statements;
        standing statements (grants, revocations) stay. How many requests went."""
        gone = (
            "SELECT id FROM requests WHERE (closed IS NOT NULL AND closed < ?) "
            "OR (status = 'pending' AND expires < ?)"
        )
        with self.transaction() as cur:
            self._run(cur, f"DELETE FROM decisions WHERE request_id IN ({gone})", (before, before))
            cur = self._run(cur, gone.replace("SELECT id", "DELETE", 1), (before, before))
            return int(cur.rowcount)

    def expire_due(self, now: float) -> list[RequestRow]:
        """Mark every pending request past its expiry as expired; return those this call
        marked (with several servers, each expiry is returned by exactly one of them)."""
        with self.transaction() as cur:
            rows = self._run(
                cur,
                "UPDATE requests SET status = 'expired', closed = ?, "
                """outcome = '{"reason":"expired on the server"}' """
                f"WHERE status = 'pending' AND expires <= ? RETURNING {_REQUEST_COLUMNS}",
                (now, now),
            ).fetchall()
            for r in rows:
                self.announce(cur, r[0])
        out = [_row(r) for r in rows]
        for row in out:
            self._changed(row.id)
        return out

    # ------------------------------------------------------------------ signed statements
    def add_statement(
        self, kind: str, rid: str | None, agent: str | None, body: str, posted_by: str, now: float
    ) -> int:
        """Store a signed statement as posted; its sequence number."""
        with self.transaction() as cur:
            row = self._run(
                cur,
                "INSERT INTO decisions (kind, request_id, agent, body, posted_by, received) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
                (kind, rid, agent, body, posted_by, now),
            ).fetchone()
            if rid is not None:
                self.announce(cur, rid)
        if rid is not None:
            self._changed(rid)
        return int(row[0])

    def statements_after(
        self, rid: str, after: int, limit: int = 50, kind: str = "decision"
    ) -> list[tuple[int, str]]:
        """(seq, body) of the statements of `kind` on request `rid` after `after`, oldest
        first."""
        with self.reading() as cur:
            rows = self._run(
                cur,
                "SELECT seq, body FROM decisions WHERE request_id = ? AND kind = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (rid, kind, after, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def standing(self, agent: str | None) -> list[tuple[str, str]]:
        """(kind, body) of the grants and revocations not tied to a request, oldest first: for
        an agent, those naming it or no agent (revocations of every grant); else all."""
        query = "SELECT kind, body FROM decisions WHERE kind IN ('grant', 'revocation')"
        params: tuple = ()
        if agent is not None:
            query += " AND (agent = ? OR agent IS NULL)"
            params = (agent,)
        with self.reading() as cur:
            rows = self._run(cur, query + " ORDER BY seq LIMIT 5000", params).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def pending_refusals(self, now: float, limit: int = 500) -> list[tuple[str, str]]:
        """(request id, body) of the shims' refusal notes on the requests still pending,
        oldest first."""
        with self.reading() as cur:
            rows = self._run(
                cur,
                "SELECT d.request_id, d.body FROM decisions d JOIN requests r "
                "ON r.id = d.request_id WHERE d.kind = 'refusal' AND r.status = 'pending' "
                "AND r.expires > ? ORDER BY d.seq DESC LIMIT ?",
                (now, limit),
            ).fetchall()
        return [(str(r[0]), str(r[1])) for r in reversed(rows)]

    def statement_count(self, rid: str, kind: str | None = None) -> int:
        """How many statements (of `kind`, or of any) request `rid` has."""
        args: tuple[str, ...] = (rid,)
        sql = "SELECT COUNT(*) FROM decisions WHERE request_id = ?"
        if kind is not None:
            sql, args = sql + " AND kind = ?", (rid, kind)
        with self.reading() as cur:
            row = self._run(cur, sql, args).fetchone()
        return int(row[0])


class SqliteStore(Store):
    """One file in the server's home; one connection per thread; WAL, so readers never wait
    for the writer. synchronous=NORMAL: a killed server loses nothing that was committed (a
    power cut may lose the last commits, which the shims then submit again)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        self.all: list[sqlite3.Connection] = []
        self.lock = threading.Lock()
        self.writer = threading.Lock()
        parent = os.path.dirname(path)
        try:
            if parent:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            self._conn()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the database {path}: {exc}",
                "check that the server's home is writable (SHIELD_HOME)",
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            os.chmod(self.path, 0o600)
            self.local.conn = conn
            with self.lock:
                self.all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        # one writer at a time in this process: threads queue on a lock here instead of
        # meeting SQLite's busy handler, which sleeps up to 100 ms between retries
        conn = self._conn()
        with self.writer:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Any]:
        cur = self._conn().cursor()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        with self.lock:
            for conn in self.all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self.all.clear()


class PostgresStore(Store):
    """A connection pool; every change NOTIFYs the request id on `shield_events`, which every
    server process LISTENs to (shim.server.hub), so a decision posted through one server wakes
    the long poll waiting in another at once."""

    dialect = "postgresql"

    def __init__(self, url: str, max_size: int = 10) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        try:  # one direct connection first: its error says what is wrong
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(
                f"cannot connect to the database {redact(url)}: {first}",
                "check that PostgreSQL runs and accepts this user (--db postgresql://USER@HOST/DB)",
            ) from exc
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": 5},
            open=True,
        )

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def announce(self, cur: Any, rid: str) -> None:
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, rid))

    def lock_for_migration(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(8421)")

    def close(self) -> None:
        self.pool.close()


def open_store(url: str) -> Store:
    """A store for `--db URL`: postgresql://... (or postgres://...), sqlite:///PATH, or a path."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            store: Store = PostgresStore(url)
        except ImportError as exc:
            raise StoreError(
                "PostgreSQL support needs psycopg 3", "pip install 'psycopg[binary,pool]'"
            ) from exc
    elif url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
        if path.startswith("//"):
            path = path[2:]
        store = SqliteStore(os.path.abspath(path))
    elif "://" in url:
        raise StoreError(
            f"unknown database URL {redact(url)}",
            "use postgresql://USER@HOST:PORT/DB or sqlite:///PATH",
        )
    else:
        store = SqliteStore(os.path.abspath(url))
    try:
        store.migrate()
    except Exception as exc:
        store.close()
        raise StoreError(f"cannot set up the tables in {redact(url)}: {exc}") from exc
    return store
