"""`shield trust add|list|remove`: the approvers this home accepts (cold): Ed25519 public keys
and passkey credentials alike."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from shim import keys
from shim.approval.show import printable
from shim.errors import KeyError_, ShieldError
from shim.home import home_dir, trust_dir

trust_app = typer.Typer(
    help="The approvers this home accepts (Ed25519 keys and passkeys).\n\n"
    "Example: SHIELD_HOME=/opt/shield/home shield trust add alice.pub",
    no_args_is_help=True,
)

# (file, approver name or None, fingerprint or None, kind, why the shims skip the file)
Entry = tuple[str, str | None, str | None, str, str]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(1 << 20)
    except OSError as exc:
        raise KeyError_(f"cannot read {path}: {exc.strerror}") from None


def entries(home: str) -> list[Entry]:
    """Every file of the trust store: Ed25519 keys first, then passkeys."""
    from shim.approval.passkey import list_passkeys

    out: list[Entry] = [
        (path, pub.name if pub else None, pub.fingerprint if pub else None, "ed25519", problem)
        for path, pub, problem in keys.list_trusted(home)
    ]
    out += [
        (path, pk.approver if pk else None, pk.fingerprint if pk else None, "passkey", problem)
        for path, pk, problem in list_passkeys(home)
    ]
    return out


@trust_app.command("add")
def trust_add(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="An approver's .pub (shield approver init) or passkey credential file "
            "(shield serve approver export NAME).",
        ),
    ],
) -> None:
    """Accept decisions signed by this approver in this home.

    FILE is an approver's Ed25519 public key (`shield approver init` prints its path) or a
    passkey credential file (`shield serve approver export NAME`, or the download on the
    web page after enrolling). The server cannot add trust by itself: an operator runs this
    in each agent home (`SHIELD_HOME=/opt/shield/home shield trust add alice.pub` for a key).

    Example: SHIELD_HOME=/opt/shield/home shield trust add alice.passkey
    """
    from shim.approval.passkey import add_trusted_passkeys, is_passkey_file

    home = home_dir()
    text = _read(file)
    if is_passkey_file(text):
        for pk, dest in add_trusted_passkeys(home, text, file):
            typer.echo(
                f"trusted {printable(pk.approver)}'s passkey (fingerprint {pk.fingerprint}, "
                f"origin {printable(pk.origin)}): {dest}"
            )
        return
    pub = keys.load_public_key(file)
    try:
        own = keys.approver_identity(home)
    except ShieldError:
        own = None
    dest = keys.add_trusted(home, file)
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
            help='Print a JSON array: {"name", "fingerprint", "kind", "file", "problem"} per '
            "file (kind: ed25519 or passkey).",
        ),
    ] = False,
) -> None:
    """List the approvers this home trusts: name, fingerprint, kind (an Ed25519 key or a
    passkey) and file.

    A file in the trust store that the shims cannot read is listed with the reason they skip
    it.

    Example: SHIELD_HOME=/opt/shield/home shield trust list
    """
    home = home_dir()
    found = entries(home)
    if as_json:
        items = [
            {
                "name": name,
                "fingerprint": fp,
                "kind": kind,
                "file": path,
                "problem": problem or None,
            }
            for path, name, fp, kind, problem in found
        ]
        typer.echo(json.dumps(items, indent=2))
        return
    if not found:
        typer.echo(f"no trusted approver keys in {trust_dir(home)}")
        return
    width = max(len(printable(name)) if name else 1 for _, name, _, _, _ in found)
    for path, name, fp, kind, problem in found:
        if name is None:
            typer.echo(
                f"{'?':<{width}}  {'(skipped)':<16}  {kind:<7}  {path}: {printable(problem)}"
            )
        else:
            typer.echo(f"{printable(name):<{width}}  {fp}  {kind:<7}  {path}")


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
    """Stop accepting an approver key or passkey: its file leaves this home's trust store.

    The shims of this home refuse decisions, grants and checkpoints signed by it from their
    next read on. A name that two different keys share (alice's key and alice's passkey) is
    refused: give the fingerprint (`shield trust list`).

    Example: SHIELD_HOME=/opt/shield/home shield trust remove alice
    """
    home = home_dir()
    known = [(path, name, fp) for path, name, fp, _, _ in entries(home) if name and fp]
    matched = [
        (path, name, fp)
        for path, name, fp in known
        if name == key or (len(key) >= 4 and fp.startswith(key.lower()))
    ]
    fingerprints = sorted({fp for _, _, fp in matched})
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
    for path, name, fp in known:
        if fp != fingerprints[0]:
            continue
        try:
            os.unlink(path)
        except OSError as exc:
            raise KeyError_(
                f"cannot remove {path}: {exc.strerror}",
                "the trust store belongs to whoever installed the shims (root, usually)",
            ) from exc
        typer.echo(f"removed {printable(name)} (fingerprint {fp}): {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
