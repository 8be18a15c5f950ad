"""A note on a decision the shim refused, for the approvers (cold, stdlib only).

When a held shim refuses a signed decision (an untrusted key, another digest, a replay), it
logs a `security` event on its side, and leaves a short note where the approvers look: the
spool (`<spool>/refused/`) or the approval server. `shield pending` and `shield show` then
flag the request: "a decision for this request was refused: <why>". A note is the agent's
words (the agent's side writes it, and anything that writes the spool can), so it is shown as
what the agent reports, escaped, and never decides anything.
"""

from __future__ import annotations

from typing import Any

NOTE_KEYS = ("why", "approver", "key", "verdict", "time", "channel")
MAX_FIELD = 500


def refusal_note(decision: Any, why: str, channel: str, time_iso: str) -> dict[str, str]:
    """What the shim says about a decision it refused: why, and who the decision claimed to
    be from (its own words: it was refused)."""
    note = {"why": why, "time": time_iso, "channel": channel}
    if isinstance(decision, dict):
        for key in ("approver", "key", "verdict"):
            value = decision.get(key)
            if isinstance(value, str):
                note[key] = value[:200]
    return note


def clean_note(data: object) -> dict[str, str] | None:
    """A note's known string fields, clipped; None when it is not a note."""
    if not isinstance(data, dict) or not isinstance(data.get("why"), str):
        return None
    return {k: str(data[k])[:MAX_FIELD] for k in NOTE_KEYS if isinstance(data.get(k), str)}
