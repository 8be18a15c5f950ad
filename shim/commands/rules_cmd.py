"""`shield rules lint` and `shield rules show TOOL` (cold)."""

from __future__ import annotations

import json

import typer

from shim.commands.common import DECISION_STYLE, current_layers, load_rules

app = typer.Typer(
    help="Validate and show the rules in every commands.d layer.\n\nExample: shield rules lint",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="rules")


@app.command("lint")
def lint(
    as_json: bool = typer.Option(
        False, "--json", help='print {"ok", "tools", "rules", "files"} as JSON'
    ),
) -> int:
    """Validate every layer: grammar, rules and every rule's examples.

    Errors name the file and line. Exit 1 when a layer is invalid (a shim would refuse it too).

    Example:

        shield rules lint
    """
    from shim.rules.compile import compile_layers, effective_files

    layers = current_layers()
    compiled = compile_layers(layers)  # raises RulesError(file:line)
    files = effective_files(layers)
    n_rules = sum(len(c["rules"]) for c in compiled.values())
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": True,
                    "tools": sorted(compiled),
                    "rules": n_rules,
                    "files": sorted(files.values()),
                }
            )
        )
    else:
        typer.echo(f"ok: {n_rules} rules for {', '.join(sorted(compiled))} from {len(files)} files")
        for layer in layers:
            typer.echo(f"  layer {layer}")
    return 0


@app.command("show")
def show(
    tool: str = typer.Argument(..., help="kubectl, aws, terraform, helm, ..."),
    as_json: bool = typer.Option(
        False, "--json", help="print the compiled rules as a JSON array, in order"
    ),
) -> int:
    """Show the effective rules for TOOL, from every layer, in the order they are tried.

    Example:

        shield rules show kubectl
    """
    compiled = load_rules(tool)
    rules = compiled["rules"]
    if as_json:
        typer.echo(
            json.dumps([{k: v for k, v in r.items() if k != "alts"} for r in rules], default=list)
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{tool}: {len(rules)} rules (most restrictive match wins; no match is ask)"
    )
    table.add_column("id")
    table.add_column("decision")
    table.add_column("reason")
    table.add_column("source", style="dim")
    for r in rules:
        table.add_row(
            r["id"],
            f"[{DECISION_STYLE[r['decision']]}]{r['decision']}[/]",
            r["reason"],
            r["source"],
        )
    Console().print(table)
    return 0
