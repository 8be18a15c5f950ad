"""`shield log`: review the log, verify it, sign checkpoints, import anchors (cold).

Mounted by the CLI as `shield log`. The library work lives in `shim.log`; this module only
parses options, picks the home's files and prints.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shim.clock import parse_duration
from shim.errors import LogDamage, LogError
from shim.home import home_dir, log_path
from shim.keys import approver_trusted
from shim.log import anchors
from shim.log import verify as verify_mod

app = typer.Typer(
    name="log",
    help="Review the tamper-evident log, verify it, and sign checkpoints.",
    add_completion=False,
    no_args_is_help=False,
)
anchor_app = typer.Typer(
    name="anchor",
    help="The log's first key (K0), which only the approver keeps.",
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

DECISION_STYLE = {"allow": "green", "ask": "yellow", "deny": "red"}
EVENT_STYLE = {
    "approved": "green",
    "executed": "green",
    "held": "yellow",
    "denied": "red",
    "expired": "red",
    "cancelled": "red",
    "error": "bold red",
    "security": "bold magenta",
    "torn": "bold red",
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


def make_filter(
    agent: str | None = None,
    tool: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    request: str | None = None,
) -> Callable[[dict[str, Any]], bool]:
    """A predicate over entries for the `shield log` filters (torn markers always pass)."""

    def keep(e: dict[str, Any]) -> bool:
        if e.get("event") == "torn" and "seq" not in e:
            return True
        if agent is not None and e.get("agent") != agent:
            return False
        if tool is not None and e.get("tool") != tool:
            return False
        if decision is not None and e.get("decision") != decision:
            return False
        if request is not None and e.get("request") != request:
            return False
        t = e.get("time")
        return not (since is not None and (not isinstance(t, str) or t < since))

    return keep


def _command(e: dict[str, Any]) -> str:
    argv = e.get("argv")
    if not isinstance(argv, list):
        return ""
    text = shlex.join(str(a) for a in argv)
    return text if len(text) <= 100 else text[:99] + "…"


def _context(e: dict[str, Any]) -> str:
    ctx = e.get("context")
    if not isinstance(ctx, dict):
        return ""
    return " ".join(f"{k}={v}" for k, v in ctx.items() if v not in (None, ""))


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _time(e: dict[str, Any]) -> str:
    t = e.get("time")
    return t[:19].replace("T", " ") + "Z" if isinstance(t, str) and len(t) >= 19 else _cell(t)


def _style(e: dict[str, Any]) -> str:
    ev = e.get("event")
    if ev in EVENT_STYLE and ev not in ("held",):
        return EVENT_STYLE[ev]
    return DECISION_STYLE.get(str(e.get("decision")), EVENT_STYLE.get(str(ev), ""))


def _row(e: dict[str, Any]) -> list[str]:
    if e.get("event") == "torn" and "seq" not in e:
        return ["", "", "torn", "", "", f"line {e.get('line')}: {e.get('bytes')} bytes, incomplete"]
    return [
        _cell(e.get("seq")),
        _time(e),
        _cell(e.get("event")),
        _cell(e.get("agent")),
        _cell(e.get("tool")),
        _command(e),
        _context(e),
        _cell(e.get("decision")),
        _cell(e.get("rule")),
        _cell(e.get("approver")),
        _cell(e.get("exit")),
    ]


COLUMNS = (
    "seq",
    "time",
    "event",
    "agent",
    "tool",
    "command",
    "context",
    "decision",
    "rule",
    "approver",
    "exit",
)


def render_table(entries: list[dict[str, Any]], console: Console) -> None:
    """The TTY view: one row per entry, coloured by decision (and by event for outcomes)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in COLUMNS:
        table.add_column(name, overflow="fold", no_wrap=name in ("seq", "time", "decision"))
    for e in entries:
        table.add_row(*_row(e), style=_style(e))
    console.print(table)


def render_line(e: dict[str, Any], console: Console) -> None:
    """One entry as one coloured line (`--follow` on a TTY)."""
    cells = [c for c in _row(e) if c]
    console.print(Text("  ".join(cells), style=_style(e)), soft_wrap=True)


def _warn_torn(e: dict[str, Any]) -> None:
    print(
        f"shield: log: line {e.get('line')} is torn ({e.get('bytes')} bytes, incomplete): "
        "a writer died mid-append; the next append records it",
        file=sys.stderr,
    )


def _emit(e: dict[str, Any], as_json: bool, console: Console | None) -> None:
    torn = e.get("event") == "torn" and "seq" not in e
    if as_json:
        if torn:
            _warn_torn(e)
        else:
            sys.stdout.write(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n")
    else:
        assert console is not None
        render_line(e, console)


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


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (for a SIEM).")] = False,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only this tool.")] = None,
    decision: Annotated[str | None, typer.Option(help="Only allow, ask or deny.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only newer entries: 10m, 2h, 1d or an ISO time.")
    ] = None,
    request: Annotated[str | None, typer.Option(help="Only this held request id.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries.")
    ] = False,
    path: PathOpt = None,
) -> None:
    """Show the log: a table on a terminal, JSON lines with --json or when piped.

    Example: shield log --agent deploy-bot --decision deny --since 2h
    """
    if ctx.invoked_subcommand is not None:
        return
    if decision is not None and decision not in DECISION_STYLE:
        raise typer.BadParameter("use allow, ask or deny", param_hint="--decision")
    file = _path(path)
    keep = make_filter(agent, tool, decision, parse_since(since) if since else None, request)
    as_json = as_json or not sys.stdout.isatty()
    console = None if as_json else Console()
    entries = [e for e in verify_mod.read_entries(file) if keep(e)]
    if as_json or follow:
        for e in entries:
            _emit(e, as_json, console)
    else:
        assert console is not None
        render_table(entries, console)
        for e in entries:
            if e.get("event") == "torn" and "seq" not in e:
                _warn_torn(e)
    sys.stdout.flush()
    if not follow:
        return
    try:
        for e in _follow(file, os.path.getsize(file)):
            if keep(e):
                _emit(e, as_json, console)
                sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def verify_file(
    home: str, file: str, anchor: str | None = None
) -> tuple[verify_mod.VerifyReport, list[str]]:
    """Verify the log at `file` with what this home holds (anchor, checkpoints, trusted keys);
    (the report, notes for the human)."""
    if not os.path.exists(file):
        raise LogError(f"no log at {file}", "pass --path, or check SHIELD_HOME")
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
        typer.Option(help="The anchor to check MACs with (default: the home's, by log id)."),
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
