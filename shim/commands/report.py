"""`shield report`: replay the logged calls through a rule set and forecast the prompts (cold).

How a team tunes its rules before enforcing them (run a week in observe mode, then report),
and how it sees whether grants would have saved prompts. The log is verified first; a log that
fails verification is reported anyway, after a warning that says so.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shim.approval.show import printable
from shim.commands.log import PathOpt, _path, parse_since, verify_file
from shim.errors import ShieldError
from shim.home import ETC_LAYER, home_dir, layer_dir
from shim.log.verify import read_entries
from shim.report import replay
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir


def report(
    since: Annotated[
        str | None, typer.Option("--since", help="Only calls since: 7d, 24h, or an ISO time.")
    ] = "7d",
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            metavar="DIR",
            help="A candidate commands.d layer, used instead of the home's own layer.",
        ),
    ] = None,
    path: PathOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What a rule set would allow, ask and deny on the calls in the log; prompts per day.

    Per rule and per agent: calls allowed, asked and denied, prompts per day; the calls whose
    decision would change against what the log recorded; the ten commands that would prompt
    most; and how many prompts 15-minute grants would have saved.

    Example: shield report --since 7d --rules ./candidate-commands.d
    """
    home = home_dir()
    file = _path(path)
    verified, notes = verify_file(home, file)
    layers = [defaults_dir(), ETC_LAYER, os.path.abspath(rules) if rules else layer_dir(home)]
    if rules and not os.path.isdir(rules):
        raise ShieldError(f"--rules {rules}: not a directory")
    compiled = compile_layers(layers)
    cutoff = parse_since(since) if since else None
    entries = [e for e in read_entries(file) if not cutoff or str(e.get("time", "")) >= cutoff]
    result = replay(entries, compiled)
    result.update(
        log=file,
        since=cutoff,
        rules=layers[-1],
        verified={"ok": verified.ok, "message": verified.message, "notes": notes},
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    render(result, Console(highlight=False))


def render(r: dict[str, Any], console: Console) -> None:
    ok = r["verified"]["ok"]
    head = "log verified" if ok else "WARNING: the log failed verification; this report trusts it"
    console.print(f"{head}: {printable(r['verified']['message'])}", style="" if ok else "bold red")
    console.print(
        f"{r['calls']} calls since {r['since'] or 'the start'} over {r['days']} day(s), rules "
        f"from {r['rules']}: {r['prompts_per_day']} prompts a day"
    )
    for title, rows in (("by rule", r["by_rule"]), ("by agent", r["by_agent"])):
        table = Table(title=title, box=None, pad_edge=False, title_justify="left")
        table.add_column("name", overflow="ellipsis", no_wrap=True, max_width=40)
        for col in ("allow", "ask", "deny", "prompts/day"):
            table.add_column(col, justify="right")
        for row in rows:
            table.add_row(
                printable(row["name"]),
                str(row["allow"]),
                str(row["ask"]),
                str(row["deny"]),
                str(row["prompts_per_day"]),
            )
        console.print(table)
    if r["top_prompts"]:
        console.print("commands that would prompt most:")
        for item in r["top_prompts"]:
            console.print(
                f"  {item['prompts']:>5}  {printable(item['command'])}", overflow="ellipsis"
            )
    changed = r["changed"]
    console.print(f"{len(changed)} call(s) would be decided differently than the log recorded")
    for c in changed[:20]:
        console.print(
            f"  #{c['seq']} {c['was']} -> {c['now']}  {printable(c['command'])}",
            overflow="ellipsis",
        )
    g = r["grant_savings"]
    console.print(
        f"15-minute grants per agent, rule and target would have turned {g['prompts']} "
        f"prompts into {g['with_15m_grants']} (saving {g['saved']})"
    )


def register(app: typer.Typer) -> None:
    app.command("report")(report)
