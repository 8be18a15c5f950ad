"""A held request as the hold/approval tests write it to a spool."""

from __future__ import annotations

from typing import Any

from shim import hold

SAMPLE = {
    "agent": "deploy-bot",
    "tool": "kubectl",
    "argv": ["delete", "namespace", "prod"],
    "cwd": "/work",
    "context": {"context": "prod-eu", "namespace": "prod"},
    "rule": "kubectl/delete-namespace",
    "reason": "deletes every object in the namespace",
}


def write_held(spool: str, timeout_s: float, **overrides: Any) -> hold.HeldRequest:
    """A new held request (the SAMPLE fields, with `overrides`), written to `spool`."""
    fields: dict[str, Any] = {**SAMPLE, "timeout_s": timeout_s, **overrides}
    req = hold.new_request(**fields)
    hold.write_request(spool, req)
    return req
