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
from shim.approval import review
from shim.approval.decision import VERDICTS, sign_decision
from shim.approval.request import HeldRequest, is_request_id, to_dict
from shim.approval.show import printable
from shim.commands import grant as grant_cmd
from shim.commands.common import SpoolOpt
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox
from shim.errors import SpoolError
from shim.home import home_dir

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; recorded in the log.")]
DigestOpt = Annotated[
    str | None,
    typer.Option(
        "--digest",
        metavar="PREFIX",
        help="The digest you reviewed (from shield pending); refuse if the request changed.",
    ),
]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The request id from `shield pending`.")]


def decide(
    request_id: str,
    verdict: str,
    reason: str,
    spool: str | None,
    digest: str | None = None,
    server: str | None = None,
    token_file: str | None = None,
    cacert: str | None = None,
) -> tuple[dict[str, Any], HeldRequest]:
    """Sign `verdict` on a pending request and leave it in the spool or on the approval server
    (shim.approval.inbox); return the decision and the request it signed. What is signed is
    checked first (shim.approval.review): nothing read from either is trusted, and the request
    is read once."""
    home = home_dir()
    box = inbox(spool, server, token_file, cacert)
    where = box.where
    rid = request_id.strip().lower()
    if not is_request_id(rid):
        raise SpoolError(f"{printable(request_id)!r} is not a request id (see: shield pending)")
    pin = review.parse_pin(digest)
    status, data = box.lookup(rid)
    if data is None:
        raise SpoolError(f"no pending request {rid} in {where} (see: shield pending)")
    req = review.checked_request(
        rid, status, data, verdict=verdict, reason=reason, pin=pin, now=time.time()
    )
    decision = sign_decision(home, to_dict(req), verdict, reason)
    box.deliver(decision)
    console = Console(highlight=False)
    for i, line in enumerate(
        review.signed_lines(VERDICTS[verdict], req, decision, pin is not None)
    ):
        console.print(Text(line, style="dim" if i == 2 else ""))
    return decision, req


def approve(
    request_id: IdArg,
    reason: ReasonOpt = "",
    spool: SpoolOpt = None,
    digest: DigestOpt = None,
    for_: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="DURATION",
            help="Also grant the same rule and target to this agent for a while (15m, 2h).",
        ),
    ] = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """Approve a held call: sign a decision with this home's approver key.

    Nothing is signed unless the request in the spool is the one you named (and, with
    --digest, the one you reviewed); the held command runs only if it is exactly the call the
    shim holds. The confirmation repeats id, command, target and digest. With --for, the
    agent's next calls under the same rule and target run without a hold for that long (a
    signed grant; see shield grant). With --server URL --token-file F (or SHIELD_SERVER and
    SHIELD_TOKEN_FILE), the request comes from the approval server and the decision goes back
    through it.

    Example: shield approve k7m2pq --digest 3f2a9c1b7d4e --reason "planned maintenance"
    """
    span = grant_cmd.span_seconds(for_) if for_ else None
    _, req = decide(request_id, "approve", reason, spool, digest, server, token_file, cacert)
    if span is None:
        return
    # the grant names the request just signed, never a second read of the spool (which the
    # agent could have rewritten in between)
    if req.rule is None:
        raise SpoolError("no rule matched this call, so there is no rule to grant; approved once")
    home = home_dir()
    target = {k: v for k, v in req.context.items() if k in statement.TARGET_KEYS}
    st = grant_cmd.issue(
        home,
        inbox(spool, server, token_file, cacert),
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


def deny(
    request_id: IdArg,
    reason: ReasonOpt = "",
    spool: SpoolOpt = None,
    digest: DigestOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """Deny a held call (the agent gets exit code 126 and your reason).

    Example: shield deny k7m2pq --reason "use the staging cluster"
    """
    decide(request_id, "deny", reason, spool, digest, server, token_file, cacert)


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("deny")(deny)
