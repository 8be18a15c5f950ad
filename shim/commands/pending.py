"""`shield pending`: the approver's queue of held calls (cold: typer and rich).

One line per request (shim.commands.queue), critical first, cut to the terminal's width and
never wrapped; `--watch` redraws it in place. `--json` prints the requests as the contract
says (a JSON array, oldest first).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import deque
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from shim.approval.inbox import Inbox, Notes
from shim.approval.show import command_line, printable
from shim.clock import parse_iso
from shim.commands.common import SpoolOpt, existing_spool
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox
from shim.commands.panel import RISK_STYLE
from shim.commands.queue import Filters, Screen, queue_screen, risk_of, row
from shim.commands.table import cut

WATCH_INTERVAL_S = 0.25
REDRAW_S = 1.0  # ages and expiries tick: redraw at least this often
RECENT = 6  # departures kept at the bottom of the --watch screen

AgentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--agent", metavar="NAME", help="Only this agent's requests (a glob; repeatable)."
    ),
]
ToolOpt = Annotated[
    list[str] | None,
    typer.Option("--tool", metavar="TOOL", help="Only calls of this tool (repeatable)."),
]
RiskOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--risk",
        metavar="LEVEL",
        help="Only this risk: low, medium, high, critical, or LEVEL+ for it and above.",
    ),
]


def terminal_width() -> int:
    """COLUMNS, else the terminal's width, else 80 (output to a pipe or a file)."""
    return shutil.get_terminal_size((80, 24)).columns


def styled(screen: Screen) -> list[Text]:
    """The screen's lines as rich text: the header bold, each risk cell in its colour, the
    notes in red. Styles only: the characters are the plain lines'."""
    out = []
    for i, line in enumerate(screen.lines):
        text = Text(line)
        if screen.rows and i == 0:
            text.stylize("bold")
        elif 1 <= i <= len(screen.rows) and screen.risk_at is not None:
            start, width = screen.risk_at
            style = RISK_STYLE.get(risk_of(screen.rows[i - 1]), "")
            if style:
                text.stylize(style, start, start + width)
        elif line.startswith("! "):
            text.stylize("red")
        out.append(text)
    return out


def print_screen(console: Console, screen: Screen) -> None:
    if console.is_terminal:
        for text in styled(screen):
            console.print(text, soft_wrap=True)
    else:
        sys.stdout.write("".join(line + "\n" for line in screen.lines))


def departure(box: Inbox, item: dict[str, Any], now: float) -> str:
    """Why a request left the queue: expired by the clock, else how its hold ended (the
    agent's side's word), else gone."""
    what = f"{item['id']} ({printable(str(item.get('agent', '')))}: "
    what += command_line([str(item.get("tool", "")), *map(str, item.get("argv") or ())]) + ")"
    if parse_iso(str(item["expires"])) <= now:
        return f"expired without a decision: {what}"
    try:
        status, _ = box.lookup(str(item["id"]))
    except Exception:  # noqa: BLE001 - a listing that worked a moment ago; say "gone"
        status = "unknown"
    if status in ("approved", "denied", "cancelled", "expired"):
        return f"{status}: {what}"
    return f"gone: {what}"


