"""The options that pick where an approver's commands find held requests (cold)."""

from __future__ import annotations

from typing import Annotated

import typer

from shim.approval.inbox import Inbox, open_inbox
from shim.home import home_dir

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="The approval server (shield serve), instead of the spool (or SHIELD_SERVER).",
    ),
]
TokenFileOpt = Annotated[
    str | None,
    typer.Option(
        "--token-file",
        metavar="F",
        help="Your approver token for --server (or SHIELD_TOKEN_FILE).",
    ),
]
CacertOpt = Annotated[
    str | None,
    typer.Option(
        "--cacert",
        metavar="F",
        help="A CA certificate to verify --server's TLS with (or SHIELD_CACERT).",
    ),
]


def inbox(
    spool: str | None, server: str | None, token_file: str | None, cacert: str | None
) -> Inbox:
    return open_inbox(home_dir(), spool=spool, server=server, token_file=token_file, cacert=cacert)
