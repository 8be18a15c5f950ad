"""`shield install` and `shield uninstall` (cold)."""

from __future__ import annotations

import json
import os

import typer

from shim.baked import read_shim_config, shim_dir_of
from shim.commands.common import current_home
from shim.errors import ShieldError
from shim.install import install as do_install
from shim.install import set_server
from shim.install import uninstall as do_uninstall


def register(app: typer.Typer) -> None:
    app.command("install")(install)
    app.command("uninstall")(uninstall)


def default_dir(home: str) -> str:
    """<home>/bin, or where the shims on PATH that work on this home are."""
    return shim_dir_of(home)


def install(
    tools: list[str] = typer.Argument(None, help="tools to shim (default: every tool with rules)"),
    shim_dir: str = typer.Option(
        None,
        "--dir",
        metavar="DIR",
        help="where to write the shims (default: the home's shims, else <home>/bin)",
    ),
    agent: str = typer.Option("agent", "--agent", help="the agent's name, baked into its shims"),
    real: list[str] = typer.Option(
        [],
        "--real",
        metavar="TOOL=PATH",
        help="pin a real binary: TOOL=PATH (repeatable); else PATH is searched",
    ),
    spool: str = typer.Option(
        None, "--spool", metavar="DIR", help="where held requests and decisions meet"
    ),
    force: bool = typer.Option(False, "--force", help="overwrite a file that is not a shim"),
    mode: str = typer.Option(
        "enforce",
        "--mode",
        help="enforce (default); warn: held and denied calls run with a warning line; "
        "observe: they run silently (the log keeps what the policy would have decided)",
    ),
    server: str = typer.Option(
        None, "--server", metavar="URL", help="the approval server (shield serve) held calls go to"
    ),
    token_file: str = typer.Option(
        None, "--token-file", metavar="F", help="the agent's token for --server"
    ),
    cacert: str = typer.Option(
        None, "--cacert", metavar="F", help="CA certificate to verify --server's TLS with"
    ),
    no_server: bool = typer.Option(False, "--no-server", help="stop using an approval server"),
    as_json: bool = typer.Option(
        False, "--json", help="print what was installed (shims, tools, home, log) as JSON"
    ),
) -> int:
    """Write shims into DIR, compile the rules, and set up the agent's home and log.

    Idempotent: re-running refreshes the shims in place. Only files that carry the shim marker
    are ever overwritten. Put DIR first on the agent's PATH.

    With --server URL --token-file F, held calls also go to the approval server (`shield
    serve`), and approvers anywhere can decide them. A re-install keeps what the shims in DIR
    had for this home: the server, the pinned real binaries and the spool (unless given again).

    Examples:

        shield install --dir /opt/shield/bin --agent deploy-bot

        shield install --agent deploy-bot --server https://shield.example:8421 --token-file bot.token
    """
    home = current_home()
    pins: dict[str, str] = {}
    for item in real:
        tool, eq, path = item.partition("=")
        if not eq or not tool or not path:
            raise typer.BadParameter(f"--real takes TOOL=PATH, got {item!r}")
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ShieldError(f"--real {tool}: {path} is not an executable file")
        pins[tool] = path
    shim_dir = os.path.abspath(shim_dir or default_dir(home))
    kept_pins, kept_spool = kept_from_shims(shim_dir, home)
    pins = {**kept_pins, **pins}
    spool_dir = spool or kept_spool
    if (token_file or cacert) and not server:
        raise ShieldError("--token-file and --cacert go with --server URL")
    os.makedirs(home, mode=0o755, exist_ok=True)
    relay = set_server(home, "" if no_server else server, token_file, cacert)
    result = do_install(
        shim_dir,
        list(tools or []),
        home=home,
        agent=agent,
        real=pins,
        spool=spool_dir,
        force=force,
        mode=mode,
        server=relay,
    )
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return 0
    typer.echo(
        f"installed {len(result['shims'])} shims for agent {agent!r} in {shim_dir}: {', '.join(result['tools'])}"
    )
    typer.echo(f"home: {home}")
    if mode != "enforce":
        typer.echo(
            f"mode: {mode}: calls the rules would hold or deny run anyway"
            + (" with a warning line" if mode == "warn" else "")
            + "; shield doctor warns until you reinstall with --mode enforce"
        )
    if relay:
        typer.echo(f"held calls also go to the approval server {relay['url']}")
    anchor = (result.get("log") or {}).get("anchor")
    if anchor:
        typer.echo(
            f"log anchor (the first log key) written to {anchor}\n"
            "the approver takes it away, once (the import deletes it here):\n"
            f"  shield log anchor import {anchor}"
        )
    typer.echo(f'add this line to the agent\'s environment:\n  export PATH="{shim_dir}:$PATH"')
    return 0


def kept_from_shims(shim_dir: str, home: str) -> tuple[dict[str, str], str | None]:
    """What the shims already in `shim_dir` for `home` had baked in: each tool's pinned real
    binary, and the spool. A re-install keeps them, as it keeps the server: re-running
    `shield install --server ...` over an install.sh setup must not fall back to the real
    binary on PATH and a spool the agent's user cannot write."""
    pins: dict[str, str] = {}
    spool: str | None = None
    try:
        names = sorted(os.listdir(shim_dir))
    except OSError:
        return pins, spool
    for name in names:
        cfg = read_shim_config(os.path.join(shim_dir, name))
        if cfg is None or os.path.abspath(cfg["home"]) != os.path.abspath(home):
            continue
        if cfg.get("real"):
            pins[cfg["tool"]] = cfg["real"]
        spool = spool or cfg.get("spool") or None
    return pins, spool


def uninstall(
    shim_dir: str = typer.Option(
        None, "--dir", metavar="DIR", help="the shim dir (default: <home>/bin)"
    ),
) -> int:
    """Remove shield's own shims from DIR (any other file is left alone).

    Example:

        shield uninstall --dir /opt/shield/bin
    """
    shim_dir = os.path.abspath(shim_dir or default_dir(current_home()))
    removed = do_uninstall(shim_dir)
    typer.echo(f"removed {len(removed)} shims from {shim_dir}")
    return 0
