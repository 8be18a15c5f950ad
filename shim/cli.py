"""The `shield` command (cold): the only module that assembles the typer app.

Each subcommand lives in shim/commands/<verb>.py. One place here turns exceptions into
messages and exit codes: 0 ok, 1 expected error (one line on stderr), 2 usage, 3 unexpected.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from shim.errors import CLI_ERROR, CLI_UNEXPECTED, CLI_USAGE, ShieldError, format_error

app = typer.Typer(
    name="shield",
    help=(
        "agent-shield: a human gate for AI agents that run kubectl, aws, terraform and helm.\n\n"
        "Examples:\n\n"
        "  shield check -- kubectl -n prod delete pod web\n\n"
        "  shield install --dir /opt/shield/bin --agent deploy-bot\n\n"
        "  shield pending; shield show k7m2qx; shield approve k7m2qx\n\n"
        "  shield log verify"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version() -> str:
    """The installed agent-shield's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("agent-shield")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"shield (agent-shield) {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    pass


def _register() -> None:
    from shim.commands import (
        approve,
        approver,
        check,
        demo,
        doctor,
        grant,
        install_cmd,
        pending,
        report,
        rules_cmd,
        serve,
        show_cmd,
        trust,
    )
    from shim.commands import log as log_cmd

    for module in (
        check,
        install_cmd,
        doctor,
        rules_cmd,
        demo,
        pending,
        show_cmd,
        approve,
        approver,
        trust,
        grant,
        report,
    ):
        module.register(app)
    serve.register(app)
    app.add_typer(log_cmd.app, name="log")


_register()


def build() -> Any:
    """The click command tree of `shield`, with our help pages (shim.commands.helptext)."""
    from shim.commands.helptext import tidy

    return tidy(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `shield` console script."""
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = build().main(args=args, prog_name="shield", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except ShieldError as exc:
        sys.stderr.write(format_error("", exc.message, exc.hint) + "\n")
        return exc.cli_code or CLI_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("shield: interrupted\n")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("shield: aborted\n")
        return CLI_ERROR
    except Exception as exc:  # noqa: BLE001 - click's errors, without importing click
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            usage = any(
                c.__name__ in ("UsageError", "BadParameter", "NoSuchOption", "MissingParameter")
                for c in type(exc).__mro__
            )
            return CLI_USAGE if usage else CLI_ERROR
        if os.environ.get("SHIELD_DEBUG") == "1":
            raise
        sys.stderr.write(
            f"shield: unexpected error: {type(exc).__name__}: {exc}\n"
            "hint: run again with SHIELD_DEBUG=1 for a traceback, and report it\n"
        )
        return CLI_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
