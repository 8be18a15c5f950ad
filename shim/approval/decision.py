"""Signed decisions: the approver signs, the shim verifies (cold).

A decision names one request by id and digest, a verdict (approve or deny), the approver and
the fingerprint of their key, when it was made and until when it counts, a reason and a
random nonce; `sig` is an Ed25519 signature over the canonical JSON of all of that. The shim
accepts it only when `verify_decision` says so and the used store had not seen it.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from shim import canon
from shim.approval.request import HeldRequest, request_from_dict
from shim.clock import now_iso, parse_iso
from shim.errors import KeyError_
from shim.keys import PublicKey, approver_identity, sign, verify_signature

DECISION_TYPE = "shield.decision/1"
DECISION_KEYS = frozenset(
    {
        "type",
        "id",
        "digest",
        "verdict",
        "approver",
        "key",
        "time",
        "expires",
        "reason",
        "nonce",
        "sig",
    }
)
VERDICTS = {"approve": "approved", "deny": "denied"}

MAX_DECISION_BYTES = 64 << 10


def decision_payload(decision: dict[str, Any]) -> bytes:
    """The bytes a decision's signature covers: canonical JSON of every field but `sig`."""
    body = {k: v for k, v in decision.items() if k != "sig"}
    return canon.encode(body).encode("ascii")


def decision_hash(decision: dict[str, Any]) -> str:
    """What the used store records: SHA-256 of the signed payload (unique by its nonce)."""
    return hashlib.sha256(decision_payload(decision)).hexdigest()


def sign_decision(
    approver_home: str,
    request: dict[str, Any],
    verdict: str,
    reason: str,
    ttl_s: float = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """A decision on `request` signed with the approver key of `approver_home` (cold).

    The digest is computed from the request's content; a "digest" field in it is ignored.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {sorted(VERDICTS)}")
    req = request_from_dict(request)
    now = time.time() if now is None else now
    ident = approver_identity(approver_home)
    body: dict[str, Any] = {
        "type": DECISION_TYPE,
        "id": req.id,
        "digest": req.digest,
        "verdict": verdict,
        "approver": ident.name,
        "key": ident.fingerprint,
        "time": now_iso(now),
        "expires": now_iso(now + ttl_s),
        "reason": reason,
        "nonce": os.urandom(16).hex(),
    }
    signer, sig = sign(approver_home, decision_payload(body))
    if signer.raw != ident.raw:
        raise KeyError_("the approver key changed while signing; try again")
    return {**body, "sig": sig}


def _clip(value: object, n: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def verify_decision(
    decision: object,
    req: HeldRequest,
    trusted: dict[str, PublicKey],
    now: float,
    skew_s: float,
    used: set[str],
) -> tuple[bool, str]:
    """(True, "ok") when `decision` may decide `req`; else (False, why). Pure."""
    if not isinstance(decision, dict):
        return False, "decision is not a JSON object"
    keys = set(decision)
    if keys != DECISION_KEYS:
        missing = sorted(DECISION_KEYS - keys)
        unknown = sorted(keys - DECISION_KEYS)[:5]
        return False, f"decision has missing fields {missing} or unknown fields {unknown}"
    for key in sorted(DECISION_KEYS):
        if not isinstance(decision[key], str):
            return False, f"decision field {key!r} is not a string"
    if decision["type"] != DECISION_TYPE:
        return False, f"decision type is {_clip(decision['type'])}, not {DECISION_TYPE}"
    if decision["verdict"] not in VERDICTS:
        return False, f"decision verdict {_clip(decision['verdict'])} is not approve or deny"
    fp, approver = decision["key"], decision["approver"]
    if fp not in trusted:
        return False, (
            f"decision signed by an untrusted key (fp {_clip(fp, 40)}, approver {_clip(approver)})"
        )
    try:
        payload = decision_payload(decision)
    except (TypeError, UnicodeEncodeError):
        return False, "decision cannot be encoded canonically"
    pub = verify_signature(trusted, fp, payload, decision["sig"])
    if pub is None:
        return False, (
            f"decision signature does not verify with trusted key {fp} "
            "(edited after signing, or forged)"
        )
    if approver != pub.name:
        return False, f"decision names approver {_clip(approver)} but key {fp} is {pub.name!r}"
    why = check_terms(decision, req, now, skew_s, decision_hash(decision), used)
    if why:
        return False, why
    return True, "ok"


def check_terms(
    decision: dict[str, Any], req: HeldRequest, now: float, skew_s: float, mark: str, used: set[str]
) -> str:
    """'' when a decision whose signature verified may decide `req`: it names this request's
    id and digest, it is in its time window (with the clock-skew tolerance), its `mark` is not
    in the used store, and it carries a reason where the rule requires one; else why not.
    Shared by Ed25519 and passkey decisions. Pure."""
    if decision["id"] != req.id:
        return (
            f"decision is for request {_clip(decision['id'])}, not {req.id} "
            "(copied from another request)"
        )
    if decision["digest"] != req.digest:
        return (
            "decision digest does not match this request: the approver signed other content "
            "than the held call (was the spool copy of the request edited?)"
        )
    try:
        made, expires = parse_iso(decision["time"]), parse_iso(decision["expires"])
    except ValueError:
        return "decision time or expiry is malformed"
    if made > now + skew_s:
        return (
            f"decision time {decision['time']} is {made - now:.1f}s in the future, beyond the "
            f"clock-skew tolerance of {skew_s:g}s"
        )
    if now > expires + skew_s:
        return (
            f"decision expired at {decision['expires']} ({now - expires:.1f}s ago, clock-skew "
            f"tolerance {skew_s:g}s)"
        )
    if expires < made:
        return "decision expires before it was made"
    if mark in used:
        return "decision was used before (replay)"
    if (
        req.extra.get("require_reason")
        and decision["verdict"] == "approve"
        and not str(decision.get("reason") or "").strip()
    ):
        return "this request needs a reason with its approval (a rule requires one)"
    return ""


# --- the used store --------------------------------------------------------------------------
