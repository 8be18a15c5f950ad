"""The grants a call that would ask may run under: found, checked, counted and logged (light).

On the shim's ask path, before anything is previewed or held: the signed grants and
revocations in the spool (`<spool>/grants/`, `<spool>/revocations/`, written by `shield grant`
and `shield revoke`) are read, each signature checked against the shim's own trust store, and
a grant is used only when it is live, not revoked, has uses left and its scope covers the call
as the classifier resolved it. Nothing here imports json, os or cryptography: a covered call
must start almost as fast as an allowed one.

The agent side keeps two small state files (the agent's user can write them, so they are the
agent's words too): `grant-uses` (one line per use, so `max_uses` is counted) and
`grants-seen` (so that a grant's issue, revocation and expiry, and a forged statement, are
logged once). A counter the agent resets shows in the log: every use is an entry with its
number, and `shield grants --log LOG` counts them.
"""

import fcntl

from shim import canon, fs
from shim.approval import grant as statement
from shim.classify.decide import ASK, DENY, Decision, decide

MAX_STATEMENT_BYTES = 64 << 10
SKEW_S = 30.0  # tolerated clock skew for not_before (host and container clocks)
GRANTS_DIR = "grants"

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and collections cost milliseconds on this path
    from collections.abc import Callable

    from shim.approval.client import Client

    LogFn = Callable[[dict], object]
REVOCATIONS_DIR = "revocations"


def read_statements(spool: str, sub: str) -> list[tuple[str, object, str]]:
    """(file name, parsed statement or None, problem) for each `*.json` in <spool>/<sub>."""
    directory = fs.join(spool, sub)
    try:
        names = sorted(n for n in fs.listdir(directory) if n.endswith(".json"))
    except OSError:
        return []
    out: list[tuple[str, object, str]] = []
    for name in names:
        try:
            text = fs.read_plain(fs.join(directory, name), MAX_STATEMENT_BYTES).decode("ascii")
            out.append((name, canon.decode(text.rstrip("\n")), ""))
        except (OSError, ValueError) as exc:
            out.append((name, None, f"{sub}/{name} is not a signed statement ({exc})"))
    return out


