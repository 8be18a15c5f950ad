"""What an approver signs: exactly the request that was asked for and shown (cold, stdlib only).

`shield approve ID` reads the request back from a transport the agent can write (the spool), so
every field in it is the agent's words. Before anything is signed, `checked_request`:

- parses the request and recomputes its digest from its content (a `digest` field is never
  believed, only compared: a naive edit after the hold is refused);
- requires the request's own id to be the id the approver typed, wherever it was found
  (`requests/` or the `closed/` fallback): a file swapped, renamed or copied over from another
  held request is refused, so approving A can never sign B;
- when the approver pinned the digest they reviewed (`--digest PREFIX`, printed by `shield
  pending`), requires the recomputed digest to start with it: a request rewritten between
  `pending` and `approve` is refused before signing;
- refuses what is no longer pending or has expired, and an approval without the reason a rule
  requires.

`signed_lines` then repeats id, command, target and digest from the same parsed request that was
signed. The shim checks id and digest again against its own copy, so a decision on anything else
runs nothing; these checks make the approver's own command refuse instead of signing it.
"""

from __future__ import annotations

from typing import Any

from shim.approval.request import HeldRequest, request_from_dict
from shim.approval.show import command_line, context_line, printable
from shim.clock import parse_iso
from shim.errors import SpoolError, UsageError

SHORT_DIGEST = 12  # hex digits shown by `shield pending` and repeated when signing
MIN_PIN = 8  # hex digits `--digest` needs at least
HEX = frozenset("0123456789abcdef")
CLOSED = ("approved", "denied", "expired", "cancelled")


def short_digest(digest: str) -> str:
    return digest[:SHORT_DIGEST]


def parse_pin(text: str | None) -> str | None:
    """The digest prefix an approver pinned (`--digest`), lowercased; None when not given."""
    if text is None:
        return None
    pin = text.strip().lower()
    if not MIN_PIN <= len(pin) <= 64 or not set(pin) <= HEX:
        raise UsageError(
            f"--digest takes {MIN_PIN} to 64 hex digits of the digest that `shield pending` "
            f"shows, not {printable(text)!r}",
            "copy it from the request's panel, e.g. --digest 3f2a9c1b7d4e",
        )
    return pin


def closed_status(data: dict[str, Any]) -> str:
    """How a request in `closed/` ended, as its file says (the agent's word): one of CLOSED,
    else "closed". Never "pending": nothing in `closed/` is signed."""
    status = data.get("status")
    return status if isinstance(status, str) and status in CLOSED else "closed"


def read_copy(rid: str, data: dict[str, Any] | None, where: str, signing: bool) -> HeldRequest:
    """The request in an inbox's copy `data` for id `rid`; SpoolError when there is none, it
    is malformed, or it is another request's (swapped, renamed or copied after the hold)."""
    done = "; nothing was signed" if signing else ""
    if data is None:
        what = "pending request" if signing else "request"
        raise SpoolError(f"no {what} {rid} in {where} (see: shield pending)")
    try:
        req = request_from_dict(data)
    except SpoolError as exc:
        raise SpoolError(
            f"the copy of request {rid} in {where} is malformed ({exc.message})"
        ) from exc
    if req.id != rid:
        raise SpoolError(
            f"the spool file of request {rid} holds request {req.id}: it was swapped, renamed or "
            f"copied after the call was held{done}",
            "run shield pending again and use the id shown there; someone with write access "
            f"to the spool is moving requests around (shield log --request {rid})",
        )
    return req


def checked_request(
    rid: str,
    status: str,
    data: dict[str, Any] | None,
    *,
    verdict: str,
    reason: str,
    pin: str | None,
    now: float,
    where: str = "the spool",
) -> HeldRequest:
    """The request to sign for id `rid`, found with `status` ("pending", a closed status or
    "unknown") and content `data`; SpoolError, with nothing signed, when it must not be."""
    req = read_copy(rid, data, where, signing=True)
    assert data is not None  # read_copy raised otherwise
    _check_status(rid, status)
    if data.get("digest") != req.digest:
        raise SpoolError(
            f"request {rid} was modified in the spool after it was held (its content does not "
            "match its digest); nothing was signed"
        )
    if pin is not None and not req.digest.startswith(pin):
        raise SpoolError(
            f"request {rid} is not the one you reviewed: its digest is now "
            f"{short_digest(req.digest)}, not {pin}...; nothing was signed",
            "someone rewrote the request after shield pending showed it; run shield pending "
            "again and review what it shows now",
        )
    if parse_iso(req.expires) <= now:
        raise SpoolError(
            f"request {rid} expired at {req.expires}; nothing was signed "
            "(the agent must run the command again)"
        )
    if verdict == "approve" and req.extra.get("require_reason") and not reason.strip():
        raise SpoolError(
            f"request {rid} needs a reason with its approval (risk "
            f"{printable(str(req.extra.get('risk', '?')))}); nothing was signed",
            f'shield approve {rid} --reason "why this is safe"',
        )
    return req


def _check_status(rid: str, status: str) -> None:
    if status == "pending":
        return
    if status == "cancelled":
        raise SpoolError(f"request {rid} was cancelled by the agent; nothing was signed")
    if status == "expired":
        raise SpoolError(f"request {rid} expired; nothing was signed")
    raise SpoolError(f"request {rid} is already {printable(status)}; nothing was signed")


def signed_lines(done: str, req: HeldRequest, decision: dict[str, Any], pinned: bool) -> list[str]:
    """What was signed, for the approver to read: id, risk, command, target and digest."""
    pin = " (as pinned)" if pinned else ""
    risk = req.extra.get("risk")
    level = f" (risk {printable(risk)})" if isinstance(risk, str) else ""
    return [
        f"{done} {req.id}{level}: {command_line([req.tool, *req.argv])}",
        f"  target {context_line(req.context)}; digest {short_digest(req.digest)}{pin}",
        f"  agent {printable(req.agent)}, rule {printable(req.rule or '-')}; signed by "
        f"{printable(str(decision['approver']))} (key {decision['key']})",
    ]
