"""A held request: the call exactly as the shim saw it, and its digest (cold).

The digest (SHA-256 over the canonical JSON of every field) is what an approver signs. The
shim keeps its own request in memory and computes the digest itself; a request read back from a
transport (`request_from_dict`) gets its digest recomputed, never read.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

from shim import canon
from shim.clock import now_iso, parse_iso
from shim.errors import SpoolError

# Request ids: short, typeable, no look-alikes (no 0/o, 1/l/i).
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LEN = 6

# Every field of a request that the digest covers, in the JSON shape's order.
FIELDS = (
    "id",
    "agent",
    "tool",
    "argv",
    "cwd",
    "context",
    "rule",
    "reason",
    "created",
    "expires",
    "extra",
)
# Keys `extra` may not use once flattened into the JSON shape.
RESERVED = frozenset(FIELDS) | {"digest", "status", "closed"}

MAX_REQUEST_BYTES = 4 << 20


@dataclass(frozen=True)
class HeldRequest:
    """A held call, exactly as the shim saw it. `digest` covers every other field."""

    id: str
    agent: str
    tool: str
    argv: tuple[str, ...]
    cwd: str
    context: dict[str, str]
    rule: str | None
    reason: str
    created: str
    expires: str
    extra: dict[str, Any]
    digest: str


def random_string(n: int, alphabet: str = ID_ALPHABET) -> str:
    """`n` characters drawn uniformly from `alphabet` (os.urandom, rejection sampling)."""
    size = len(alphabet)
    limit = 256 - 256 % size
    out: list[str] = []
    while len(out) < n:
        for byte in os.urandom(2 * n):
            if byte < limit:
                out.append(alphabet[byte % size])
                if len(out) == n:
                    break
    return "".join(out)


def is_request_id(text: str) -> bool:
    return len(text) == ID_LEN and all(c in ID_ALPHABET for c in text)


def content_of(req: HeldRequest) -> dict[str, Any]:
    """The digested content of a request (every field but `digest`)."""
    return {
        "id": req.id,
        "agent": req.agent,
        "tool": req.tool,
        "argv": list(req.argv),
        "cwd": req.cwd,
        "context": dict(req.context),
        "rule": req.rule,
        "reason": req.reason,
        "created": req.created,
        "expires": req.expires,
        "extra": dict(req.extra),
    }


def compute_digest(content: dict[str, Any]) -> str:
    """SHA-256 hex over the canonical JSON encoding of a request's content."""
    return hashlib.sha256(canon.encode(content).encode("ascii")).hexdigest()


def _check_fields(
    rid: object,
    agent: object,
    tool: object,
    argv: object,
    cwd: object,
    context: object,
    rule: object,
    reason: object,
    extra: object,
) -> str | None:
    """What is wrong with these request fields, or None."""
    if not isinstance(rid, str) or not is_request_id(rid):
        return "id"
    for name, value in (("agent", agent), ("tool", tool), ("cwd", cwd), ("reason", reason)):
        if not isinstance(value, str):
            return name
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        return "argv"
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in context.items()
    ):
        return "context"
    if rule is not None and not isinstance(rule, str):
        return "rule"
    if not isinstance(extra, dict) or any(not isinstance(k, str) or k in RESERVED for k in extra):
        return "extra"
    try:
        canon.encode(extra)
    except TypeError:
        return "extra"
    return None


def new_request(
    *,
    agent: str,
    tool: str,
    argv: list[str] | tuple[str, ...],
    cwd: str,
    context: dict[str, str],
    rule: str | None,
    reason: str,
    timeout_s: float,
    extra: dict[str, Any] | None = None,
    now: float | None = None,
) -> HeldRequest:
    """A new held request with a fresh id, `created` = now, `expires` = now + timeout_s."""
    now = time.time() if now is None else now
    extra = {} if extra is None else dict(extra)
    rid = random_string(ID_LEN)
    bad = _check_fields(rid, agent, tool, argv, cwd, context, rule, reason, extra)
    if bad:
        raise ValueError(f"held request: bad {bad} (extra may not reuse {sorted(RESERVED)})")
    fields: dict[str, Any] = {
        "id": rid,
        "agent": agent,
        "tool": tool,
        "argv": tuple(argv),
        "cwd": cwd,
        "context": dict(context),
        "rule": rule,
        "reason": reason,
        "created": now_iso(now),
        "expires": now_iso(now + max(0.0, timeout_s)),
        "extra": extra,
    }
    probe = HeldRequest(digest="", **fields)
    return HeldRequest(digest=compute_digest(content_of(probe)), **fields)


def to_dict(req: HeldRequest) -> dict[str, Any]:
    """The JSON shape (spool file, `shield pending --json`): fields, digest, extra flattened."""
    out = content_of(req)
    extra = out.pop("extra")
    out["digest"] = req.digest
    out.update(extra)
    return out


def request_from_dict(data: object) -> HeldRequest:
    """A request from its JSON shape; the digest is recomputed, never read from `data`."""
    if not isinstance(data, dict):
        raise SpoolError("held request: not a JSON object")
    extra = {k: v for k, v in data.items() if k not in RESERVED}
    missing = [f for f in FIELDS if f != "extra" and f not in data]
    if missing:
        raise SpoolError(f"held request: missing {', '.join(missing)}")
    bad = _check_fields(
        data["id"],
        data["agent"],
        data["tool"],
        data["argv"],
        data["cwd"],
        data["context"],
        data["rule"],
        data["reason"],
        extra,
    )
    if bad:
        raise SpoolError(f"held request: bad {bad}")
    try:
        parse_iso(data["created"])
        parse_iso(data["expires"])
    except ValueError as exc:
        raise SpoolError(f"held request: {exc}") from exc
    fields: dict[str, Any] = {f: data[f] for f in FIELDS if f != "extra"}
    fields["argv"] = tuple(fields["argv"])
    fields["extra"] = extra
    probe = HeldRequest(digest="", **fields)
    return HeldRequest(digest=compute_digest(content_of(probe)), **fields)
