"""Small shared pieces of the CLI commands (cold)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shim import fs
from shim.baked import baked_for
from shim.errors import SpoolError
from shim.home import compiled_dir, default_layers, home_dir, spool_dir
from shim.rules.compile import load_tool
from shim.rules.load import defaults_dir

DECISION_STYLE = {"allow": "bold green", "ask": "bold yellow", "deny": "bold red"}


def current_home() -> str:
    return home_dir()


def current_layers(home: str | None = None) -> list[str]:
    """The rule layers of `home`; the package defaults the shims were installed with when the
    shims on PATH work on this home (so `shield check` decides as they do)."""
    home = home or current_home()
    cfg = baked_for(home)
    return default_layers(home, cfg["defaults"] if cfg else defaults_dir())


def load_rules(tool: str, home: str | None = None) -> dict:
    """Compiled rules for `tool` from the current home's layers (cached when writable)."""
    home = home or current_home()
    cache = compiled_dir(home)
    if not fs.can_write(cache):
        cache = None  # type: ignore[assignment]
    return load_tool(tool, current_layers(home), cache)


SpoolOpt = Annotated[
    str | None,
    typer.Option(
        "--spool",
        metavar="DIR",
        help="Where held requests and decisions meet (default: SHIELD_SPOOL, else <home>/state/spool).",
    ),
]


def existing_spool(flag: str | None) -> str:
    """The spool an approver's command reads (`--spool`, else SHIELD_SPOOL, else the shims'
    or the home's). A `--spool DIR` that names no directory is an error: a typo would
    otherwise read as an empty queue. (A spool from the environment or the defaults may not
    exist yet: the first held call makes it.)"""
    where = spool_dir(home_dir(), flag=flag)
    if flag and not os.path.isdir(where):
        raise SpoolError(f"spool {where} (from --spool) does not exist or is not a directory")
    return where