class _State:
    """A line-per-record state file under <home>/state, appended under an exclusive lock."""

    def __init__(self, home: str, name: str) -> None:
        self.path = fs.join(home, "state", name)

    def lines(self) -> list[str]:
        try:
            return fs.read_file(self.path, 16 << 20).decode("ascii", "replace").split("\n")
        except OSError:
            return []

    def add(self, line: str, limit: int | None = None) -> int:
        """Append `line` unless `limit` equal lines are there already (checked under the
        lock); the number of equal lines after the call, or 0 when the limit was reached."""
        try:
            fd = fs.open(self.path, fs.O_RDWR | fs.O_CREAT | fs.O_APPEND | fs.O_CLOEXEC, 0o600)
        except OSError as exc:
            from shim.errors import ShieldError

            raise ShieldError(
                f"cannot record a grant in {self.path}: {exc.strerror}; the call did not run",
                "the agent's user must own it (install.sh --agent-user hands it over); "
                "tell your operator",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = b""
            while True:
                chunk = fs.pread(fd, 1 << 20, len(data))
                if not chunk:
                    break
                data += chunk
            before = data.decode("ascii", "replace").split("\n").count(line)
            if limit is not None and before >= limit:
                return 0
            # not synced: after a power cut the count may lag behind the log, whose `granted`
            # entries are durable and numbered (and counted by `shield grants --log`)
            fs.write_all(fd, (line + "\n").encode("ascii"))
            return before + 1
        finally:
            fs.close(fd)


class _Grants:
    """One scan of the spool's grants and revocations, for one call."""

    def __init__(
        self,
        home: str,
        log: "LogFn",
        found: "dict[str, list[tuple[str, object, str]]]",
        trusted: dict,
        now: float,
        passkeys: dict | None = None,
    ) -> None:
        self.log = log
        self.trusted = trusted
        self.passkeys = passkeys or {}
        self.now = now
        self.seen = _State(home, "grants-seen")
        self.seen_lines = set(self.seen.lines())
        revs = self.valid(found[REVOCATIONS_DIR], REVOCATIONS_DIR, statement.check_revocation)
        self.revocations = [st for _, st in revs]
        grants = self.valid(
            found[GRANTS_DIR],
            GRANTS_DIR,
            lambda st, trusted: statement.check_grant(st, trusted, self.passkeys),
        )
        self.grants = [st for _, st in grants]

    def once(self, key: str, fields: dict) -> None:
        """Log `fields` the first time `key` is seen by this home."""
        if key in self.seen_lines:
            return
        self.seen_lines.add(key)
        self.seen.add(key)
        self.log(fields)

    def valid(
        self,
        items: "list[tuple[str, object, str]]",
        sub: str,
        check: "Callable[[object, dict], str]",
    ) -> list[tuple[str, dict]]:
        out = []
        for name, st, problem in items:
            why = problem or check(st, self.trusted)
            if why:
                sig = (st.get("sig") or st.get("signature")) if isinstance(st, dict) else None
                self.once(
                    f"forged {sub}/{name} {sig}",
                    {"event": "security", "detail": f"{sub}/{name} ignored: {why}"},
                )
                continue
            if isinstance(st, dict):
                out.append((name, st))
        return out

    def live(self, g: dict) -> str:
        """'' when `g` may be used now (not revoked, in time); logs revocation and expiry."""
        rev = next((r for r in self.revocations if statement.revokes(r, g)), None)
        if rev is not None:
            self.once(f"revoked {g['id']}", _event("grant-revoked", g, rev["reason"], rev))
            return "revoked"
        when = statement.in_time(g, self.now, SKEW_S)
        if when == "expired":
            self.once(f"expired {g['id']}", _event("grant-expired", g, "", None))
        return when


def _event(kind: str, g: dict, reason: str, by: dict | None) -> dict:
    return {
        "event": kind,
        "grant": g["id"],
        "approver": (by or g)["approver"],
        "reason": reason or g["reason"],
        "detail": {
            "agent": g["agent"],
            "tool": g["tool"],
            "rules": g["rules"],
            "verbs": g["verbs"],
            "target": g["target"],
            "argv": g["argv"],
            "not_before": g["not_before"],
            "expires": g["expires"],
            "max_uses": g["max_uses"],
        },
    }


def may_grant(d: Decision, compiled: dict, agent: str, env: dict[str, str]) -> bool:
    """A grant can cover only a parsed call that asks, that no matched rule keeps from grants
    (`grantable: false`), and that no rule would deny at any risk its preview could show."""
    if d.decision != ASK or not d.grantable or d.invocation.kind != "ok":
        return False
    worst = decide(d.invocation, compiled["rules"], d.context, agent, env, "critical")
    return worst.decision != DENY and worst.grantable


def from_server(server: dict) -> "tuple[list[tuple[str, object, str]], ...]":
    """The grants and revocations the relay holds for this agent, as (label, statement, '')
    items; none when it does not answer (then only the spool's count, and a grant that only
    the server holds is not used: the call is held, and its hold says the server is down)."""
    from shim.approval.client import Client, RelayError, read_token

    try:
        client = Client(server["url"], read_token(server["token_file"]), server.get("cacert"), 3.0)
        grants, revocations = server_statements(client)
    except (RelayError, OSError, KeyError):
        return [], []
    label = lambda st: f"server:{st.get('id') if isinstance(st, dict) else '?'}"  # noqa: E731
    return ([(label(st), st, "") for st in grants], [(label(st), st, "") for st in revocations])


def server_statements(client: "Client") -> tuple[list[object], list[object]]:
    """(grants, revocations) the relay holds for this token (an agent's: its own)."""
    from shim.approval.client import RelayError

    data = client.expect("GET", "/api/v1/statements")
    grants = data.get("grants") if isinstance(data, dict) else None
    revocations = data.get("revocations") if isinstance(data, dict) else None
    if not isinstance(grants, list) or not isinstance(revocations, list):
        raise RelayError(f"{client.url}: the list of grants is malformed")
    return grants, revocations


def find_grant(
    d: Decision,
    compiled: dict,
    *,
    home: str,
    agent: str,
    log: "LogFn",
    spool: str,
    now: float,
    server: dict | None = None,
) -> dict | None:
    """The grant this call runs under, its use counted (`use`); None to hold it as usual.
    Grants and revocations come from the spool and, when the shim has one, the relay.
    Issue, revocation, expiry and forged statements are logged through `log`, once each."""
    from shim.keys import load_trusted

    found = {sub: read_statements(spool, sub) for sub in (GRANTS_DIR, REVOCATIONS_DIR)}
    if server:
        for sub, items in zip((GRANTS_DIR, REVOCATIONS_DIR), from_server(server), strict=True):
            found[sub] += items
    passkeys = {}
    if any(statement.is_passkey_grant(st) for _, st, _ in found[GRANTS_DIR]):
        from shim.approval.passkey import load_passkeys

        passkeys = load_passkeys(home)
    scan = _Grants(home, log, found, load_trusted(home), now, passkeys)
    inv = d.invocation
    rules = [m["id"] for m in d.matched if m["decision"] == ASK]
    for g in scan.grants:
        if g["agent"] != agent or g["tool"] != inv.tool:
            continue
        scan.once(f"issued {g['id']}", _event("grant", g, "", None))
        if scan.live(g):
            continue
        misfit = statement.covers(
            g,
            agent=agent,
            tool=inv.tool,
            rules=rules,
            verb=" ".join(inv.verb),
            context=d.context,
            argv=list(inv.argv),
        )
        if misfit:
            continue
        use = _State(home, "grant-uses").add(g["id"], g["max_uses"])
        if use:
            return {**g, "use": use}
    return None
