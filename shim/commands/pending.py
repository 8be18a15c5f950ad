"""`shield pending`: the calls held for a human decision (cold: typer and rich)."""

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

from shim.approval.inbox import Inbox
from shim.approval.request import request_from_dict
from shim.approval.review import short_digest
from shim.approval.show import command_line, context_line, duration, extra_lines, printable
from shim.clock import parse_iso
from shim.commands.common import SpoolOpt, existing_spool
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox

WATCH_INTERVAL_S = 0.25
MODIFIED = (
    "this file was edited after the call was held (its digest field does not match its "
    "content); approve refuses it"
)


def request_panel(item: dict[str, Any], now: float) -> Panel:
    """One held request as a rich panel. Agent-controlled text is never parsed as markup."""
    req = request_from_dict(item)
    created, expires = parse_iso(req.created), parse_iso(req.expires)
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
        ("digest", Text(short_digest(req.digest))),
    ]
    if item.get("status") == "modified":
        rows.append(("WARNING", Text(MODIFIED, style="bold red")))
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
    pin = short_digest(req.digest)
    hint = Text(
        f"shield approve {req.id} --digest {pin}    shield deny {req.id} --reason ...",
        style="dim",
    )
    return Panel(
        Group(grid, Text(""), hint),
        title=Text(f"held request {req.id}", style="bold yellow"),
        title_align="left",
        expand=False,
    )


def watch(box: Inbox, as_json: bool, console: Console) -> None:
    """Show requests as they arrive; ring the bell on each new one. Ctrl-C stops."""
    seen: set[str] = set()
    shown: set[str] | None = None
    last = 0.0
    try:
        while True:
            now = time.time()
            items = box.pending()
            ids = {item["id"] for item in items}
            new = [item for item in items if item["id"] not in seen]
            if as_json:
                for item in new:
                    sys.stdout.write(json.dumps(item) + "\n")
            elif console.is_terminal:
                if ids != shown or now - last > 5:
                    console.clear()
                    console.print(
                        Text(f"held requests in {box.where} (Ctrl-C to stop)", style="dim")
                    )
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
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """List the calls held for a human decision (the command, why, the target, the agent, age,
    and the digest to pin with `shield approve ID --digest PREFIX`).

    With --server URL --token-file F (or SHIELD_SERVER and SHIELD_TOKEN_FILE), the requests
    held on an approval server (shield serve) instead of the spool.

    Example: shield pending --watch
    """
    if spool:
        existing_spool(spool)  # a --spool that names no directory: one line, exit 1
    box = inbox(spool, server, token_file, cacert)
    console = Console(highlight=False)
    if watch_:
        watch(box, as_json, console)
        return
    items = box.pending()
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print(Text(f"no held requests in {box.where}"))
        return
    now = time.time()
    for item in items:
        console.print(request_panel(item, now))


def register(app: typer.Typer) -> None:
    app.command("pending")(pending)
