"""`shield trust add|list|remove`: the approver keys this home accepts (cold)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from shim import keys
from shim.approval.show import printable
from shim.errors import KeyError_, ShieldError
from shim.home import home_dir, trust_dir

trust_app = typer.Typer(help="The approver keys this home accepts.", no_args_is_help=True)


@trust_app.command("add")
def trust_add(
    pubkey_file: Annotated[
        str,
        typer.Argument(metavar="PUBKEY_FILE", help="The .pub file `shield approver init` printed."),
    ],
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


@trust_app.command("list")
def trust_list(
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print a JSON array: {"name", "fingerprint", "file", "problem"} per file.',
        ),
    ] = False,
) -> None:
    """List the approver keys this home trusts: name, fingerprint and file.

    A file in the trust store that is not a shield public key is listed with the reason the
    shims skip it.

    Example: SHIELD_HOME=/opt/shield/home shield trust list
    """
    home = home_dir()
    entries = keys.list_trusted(home)
    if as_json:
        items = [
            {
                "name": pub.name if pub else None,
                "fingerprint": pub.fingerprint if pub else None,
                "file": path,
                "problem": problem or None,
            }
            for path, pub, problem in entries
        ]
        typer.echo(json.dumps(items, indent=2))
        return
    if not entries:
        typer.echo(f"no trusted approver keys in {trust_dir(home)}")
        return
    width = max(len(printable(pub.name)) if pub else 1 for _, pub, _ in entries)
    for path, pub, problem in entries:
        if pub is None:
            typer.echo(f"{'?':<{width}}  {'(skipped)':<16}  {path}: {printable(problem)}")
        else:
            typer.echo(f"{printable(pub.name):<{width}}  {pub.fingerprint}  {path}")


@trust_app.command("remove")
def trust_remove(
    key: Annotated[
        str,
        typer.Argument(
            metavar="NAME|FINGERPRINT",
            help="The approver's name, or the key's fingerprint (or a prefix of it).",
        ),
    ],
) -> None:
    """Stop accepting an approver key: its file leaves this home's trust store.

    The shims of this home refuse decisions, grants and checkpoints signed by that key from
    their next read on. A name that two different keys share is refused: give the
    fingerprint (`shield trust list`).

    Example: SHIELD_HOME=/opt/shield/home shield trust remove alice
    """
    home = home_dir()
    entries = [(path, pub) for path, pub, _ in keys.list_trusted(home) if pub is not None]
    matched = [
        (path, pub)
        for path, pub in entries
        if pub.name == key or (len(key) >= 4 and pub.fingerprint.startswith(key.lower()))
    ]
    fingerprints = sorted({pub.fingerprint for _, pub in matched})
    if not fingerprints:
        raise KeyError_(
            f"no trusted key named {printable(key)!r} or with that fingerprint in "
            f"{trust_dir(home)}",
            "shield trust list shows the names and fingerprints",
        )
    if len(fingerprints) > 1:
        raise KeyError_(
            f"{printable(key)!r} names {len(fingerprints)} different keys "
            f"({', '.join(fingerprints)}); nothing removed",
            "give the fingerprint of the one to remove",
        )
    for path, pub in entries:
        if pub.fingerprint != fingerprints[0]:
            continue
        try:
            os.unlink(path)
        except OSError as exc:
            raise KeyError_(
                f"cannot remove {path}: {exc.strerror}",
                "the trust store belongs to whoever installed the shims (root, usually)",
            ) from exc
        typer.echo(f"removed {printable(pub.name)} (fingerprint {pub.fingerprint}): {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
