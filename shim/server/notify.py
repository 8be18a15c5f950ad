"""Tell people a request is held, decided or expired: Slack and a generic webhook (cold).

Configured on the server (`shield serve --slack-webhook URL --webhook URL --webhook-secret-file
F`, or the same keys in `<home>/serve.json`). Sending happens in one worker thread fed by a
queue: a slow or failing receiver never delays a hold or an answer. Each message is tried a few
times with a growing pause, and every failure is logged on the server's stderr.

The generic webhook POSTs JSON and signs it: `X-Shield-Timestamp: <unix seconds>` and
`X-Shield-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. A receiver
recomputes it over the raw body, compares in constant time, and rejects old timestamps.
Notifications say what happened; they carry no authority (approvals are signed by humans).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from shim.approval.show import command_line, context_line, printable
from shim.clock import now_iso
from shim.server.store import RequestRow

log = logging.getLogger("shield.serve")

TITLES = {
    "held": "Held for approval",
    "approved": "Approved",
    "denied": "Denied",
    "expired": "Expired without a decision",
    "cancelled": "Withdrawn by the agent",
}


@dataclass(frozen=True)
class NotifyConfig:
    public_url: str
    slack_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: bytes | None = None
    tries: int = 3
    pause_s: float = 0.5
    timeout_s: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.slack_url or self.webhook_url)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Shield-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def request_url(public_url: str, rid: str) -> str:
    return f"{public_url.rstrip('/')}/r/{rid}"


def event_payload(event: str, row: RequestRow, public_url: str) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    outcome = json.loads(row.outcome) if row.outcome else None
    return {
        "event": event,
        "id": row.id,
        "agent": row.agent,
        "status": row.status,
        "url": request_url(public_url, row.id),
        "time": now_iso(),
        "outcome": outcome,
        "request": json.loads(row.body),
    }


def _plain(text: str, limit: int = 1900) -> dict[str, Any]:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return {"type": "plain_text", "text": text or "-", "emoji": False}


def slack_card(event: str, row: RequestRow, public_url: str) -> dict[str, Any]:
    """A Block Kit message: everything the agent wrote goes out as plain text (escaped for
    the terminal too), so it cannot turn into links or mentions in Slack."""
    req = json.loads(row.body)
    outcome = json.loads(row.outcome) if row.outcome else {}
    command = command_line([str(req.get("tool", "")), *map(str, req.get("argv") or [])])
    context = context_line({str(k): str(v) for k, v in (req.get("context") or {}).items()})
    preview = req.get("preview") if isinstance(req.get("preview"), dict) else {}
    url = request_url(public_url, row.id)
    fields = [
        _plain(f"Agent: {printable(row.agent)}"),
        _plain(f"Risk: {printable(str(req.get('risk') or '-'))}"),
        _plain(f"Target: {context}"),
        _plain(f"Rule: {printable(str(req.get('rule') or '-'))}"),
    ]
    if event != "held" and outcome:
        who = outcome.get("approver") or "-"
        fields.append(
            _plain(f"By: {printable(str(who))} ({printable(str(outcome.get('channel') or '-'))})")
        )
        if outcome.get("reason"):
            fields.append(_plain(f"Reason: {printable(str(outcome['reason']))}"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{TITLES.get(event, event)}: {command}", 150)},
        {"type": "section", "text": _plain(command, 2900)},
        {"type": "section", "fields": fields},
    ]
    summary = printable(str(preview.get("summary") or "")) if preview else ""
    if summary:
        blocks.append({"type": "section", "text": _plain(f"Preview: {summary}", 2900)})
    blocks.append(
        {
            "type": "context",
            "elements": [_plain(f"request {row.id} · expires {req.get('expires', '?')}")],
        }
    )
    blocks.append(
        {
            "type": "actions",
            "elements": [{"type": "button", "text": _plain("Open request"), "url": url}],
        }
    )
    return {
        "text": f"shield: {TITLES.get(event, event)}: {command} (request {row.id})",
        "blocks": blocks,
    }


class Notifier:
    """A queue and one worker thread that sends each event to every configured receiver."""

    def __init__(self, cfg: NotifyConfig) -> None:
        self.cfg = cfg
        self.queue: queue.Queue[tuple[str, RequestRow] | None] = queue.Queue()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.cfg.enabled:
            self.thread = threading.Thread(target=self._run, name="shield-notify", daemon=True)
            self.thread.start()

    def event(self, event: str, row: RequestRow) -> None:
        """Queue a notification; returns at once."""
        if self.thread is not None:
            self.queue.put((event, row))

    def close(self, wait_s: float = 5.0) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout=wait_s)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            event, row = item
            try:
                self._send_all(event, row)
            except Exception:  # noqa: BLE001 - the worker must outlive one bad message
                log.exception("notify: %s for request %s failed", event, row.id)

    def _send_all(self, event: str, row: RequestRow) -> None:
        cfg = self.cfg
        if cfg.slack_url:
            body = json.dumps(slack_card(event, row, cfg.public_url)).encode()
            self._deliver("slack", cfg.slack_url, body, {}, row.id, event)
        if cfg.webhook_url:
            body = json.dumps(event_payload(event, row, cfg.public_url)).encode()
            headers: dict[str, str] = {}
            if cfg.webhook_secret:
                stamp = str(int(time.time()))
                headers["X-Shield-Timestamp"] = stamp
                headers["X-Shield-Signature"] = sign(cfg.webhook_secret, stamp, body)
            self._deliver("webhook", cfg.webhook_url, body, headers, row.id, event)

    def _deliver(
        self, name: str, url: str, body: bytes, headers: dict[str, str], rid: str, event: str
    ) -> bool:
        pause = self.cfg.pause_s
        for attempt in range(1, self.cfg.tries + 1):
            why = _post(url, body, headers, self.cfg.timeout_s)
            if why is None:
                return True
            if attempt < self.cfg.tries:
                log.warning(
                    "notify: %s for %s %s failed (try %d of %d): %s; retrying in %.1fs",
                    name, event, rid, attempt, self.cfg.tries, why, pause,
                )  # fmt: skip
                time.sleep(pause)
                pause *= 2
            else:
                log.error(
                    "notify: %s for %s %s failed %d times, giving up: %s",
                    name, event, rid, self.cfg.tries, why,
                )  # fmt: skip
        return False


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> str | None:
    """POST `body`; None on a 2xx answer, else why not."""
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "agent-shield", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URL
            resp.read(65536)
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}"
