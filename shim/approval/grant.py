"""Grants and revocations: signed statements that let one agent run calls that would ask.

A grant names an agent, a tool, the rules or verb paths it covers, the target pinned to what the
classifier resolves (kube context and namespace, aws profile and region, terraform workspace
and directory), optionally argv globs, a time window (at most 8 hours) and optionally a number
of uses, with the approver's reason; the approver's Ed25519 key signs its canonical JSON, or
(from the web page) the approver's passkey makes a WebAuthn assertion whose challenge is the
SHA-256 of that canonical JSON (`credential` and the assertion in place of `key` and `sig`).
A revocation, signed with an Ed25519 key, ends grants by id, every grant of an agent, or all
grants, issued before it.

Light to import (a call covered by a grant checks one on its way to the real binary): canon,
clock, keys, fs; signing imports `cryptography` when called (the approver's side).
"""

from shim import canon
from shim.classify.glob import match
from shim.clock import now_iso, parse_iso
from shim.keys import PublicKey, verify_signature

GRANT_TYPE = "shield.grant/1"
REVOCATION_TYPE = "shield.revocation/1"
MAX_SPAN_S = 8 * 3600
DEFAULT_SPAN_S = 15 * 60
UNRESOLVED = ("", "?", "*")
TARGET_KEYS = ("context", "namespace", "profile", "region", "workspace", "dir")
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"

GRANT_KEYS = frozenset(
    (
        "type",
        "id",
        "agent",
        "tool",
        "rules",
        "verbs",
        "target",
        "argv",
        "not_before",
        "expires",
        "max_uses",
        "reason",
        "approver",
        "key",
        "time",
        "nonce",
        "sig",
    )
)
PASSKEY_ASSERTION = ("credential", "authenticator_data", "client_data_json", "signature")
PASSKEY_GRANT_KEYS = (GRANT_KEYS - {"key", "sig"}) | frozenset(PASSKEY_ASSERTION)
REVOCATION_KEYS = frozenset(
    ("type", "id", "grants", "agent", "all", "reason", "approver", "key", "time", "nonce", "sig")
)


def payload(statement: dict) -> bytes:
    """The bytes a statement's signature covers: canonical JSON of every field but `sig`."""
    return canon.encode({k: v for k, v in statement.items() if k != "sig"}).encode("ascii")


def new_id(prefix: str) -> str:
    """`prefix` and 7 characters drawn uniformly from ID_ALPHABET (easy to type)."""
    from shim.fs import urandom

    size = len(ID_ALPHABET)
    limit = 256 - 256 % size
    out = ""
    while len(out) < 7:
        out += "".join(ID_ALPHABET[b % size] for b in urandom(8) if b < limit)
    return prefix + out[:7]


def sign_statement(home: str, body: dict) -> dict:
    """`body` plus approver, key, time, nonce and the approver key's signature (cold)."""
    from shim.fs import urandom
    from shim.keys import approver_identity, sign

    ident = approver_identity(home)
    out = dict(body)
    out.update(approver=ident.name, key=ident.fingerprint, time=now_iso(), nonce=urandom(16).hex())
    signer, sig = sign(home, payload(out))
    if signer.raw != ident.raw:
        raise ValueError("the approver key changed while signing; try again")
    out["sig"] = sig
    return out


def make_grant(
    home: str,
    *,
    agent: str,
    tool: str,
    rules: list[str],
    verbs: list[str],
    target: dict[str, str],
    argv: list[str],
    span_s: float,
    reason: str,
    max_uses: int | None = None,
    not_before: float | None = None,
    now: float,
) -> dict:
    """A signed grant (cold: signs with the approver key of `home`). ValueError on a scope
    that would cover more than the issue allows: no rule or verb, no pinned target, a span
    over 8 hours."""
    if not rules and not verbs:
        raise ValueError("a grant covers named rules (--rule) or verb paths (--verb)")
    pinned = {k: v for k, v in target.items() if v and v not in UNRESOLVED}
    if not pinned:
        raise ValueError(
            "a grant pins its target (--context, --namespace, --profile, ...): "
            "this call's target is not resolved"
        )
    if not 0 < span_s <= MAX_SPAN_S:
        raise ValueError("a grant lasts more than 0 seconds and at most 8 hours")
    if max_uses is not None and max_uses < 1:
        raise ValueError("--uses must be at least 1")
    start = now if not_before is None else not_before
    body = {
        "type": GRANT_TYPE,
        "id": new_id("g"),
        "agent": agent,
        "tool": tool,
        "rules": sorted(set(rules)),
        "verbs": sorted(set(verbs)),
        "target": pinned,
        "argv": list(argv),
        "not_before": now_iso(start),
        "expires": now_iso(start + span_s),
        "max_uses": max_uses,
        "reason": reason,
    }
    return sign_statement(home, body)


def make_revocation(
    home: str, *, grants: list[str], agent: str | None, everything: bool, reason: str
) -> dict:
    if not grants and agent is None and not everything:
        raise ValueError("revoke grant ids, --agent NAME or --all")
    body = {
        "type": REVOCATION_TYPE,
        "id": new_id("r"),
        "grants": sorted(set(grants)),
        "agent": agent,
        "all": everything,
        "reason": reason,
    }
    return sign_statement(home, body)


def is_passkey_grant(st: object) -> bool:
    return isinstance(st, dict) and "credential" in st


def _shape(
    st: object, keys: frozenset[str], kind: str, signed: tuple[str, ...] = ("key", "sig")
) -> str:
    """What is wrong with a statement's shape, or ''."""
    if not isinstance(st, dict) or set(st) != keys or st.get("type") != kind:
        return f"not a {kind} statement"
    for key in ("id", "approver", "time", "nonce", "reason", *signed):
        if not isinstance(st[key], str):
            return f"{key} is not a string"
    return ""


