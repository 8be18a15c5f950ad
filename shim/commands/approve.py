"""`shield approve` and `shield deny`: sign decisions on held calls (cold: typer and rich).

One id, several, or `--all` with the filters of `shield pending` for a burst. Every request is
checked before anything is signed (shim.approval.review): nothing read from the spool or the
server is trusted, and each request is read once. On a terminal, `approve` shows what it is
about to sign and asks first; a critical request needs that confirmation (or --yes) and, by
default, a --reason.

Expected failures raise ShieldError subclasses; `shim.cli.main` turns them into one line on
stderr and exit code 1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from shim.approval import grant as statement
from shim.approval import review
from shim.approval.decision import VERDICTS, sign_decision
from shim.approval.inbox import Inbox
from shim.approval.request import HeldRequest, is_request_id, to_dict
from shim.approval.show import printable
from shim.clock import parse_iso
from shim.commands import grant as grant_cmd
from shim.commands.common import SpoolOpt
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox
from shim.commands.panel import summary_block, untrusted_warning
from shim.commands.pending import AgentOpt, RiskOpt, ToolOpt
from shim.commands.queue import Filters, ordered, risk_of
from shim.commands.show_cmd import own_fingerprint
from shim.errors import ShieldError, SpoolError, UsageError
from shim.home import home_dir, load_config
from shim.preview.risk import LEVELS, RANK

DEFAULT_REASON_AT = "critical"

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; recorded in the log.")]
DigestOpt = Annotated[
    str | None,
    typer.Option(
        "--digest",
        metavar="PREFIX",
        help="The digest you reviewed (from shield show); refuse if the request changed.",
    ),
]
IdsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="ID...", help="Request ids from `shield pending`.", show_default=False),
]
AllOpt = Annotated[
    bool,
    typer.Option("--all", help="Every held request that matches --agent, --tool and --risk."),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (critical included).")
]


@dataclass
class Batch:
    """The requests to decide, checked; and those left out of an --all (with why)."""

    requests: list[HeldRequest] = field(default_factory=list)
    notes: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def reason_required_at(home: str) -> str | None:
    """From which risk level an approval needs --reason: the approver home's config.json
    `reason_required_at` (a level, or "never"); critical by default."""
    value = load_config(home).get("reason_required_at", DEFAULT_REASON_AT)
    if value in (None, "never", "none"):
        return None
    if value not in RANK:
        raise ShieldError(
            f"{home}/config.json: reason_required_at is {printable(str(value))!r}, not one of "
            f"{', '.join(LEVELS)} or never"
        )
    return str(value)


def select(
    box: Inbox,
    ids: list[str],
    all_: bool,
    filters: Filters,
    verdict: str,
    reason: str,
    pin: str | None,
) -> Batch:
    """The requests named (every one must pass its checks, or nothing is signed), or with
    --all those of the queue that match the filters (one that fails its checks, such as a
    request edited in the spool, is left out and named)."""
    now = time.time()
    batch = Batch()
    if all_:
        items, batch.notes = box.listing()
        chosen = ordered([i for i in items if filters.matches(i)])
        if not chosen:
            what = f" match {filters.describe()}" if filters.given else ""
            raise SpoolError(f"no held requests{what} in {box.where}; nothing was signed")
        for item in chosen:
            rid = str(item["id"])
            if item.get("status") == "modified":
                batch.skipped.append(f"{rid}: edited after it was held; not signed")
                continue
            try:
                batch.requests.append(
                    review.checked_request(
                        rid,
                        "pending",
                        item,
                        verdict=verdict,
                        reason=reason,
                        pin=None,
                        now=now,
                        where=box.where,
                    )
                )
            except SpoolError as exc:
                batch.skipped.append(f"{rid}: {exc.message}")
        return batch
    for text in dict.fromkeys(i.strip().lower() for i in ids):
        rid = text
        if not is_request_id(rid):
            raise SpoolError(f"{printable(text)!r} is not a request id (see: shield pending)")
        status, data = box.lookup(rid)
        req = review.checked_request(
            rid, status, data, verdict=verdict, reason=reason, pin=pin, now=now, where=box.where
        )
        batch.requests.append(req)
    return batch


def check_reason(batch: Batch, reason: str, threshold: str | None) -> None:
    """Refuse, with nothing signed, to approve a request at or above `threshold` without a
    reason."""
    if reason.strip() or threshold is None:
        return
    for req in batch.requests:
        risk = risk_of(req.extra)
        if risk in RANK and RANK[risk] >= RANK[threshold]:
            raise SpoolError(
                f"request {req.id} is {risk}: approving it needs --reason (from risk "
                f"{threshold} on: reason_required_at in the approver home's config.json); "
                "nothing was signed",
                f'shield approve {req.id} --reason "why this is safe now"',
            )


def confirm(batch: Batch, yes: bool, own_key: str | None) -> None:
    """On a terminal, show each request and ask before signing; elsewhere, refuse a critical
    request unless --yes. Raises SpoolError (nothing signed) when not confirmed."""
    critical = [r.id for r in batch.requests if risk_of(r.extra) == "critical"]
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if critical:
            raise SpoolError(
                f"request {critical[0]} is critical: approve it on a terminal (it asks first) "
                "or with --yes; nothing was signed"
            )
        return
    console = Console(highlight=False)
    now = time.time()
    for req in batch.requests:
        for line in summary_block(req, now, batch.notes.get(req.id, []), own_key):
            console.print(line, soft_wrap=True)
    n = len(batch.requests)
    what = f"{n} request{'s' if n != 1 else ''}"
    if critical:
        what += f" ({len(critical)} critical)"
    try:
        answer = input(f"Approve {what}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise SpoolError("not confirmed; nothing was signed")


def sign_all(
    box: Inbox, batch: Batch, verdict: str, reason: str, pinned: bool
) -> list[dict[str, Any]]:
    """Sign and deliver each decision; print what was signed (risk first)."""
    home = home_dir()
    console = Console(highlight=False)
    done: list[dict[str, Any]] = []
    for req in batch.requests:
        decision = sign_decision(home, to_dict(req), verdict, reason)
        try:
            box.deliver(decision)
        except ShieldError as exc:
            signed = ", ".join(d["id"] for d in done) or "none"
            raise SpoolError(
                f"{exc.message} (delivering request {req.id}; delivered before it: {signed})",
                exc.hint,
            ) from exc
        done.append(decision)
        for i, line in enumerate(review.signed_lines(VERDICTS[verdict], req, decision, pinned)):
            console.print(Text(line, style="dim" if i == 2 else ""), soft_wrap=True)
    return done


def decide(
    ids: list[str],
    verdict: str,
    reason: str,
    *,
    all_: bool = False,
    filters: Filters | None = None,
    yes: bool = False,
    spool: str | None = None,
    digest: str | None = None,
    server: str | None = None,
    token_file: str | None = None,
    cacert: str | None = None,
) -> list[HeldRequest]:
    """Check, confirm, sign and deliver `verdict` on the requests named (or --all); the
    requests signed."""
    filters = filters or Filters()
    if all_ and ids:
        raise UsageError("give request ids or --all, not both")
    if not all_ and filters.given:
        raise UsageError("--agent, --tool and --risk choose requests for --all")
    if not all_ and not ids:
        raise UsageError("name the requests (shield pending shows their ids), or use --all")
    if digest is not None and (all_ or len(ids) != 1):
        raise UsageError("--digest pins one request: give exactly one id with it")
    pin = review.parse_pin(digest)
    box = inbox(spool, server, token_file, cacert)
    batch = select(box, ids, all_, filters, verdict, reason, pin)
    for line in batch.skipped:
        sys.stderr.write(f"shield: skipped {line}\n")
    if not batch.requests:
        raise SpoolError("nothing was signed")
    own_key = own_fingerprint(home_dir())
    if verdict == "approve":
        check_reason(batch, reason, reason_required_at(home_dir()))
        confirm(batch, yes, own_key)
        late = [r for r in batch.requests if parse_iso(r.expires) <= time.time()]
        for req in late:  # expired while the question was on the screen
            batch.skipped.append(f"{req.id}: expired at {req.expires}; not signed")
            sys.stderr.write(f"shield: skipped {batch.skipped[-1]}\n")
        batch.requests = [r for r in batch.requests if r not in late]
    sign_all(box, batch, verdict, reason, pin is not None)
    warned = [r for r in batch.requests if untrusted_warning(r, own_key)]
    if warned:
        first = untrusted_warning(warned[0], own_key)
        raise SpoolError(
            f"signed, but {first}" + (f" ({len(warned)} requests)" if len(warned) > 1 else ""),
            "check the agent's trust store: shield trust list (on its side)",
        )
    if batch.skipped:
        raise SpoolError(f"{len(batch.skipped)} of the requests chosen were not signed (above)")
    return batch.requests


def approve(
    request_ids: IdsArg = None,
    reason: ReasonOpt = "",
    all_: AllOpt = False,
    agent: AgentOpt = None,
    tool: ToolOpt = None,
    risk: RiskOpt = None,
    yes: YesOpt = False,
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
    """Approve held calls: sign a decision on each with this home's approver key.

    Nothing is signed unless every request named is the one in the spool under that id (and,
    with --digest, the one you reviewed); the held command runs only if it is exactly the call
    the shim holds. On a terminal, approve shows each request (command, target, risk, preview)
    and asks first (--yes skips that); a critical request is never approved without that
    confirmation or --yes, and needs --reason (from which risk on: reason_required_at in the
    approver home's config.json). The result repeats id, risk, command, target and digest.
    --all signs every held request that matches --agent, --tool and --risk. With --for, the
    agent's next calls under the same rule and target run without a hold for that long (a
    signed grant; see shield grant). With --server URL --token-file F (or SHIELD_SERVER and
    SHIELD_TOKEN_FILE), requests come from the approval server and decisions go back to it.

    Example: shield approve --all --tool aws --reason "cleanup of the test buckets"
    """
    span = grant_cmd.span_seconds(for_) if for_ else None
    ids = list(request_ids or ())
    if span is not None and (all_ or len(ids) != 1):
        raise UsageError("--for grants the rule of one request: give exactly one id with it")
    filters = Filters.parse(agent, tool, risk)
    signed = decide(
        ids,
        "approve",
        reason,
        all_=all_,
        filters=filters,
        yes=yes,
        spool=spool,
        digest=digest,
        server=server,
        token_file=token_file,
        cacert=cacert,
    )
    if span is not None:
        grant_for(signed[0], span, reason, inbox(spool, server, token_file, cacert))


def grant_for(req: HeldRequest, span: int, reason: str, box: Inbox) -> None:
    """`approve --for`: the grant names the request just signed, never a second read of the
    spool (which the agent could have rewritten in between)."""
    if req.rule is None:
        raise SpoolError("no rule matched this call, so there is no rule to grant; approved once")
    home = home_dir()
    target = {k: v for k, v in req.context.items() if k in statement.TARGET_KEYS}
    st = grant_cmd.issue(
        home,
        box,
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
    request_ids: IdsArg = None,
    reason: ReasonOpt = "",
    all_: AllOpt = False,
    agent: AgentOpt = None,
    tool: ToolOpt = None,
    risk: RiskOpt = None,
    spool: SpoolOpt = None,
    digest: DigestOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """Deny held calls (each agent gets exit code 126 and your reason). --all denies every
    held request that matches --agent, --tool and --risk.

    Example: shield deny --all --agent deploy-bot --reason "stop: the deploy is frozen"
    """
    decide(
        list(request_ids or ()),
        "deny",
        reason,
        all_=all_,
        filters=Filters.parse(agent, tool, risk),
        spool=spool,
        digest=digest,
        server=server,
        token_file=token_file,
        cacert=cacert,
    )


def register(app: typer.Typer) -> None:
    app.command("approve")(approve)
    app.command("deny")(deny)
