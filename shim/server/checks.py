"""What a submitted request or a posted decision must look like before it is stored (pure).

These checks protect the relay and give a clear 4xx early; they are not what makes a call safe.
The shim verifies every decision itself, with its own copy of the request and its trust store.
"""

from __future__ import annotations

import time
from typing import Any

from shim.approval import passkey
from shim.approval.decision import DECISION_KEYS, DECISION_TYPE, MAX_DECISION_BYTES, VERDICTS
from shim.approval.request import MAX_REQUEST_BYTES, HeldRequest, request_from_dict, to_dict
from shim.clock import parse_iso
from shim.errors import ShieldError

MAX_HOLD_S = 7 * 24 * 3600.0  # no request is held longer than a week
REQUEST_LIMIT = MAX_REQUEST_BYTES
DECISION_LIMIT = MAX_DECISION_BYTES


class Invalid(Exception):
    """A 4xx answer: an HTTP status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_request(data: Any, agent: str, now: float | None = None) -> HeldRequest:
    """The held request in a submission; Invalid when it is malformed, not this agent's, its
    digest is not its content's, or its times make no sense."""
    now = time.time() if now is None else now
    try:
        req = request_from_dict(data)
        if data.get("digest") != req.digest:
            raise Invalid(400, "held request: digest does not match its content")
        if data != to_dict(req):
            raise Invalid(400, "held request: fields the digest does not cover")
    except ShieldError as exc:
        raise Invalid(400, exc.message) from None
    except RecursionError:
        raise Invalid(400, "held request: nests too deep") from None
    if req.agent != agent:
        raise Invalid(403, f"this token belongs to agent {agent!r}, not {req.agent!r}")
    expires, created = parse_iso(req.expires), parse_iso(req.created)
    if expires <= now:
        raise Invalid(400, f"held request: expired at {req.expires}")
    if expires - created > MAX_HOLD_S or created > now + 300:
        raise Invalid(400, "held request: created/expires out of range")
    return req


def check_decision(data: Any, rid: str, digest: str) -> dict[str, Any]:
    """A signed decision's shape (Ed25519, or a passkey's assertion), naming request `rid` with
    `digest`. The signature is not checked here (the server trusts no key and holds none):
    the shim checks it."""
    if not isinstance(data, dict):
        raise Invalid(400, "decision: not a JSON object")
    keys = passkey.DECISION_KEYS if data.get("type") == passkey.DECISION_TYPE else DECISION_KEYS
    if set(data) != keys or not all(isinstance(v, str) for v in data.values()):
        raise Invalid(400, f"decision: needs exactly the string fields {sorted(keys)}")
    if (
        data["type"] not in (DECISION_TYPE, passkey.DECISION_TYPE)
        or data["verdict"] not in VERDICTS
    ):
        raise Invalid(400, "decision: unknown type or verdict")
    if data["id"] != rid:
        raise Invalid(400, f"decision: names request {data['id'][:16]!r}, not {rid}")
    if data["digest"] != digest:
        raise Invalid(409, "decision: signed over other content than this request (digest)")
    return data
