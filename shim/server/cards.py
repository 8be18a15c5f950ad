"""What the web page shows of a request: the same escaped text as `shield pending` (pure).

Everything in a request is the agent's words, so every string the page shows is made here with
shim.approval.show (`printable`, `command_line`, `context_line`, `extra_lines`): control, format
and invisible characters come out escaped exactly as on the terminal. The page puts these
strings into the document as text (textContent), never as markup. The digest is recomputed from
the content, never taken from the stored copy.
"""

from __future__ import annotations

import json
from typing import Any

from shim.approval.grant import TARGET_KEYS, UNRESOLVED
from shim.approval.request import HeldRequest, request_from_dict
from shim.approval.review import short_digest
from shim.approval.show import command_line, context_line, duration, extra_lines, printable
from shim.clock import parse_iso
from shim.errors import ShieldError
from shim.server.store import RequestRow

PRIMARY = ("why", "context", "agent", "preview", "inputs")
MODIFIED = (
    "this request was edited on the server after the call was held (its digest does not match "
    "its content): do not approve it"
)


def card(
    row: RequestRow, now: float, posted: list[tuple[str, str]] | None = None
) -> dict[str, Any] | None:
    """One pending request as the page's card; None when the stored body is unreadable."""
    try:
        data = json.loads(row.body)
        req = request_from_dict(data)
        created, expires = parse_iso(req.created), parse_iso(req.expires)
    except (ValueError, ShieldError):
        return None
    modified = data.get("digest") != req.digest
    rule = printable(req.rule) if req.rule else "(no rule matched)"
    everything = [
        ["why", f"{printable(req.reason)}  [{rule}]"],
        ["context", context_line(req.context)],
        ["agent", printable(req.agent)],
        ["cwd", printable(req.cwd)],
        ["digest", short_digest(req.digest)],
    ]
    everything += [[label, text] for label, text in extra_lines(req.extra)]
    rows, details = split_rows(everything)
    risk = req.extra.get("risk")
    approvals = req.extra.get("approvals")
    return {
        "id": req.id,
        "digest": req.digest,
        "status": "modified" if modified else "pending",
        "warning": MODIFIED if modified else "",
        "command": command_line([req.tool, *req.argv]),
        "agent": printable(req.agent),
        "rule": rule,
        "reason": printable(req.reason),
        "context": context_line(req.context),
        "risk": risk if risk in ("low", "medium", "high", "critical") else "",
        "created": created,
        "expires": expires,
        "held": f"{duration(now - created)} ago",
        "approvals": approvals if isinstance(approvals, int) and 1 < approvals <= 10 else 1,
        "require_reason": bool(req.extra.get("require_reason")),
        "rows": rows,
        "details": details,
        "grant_scope": grant_scope(req),
        "posted": posted_lines([b for k, b in posted or [] if k == "decision"]),
        "refused": refused_lines([b for k, b in posted or [] if k == "refusal"]),
    }


def split_rows(everything: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """The rows a card shows at once (why, the target context, the agent, the preview, the
    inputs), and the rest of what `shield pending` shows (folded: cwd, digest, the pinned target,
    what runs). A row with an empty label continues the one before it. The risk is the card's
    badge."""
    rows: list[list[str]] = []
    details: list[list[str]] = []
    into = rows
    for label, text in everything:
        if label == "risk":
            into = []  # the card's badge
        elif label:
            into = rows if label in PRIMARY else details
        into.append([label, text])
    return rows, details


def grant_scope(req: HeldRequest) -> dict[str, Any] | None:
    """What a grant given while approving `req` covers, as `shield approve --for` scopes it
    (the agent, the tool, the rule, the pinned target); None when there is no rule or no
    resolved target to pin."""
    target = {
        k: v
        for k, v in req.context.items()
        if k in TARGET_KEYS and isinstance(v, str) and v not in UNRESOLVED
    }
    if not req.rule or not target:
        return None
    where = " ".join(f"{k}={v}" for k, v in sorted(target.items()))
    text = f"and let {req.agent} run {req.rule} in {where} for 15 minutes"
    return {
        "agent": req.agent,
        "tool": req.tool,
        "rules": [req.rule],
        "target": target,
        "text": printable(text),  # the agent's words, escaped like the rest of the card
    }


def posted_lines(bodies: list[str]) -> list[str]:
    """`alice approve (passkey)` per statement posted so far: what the server holds, which
    the shim has yet to verify."""
    out = []
    for body in bodies[:20]:
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        kind = "passkey" if "authenticator_data" in data else "key"
        out.append(
            printable(f"{str(data.get('approver'))[:64]} {str(data.get('verdict'))[:16]} ({kind})")
        )
    return out


def refused_lines(bodies: list[str]) -> list[str]:
    """`untrusted key (claimed by alice)` per refusal note the agent's shim left: a decision
    posted for this request that it did not accept (the agent's words, shown escaped)."""
    out = []
    for body in bodies[-5:]:
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("why"), str):
            continue
        who = data.get("approver")
        claimed = f" (claimed by {str(who)[:64]})" if isinstance(who, str) and who else ""
        out.append(printable(f"{data['why'][:200]}{claimed}"))
    return out


def summary(row: RequestRow) -> dict[str, Any]:
    """A closed request for the notes and the history: what ran, how it ended, who decided
    (the shim's report, for people: not trusted)."""
    try:
        data = json.loads(row.body)
        command = command_line([str(data["tool"]), *[str(a) for a in data["argv"]]])
    except (ValueError, KeyError, TypeError):
        command = "(unreadable request)"
    try:
        outcome = json.loads(row.outcome) if row.outcome else {}
    except ValueError:
        outcome = {}
    if not isinstance(outcome, dict):
        outcome = {}
    return {
        "id": row.id,
        "status": row.status,
        "command": command,
        "agent": printable(row.agent),
        "closed": row.closed,
        "approver": printable(str(outcome.get("approver") or "")),
        "reason": printable(str(outcome.get("reason") or "")),
        "channel": printable(str(outcome.get("channel") or "")),
    }
