"""Notifications from the relay: a Slack Block Kit card and a signed generic webhook, received
by a local HTTP server that checks the signature; failing receivers are retried and never hold
anything up (issue 11)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shim.server.notify import Notifier, NotifyConfig, sign, slack_card
from shim.server.store import RequestRow
from tests.conftest import World, shield
from tests.server.conftest import Approver, Relay, finish, install_with_relay, start, wait_until

SECRET = b"a-webhook-secret-of-some-length"


class Receiver:
    """A local webhook receiver. `fail` answers 500 that many times first; `hang` never
    answers. Webhook bodies are accepted only with a valid, fresh X-Shield-Signature."""

    def __init__(self, fail: int = 0, hang: bool = False) -> None:
        self.got: list[tuple[str, dict]] = []
        self.bad: list[str] = []
        self.tries = 0
        self.fail = fail
        self.hang = hang
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.tries += 1
                if outer.hang:
                    time.sleep(30)
                    return
                if outer.fail > 0:
                    outer.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if self.path == "/hook" and not outer.verified(self.headers, body):
                    outer.bad.append(self.path)
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.got.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def verified(headers, body: bytes) -> bool:
        stamp = headers.get("X-Shield-Timestamp", "")
        given = headers.get("X-Shield-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return False
        want = (
            "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        return hmac.compare_digest(want, given)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self, path: str) -> list[dict]:
        return [body for p, body in self.got if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_with_hooks(tmp_path: Path, receiver: Receiver) -> Relay:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    return Relay(
        tmp_path / "notify-server",
        None,
        "--webhook", f"{receiver.url}/hook",
        "--webhook-secret-file", str(secret),
        "--slack-webhook", f"{receiver.url}/slack",
        "--public-url", "https://shield.example",
    ).start()  # fmt: skip


def test_held_and_approved_calls_are_announced_signed_to_the_webhook_and_as_a_slack_card(
    world: World, tmp_path: Path
) -> None:
    receiver = Receiver()
    relay = serve_with_hooks(tmp_path, receiver)
    try:
        alice = Approver(tmp_path / "alice", relay, "alice")
        shield("trust", "add", alice.pub, home=world.home)
        install_with_relay(world, relay)
        proc = start(world, "kubectl", "-n", "prod", "delete", "pod", "web")
        item = alice.wait_for_request()
        wait_until(
            lambda: receiver.events("/hook") and receiver.events("/slack"), what="held notices"
        )
        held = receiver.events("/hook")[0]
        assert (held["event"], held["id"], held["agent"]) == ("held", item["id"], "test-bot")
        assert held["url"] == f"https://shield.example/r/{item['id']}"
        assert held["request"] == {k: v for k, v in item.items() if k != "status"}
        card = receiver.events("/slack")[0]
        text = json.dumps(card["blocks"])
        assert "kubectl -n prod delete pod web" in text
        assert item["id"] in text and "test-bot" in text and "namespace=prod" in text
        assert card["blocks"][-1]["elements"][0]["url"] == held["url"]
        alice.cli("approve", item["id"], "--reason", "go", "--yes")  # critical (prod)
        assert finish(proc)[0] == 0
        wait_until(lambda: len(receiver.events("/hook")) >= 2, what="the approved notice")
        done = receiver.events("/hook")[1]
        assert (done["event"], done["outcome"]["approver"], done["outcome"]["channel"]) == (
            "approved", "alice", "server",
        )  # fmt: skip
        assert receiver.bad == []
    finally:
        relay.stop()
        receiver.close()


def test_a_failing_receiver_is_retried_and_a_dead_one_never_holds_anything_up(
    world: World, tmp_path: Path
) -> None:
    receiver = Receiver(fail=2)
    relay = serve_with_hooks(tmp_path, receiver)
    try:
        alice = Approver(tmp_path / "alice", relay, "alice")
        shield("trust", "add", alice.pub, home=world.home)
        install_with_relay(world, relay)
        proc = start(world, "kubectl", "delete", "pod", "web")
        item = alice.wait_for_request()
        wait_until(lambda: receiver.events("/hook"), what="the retried notice")
        assert receiver.tries >= 3
        assert "retrying" in relay.log.read_text()
        receiver.hang = True  # from now on nothing answers: the decision still goes through
        alice.cli("approve", item["id"])
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        relay.stop()
        receiver.close()


def _row(outcome: dict | None = None) -> RequestRow:
    body = {
        "id": "k7m2pq", "agent": "bot", "tool": "kubectl", "argv": ["delete", "ns", "<@U1> \x1b[31m"],
        "cwd": "/", "context": {"context": "prod"}, "rule": "r", "reason": "x",
        "expires": "2030-01-01T00:00:00.000Z", "risk": "critical",
        "preview": {"summary": "delete 3 object(s)", "ok": True},
    }  # fmt: skip
    return RequestRow(
        "k7m2pq", "bot", "d", json.dumps(body), 0.0, 0.0, "pending", None,
        json.dumps(outcome) if outcome else None,
    )  # fmt: skip


def test_slack_card_carries_agent_text_as_escaped_plain_text() -> None:
    card = slack_card("held", _row(), "https://s.example")
    kinds = {b["type"] for b in card["blocks"]}
    assert kinds == {"header", "section", "context", "actions"}
    texts = json.dumps(card)
    assert "\\u001b" not in texts and "\\\\x1b" in texts  # escaped for humans, not raw
    for block in card["blocks"]:
        for element in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(element, dict) and "type" in element and element["type"].endswith("text"):
                assert element["type"] == "plain_text"  # no mrkdwn: no links or mentions
    assert "Risk: critical" in texts and "Preview: delete 3 object(s)" in texts


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"held"}'
    want = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "1700000000", body) == "sha256=" + want


def test_the_notifier_never_blocks_the_caller() -> None:
    cfg = NotifyConfig(
        public_url="http://x", webhook_url="http://127.0.0.1:9/none", tries=2, pause_s=0.5
    )
    notifier = Notifier(cfg)
    notifier.start()
    started = time.monotonic()
    for _ in range(20):
        notifier.event("held", _row())
    assert time.monotonic() - started < 0.5
    notifier.close(wait_s=0.1)


def test_an_expired_request_is_announced_once(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from shim.approval.request import new_request, to_dict
    from shim.server.app import Relay as App
    from shim.server.app import build_app
    from shim.server.auth import new_token, token_hash
    from shim.server.store import open_store

    receiver = Receiver()
    store = open_store(str(tmp_path / "relay.db"))
    token = new_token()
    store.add_principal("agent", "bot", token_hash(token), time.time())
    cfg = NotifyConfig(
        public_url="http://x", webhook_url=f"{receiver.url}/hook", webhook_secret=SECRET
    )
    try:
        with TestClient(build_app(App(store, cfg))) as client:
            req = to_dict(
                new_request(agent="bot", tool="kubectl", argv=["delete", "ns", "x"], cwd="/",
                            context={}, rule=None, reason="r", timeout_s=1)
            )  # fmt: skip
            r = client.post(
                "/api/v1/requests", json=req, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 201
            wait_until(
                lambda: [e for e in receiver.events("/hook") if e["event"] == "expired"],
                what="expired",
            )
        assert [e["event"] for e in receiver.events("/hook")] == ["held", "expired"]
        assert receiver.bad == []
    finally:
        receiver.close()
