"""`shield show ID`: one held request in full, with what will actually run (cold).

The request is read from the spool or the approval server (the agent's words: its digest is
recomputed from its content, and every line is escaped before it is shown). What it prints is
what the digest covers, and so what `shield approve` signs: the panel, the command that will
run, the preview's diff against the live objects, the text of every input the run reads
(snapshotted manifests, piped stdin, values files, the saved plan's `terraform show`), and a
failed preview's raw output. On a terminal it goes through a pager ($PAGER, else `less`).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Annotated

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from shim import keys
from shim.approval.request import HeldRequest, is_request_id, to_dict
from shim.approval.review import read_copy
from shim.approval.show import printable
from shim.commands.common import SpoolOpt
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox
from shim.commands.panel import request_panel, warnings, what_runs
from shim.errors import KeyError_, SpoolError
from shim.home import home_dir

DEFAULT_PAGER = "less"
LESS_DEFAULT = "FRX"  # quit when it fits one screen, keep colours, leave the text on screen


def own_fingerprint(home: str) -> str | None:
    """This home's approver key fingerprint, or None when it has none."""
    try:
        return keys.approver_identity(home).fingerprint
    except KeyError_:
        return None


def load(
    rid_text: str, spool: str | None, server: str | None, token_file: str | None, cacert: str | None
) -> tuple[HeldRequest, str, bool, list[dict[str, str]]]:
    """(the request, its status, whether it was edited after the hold, refusal notes)."""
    box = inbox(spool, server, token_file, cacert)
    rid = rid_text.strip().lower()
    if not is_request_id(rid):
        raise SpoolError(f"{printable(rid_text)!r} is not a request id (see: shield pending)")
    status, data = box.lookup(rid)
    req = read_copy(rid, data, box.where, signing=False)
    assert data is not None  # read_copy raised otherwise
    return req, status, data.get("digest") != req.digest, box.refused(rid)


def render(
    req: HeldRequest,
    status: str,
    modified: bool,
    notes: list[dict[str, str]],
    own_key: str | None,
    now: float,
) -> list[RenderableType]:
    parts: list[RenderableType] = [
        request_panel(req, now, modified=modified, status=status),
        *warnings(req, notes, own_key),
        *what_runs(req),
    ]
    return parts


def pager_command(env: dict[str, str]) -> list[str] | None:
    """The pager to run ($PAGER, else less), or None for none (PAGER empty or `cat`, or
    the pager not found)."""
    text = env.get("PAGER")
    if text is None:
        text = DEFAULT_PAGER
    try:
        argv = shlex.split(text)
    except ValueError:
        return None
    if not argv or argv[0] == "cat" or shutil.which(argv[0]) is None:
        return None
    if os.path.basename(argv[0]) == "less" and "LESS" not in env and len(argv) == 1:
        argv.append("-" + LESS_DEFAULT)
    return argv


def page(text: str) -> None:
    """Show `text` through the pager on a terminal; print it where there is none."""
    argv = pager_command(dict(os.environ))
    if argv is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
    except OSError:
        sys.stdout.write(text)
        return
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            continue  # Ctrl-C belongs to the pager


def show(
    request_id: Annotated[
        str, typer.Argument(metavar="ID", help="The request id from `shield pending`.")
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the request as JSON (the shape of pending --json)."),
    ] = False,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Print straight to the terminal.")
    ] = False,
    spool: SpoolOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """Show one held request in full, with what will actually run.

    The full panel (command, why, target, agent, age, digest, preview, risk, every pinned and
    sealed input), then the command that will run, the preview's diff against the live objects, and the full
    text of what it reads: snapshotted manifests, piped stdin, values files, and the saved
    plan's `terraform show`. All of it is in the request, covered by the digest that
    `shield approve` signs. Flags a failed preview (with the tool's raw output), decisions the
    agent's shim refused, and a key the agent does not trust. Paged on a terminal ($PAGER,
    else less; --no-pager or PAGER=cat to print).

    Example: shield show k7m2pq
    """
    req, status, modified, notes = load(request_id, spool, server, token_file, cacert)
    if as_json:
        item = to_dict(req)
        item["status"] = "modified" if modified and status == "pending" else status
        typer.echo(json.dumps(item, indent=2))
        return
    parts = render(req, status, modified, notes, own_fingerprint(home_dir()), time.time())
    console = Console(highlight=False)
    if not console.is_terminal or no_pager:
        for part in parts:
            console.print(part, soft_wrap=isinstance(part, Text))
        return
    buffer = io.StringIO()
    paged = Console(file=buffer, force_terminal=True, width=console.width, highlight=False)
    if console.color_system is None:
        paged = Console(file=buffer, width=console.width, highlight=False, no_color=True)
    for part in parts:
        paged.print(part, soft_wrap=isinstance(part, Text))
    page(buffer.getvalue())


def register(app: typer.Typer) -> None:
    app.command("show")(show)
