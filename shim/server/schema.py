"""The server's tables, and the migrations that create them (cold).

Each migration is one version number and its statements per dialect. A server applies the
missing ones when it opens the database, under a lock (an advisory lock on PostgreSQL, an
IMMEDIATE transaction on SQLite), so several servers starting at once on one database migrate
it once. Add a migration at the end; never edit one that shipped.

`decisions` holds signed statements of any kind: today `decision` (an approver's signed
verdict on one request, Ed25519 or passkey); the same table can carry grants or revocations for
an agent later (`kind`, `agent`, `request_id` NULL). The server stores them as posted and never
trusts them.

Version 2 adds the web page's tables: `passkeys` (approvers' WebAuthn credentials: public data
only), `enrollments` (one-time enrollment links, by the SHA-256 of their token), `sessions`
(signed-in approvers, by the SHA-256 of the cookie), `challenges` (WebAuthn challenges the
server issued for enrolling and signing in, each used once).
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, dict[str, list[str]]]] = [
    (
        1,
        {
            "sqlite": [
                """CREATE TABLE principals (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    role TEXT NOT NULL CHECK (role IN ('agent', 'approver')),
                    name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    created REAL NOT NULL,
                    UNIQUE (role, name))""",
                """CREATE TABLE requests (
                    id TEXT PRIMARY KEY,
                    agent TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    body TEXT NOT NULL,
                    expires REAL NOT NULL,
                    received REAL NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending',
                    closed REAL,
                    outcome TEXT)""",
                "CREATE INDEX requests_by_status ON requests (status, expires)",
                """CREATE TABLE decisions (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL,
                    request_id TEXT REFERENCES requests (id),
                    agent TEXT,
                    body TEXT NOT NULL,
                    posted_by TEXT NOT NULL,
                    received REAL NOT NULL)""",
                "CREATE INDEX decisions_by_request ON decisions (request_id, seq)",
            ],
            "postgresql": [
                """CREATE TABLE principals (
                    id BIGSERIAL PRIMARY KEY,
                    role TEXT NOT NULL CHECK (role IN ('agent', 'approver')),
                    name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    created DOUBLE PRECISION NOT NULL,
                    UNIQUE (role, name))""",
                """CREATE TABLE requests (
                    id TEXT PRIMARY KEY,
                    agent TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    body TEXT NOT NULL,
                    expires DOUBLE PRECISION NOT NULL,
                    received DOUBLE PRECISION NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending',
                    closed DOUBLE PRECISION,
                    outcome TEXT)""",
                "CREATE INDEX requests_by_status ON requests (status, expires)",
                """CREATE TABLE decisions (
                    seq BIGSERIAL PRIMARY KEY,
                    kind TEXT NOT NULL,
                    request_id TEXT REFERENCES requests (id),
                    agent TEXT,
                    body TEXT NOT NULL,
                    posted_by TEXT NOT NULL,
                    received DOUBLE PRECISION NOT NULL)""",
                "CREATE INDEX decisions_by_request ON decisions (request_id, seq)",
            ],
        },
    ),
    (
        2,
        {
            "sqlite": [
                """CREATE TABLE passkeys (
                    credential_id TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    public_key TEXT NOT NULL,
                    sign_count INTEGER NOT NULL DEFAULT 0,
                    rp_id TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    created REAL NOT NULL,
                    last_used REAL)""",
                "CREATE INDEX passkeys_by_approver ON passkeys (approver)",
                """CREATE TABLE enrollments (
                    token_hash TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    created REAL NOT NULL,
                    expires REAL NOT NULL,
                    used REAL)""",
                """CREATE TABLE sessions (
                    token_hash TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    csrf TEXT NOT NULL,
                    credential_id TEXT NOT NULL,
                    created REAL NOT NULL,
                    expires REAL NOT NULL)""",
                """CREATE TABLE challenges (
                    challenge TEXT PRIMARY KEY,
                    purpose TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    expires REAL NOT NULL)""",
                "CREATE INDEX requests_by_closed ON requests (closed)",
            ],
            "postgresql": [
                """CREATE TABLE passkeys (
                    credential_id TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    public_key TEXT NOT NULL,
                    sign_count BIGINT NOT NULL DEFAULT 0,
                    rp_id TEXT NOT NULL,
                    origin TEXT NOT NULL,
                    created DOUBLE PRECISION NOT NULL,
                    last_used DOUBLE PRECISION)""",
                "CREATE INDEX passkeys_by_approver ON passkeys (approver)",
                """CREATE TABLE enrollments (
                    token_hash TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    created DOUBLE PRECISION NOT NULL,
                    expires DOUBLE PRECISION NOT NULL,
                    used DOUBLE PRECISION)""",
                """CREATE TABLE sessions (
                    token_hash TEXT PRIMARY KEY,
                    approver TEXT NOT NULL,
                    csrf TEXT NOT NULL,
                    credential_id TEXT NOT NULL,
                    created DOUBLE PRECISION NOT NULL,
                    expires DOUBLE PRECISION NOT NULL)""",
                """CREATE TABLE challenges (
                    challenge TEXT PRIMARY KEY,
                    purpose TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    expires DOUBLE PRECISION NOT NULL)""",
                "CREATE INDEX requests_by_closed ON requests (closed)",
            ],
        },
    ),
]

LATEST = MIGRATIONS[-1][0]
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
