"""`shield check`: classify a call without running it (cold)."""

from __future__ import annotations

import json
import os

import typer

from shim.baked import baked_for
from shim.commands.common import DECISION_STYLE, current_home, load_rules
from shim.errors import ShieldError
from shim.real import find_real
from shim.run import classify

EXIT_CODES = {"allow": 0, "ask": 10, "deny": 11}


def register(app: typer.Typer) -> None:
    app.command(
        "check",
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )(check)


def check(
    argv: list[str] = typer.Argument(..., metavar="-- TOOL ARGS...", help="the call to classify"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    exit_code: bool = typer.Option(
        False, "--exit-code", help="exit 0 for allow, 10 for ask, 11 for deny"
    ),
    agent: str = typer.Option(
        None, "--agent", help="classify as this agent (default: the shims' agent, else agent)"
    ),
) -> int:
    """Classify a call as allow, ask or deny without running it.

    Prints the decision, the rule and its reason, the resolved verb and target context, and
    every rule that matched. Without SHIELD_HOME it decides as the first shims on PATH do:
    their home, rule layers and agent name.

    Example:

        shield check -- kubectl -n prod delete pod web

        shield check --json -- aws s3 sync s3://bucket ./dir --delete
    """
    if not argv:
        raise typer.BadParameter("name a tool and its arguments, e.g. -- kubectl get pods")
    tool, args = argv[0], argv[1:]
    if tool.startswith("-"):
        raise typer.BadParameter(
            f"unknown option {tool}; put the call after --, e.g. shield check --json -- kubectl get pods"
        )
    if os.sep in tool:
        raise ShieldError(
            f"name the tool, not a path: {tool}", "example: shield check -- kubectl get pods"
        )
    home = current_home()
    compiled = load_rules(tool, home)
    env = dict(os.environ)
    cfg = baked_for(home, env, tool) or baked_for(home, env) or {}
    agent = agent or cfg.get("agent") or "agent"
    real = cfg.get("real") if cfg.get("tool") == tool else None  # as the shim: pinned first
    if not real or not os.path.isfile(real):
        real = find_real(tool, env.get("PATH", ""), list(cfg.get("shim_dirs") or ()))
    from shim.rules.awstables import maker

    d = classify(
        compiled, args, env, os.getcwd(), agent, real, maker(compiled.get("tables") or "", real)
    )
    out = d.as_dict()
    if as_json:
        typer.echo(json.dumps(out, sort_keys=True))
    else:
        _explain(out)
    return EXIT_CODES[d.decision] if exit_code else 0


def _explain(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    decision = out["decision"]
    head = f"[{DECISION_STYLE[decision]}]{decision.upper()}[/]"
    rule = out["rule"] or "(no rule matched)"
    console.print(f"{head}  {rule}: {out['reason']}", highlight=False)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("tool", out["tool"])
    verb = " ".join(out["verb"]) or "-"
    kind = out["kind"]
    table.add_row(
        "verb",
        verb + ("" if kind == "ok" else f"  ({kind})") + ("  (dry run)" if out["dry_run"] else ""),
    )
    ctx = "  ".join(f"{k}={v}" for k, v in sorted(out["context"].items()) if k != "cwd")
    table.add_row("context", ctx or "-")
    matched = ", ".join(f"{m['id']} ({m['decision']})" for m in out["matched"]) or "none"
    table.add_row("matched", matched)
    if out["decision"] != "allow" and out.get("hint"):
        table.add_row("hint", out["hint"])
    console.print(table)
