"""`shield log`: review the log, verify it, sign checkpoints, import anchors (cold).

Mounted by the CLI as `shield log`. The library work lives in `shim.log`; this module only
parses options, picks the home's files and prints.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from shim.clock import parse_duration
from shim.commands import logview as view
from shim.commands.table import format_row, layout, render
from shim.errors import LogDamage, LogError
from shim.home import home_dir, log_path
from shim.keys import approver_trusted
from shim.log import anchors
from shim.log import verify as verify_mod

app = typer.Typer(
    name="log",
    add_completion=False,
    no_args_is_help=False,
)
anchor_app = typer.Typer(
    name="anchor",
    help="The log's first key (K0), which only the approver keeps.\n\n"
    "Example: shield log anchor import /opt/shield/home/log/anchor.json",
    add_completion=False,
    no_args_is_help=True,
)
app.add_typer(anchor_app, name="anchor")

PathOpt = Annotated[
    str | None,
    typer.Option(
        "--path", help="The log file (default: the home's log/shield.log).", show_default=False
    ),
]

TONE_STYLE = {
    "allow": "",
    "ask": "yellow",
    "deny": "red",
    "done": "green",
    "alert": "bold magenta",
}


def _path(path: str | None) -> str:
    return os.path.abspath(path) if path else log_path(home_dir())


def parse_since(text: str, now: float | None = None) -> str:
    """`--since` as the log's time format: a duration back from now (`90s`, `10m`, `2h`, `1d`,
    `1w`) or an ISO-8601 time (no zone means UTC)."""
    try:
        secs: int | None = parse_duration(text)
    except ValueError:
        secs = None
    if secs is not None:
        then = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        when = then - timedelta(seconds=secs)
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is neither a duration (10m, 2h, 1d) nor an ISO time "
                "(2024-05-01T12:00:00Z)",
                param_hint="--since",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_events(values: list[str] | None) -> list[str]:
    """`--event held --event denied` or `--event held,denied`."""
    return [k.strip() for v in values or () for k in v.split(",") if k.strip()]


def check_events(kinds: list[str], seen: Iterable[str]) -> None:
    """A usage error for an `--event` kind that is neither one shield writes nor one in the
    log (`seen`: a newer shim's)."""
    unknown = [k for k in kinds if k not in view.EVENTS and k not in set(seen)]
    if unknown:
        raise typer.BadParameter(
            f"unknown event {unknown[0]!r}; use one of {', '.join(view.EVENTS)}",
            param_hint="--event",
        )


# an approver's home has no log of its own: the agent's is in the agent's home
NO_LOG_HINT = "pass --path (an agent's log: <its home>/log/shield.log), or check SHIELD_HOME"


class Selection:
    """The entries `shield log` shows, in one pass over the file (only these are kept in
    memory, unless --by-request must see every entry to show a held call whole)."""

    def __init__(self, file: str, keep: Callable[[dict[str, Any]], bool], by_request: bool):
        self.entries: list[dict[str, Any]] = []
        self.total = 0
        self.kinds: set[str] = set()
        self.last: dict[str, Any] | None = None
        everything: list[dict[str, Any]] = []
        for e in verify_mod.read_entries(file):
            self.total += 1
            self.kinds.add(str(e.get("event")))
            self.last = e
            if by_request:
                everything.append(e)
            elif keep(e):
                self.entries.append(e)
        if by_request:
            groups = [g for g in view.fold(everything) if any(keep(e) for e in g)]
            self.entries = [e for g in groups for e in g]


def today_utc(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m-%d")


def table_rows(
    entries: list[dict[str, Any]], by_request: bool = False, today: str | None = None
) -> list[view.Row]:
    """The table's rows: one per entry, or one per held request with `by_request`."""
    today = today or today_utc()
    if by_request:
        return [view.folded_row(g, today) for g in view.fold(entries)]
    return [view.row(e, today) for e in entries]


def table_lines(rows: list[view.Row], width: int, by_request: bool = False) -> list[str]:
    """The header and one line per row, each at most `width` terminal cells."""
    columns = view.FOLDED_COLUMNS if by_request else view.COLUMNS
    return render(columns, [r.cells for r in rows], width)


def terminal_width() -> int:
    """COLUMNS, else the terminal's width, else 80 (output to a pipe or a file)."""
    return shutil.get_terminal_size((80, 24)).columns


class Printer:
    """Writes the table's lines: coloured by tone on a terminal, plain text elsewhere."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.colour = self.console.is_terminal

    def line(self, text: str, tone: str = "", header: bool = False) -> None:
        if self.colour:
            style = "bold" if header else TONE_STYLE.get(tone, "")
            self.console.print(Text(text, style=style), soft_wrap=True)
        else:
            sys.stdout.write(text + "\n")


def render_table(
    entries: list[dict[str, Any]],
    console: Console,
    by_request: bool = False,
    width: int | None = None,
) -> None:
    """The table: one line per entry (or per held request), cells cut, never wrapped."""
    rows = table_rows(entries, by_request)
    printer = Printer(console)
    lines = table_lines(rows, width or console.width, by_request)
    printer.line(lines[0], header=True)
    for text, r in zip(lines[1:], rows, strict=True):
        printer.line(text, r.tone)


def _warn_torn(e: dict[str, Any], last: bool) -> None:
    print(
        f"shield: log: line {e.get('line')} is torn ({e.get('bytes')} bytes, incomplete): "
        "a writer died mid-append" + ("; the next append records it" if last else ""),
        file=sys.stderr,
    )


def _write_json(e: dict[str, Any], last: bool = True) -> None:
    """The entry as the log holds it (a torn line: a note on stderr)."""
    if view.is_torn(e):
        _warn_torn(e, last)
    else:
        sys.stdout.write(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n")


def _follow(path: str, offset: int, interval: float = 0.2) -> Iterator[dict[str, Any]]:
    """New entries appended after `offset`, forever (tail -f). A shrunk file is reported."""
    buf = b""
    lineno = 0
    while True:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = offset
        if size < offset:
            print(
                f"shield: log: {path} shrank from {offset} to {size} bytes: truncated or "
                "replaced; run `shield log verify`",
                file=sys.stderr,
            )
            offset, buf = size, b""
        if size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read(size - offset)
            offset += len(chunk)
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                lineno += 1
                d = verify_mod.parse_line(line)
                yield d if d is not None else verify_mod.torn_marker(lineno, line)
        else:
            time.sleep(interval)


def follow_layout(rows: list[view.Row], width: int) -> list[tuple[int, int]]:
    """The columns `--follow` keeps for good: wide enough for the rows so far and for
    typical later ones (cells of later rows are cut to fit, never wrapped)."""
    typical = [r.cells for r in rows] + [["x" * min(c.max, 24) for c in view.COLUMNS]]
    typical[-1][1] = "00:00:00"
    return layout(view.COLUMNS, typical, width)


def _nothing(file: str, total: int) -> str:
    if total == 0:
        return f"no entries yet in {file}"
    return f"no entries match ({total} entr{'y' if total == 1 else 'ies'} in {file})"


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print each entry as it is in the log, one JSON object a line (for jq or a "
            "SIEM), instead of the table.",
        ),
    ] = False,
    agent: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only this agent's entries.")
    ] = None,
    tool: Annotated[str | None, typer.Option(metavar="TOOL", help="Only this tool.")] = None,
    decision: Annotated[
        str | None,
        typer.Option(
            metavar="allow|ask|deny",
            help="Only this decision; deny includes denials by a person, allow approvals.",
        ),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EVENT",
            help=f"Only these events (repeat, or comma-separate): {', '.join(view.EVENTS)}.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Only newer entries: 10m, 2h, 1d or an ISO time."),
    ] = None,
    request: Annotated[
        str | None, typer.Option(metavar="ID", help="Only this held request's entries.")
    ] = None,
    by_request: Annotated[
        bool,
        typer.Option(
            "--by-request",
            help='One line per held call: held -> approved by alice "why" -> exit 0.',
        ),
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries as they come.")
    ] = False,
    path: PathOpt = None,
) -> None:
    """Review the tamper-evident log (verify it, sign checkpoints: the commands below).

    One line per entry, cut to the terminal's width (COLUMNS, or 80 when the output is not a
    terminal); JSON lines with --json.

    Columns: seq, time (UTC; today's entries show only the time of day), request, agent,
    command (as typed), outcome (allowed, denied by rule, held, approved by alice, ran: exit
    0, ...), reason and context. Narrow terminals drop context first, then reason, seq and
    request.

    Example: shield log --since 2h --decision deny --by-request
    """
    if ctx.invoked_subcommand is not None:
        return
    if decision is not None and decision not in view.DECISIONS:
        raise typer.BadParameter("use allow, ask or deny", param_hint="--decision")
    if by_request and follow:
        raise typer.BadParameter("--by-request folds finished calls; drop it with --follow")
    file = _path(path)
    if not os.path.exists(file):
        raise LogError(f"no log at {file}", NO_LOG_HINT)
    kinds = parse_events(event)
    keep = view.make_filter(
        agent, tool, decision, parse_since(since) if since else None, request, kinds
    )
    chosen = Selection(file, keep, by_request)
    check_events(kinds, chosen.kinds)
    if as_json:
        for e in chosen.entries:
            _write_json(e, last=e is chosen.last)
    elif not follow:
        _print_table(chosen.entries, by_request, file, chosen.total)
    sys.stdout.flush()
    if follow:
        _keep_following(file, keep, as_json, chosen.entries)


def _print_table(entries: list[dict[str, Any]], by_request: bool, file: str, total: int) -> None:
    if not entries:
        print(_nothing(file, total))
        return
    render_table(entries, Console(highlight=False), by_request, terminal_width())


def _keep_following(
    file: str, keep: Callable[[dict[str, Any]], bool], as_json: bool, shown: list[dict[str, Any]]
) -> None:
    """`--follow`: the rows so far, then each new entry, with one layout throughout."""
    printer = Printer()
    cols: list[tuple[int, int]] = []
    if not as_json:
        rows = table_rows(shown)
        cols = follow_layout(rows, terminal_width())
        printer.line(format_row(view.COLUMNS, cols, [c.name for c in view.COLUMNS]), header=True)
        for r in rows:
            printer.line(format_row(view.COLUMNS, cols, r.cells), r.tone)
        sys.stdout.flush()
    try:
        for e in _follow(file, os.path.getsize(file)):
            if not keep(e):
                continue
            if as_json:
                _write_json(e)
            else:
                r = view.row(e, today_utc())
                printer.line(format_row(view.COLUMNS, cols, r.cells), r.tone)
            sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def verify_file(
    home: str, file: str, anchor: str | None = None
) -> tuple[verify_mod.VerifyReport, list[str]]:
    """Verify the log at `file` with what this home holds (anchor, checkpoints, trusted keys);
    (the report, notes for the human)."""
    if not os.path.exists(file):
        raise LogError(f"no log at {file}", NO_LOG_HINT)
    anchor_d, cps, notes = anchors.gather(home, file, anchor)
    problem = None if anchor else anchors.anchor_problem(home, file)
    if problem:
        report = verify_mod.VerifyReport(
            False,
            0,
            None,
            "replaced",
            f"{file}: replaced: {problem}",
            log=anchors.first_log_id(file),
        )
        return report, notes
    report = verify_mod.verify_log(
        file, anchor=anchor_d, checkpoints=cps, trusted=approver_trusted(home)
    )
    return report, notes


@app.command()
def verify(
    path: PathOpt = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", help="The anchor to check MACs with (default: the home's, by log id)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the log: exit 0 when intact, 1 naming the first bad line and the kind of damage.

    With the approver's anchor every MAC is checked; on the agent side (no anchor) the chain,
    sequence, canonical form and the signed checkpoints are.

    Example: shield log verify --path /srv/agents/deploy-bot/log/shield.log
    """
    home = home_dir()
    file = _path(path)
    report, notes = verify_file(home, file, anchor)
    for note in notes:
        print(f"shield: log: {note}", file=sys.stderr)
    if as_json:
        print(json.dumps({**report.as_dict(), "path": file, "notes": notes}, sort_keys=True))
    if not report.ok:
        hint = "entries before that line verified; keep the file as evidence and tell the approver"
        if report.kind == "torn":
            hint = "a writer died mid-append; the next append records the torn line and the log continues"
        raise LogDamage(report.message, hint)
    if not as_json:
        print(f"shield: log: {file}: {report.message}")


@app.command()
def checkpoint(path: PathOpt = None) -> None:
    """Sign a checkpoint (line count and head hash) of the log with your approver key.

    Run it on the approver side, regularly: a signed checkpoint catches a cut tail and any
    rewrite of the lines it covers. It is kept in your home and copied next to the log.

    Example: shield log checkpoint --path /srv/agents/deploy-bot/log/shield.log
    """
    home = home_dir()
    cp = anchors.sign_checkpoint(home, _path(path))
    print(
        f"shield: log: checkpoint of log {cp['log']}: {cp['size']} lines, head "
        f"{str(cp['head'])[:16]}, signed by {cp['name']} ({cp['signer']})\n"
        f"  stored: {cp['stored']}"
    )
    if cp["copied"]:
        print(f"  copied: {cp['copied']}")
    else:
        print(
            "shield: log: could not copy it next to the log; verification on the agent side "
            f"will not see it (copy {cp['stored']} into {anchors.log_checkpoints_dir(_path(path))})",
            file=sys.stderr,
        )


@anchor_app.command("import")
def anchor_import(
    file: Annotated[str, typer.Argument(help="The anchor.json written next to the agent's log.")],
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave FILE in place (do not delete it).")
    ] = False,
) -> None:
    """Keep a log's anchor (its id and first key K0) in your approver home, then delete FILE.

    Only the approver may hold K0: whoever has it can forge the whole log. So FILE is deleted
    after the import unless --keep is given.

    Example: shield log anchor import /srv/agents/deploy-bot/log/anchor.json
    """
    home = home_dir()
    dest = anchors.import_anchor(home, file)
    print(f"shield: log: anchor of log {anchors.load_anchor(dest)['log']} stored in {dest}")
    if keep:
        print(
            f"shield: log: {file} kept: delete it from the agent side (it can forge the log)",
            file=sys.stderr,
        )
        return
    try:
        os.unlink(file)
    except OSError as exc:
        print(
            f"shield: log: could not delete {file} ({exc.strerror}): delete it from the agent "
            "side yourself, whoever reads it can forge the whole log",
            file=sys.stderr,
        )
    else:
        print(f"shield: log: deleted {file}")
