"""`shield trust add`: the approver keys this home accepts (cold)."""

from __future__ import annotations

from typing import Annotated

import typer

from shim import keys
from shim.errors import ShieldError
from shim.home import home_dir

trust_app = typer.Typer(help="The approver keys this home accepts.", no_args_is_help=True)


@trust_app.command("add")
def trust_add(
    pubkey_file: Annotated[str, typer.Argument(metavar="PUBKEY_FILE")],
) -> None:
    """Accept decisions signed by this approver public key in this home.

    Example: SHIELD_HOME=/opt/shield/home shield trust add alice.pub
    """
    home = home_dir()
    pub = keys.load_public_key(pubkey_file)
    try:
        own = keys.approver_identity(home)
    except ShieldError:
        own = None
    dest = keys.add_trusted(home, pubkey_file)
    typer.echo(f"trusted {pub.name} (fingerprint {pub.fingerprint}): {dest}")
    if own is not None and own.raw == pub.raw:
        typer.echo(
            "warning: this is this home's own approver key: whoever uses this home (the agent?) "
            "can now approve its own requests",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
