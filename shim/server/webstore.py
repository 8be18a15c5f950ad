"""Storage for the web page: passkeys, enrollment links, sessions, WebAuthn challenges (cold).

The SQL of the tables that schema version 2 adds, over the relay's `Store` (same connections,
same transactions, SQLite or PostgreSQL). Nothing here lets anyone approve: a passkey row is
public data (the shims trust only the credentials an operator copied into their trust store),
and a session only lets an approver list requests and relay what their passkey signed.
"""

from __future__ import annotations

from dataclasses import dataclass

from shim.server.store import _REQUEST_COLUMNS, RequestRow, Store, _row


@dataclass(frozen=True)
class PasskeyRow:
    credential_id: str
    approver: str
    public_key: str  # base64url COSE key
    sign_count: int
    rp_id: str
    origin: str
    created: float


@dataclass(frozen=True)
class SessionRow:
    approver: str
    csrf: str
    credential_id: str
    expires: float


MAX_CHALLENGES = 2000  # unexpired passkey challenges at once (sign-ins and enrollments)
_PASSKEY_COLUMNS = "credential_id, approver, public_key, sign_count, rp_id, origin, created"


class WebStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ enrollment links
    def add_enrollment(self, token_hash: str, approver: str, now: float, expires: float) -> None:
        with self.store.transaction() as cur:
            self.store._run(
                cur,
                "INSERT INTO enrollments (token_hash, approver, created, expires, used) "
                "VALUES (?, ?, ?, ?, NULL)",
                (token_hash, approver, now, expires),
            )

    def enrollment(self, token_hash: str, now: float) -> str | None:
        """The approver an enrollment link is for, while it is unused and not expired."""
        with self.store.reading() as cur:
            row = self.store._run(
                cur,
                "SELECT approver FROM enrollments WHERE token_hash = ? AND used IS NULL "
                "AND expires > ?",
                (token_hash, now),
            ).fetchone()
        return str(row[0]) if row else None

    def enroll(self, token_hash: str, key: PasskeyRow, now: float) -> bool:
        """Use the link once and store the credential it enrolled; False when the link was
        used, expired or unknown meanwhile (nothing stored)."""
        with self.store.transaction() as cur:
            cur = self.store._run(
                cur,
                "UPDATE enrollments SET used = ? WHERE token_hash = ? AND used IS NULL "
                "AND expires > ? AND approver = ?",
                (now, token_hash, now, key.approver),
            )
            if cur.rowcount != 1:
                return False
            self.store._run(
                cur,
                f"INSERT INTO passkeys ({_PASSKEY_COLUMNS}, last_used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    key.credential_id,
                    key.approver,
                    key.public_key,
                    key.sign_count,
                    key.rp_id,
                    key.origin,
                    key.created,
                ),
            )
        return True

    # ------------------------------------------------------------------ passkeys
    def passkeys(self, approver: str) -> list[PasskeyRow]:
        with self.store.reading() as cur:
            rows = self.store._run(
                cur,
                f"SELECT {_PASSKEY_COLUMNS} FROM passkeys WHERE approver = ? ORDER BY created",
                (approver,),
            ).fetchall()
        return [PasskeyRow(*r) for r in rows]

    def passkey(self, credential_id: str) -> PasskeyRow | None:
        with self.store.reading() as cur:
            row = self.store._run(
                cur,
                f"SELECT {_PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?",
                (credential_id,),
            ).fetchone()
        return PasskeyRow(*row) if row else None

    def used_passkey(self, credential_id: str, sign_count: int, now: float) -> None:
        with self.store.transaction() as cur:
            self.store._run(
                cur,
                "UPDATE passkeys SET sign_count = ?, last_used = ? WHERE credential_id = ?",
                (sign_count, now, credential_id),
            )

    # ------------------------------------------------------------------ challenges
    def add_challenge(
        self, challenge: str, purpose: str, subject: str, expires: float, now: float
    ) -> bool:
        """Store a challenge the server issued; False (nothing stored) while MAX_CHALLENGES
        unexpired ones are outstanding: anyone may ask for a sign-in challenge, and the
        table must not grow with them."""
        with self.store.transaction() as cur:
            count = "SELECT COUNT(*) FROM challenges WHERE expires > ?"
            if int(self.store._run(cur, count, (now,)).fetchone()[0]) >= MAX_CHALLENGES:
                return False
            self.store._run(
                cur,
                "INSERT INTO challenges (challenge, purpose, subject, expires) VALUES (?, ?, ?, ?)",
                (challenge, purpose, subject, expires),
            )
        return True

    def take_challenge(self, challenge: str, purpose: str, now: float) -> str | None:
        """Use a challenge the server issued (once): its subject, or None."""
        with self.store.transaction() as cur:
            row = self.store._run(
                cur,
                "DELETE FROM challenges WHERE challenge = ? AND purpose = ? AND expires > ? "
                "RETURNING subject",
                (challenge, purpose, now),
            ).fetchone()
        return str(row[0]) if row else None

    # ------------------------------------------------------------------ sessions
    def add_session(
        self, token_hash: str, approver: str, csrf: str, credential_id: str, now: float, ttl: float
    ) -> None:
        with self.store.transaction() as cur:
            self.store._run(
                cur,
                "INSERT INTO sessions (token_hash, approver, csrf, credential_id, created, "
                "expires) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, approver, csrf, credential_id, now, now + ttl),
            )

    def session(self, token_hash: str, now: float) -> SessionRow | None:
        with self.store.reading() as cur:
            row = self.store._run(
                cur,
                "SELECT approver, csrf, credential_id, expires FROM sessions "
                "WHERE token_hash = ? AND expires > ?",
                (token_hash, now),
            ).fetchone()
        return SessionRow(str(row[0]), str(row[1]), str(row[2]), float(row[3])) if row else None

    def drop_session(self, token_hash: str) -> None:
        with self.store.transaction() as cur:
            self.store._run(cur, "DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # ------------------------------------------------------------------ the page's views
    def closed_since(self, since: float, limit: int = 100) -> list[RequestRow]:
        """Requests decided, expired or cancelled since `since`, newest first."""
        with self.store.reading() as cur:
            rows = self.store._run(
                cur,
                f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE status <> 'pending' "
                "AND closed >= ? ORDER BY closed DESC, id LIMIT ?",
                (since, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def posted(self, rids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """(kind, body) of the statements posted on each of `rids` so far, as stored:
        approvers' decisions and the shims' refusal notes (their words: shown escaped, never
        trusted)."""
        if not rids:
            return {}
        marks = ", ".join("?" for _ in rids)
        with self.store.reading() as cur:
            rows = self.store._run(
                cur,
                f"SELECT request_id, kind, body FROM decisions WHERE request_id IN ({marks}) "
                "ORDER BY seq",
                tuple(rids),
            ).fetchall()
        out: dict[str, list[tuple[str, str]]] = {}
        for rid, kind, body in rows:
            out.setdefault(str(rid), []).append((str(kind), str(body)))
        return out

    def prune(self, now: float) -> None:
        """Forget expired challenges, sessions and enrollment links."""
        with self.store.transaction() as cur:
            self.store._run(cur, "DELETE FROM challenges WHERE expires <= ?", (now,))
            self.store._run(cur, "DELETE FROM sessions WHERE expires <= ?", (now,))
            self.store._run(
                cur, "DELETE FROM enrollments WHERE expires <= ? AND used IS NULL", (now - 86400,)
            )
