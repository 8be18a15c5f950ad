"""`shield approve` and `shield deny`: sign a decision on a held call (cold: typer and rich).

Expected failures raise ShieldError subclasses; `shim.cli.main` turns them into one line on
stderr and exit code 1.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from shim.approval import grant as statement
from shim.approval import spool as spool_mod
from shim.approval.decision import VERDICTS, sign_decision
from shim.approval.request import is_request_id, request_from_dict
from shim.approval.show import command_line, context_line, printable
from shim.clock import parse_iso
from shim.commands import grant as grant_cmd
from shim.commands.common import SpoolOpt
from shim.errors import SpoolError
from shim.home import home_dir, spool_dir

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; recorded in the log.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The request id from `shield pending`.")]


def decide(request_id: str, verdict: str, reason: str, spool: str | None) -> dict[str, Any]:
    """Sign `verdict` on a pending request and drop it into the spool; return the decision."""
    home = home_dir()
    where = spool_dir(home, flag=spool)
    rid = request_id.strip().lower()
    if not is_request_id(rid):
        raise SpoolError(f"{printable(request_id)!r} is not a request id (see: shield pending)")
    status, data = spool_mod.lookup(where, rid)
    if data is None:
        raise SpoolError(f"no pending request {rid} in {where} (see: shield pending)")
    if status == "cancelled":
        raise SpoolError(f"request {rid} was cancelled by the agent; nothing was signed")
    if status == "expired":
        raise SpoolError(f"request {rid} expired; nothing was signed")
    if status != "pending":
        raise SpoolError(f"request {rid} is already {printable(status)}; nothing was signed")
    req = request_from_dict(data)
    if data.get("digest") != req.digest:
        raise SpoolError(
            f"request {rid} was modified in the spool after it was held (its content does not "
            "match its digest); nothing was signed"
        )
    if parse_iso(req.expires) <= time.time():
        raise SpoolError(
            f"request {rid} expired at {req.expires}; nothing was signed "
            "(the agent must run the command again)"
        )
    if verdict == "approve" and req.extra.get("require_reason") and not reason.strip():
        raise SpoolError(
            f"request {rid} needs a reason with its approval (risk {req.extra.get('risk', '?')}); "
            "nothing was signed",
            f'shield approve {rid} --reason "why this is safe"',
        )
    decision = sign_decision(home, data, verdict, reason)
    spool_mod.write_decision(where, decision)
    done = VERDICTS[verdict]
    console = Console(highlight=False)
    console.print(Text(f"{done} {rid}: {command_line([req.tool, *req.argv])}"))
    console.print(
        Text(
            f"  agent {printable(req.agent)}, context {context_line(req.context)}, "
            f"rule {printable(req.rule or '-')}; signed by {decision['approver']} "
            f"(key {decision['key']})",
            style="dim",
        )
    )
    return decision


def approve(
    request_id: IdArg,
    reason: ReasonOpt = "",
    spool: SpoolOpt = None,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="DURATION",
            help="Also grant the same rule and target to this agent for a while (15m, 2h).",
        ),
    ] = None,
) -> None:
    """Approve a held call: sign a decision with this home's approver key.

    The held command runs only if the request in the spool is exactly the call the shim holds.
    With --for, the agent's next calls under the same rule and target run without a hold for
    that long (a signed grant; see shield grant).

    Example: shield approve k7m2pq --reason "planned maintenance" --for 15m
    """
    span = grant_cmd.span_seconds(for_) if for_ else None
    decision = decide(request_id, "approve", reason, spool)
    if span is None:
        return
    home = home_dir()
    _, data = spool_mod.lookup(spool_dir(home, flag=spool), decision["id"])
    if data is None:
        raise SpoolError(
            f"request {decision['id']} is gone from the spool; approved once, no grant"
        )
    req = request_from_dict(data)
    if req.rule is None:
        raise SpoolError("no rule matched this call, so there is no rule to grant; approved once")
    target = {k: v for k, v in req.context.items() if k in statement.TARGET_KEYS}
    st = grant_cmd.issue(
        home,
        spool_dir(home, flag=spool),
        target,
        span,
        agent=req.agent,
        tool=req.tool,
        rules=[req.rule],
        verbs=[],
        argv=[],
        reason=reason or f"granted while approving {req.id}",
        max_uses=None,
    )
    Console(highlight=False).print(Text(grant_cmd.describe(st)))


def deny(request_id: IdArg, reason: ReasonOpt = "", spool: SpoolOpt = None) -> None:
    """Deny a held call (the agent gets exit code 126 and your reason).

    Example: shield deny k7m2pq --reason "use the staging cluster"
    """
    decide(request_id, "deny", reason, spool)


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("deny")(deny)