class Watch:
    """`pending --watch`: the queue redrawn in place on a terminal (requests decided or
    expired leave it, and each departure is announced below it); on a pipe, one line per
    arrival and departure; with --json, each new request as a JSON line."""

    def __init__(self, box: Inbox, filters: Filters, as_json: bool, console: Console) -> None:
        self.box = box
        self.filters = filters
        self.as_json = as_json
        self.console = console
        self.shown: dict[str, dict[str, Any]] = {}
        self.recent: deque[str] = deque(maxlen=RECENT)
        self.drawn = 0.0
        self.size = (0, 0)

    def tick(self, now: float) -> tuple[list[dict[str, Any]], Notes, list[dict], list[str]]:
        """One look at the inbox: (matching requests, notes, new ones, departures)."""
        items, notes = self.box.listing()
        current = {str(i["id"]): i for i in items if self.filters.matches(i)}
        new = [i for rid, i in current.items() if rid not in self.shown]
        gone = [departure(self.box, i, now) for rid, i in self.shown.items() if rid not in current]
        self.shown = current
        return list(current.values()), notes, new, gone

    def run(self) -> None:
        try:
            while True:
                now = time.time()
                items, notes, new, gone = self.tick(now)
                stamp = time.strftime("%H:%M:%S", time.localtime(now))
                if self.as_json:
                    for item in new:
                        sys.stdout.write(json.dumps(item) + "\n")
                elif self.console.is_terminal:
                    self.recent.extend(f"{stamp}  {text}" for text in gone)
                    if new or gone or now - self.drawn >= REDRAW_S:
                        self.draw(items, notes, now)
                else:
                    self.stream(new, gone, stamp, now)
                if new and not self.as_json:
                    sys.stdout.write("\a")
                sys.stdout.flush()
                time.sleep(WATCH_INTERVAL_S)
        except KeyboardInterrupt:
            return

    def stream(self, new: list[dict], gone: list[str], stamp: str, now: float) -> None:
        width = terminal_width()
        for item in new:
            cells = row(item, now)
            line = f"{stamp}  held  {cells[0]}  {cells[1]}  {cells[4]}  {cells[5]} {cells[6]}"
            sys.stdout.write(cut(line, width) + "\n")
        for text in gone:
            sys.stdout.write(cut(f"{stamp}  {text}", width) + "\n")

    def draw(self, items: list[dict], notes: Notes, now: float) -> None:
        """Redraw in place: home, each line cleared to its end, the rest of the screen
        cleared; a full clear only when the terminal changed size."""
        size = shutil.get_terminal_size((80, 24))
        width, height = size.columns, size.lines
        if (width, height) != self.size:
            sys.stdout.write("\x1b[2J")
            self.size = (width, height)
        sys.stdout.write("\x1b[H")
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        title = cut(f"held requests in {self.box.where} at {stamp} (Ctrl-C to stop)", width)
        screen = queue_screen(items, notes, now, width, self.filters)
        room = max(3, height - 3 - (len(self.recent) + 1 if self.recent else 0))
        if len(screen.lines) > room:
            hidden = len(screen.lines) - room + 1
            keep = screen.lines[: room - 1] + [f"... {hidden} more lines (make the window taller)"]
            screen = Screen(keep, screen.rows[: max(0, room - 2)], screen.risk_at)
        lines = [Text(title, style="dim"), *styled(screen)]
        if self.recent:
            lines += [Text(""), *(Text(cut(r, width), style="dim") for r in self.recent)]
        for text in lines:
            self.console.print(text, soft_wrap=True, end="")
            sys.stdout.flush()
            sys.stdout.write("\x1b[K\n")
        sys.stdout.write("\x1b[J")
        self.drawn = now


def pending(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON array of the held requests, oldest first."),
    ] = False,
    watch_: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep watching: redraw in place, ring the bell on each new request."
        ),
    ] = False,
    agent: AgentOpt = None,
    tool: ToolOpt = None,
    risk: RiskOpt = None,
    spool: SpoolOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """List the calls held for a human decision: one line each, critical first, then oldest.

    Columns: id, risk, age, expires (in), agent, tool, command (cut with an ellipsis, never
    wrapped), and the preview's summary where the terminal is wide enough. A line per request
    that needs a second look follows the count: a failed preview, a decision the agent's shim
    refused, a request edited after it was held. `shield show ID` prints one request in full.

    With --server URL --token-file F (or SHIELD_SERVER and SHIELD_TOKEN_FILE), the requests
    held on an approval server (shield serve) instead of the spool.

    Example: shield pending --tool aws --risk high+
    """
    filters = Filters.parse(agent, tool, risk)
    if spool:
        existing_spool(spool)  # a --spool that names no directory: one line, exit 1
    box = inbox(spool, server, token_file, cacert)
    console = Console(highlight=False)
    if watch_:
        Watch(box, filters, as_json, console).run()
        return
    if as_json:
        items = [i for i in box.pending() if filters.matches(i)]
        typer.echo(json.dumps(items, indent=2))
        return
    items, notes = box.listing()
    print_screen(console, queue_screen(items, notes, time.time(), terminal_width(), filters))


def register(app: typer.Typer) -> None:
    app.command("pending")(pending)
