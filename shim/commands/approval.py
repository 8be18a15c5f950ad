"""`shield pending`, `approve`, `deny`, `approver init` and `trust add` (cold: typer and rich).

`register(app)` adds them to the `shield` app. Expected failures raise ShieldError subclasses;
`shim.cli.main` turns them into one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shim import hold, keys
from shim.errors import ShieldError, SpoolError
from shim.home import home_dir, spool_dir
from shim.prompt import command_line, context_line, duration, extra_lines, printable

SpoolOpt = Annotated[
    str | None,
    typer.Option(
        "--spool",
        metavar="DIR",
        help="Where held requests and decisions meet (default: SHIELD_SPOOL, else <home>/state/spool).",
    ),
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why; recorded in the log.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The request id from `shield pending`.")]

WATCH_INTERVAL_S = 0.25

approver_app = typer.Typer(help="The approver's signing key.", no_args_is_help=True)
trust_app = typer.Typer(help="The approver keys this home accepts.", no_args_is_help=True)


# --- shield pending --------------------------------------------------------------------------


def request_panel(item: dict[str, Any], now: float) -> Panel:
    """One held request as a rich panel. Agent-controlled text is never parsed as markup."""
    req = hold.request_from_dict(item)
    created, expires = hold.parse_iso(req.created), hold.parse_iso(req.expires)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rule = printable(req.rule) if req.rule else "(no rule matched)"
    rows = [
        ("command", Text(command_line([req.tool, *req.argv]), style="bold")),
        ("why", Text(f"{printable(req.reason)}  [{rule}]")),
        ("context", Text(context_line(req.context))),
        ("agent", Text(printable(req.agent))),
        ("cwd", Text(printable(req.cwd))),
        (
            "held",
            Text(f"{duration(now - created)} ago, expires in {duration(expires - now)}"),
        ),
    ]
    risk_style = {
        "low": "green",
        "medium": "yellow",
        "high": "bold red",
        "critical": "bold white on red",
    }
    rows += [
        (label, Text(text, style=risk_style.get(text, "") if label == "risk" else ""))
        for label, text in extra_lines(req.extra)
    ]
    for label, value in rows:
        grid.add_row(label, value)
    hint = Text(f"shield approve {req.id}    shield deny {req.id} --reason ...", style="dim")
    return Panel(
        Group(grid, Text(""), hint),
        title=Text(f"held request {req.id}", style="bold yellow"),
        title_align="left",
        expand=False,
    )


def watch(spool: str, as_json: bool, console: Console) -> None:
    """Show requests as they arrive; ring the bell on each new one. Ctrl-C stops."""
    seen: set[str] = set()
    shown: set[str] | None = None
    last = 0.0
    try:
        while True:
            now = time.time()
            items = hold.list_pending(spool, now)
            ids = {item["id"] for item in items}
            new = [item for item in items if item["id"] not in seen]
            if as_json:
                for item in new:
                    sys.stdout.write(json.dumps(item) + "\n")
            elif console.is_terminal:
                if ids != shown or now - last > 5:
                    console.clear()
                    console.print(Text(f"held requests in {spool} (Ctrl-C to stop)", style="dim"))
                    for item in items:
                        console.print(request_panel(item, now))
                    shown, last = ids, now
            else:
                for item in new:
                    console.print(request_panel(item, now))
            if new and not as_json:
                sys.stdout.write("\a")
            sys.stdout.flush()
            seen |= ids
            time.sleep(WATCH_INTERVAL_S)
    except KeyboardInterrupt:
        return


def pending(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    watch_: Annotated[
        bool, typer.Option("--watch", help="Keep watching; ring the bell on each new request.")
    ] = False,
    spool: SpoolOpt = None,
) -> None:
    """List the calls held for a human decision (the command, why, the target, the agent, age).

    Example: shield pending --watch
    """
    where = spool_dir(home_dir(), flag=spool)
    console = Console(highlight=False)
    if watch_:
        watch(where, as_json, console)
        return
    items = hold.list_pending(where)
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print(Text(f"no held requests in {where}"))
        return
    now = time.time()
    for item in items:
        console.print(request_panel(item, now))


# --- shield approve / deny -------------------------------------------------------------------


def decide(request_id: str, verdict: str, reason: str, spool: str | None) -> dict[str, Any]:
    """Sign `verdict` on a pending request and drop it into the spool; return the decision."""
    home = home_dir()
    where = spool_dir(home, flag=spool)
    rid = request_id.strip().lower()
    if not hold.is_request_id(rid):
        raise SpoolError(f"{printable(request_id)!r} is not a request id (see: shield pending)")
    status, data = hold.lookup(where, rid)
    if data is None:
        raise SpoolError(f"no pending request {rid} in {where} (see: shield pending)")
    if status == "cancelled":
        raise SpoolError(f"request {rid} was cancelled by the agent; nothing was signed")
    if status == "expired":
        raise SpoolError(f"request {rid} expired; nothing was signed")
    if status != "pending":
        raise SpoolError(f"request {rid} is already {printable(status)}; nothing was signed")
    req = hold.request_from_dict(data)
    if data.get("digest") != req.digest:
        raise SpoolError(
            f"request {rid} was modified in the spool after it was held (its content does not "
            "match its digest); nothing was signed"
        )
    if hold.parse_iso(req.expires) <= time.time():
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
    decision = hold.sign_decision(home, data, verdict, reason)
    hold.write_decision(where, decision)
    done = hold.VERDICTS[verdict]
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


def approve(request_id: IdArg, reason: ReasonOpt = "", spool: SpoolOpt = None) -> None:
    """Approve a held call: sign a decision with this home's approver key.

    The held command runs only if the request in the spool is exactly the call the shim holds.

    Example: shield approve k7m2pq --reason "planned maintenance"
    """
    decide(request_id, "approve", reason, spool)


def deny(request_id: IdArg, reason: ReasonOpt = "", spool: SpoolOpt = None) -> None:
    """Deny a held call (the agent gets exit code 126 and your reason).

    Example: shield deny k7m2pq --reason "use the staging cluster"
    """
    decide(request_id, "deny", reason, spool)


# --- shield approver init / trust add ---------------------------------------------------------


@approver_app.command("init")
def approver_init(
    name: Annotated[str, typer.Option("--name", help="Your name, as the log shows it.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create this home's approver key (Ed25519, private key 0600) and print the public key.

    The key is trusted nowhere until an agent's home runs `shield trust add` with it.

    Example: SHIELD_HOME=~/.shield-approver shield approver init --name alice
    """
    home = home_dir()
    path = keys.init_approver(home, name, force=force)
    pub = keys.load_public_key(path)
    typer.echo(f"approver key for {pub.name} created (fingerprint {pub.fingerprint})")
    typer.echo(f"public key: {path}")
    typer.echo("on each agent side, with that side's SHIELD_HOME, run:")
    typer.echo(f"  shield trust add {path}")


@trust_app.command("add")
def trust_add(
    pubkey_file: Annotated[str, typer.Argument(metavar="PUBKEY_FILE")],
) -> None:
    """Accept decisions signed by this approver public key in this home.

    Example: SHIELD_HOME=/opt/shield/home shield trust add alice.pub
    """
    home = home_dir()
    pub = keys.load_public_key(pubkey_file)
    try:
        own = keys.approver_identity(home)
    except ShieldError:
        own = None
    dest = keys.add_trusted(home, pubkey_file)
    typer.echo(f"trusted {pub.name} (fingerprint {pub.fingerprint}): {dest}")
    if own is not None and own.raw == pub.raw:
        typer.echo(
            "warning: this is this home's own approver key: whoever uses this home (the agent?) "
            "can now approve its own requests",
            err=True,
        )


def register(app: typer.Typer) -> None:
    """Add the approval commands to the `shield` app."""
    app.command("pending")(pending)
    app.command("approve")(approve)
    app.command("deny")(deny)
    app.add_typer(approver_app, name="approver")
    app.add_typer(trust_app, name="trust")
