"""A held request as the approval tests write it to a spool, and the wait that follows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.approval.channels import transports_for
from shim.approval.request import HeldRequest, new_request
from shim.approval.spool import write_request
from shim.approval.transport import Verdict
from shim.approval.wait import wait_for_decision

SAMPLE = {
    "agent": "deploy-bot",
    "tool": "kubectl",
    "argv": ["delete", "namespace", "prod"],
    "cwd": "/work",
    "context": {"context": "prod-eu", "namespace": "prod"},
    "rule": "kubectl/delete-namespace",
    "reason": "deletes every object in the namespace",
}


def write_held(spool: str, timeout_s: float, **overrides: Any) -> HeldRequest:
    """A new held request (the SAMPLE fields, with `overrides`), written to `spool`."""
    fields: dict[str, Any] = {**SAMPLE, "timeout_s": timeout_s, **overrides}
    req = new_request(**fields)
    write_request(spool, req)
    return req


def wait_held(
    req: HeldRequest,
    spool: str,
    *,
    trusted: dict,
    used_path: str,
    log: Callable[[dict], object],
    tty: bool = False,
    notify: list[str] | str | None = None,
    **kw: Any,
) -> Verdict:
    """What a held shim does once its request is in the spool: publish the other transports
    (shim.approval.channels), then wait for a decision."""
    transports = transports_for(req, spool, tty=tty, notify=notify, log=log)
    return wait_for_decision(
        req,
        transports,
        trusted=trusted,
        used_path=used_path,
        log=log,
        publish=transports[1:],
        **kw,
    )