def check_signature(st: dict, trusted: dict[str, PublicKey]) -> str:
    """'' when a trusted key signed `st` under its own name; else why not."""
    pub = verify_signature(trusted, st["key"], payload(st), st["sig"])
    if pub is None:
        if st["key"] not in trusted:
            return f"signed by an untrusted key ({st['key'][:16]})"
        return "the signature does not verify (edited after signing, or forged)"
    if pub.name != st["approver"]:
        return f"names approver {st['approver']!r} but the key is {pub.name!r}"
    return ""


def check_passkey_signature(st: dict, passkeys: dict) -> str:
    """'' when a trusted passkey of the approver the grant names made its assertion over the
    grant's body (origin, relying party, user presence and verification checked); else why
    not. The grant is used many times by design, so no sign count: its window bounds it."""
    import hashlib

    from shim.approval.passkey import check_assertion

    pk = passkeys.get(st["credential"])
    if pk is None:
        return f"signed by an untrusted passkey (credential {st['credential'][:24]!r})"
    if pk.approver != st["approver"]:
        return f"names approver {st['approver'][:64]!r} but the passkey is {pk.approver!r}"
    body = {k: v for k, v in st.items() if k not in PASSKEY_ASSERTION}
    challenge = hashlib.sha256(canon.encode(body).encode("ascii")).digest()
    why, _ = check_assertion(st, pk, challenge, 0)
    return why


def check_grant(st: object, trusted: dict[str, PublicKey], passkeys: dict | None = None) -> str:
    """'' for a well-formed grant a trusted approver signed (with an Ed25519 key, or with a
    passkey among `passkeys`); else why it looks forged."""
    passkey = is_passkey_grant(st)
    if passkey:
        bad = _shape(st, PASSKEY_GRANT_KEYS, GRANT_TYPE, PASSKEY_ASSERTION)
    else:
        bad = _shape(st, GRANT_KEYS, GRANT_TYPE)
    if bad:
        return bad
    assert isinstance(st, dict)
    for key in ("agent", "tool", "not_before", "expires"):
        if not isinstance(st[key], str):
            return f"{key} is not a string"
    for key in ("rules", "verbs", "argv"):
        if not isinstance(st[key], list) or not all(isinstance(x, str) for x in st[key]):
            return f"{key} is not a list of strings"
    target = st["target"]
    if not isinstance(target, dict) or not target:
        return "the target is not pinned"
    if not all(isinstance(v, str) and v not in UNRESOLVED for v in target.values()):
        return "the target holds a value that is not a plain name"
    uses = st["max_uses"]
    if uses is not None and (type(uses) is not int or uses < 1):
        return "max_uses is not a positive number"
    if not st["rules"] and not st["verbs"]:
        return "the grant covers no rule and no verb"
    try:
        start, end = parse_iso(st["not_before"]), parse_iso(st["expires"])
    except ValueError:
        return "not_before or expires is not a time"
    if not 0 < end - start <= MAX_SPAN_S:
        return "the grant's time window is empty or longer than 8 hours"
    if passkey:
        return check_passkey_signature(st, passkeys or {})
    return check_signature(st, trusted)


def check_revocation(st: object, trusted: dict[str, PublicKey]) -> str:
    bad = _shape(st, REVOCATION_KEYS, REVOCATION_TYPE)
    if bad:
        return bad
    assert isinstance(st, dict)
    if not isinstance(st["grants"], list) or not all(isinstance(x, str) for x in st["grants"]):
        return "grants is not a list of ids"
    if st["agent"] is not None and not isinstance(st["agent"], str):
        return "agent is not a string"
    if not isinstance(st["all"], bool):
        return "all is not true or false"
    return check_signature(st, trusted)


def revokes(rev: dict, grant: dict) -> bool:
    """True when the (verified) revocation ends the (verified) grant."""
    if grant["id"] in rev["grants"]:
        return True
    if not (rev["all"] or rev["agent"] == grant["agent"]):
        return False
    try:
        return parse_iso(grant["time"]) <= parse_iso(rev["time"])
    except ValueError:
        return True


def in_time(grant: dict, now: float, skew_s: float) -> str:
    """'' when the grant is live at `now`; else 'not yet valid' or 'expired'."""
    if now + skew_s < parse_iso(grant["not_before"]):
        return "not yet valid"
    if now > parse_iso(grant["expires"]):
        return "expired"
    return ""


def covers(
    grant: dict,
    *,
    agent: str,
    tool: str,
    rules: list[str],
    verb: str,
    context: dict[str, str],
    argv: list[str],
) -> str:
    """'' when the grant's scope covers this call; else the first thing that differs.
    `rules` are every restrictive rule the call matched: a grant for some of them does not
    override the others."""
    if grant["agent"] != agent:
        return f"for agent {grant['agent']}"
    if grant["tool"] != tool:
        return f"for {grant['tool']}"
    if grant["rules"] and not (rules and set(rules) <= set(grant["rules"])):
        return f"covers rules {', '.join(grant['rules'])}"
    if grant["verbs"] and not any(match(v, verb) for v in grant["verbs"]):
        return f"covers verbs {', '.join(grant['verbs'])}"
    for key, want in sorted(grant["target"].items()):
        if context.get(key) != want:
            return f"pinned to {key} {want}, the call's is {context.get(key) or '?'}"
    line = " ".join(argv)
    if grant["argv"] and not any(match(g, line) for g in grant["argv"]):
        return "the command line matches none of its argv globs"
    return ""
