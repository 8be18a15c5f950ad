"""The approval relay (`shield serve`) as a transport of the shim (cold; standard library).

`publish` hands the request to a worker thread, which submits it and then long-polls the relay
for signed statements on it; each one becomes a `Delivery` that `poll` hands to the waiting
code, which verifies it like any other (the relay is not trusted: it can delay or drop, never
approve). While the relay cannot be reached the worker says so once on stderr, with the request
id, and keeps trying until the hold ends; the other channels stay live all along. A relay that
forgot the request (a new database) gets it again. `close` tells the relay how the hold ended.

Settings are baked into the shim at install (`shield install --server URL --token-file F`):
`{"url": ..., "token_file": ..., "cacert": ...}`. Nothing in the agent's environment changes them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from shim.approval.client import Client, RelayError, Unreachable, path_id, read_token
from shim.approval.refusal import refusal_note
from shim.approval.request import HeldRequest, to_dict
from shim.approval.transport import Delivery, Verdict
from shim.clock import now_iso

LONG_POLL_S = 20.0
FIRST_ANSWER_S = 2.0  # publish waits this long for the first submit, for the agent's message
MAX_PAUSE_S = 5.0
MAX_REFUSED = 20  # refused deliveries before the relay is ignored for this hold
BATCH = 10  # deliveries handed to the waiting code per poll

Tell = Callable[[str, str], None]  # (message, hint) on the agent's stderr
LogFn = Callable[[dict[str, Any]], object]


class RemoteTransport:
    channel = "server"
    blocking = True

    def __init__(self, settings: dict[str, Any], req: HeldRequest, tell: Tell, log: LogFn) -> None:
        self.settings = settings
        self.req = req
        self.tell = tell
        self.log = log
        self.url = str(settings.get("url") or "")
        self.link = f"{self.url}/r/{req.id}"
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.notes: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.first = threading.Event()
        self.submitted = False
        self.refused = 0
        self.poller: Client | None = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ Transport
    def publish(self) -> None:
        """Start the worker; wait briefly for its first submit so the agent's stderr says
        where the request is (or that the relay is unreachable) before the wait starts."""
        try:
            token = read_token(str(self.settings.get("token_file") or ""))
            self.poller = Client(self.url, token, self.settings.get("cacert"))
        except RelayError as exc:
            self._give_up(exc.message)
            return
        self.thread = threading.Thread(target=self._work, name="shield-relay", daemon=True)
        self.thread.start()
        self.first.wait(FIRST_ANSWER_S)

    def poll(self, timeout: float) -> list[Delivery]:
        """What the worker brought in; waits up to `timeout` for the first item. Never more
        than the refusals left before the relay is ignored (a relay cannot fill the log)."""
        self._flush_notes()
        room = min(BATCH, MAX_REFUSED - self.refused)
        out: list[Delivery] = []
        if room <= 0:
            return out
        try:
            out.append(self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait())
            while len(out) < room:
                out.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def reject(self, delivery: Delivery, why: str) -> None:
        """Count refusals (each was logged): a relay that keeps sending bad decisions is
        ignored for the rest of this hold. Each one is noted on the relay, for the approvers'
        `shield pending` and `shield show` (sent from a thread of its own: a slow relay never
        slows the wait)."""
        self.refused += 1
        self._tell_relay(refusal_note(delivery.decision, why, self.channel, now_iso()))
        if self.refused == MAX_REFUSED:
            self.stop.set()
            self._abort()
            self.tell(
                f"the approval server sent {MAX_REFUSED} decisions for request {self.req.id} "
                "that do not verify; ignoring it for this request",
                "tell your operator: the server may be compromised",
            )
            self.log({"event": "security", "request": self.req.id, "detail": "relay ignored"})

    def close(self, verdict: Verdict) -> None:
        self.stop.set()
        self._abort()
        self._flush_notes()
        if not self.submitted or self.poller is None:
            return
        outcome = "cancelled" if verdict.outcome == "interrupted" else verdict.outcome
        client = Client(self.url, self.poller.token, self.settings.get("cacert"), timeout=2.0)
        body = {"outcome": outcome, "reason": verdict.reason, "channel": verdict.channel}
        if verdict.approver:
            body["approver"] = verdict.approver
        try:
            client.call("POST", f"/api/v1/requests/{path_id(self.req.id)}/withdraw", body)
        except RelayError:
            pass
        finally:
            client.close()

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        assert self.poller is not None
        after, pause, down = 0, 1.0, False
        while not self.stop.is_set():
            try:
                if not self.submitted:
                    if not self._submit():
                        return
                    if down:
                        self._note(f"reached {self.url} again", event="relay-reached")
                    down, pause = False, 1.0
                    continue
                asked = time.monotonic()
                got, after = self._wait(after)
                if got is None:  # the relay forgot the request: submit it again
                    self.submitted = False
                    self.stop.wait(1.0)
                    continue
                if down:
                    self._note(f"reached {self.url} again", event="relay-reached")
                down, pause = False, 1.0
                if not got and time.monotonic() - asked < LONG_POLL_S / 2:
                    self.stop.wait(1.0)  # answered early with nothing: do not spin
            except Unreachable as exc:
                if not down:
                    self._unreachable(exc.message)
                down = True
                self.first.set()
                self.stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_S)
            except RelayError as exc:
                self._give_up(exc.message)
                return

    def _submit(self) -> bool:
        """Submit the request; False when the relay refused it for good (told, logged)."""
        assert self.poller is not None
        status, data = self.poller.call("POST", "/api/v1/requests", to_dict(self.req))
        if status in (200, 201):
            self.submitted = True
            if isinstance(data, dict) and isinstance(data.get("url"), str):
                self.link = data["url"]
            if not self.first.is_set():
                self.tell(f"request {self.req.id} is on the approval server: {self.link}", "")
                self.first.set()
            return True
        if status >= 500:
            raise Unreachable(f"{self.url} answered HTTP {status}")
        message = data.get("error") if isinstance(data, dict) else None
        self._give_up(f"the approval server refused request {self.req.id}: {message or status}")
        return False

    def _wait(self, after: int) -> tuple[list[Delivery] | None, int]:
        """One long poll: (deliveries, next cursor); None when the relay has no such request."""
        assert self.poller is not None
        path = (
            f"/api/v1/requests/{path_id(self.req.id)}/decisions?after={after}&wait={LONG_POLL_S:g}"
        )
        status, data = self.poller.call("GET", path, timeout=LONG_POLL_S + 15)
        if status == 404:
            return None, after
        if status >= 500:
            raise Unreachable(f"{self.url} answered HTTP {status}")
        if status != 200:
            message = data.get("error") if isinstance(data, dict) else status
            raise RelayError(f"the approval server refused to wait on {self.req.id}: {message}")
        items = data.get("decisions") if isinstance(data, dict) else None
        if not isinstance(items, list):
            self.inbox.put(Delivery(self.channel, "answer", error="relay answer is malformed"))
            return [], after
        got: list[Delivery] = []
        for item in items:
            seq = item.get("seq") if isinstance(item, dict) else None
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= after:
                got.append(Delivery(self.channel, "answer", error="relay sent a malformed item"))
                continue
            after = seq
            got.append(Delivery(self.channel, str(seq), decision=item.get("decision")))
        for delivery in got:
            self.inbox.put(delivery)
        return got, after

    def _tell_relay(self, note: dict[str, str]) -> None:
        if not self.submitted or self.poller is None:
            return
        client = Client(self.url, self.poller.token, self.settings.get("cacert"), timeout=2.0)
        path = f"/api/v1/requests/{path_id(self.req.id)}/refusals"

        def send() -> None:
            try:
                client.call("POST", path, note)
            except RelayError:
                pass
            finally:
                client.close()

        threading.Thread(target=send, name="shield-relay-note", daemon=True).start()

    # ------------------------------------------------------------------ helpers
    def _unreachable(self, why: str) -> None:
        if self.stop.is_set():
            return
        self.tell(
            f"cannot reach the approval server for request {self.req.id} ({why}); "
            "still waiting on the other channels, and trying the server again",
            f"an approver can still decide it where the spool reaches: shield approve {self.req.id}",
        )
        self._note(why, event="relay-unreachable")

    def _give_up(self, why: str) -> None:
        if self.stop.is_set():
            return
        self.tell(f"{why}; waiting on the other channels only", "tell your operator")
        self._note(why, event="relay-error")
        self.first.set()

    def _note(self, detail: str, event: str) -> None:
        self.notes.put({"event": event, "request": self.req.id, "detail": detail})

    def _flush_notes(self) -> None:
        """Log what the worker noted (logging happens on the waiting thread only)."""
        while True:
            try:
                note = self.notes.get_nowait()
            except queue.Empty:
                return
            self.log(note)

    def _abort(self) -> None:
        """Cut the worker's long poll short (it is a daemon thread either way)."""
        conn = self.poller.conn if self.poller is not None else None
        sock = getattr(conn, "sock", None)
        if sock is not None:
            import socket

            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay_settings(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The relay settings baked into a shim's config, or None."""
    server = cfg.get("server")
    if isinstance(server, dict) and server.get("url") and server.get("token_file"):
        return server
    return None
