"""How every `shield ... --help` page reads (cold): values named for what they are, not for
the framework's types.

typer prints `--reason <str>`, `{ID}` and `<list[str]>` (or `TEXT`, by version); our pages say
`--reason REASON` and `ID`. `tidy` walks the built command tree once, so a new command or
option gets the same treatment without remembering to: an option with no metavar of its own
is named after itself, an argument by its name, and the usage line and the Arguments section
are written here from click's parameters rather than by typer's formatter.
"""

from __future__ import annotations

from types import MethodType
from typing import Any


def value_name(param: Any) -> str:
    """`ID`, `TOOL...`, or the metavar the command declared."""
    name = param.metavar or str(param.name or "value").upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


def usage_pieces(command: Any, ctx: Any) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = value_name(param)
            pieces.append(name if param.required else f"[{name}]")
    subcommands = getattr(command, "subcommand_metavar", None)
    if subcommands and hasattr(command, "commands"):
        pieces.append(subcommands)
    return pieces


def format_usage(command: Any, ctx: Any, formatter: Any) -> None:
    formatter.write_usage(ctx.command_path, " ".join(usage_pieces(command, ctx)))


def format_options(command: Any, ctx: Any, formatter: Any) -> None:
    args, opts = [], []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            args.append((value_name(param), param.help or ""))
        elif param.param_type_name == "option":
            record = param.get_help_record(ctx)
            if record is not None:
                opts.append(record)
    if args:
        with formatter.section("Arguments"):
            formatter.write_dl(args)
    if opts:
        with formatter.section("Options"):
            formatter.write_dl(opts)
    if hasattr(command, "format_commands"):
        command.format_commands(ctx, formatter)


def name_values(command: Any) -> None:
    """Give every value-taking option without a metavar one: its own name (`--since SINCE`)."""
    for param in command.params:
        if param.param_type_name != "option" or param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        param.metavar = str(param.name or "value").upper()


def tidy(command: Any) -> Any:
    """`command` and every subcommand under it with plain help pages; returns `command`."""
    name_values(command)
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None  # rich's formatter would bypass the two below
    command.format_usage = MethodType(format_usage, command)
    command.format_options = MethodType(format_options, command)
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command
