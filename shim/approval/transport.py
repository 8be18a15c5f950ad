"""How a held request reaches approvers and their decisions come back: one small interface.

A transport publishes a held request (the spool writes a file, the server posts it, the TTY
prompt shows a panel, a notify hook runs a command) and then brings in whatever arrives for it
as `Delivery` items. None of them is trusted: the waiting code (`shim.approval.wait`) verifies
every signed decision against the shim's own copy of the request and its own trust store, so
it does not care which transport delivered it. A new transport is one new module that
implements `Transport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Verdict:
    """How a hold ended. `channel` names the transport of the deciding decision, "" otherwise."""

    outcome: str  # "approved" | "denied" | "expired" | "interrupted"
    approver: str | None = None
    reason: str = ""
    signal: int | None = None
    channel: str = ""


@dataclass(frozen=True)
class Delivery:
    """One thing a transport brought in for the held request.

    `decision`: a signed decision (parsed JSON, any shape: it is verified, not trusted).
    `error`: it arrived but could not be read (refused and logged as a security event).
    `verdict`: decided by a human present at this host's terminal (the TTY prompt's typed
    code); such a transport is on only where the operator turned it on.
    `ref`: the transport's own handle on it, for `reject`."""

    channel: str
    ref: str
    decision: Any = None
    error: str = ""
    verdict: Verdict | None = None


class Transport(Protocol):
    """One way to reach approvers. `blocking` transports can wait in `poll` (a terminal, a
    network stream); the others are polled without waiting."""

    channel: str

    @property
    def blocking(self) -> bool:
        """True when `poll` may wait (a terminal, a network stream)."""

    def publish(self) -> None:
        """Make the request visible to approvers. Raising means it could not be (the hold
        fails closed when no transport took it)."""

    def poll(self, timeout: float) -> list[Delivery]:
        """What arrived since the last poll; wait at most `timeout` seconds for something."""

    def reject(self, delivery: Delivery, why: str) -> None:
        """A delivery was refused (already logged): put it out of the way."""

    def close(self, verdict: Verdict) -> None:
        """The hold ended: withdraw the request and tell this channel's audience how."""
