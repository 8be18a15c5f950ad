"""Wait for a held request's decision, from whichever transport brings it (cold).

The first valid decision wins; a rule with `approvals: N` (carried in the signed request) needs
verified approvals of the same digest from N distinct approvers, and one denial still denies. A
signed decision (Ed25519, or a passkey's WebAuthn assertion: shim.approval.passkey) counts
only when it verifies against the shim's own copy of the request and trust store, and the used
store had not seen it; anything else is logged as a `security` event, handed back to its
transport to put aside, and the wait goes on. Past the deadline nothing is read: the request
expires as a denial.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shim.approval.decision import VERDICTS, decision_hash, verify_decision
from shim.approval.passkey import Passkey, is_passkey_decision, verify_passkey_decision
from shim.approval.request import HeldRequest
from shim.approval.transport import Delivery, Transport, Verdict
from shim.approval.used import commit_sign_count, commit_used, load_sign_counts, load_used
from shim.clock import parse_iso
from shim.keys import PublicKey

MAX_APPROVALS = 10
LogFn = Callable[[dict[str, Any]], object]  # the return value is ignored


class Waiter:
    """The state of one hold: its transports, the keys it trusts, what it has accepted."""

    def __init__(
        self,
        req: HeldRequest,
        transports: Sequence[Transport],
        trusted: dict[str, PublicKey],
        used_path: str,
        log: LogFn,
        clock_skew_s: float,
        poll_s: float,
        passkeys: dict[str, Passkey] | None = None,
    ) -> None:
        self.req = req
        self.transports = list(transports)
        self.trusted = trusted
        self.passkeys = passkeys or {}
        self.used_path = used_path
        self.used = load_used(used_path)
        self.counts_path = os.path.join(os.path.dirname(used_path), "passkey-counts")
        if self.passkeys:
            warm_up_webauthn()
        self.log = log
        self.skew = clock_skew_s
        self.poll_s = max(0.001, poll_s)
        self.closed = False
        self.needed = approvals_needed(req)
        self.approvals: dict[str, str] = {}  # approver name -> key fingerprint, in order

    def run(self, deadline: float, caught: list[int]) -> Verdict:
        """Poll every transport until a decision, the deadline or a caught signal."""
        while True:
            if caught:
                return self.cancel(caught[0])
            left = deadline - time.monotonic()
            if left <= 0:
                return self.expire()  # fail closed: past the deadline nothing is read
            verdict = self.poll_once(min(self.poll_s, left))
            if verdict is not None:
                return self.finish(verdict)

    def poll_once(self, step: float) -> Verdict | None:
        """One round over the transports, spending about `step` seconds in the blocking ones
        (or asleep when there is none)."""
        blocking = [t for t in self.transports if t.blocking]
        for transport in self.transports:
            wait_s = step / len(blocking) if transport.blocking else 0.0
            for delivery in transport.poll(wait_s):
                verdict = self.judge(transport, delivery)
                if verdict is not None:
                    return verdict
        if not blocking:
            time.sleep(step)
        return None

    def judge(self, transport: Transport, delivery: Delivery) -> Verdict | None:
        """The verdict a delivery carries, when it may decide this request; else None."""
        if delivery.error:
            self.refuse(transport, delivery, delivery.error)
            return None
        if delivery.verdict is not None:
            if delivery.verdict.outcome == "approved" and self.needed > 1:
                why = f"this request needs {self.needed} signed approvals; a typed code is not one"
                self.log({"event": "note", "request": self.req.id, "detail": why})
                transport.reject(delivery, why)
                return None
            return self.record(delivery.verdict, {})
        decision = delivery.decision
        checked = self.check(decision)
        if isinstance(checked, str):
            self.refuse(transport, delivery, checked)
            return None
        mark, fields, count = checked
        if not commit_used(self.used_path, mark):
            self.refuse(transport, delivery, "decision was used before (replay)")
            return None
        self.used.add(mark)
        if count is not None and not commit_sign_count(self.counts_path, fields["key"], count):
            why = f"passkey sign count {count} is not above the last one seen (a cloned passkey?)"
            self.refuse(transport, delivery, why)
            return None
        outcome = VERDICTS[decision["verdict"]]
        if outcome == "approved" and self.needed > 1:
            return self.count(decision, delivery.channel, fields)
        verdict = Verdict(outcome, decision["approver"], decision["reason"], None, delivery.channel)
        return self.record(verdict, fields)

    def check(self, decision: Any) -> tuple[str, dict[str, Any], int | None] | str:
        """(used-store mark, log fields, passkey sign count) of a decision that verifies;
        else why it does not."""
        now = time.time()
        if is_passkey_decision(decision):
            counts = load_sign_counts(self.counts_path)
            ok, why, got = verify_passkey_decision(
                decision, self.req, self.passkeys, now, self.skew, self.used, counts
            )
            if not ok or got is None:
                return why
            fields = {"key": got.passkey.fingerprint, "signer": "passkey"}
            return got.mark, fields, got.sign_count
        ok, why = verify_decision(decision, self.req, self.trusted, now, self.skew, self.used)
        if not ok:
            return why
        return decision_hash(decision), {"key": decision["key"]}, None

    def count(
        self, decision: dict[str, Any], channel: str, signed: dict[str, Any]
    ) -> Verdict | None:
        """One more verified approval toward a quorum: approved once `needed` distinct
        approvers signed this request's digest (one denial, judged before, denies)."""
        name = decision["approver"]
        fields = {"request": self.req.id, "approver": name, "channel": channel}
        if name in self.approvals:
            self.log({"event": "note", **fields, "detail": f"{name} approved already"})
            return None
        self.approvals[name] = signed["key"]
        if len(self.approvals) < self.needed:
            have = f"{len(self.approvals)} of {self.needed}"
            self.log({"event": "approval", **fields, **signed, "detail": have})
            return None
        names = list(self.approvals)
        verdict = Verdict("approved", ", ".join(names), decision["reason"], None, channel)
        return self.record(verdict, {**signed, "approvers": names})

    def record(self, verdict: Verdict, fields: dict[str, Any]) -> Verdict:
        self.log(
            {
                "event": verdict.outcome,
                "request": self.req.id,
                "approver": verdict.approver,
                "reason": verdict.reason,
                "channel": verdict.channel,
                **fields,
            }
        )
        return verdict

    def refuse(self, transport: Transport, delivery: Delivery, why: str) -> None:
        self.log({"event": "security", "request": self.req.id, "detail": why})
        transport.reject(delivery, why)

    def expire(self) -> Verdict:
        reason = f"no decision before {self.req.expires}"
        if self.approvals:
            reason += f" ({len(self.approvals)} of {self.needed} approvals)"
        channels = [t.channel for t in self.transports]
        self.log(
            {"event": "expired", "request": self.req.id, "reason": reason, "channels": channels}
        )
        return self.finish(Verdict("expired", None, reason))

    def cancel(self, signum: int) -> Verdict:
        reason = f"{signal.Signals(signum).name} while waiting for a decision"
        verdict = self.finish(Verdict("interrupted", None, reason, signum))
        self.log({"event": "cancelled", "request": self.req.id, "signal": signum, "reason": reason})
        return verdict

    def finish(self, verdict: Verdict) -> Verdict:
        """Tell every transport how the hold ended (each withdraws the request)."""
        if not self.closed:
            self.closed = True
            close_all(self.transports, verdict)
        return verdict


