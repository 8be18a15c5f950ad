"""`shield approver init`: the approver's signing key (cold)."""

from __future__ import annotations

from typing import Annotated

import typer

from shim import keys
from shim.baked import cli_home
from shim.errors import ShieldError

approver_app = typer.Typer(
    help="The approver's signing key.\n\nExample: shield approver init --name alice",
    no_args_is_help=True,
)


@approver_app.command("init")
def approver_init(
    name: Annotated[str, typer.Option("--name", help="Your name, as the log shows it.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Create this home's approver key (Ed25519, private key 0600) and print the public key.

    The key is trusted nowhere until an agent's home runs `shield trust add` with it.

    Example: SHIELD_HOME=~/.shield-approver shield approver init --name alice
    """
    where = cli_home()
    if where.source == "shim":
        raise ShieldError(
            f"without SHIELD_HOME this would be the agent's home {where.describe()}: an "
            "approver key there lets the agent sign its own approvals; nothing was created",
            f"SHIELD_HOME=~/.shield-approver shield approver init --name {name}",
        )
    home = where.home
    path = keys.init_approver(home, name, force=force)
    pub = keys.load_public_key(path)
    typer.echo(f"approver key for {pub.name} created (fingerprint {pub.fingerprint})")
    typer.echo(f"public key: {path}")
    typer.echo("on each agent side, with that side's SHIELD_HOME, run:")
    typer.echo(f"  shield trust add {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(approver_app, name="approver")
