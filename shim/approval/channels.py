"""Which transports a held request goes out through, in order (cold).

The spool always (the first: a request it cannot take is not held at all), then the approval
relay when the shim was installed with `--server`, then a notify hook and the TTY prompt where
the operator turned them on in the home's config. A new transport is one module implementing
`shim.approval.transport.Transport`, plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.approval.notify import NotifyHook
from shim.approval.prompt import TtyTransport
from shim.approval.remote import RemoteTransport
from shim.approval.request import HeldRequest
from shim.approval.spool import SpoolTransport
from shim.approval.transport import Transport


def _quiet(message: str, hint: str) -> None:
    pass


def transports_for(
    req: HeldRequest,
    spool: str,
    *,
    tty: bool = False,
    notify: list[str] | str | None = None,
    server: dict[str, Any] | None = None,
    tell: Callable[[str, str], None] = _quiet,
    log: Callable[[dict], object],
) -> list[Transport]:
    """The transports for `req`, not yet published; the first one is the spool. `server`:
    the relay settings baked into the shim; `tell(message, hint)` reaches the agent."""
    out: list[Transport] = [SpoolTransport(spool, req)]
    if server:
        out.append(RemoteTransport(server, req, tell, log))
    if notify:
        out.append(NotifyHook(req, notify, log))
    # off unless the operator turns it on: an agent can make its own pseudo-terminal and
    # answer a prompt there, so only a signed decision is safe by default
    if tty:
        out.append(TtyTransport(req, log))
    return out