def approvals_needed(req: HeldRequest) -> int:
    """How many distinct approvers must sign (the rule's `approvals`, carried in the signed
    request); 1 when absent or malformed."""
    value = req.extra.get("approvals")
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_APPROVALS:
        return value
    return 1


def warm_up_webauthn() -> None:
    """Import the WebAuthn library in the background while the human decides (about 0.1 s of
    imports that would otherwise come between the click on Approve and the command starting)."""

    def load() -> None:
        try:
            import webauthn  # noqa: F401
        except Exception:  # noqa: BLE001 - verifying will import it again and say why
            pass

    threading.Thread(target=load, name="shield-webauthn-import", daemon=True).start()


def close_all(transports: Sequence[Transport], verdict: Verdict) -> None:
    for transport in transports:
        try:
            transport.close(verdict)
        except Exception:  # noqa: BLE001 - one channel's failure must not keep a hold open
            pass


def wait_for_decision(
    req: HeldRequest,
    transports: Sequence[Transport],
    *,
    trusted: dict[str, PublicKey],
    used_path: str,
    log: LogFn,
    clock_skew_s: float = 30.0,
    poll_s: float = 0.02,
    publish: Sequence[Transport] = (),
    caught: list[int] | None = None,
    passkeys: dict[str, Passkey] | None = None,
) -> Verdict:
    """Block until a valid decision from one of `transports`, the request's deadline, or
    SIGINT/SIGTERM. The transports in `publish` (a prompt, a notify hook) are published here,
    once the signal handlers are in place, so a Ctrl-C as the prompt appears still withdraws
    the request; the others were published by the caller, who records signals into `caught`
    (`recording_signals`) from before it published them: a signal already there withdraws
    the request at once. Exceptions from `log` propagate (the request is withdrawn first)."""
    remaining = parse_iso(req.expires) - time.time()
    deadline = time.monotonic() + max(0.0, remaining)
    caught = [] if caught is None else caught
    waiter: Waiter | None = None
    with recording_signals(caught):
        try:
            waiter = Waiter(
                req, transports, trusted, used_path, log, clock_skew_s, poll_s, passkeys=passkeys
            )
            for transport in publish:
                transport.publish()
            return waiter.run(deadline, caught)
        finally:
            if waiter is None or not waiter.closed:
                close_all(transports, Verdict("interrupted", None, "the wait failed"))


@contextmanager
def recording_signals(caught: list[int]) -> Iterator[None]:
    """SIGINT and SIGTERM are appended to `caught` instead of interrupting, until the block
    ends (the previous handlers come back). Outside the main thread nothing changes: the
    caller handles signals there."""

    def on_signal(signum: int, frame: object) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:
        pass  # not the main thread
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
