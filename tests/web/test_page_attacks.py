"""Attacks on passkey approvals, from a compromised server or anyone who can post to it or write
its database (issue 12). alice's real passkey (Chromium's virtual authenticator) signs what the
attacker's script asks it to; each assertion that does not fit is refused by the shim, logged
as a `security` event, and runs nothing.

The attacker posts with an approver's token (what a compromised server relays looks the same to
the shim) or writes the server's SQLite database directly."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shim import canon
from shim.approval.passkey import DECISION_TYPE
from shim.clock import now_iso
from tests.conftest import World
from tests.server.conftest import events, finish, start, wait_until
from tests.web.browser import Person
from tests.web.conftest import Site


class Attacker:
    """Posts and reads on the relay with alice's approver token; writes its database."""

    def __init__(self, site: Site, token: Path) -> None:
        self.site = site
        self.token = token.read_text().strip()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.site.relay.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def card(self, rid: str) -> dict[str, Any]:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            _, feed = self.call("GET", "/api/v1/page/feed")
            for card in feed["cards"]:
                if card["id"] == rid:
                    return card
            time.sleep(0.05)
        raise AssertionError(f"no card {rid}")

    def post(self, rid: str, decision: dict[str, Any]) -> int:
        status, _ = self.call("POST", f"/api/v1/requests/{rid}/decisions", decision)
        return status

    def insert(self, rid: str, decision: dict[str, Any]) -> None:
        """Write a decision into the server's database, past every check the server makes."""
        db = self.site.relay.home / "server" / "shield.db"
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO decisions (kind, request_id, agent, body, posted_by, received) "
                "VALUES ('decision', ?, 'test-bot', ?, 'alice', ?)",
                (rid, canon.encode(decision), time.time()),
            )


@pytest.fixture
def attacker(site: Site, alice_web: Person) -> Attacker:
    return Attacker(site, site.relay.home.parent / f"approver-alice-{site.relay.port}.token")


def body_for(card: dict[str, Any], verdict: str = "approve", approver: str = "alice") -> dict:
    now = time.time()
    return {
        "type": DECISION_TYPE,
        "id": card["id"],
        "digest": card["digest"],
        "verdict": verdict,
        "approver": approver,
        "time": now_iso(now),
        "expires": now_iso(now + 300),
        "reason": "",
        "nonce": os.urandom(16).hex(),
    }


def sign(person: Person, body: dict[str, Any], uv: str = "required") -> dict[str, Any]:
    """alice's passkey's assertion over `body`, asked for by a script on the page she has open."""
    import hashlib

    challenge = hashlib.sha256(canon.encode(body).encode()).digest()
    creds = [
        c["credentialId"].replace("+", "-").replace("/", "_").rstrip("=")
        for c in person.credentials()
    ]
    return {**body, **person.assertion(challenge, "localhost", creds, uv)}


def refused(world: World, rid: str, words: str) -> dict[str, Any]:
    """The security event the shim logged for `rid` whose detail says `words`."""

    def found() -> list[dict[str, Any]]:
        return [
            e for e in events(world, "security") if e["request"] == rid and words in e["detail"]
        ]

    wait_until(found, what=f"a security event on {rid} saying {words!r}")
    return found()[0]


def held(world: World, count: int) -> str:
    wait_until(lambda: len(events(world, "held")) >= count, what="the call to be held")
    return events(world, "held")[count - 1]["request"]


def end(person: Person, proc: Any, rid: str) -> None:
    """alice denies from the page; the held call exits 126 having run nothing."""
    person.decide(rid, "deny", "attack test over")
    code, _, _ = finish(proc)
    assert code == 126


def test_an_assertion_made_for_another_request_is_refused(
    world: World, site: Site, alice_web: Person, attacker: Attacker
) -> None:
    proc_a = start(world, "kubectl", "delete", "pod", "a")
    a = attacker.card(held(world, 1))
    proc_b = start(world, "kubectl", "delete", "pod", "b")
    b = attacker.card(held(world, 2))
    for_a = sign(alice_web, body_for(a))
    # moved to B under B's id and digest: the server takes it (shape), the shim does not
    assert attacker.post(b["id"], {**for_a, "id": b["id"], "digest": b["digest"]}) == 201
    refused(world, b["id"], "challenge")
    # A's decision as it is, slipped into B's stream through the database
    attacker.insert(b["id"], for_a)
    refused(world, b["id"], f"decision is for request '{a['id']}', not {b['id']}")
    assert world.records() == [] and proc_b.poll() is None
    # made for A, it approves A
    assert attacker.post(a["id"], for_a) == 201
    code, _, _ = finish(proc_a)
    assert code == 0
    assert world.argvs() == [[b"delete", b"pod", b"a"]]
    end(alice_web, proc_b, b["id"])


def test_a_replayed_assertion_is_refused(
    world: World, site: Site, alice_web: Person, attacker: Attacker
) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(
        "tool: kubectl\nrules:\n"
        "  - id: team/two-person-delete\n    decision: ask\n    approvals: 2\n"
        "    reason: deleting needs two people\n    match: {verb: delete}\n"
        "    examples: {match: ['delete pod x'], no_match: ['get pods']}\n"
    )
    proc = start(world, "kubectl", "delete", "pod", "web")
    rid = held(world, 1)
    alice_web.decide(rid, "approve")
    wait_until(lambda: events(world, "approval"), what="alice's approval to be counted")
    assert events(world, "approval")[0]["detail"] == "1 of 2"
    # the same signed approval again: the used store remembers it
    _, stored = attacker.call("GET", f"/api/v1/requests/{rid}")
    assert attacker.post(rid, stored["decisions"][0]["decision"]) == 201
    refused(world, rid, "used before (replay)")
    assert world.records() == [] and proc.poll() is None
    end(alice_web, proc, rid)


def test_an_assertion_from_an_untrusted_passkey_is_refused(
    world: World, site: Site, alice_web: Person, browser: object
) -> None:
    # bob enrolled on the server, but no operator trusted his credential in the agent's home
    bob = Person(browser)
    try:
        site.enroll(bob, "bob")
        bob.sign_in(site.base)
        proc = start(world, "kubectl", "delete", "pod", "web")
        rid = held(world, 1)
        bob.decide(rid, "approve")
        refused(world, rid, "untrusted passkey")
        assert world.records() == [] and proc.poll() is None
    finally:
        bob.close()
    end(alice_web, proc, rid)


def test_an_assertion_without_user_verification_is_refused(
    world: World, site: Site, alice_web: Person, attacker: Attacker
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    card = attacker.card(held(world, 1))
    alice_web.user_verified(False)
    decision = sign(alice_web, body_for(card), uv="discouraged")
    alice_web.user_verified(True)
    assert attacker.post(card["id"], decision) == 201
    refused(world, card["id"], "User verification is required")
    assert world.records() == [] and proc.poll() is None
    end(alice_web, proc, card["id"])


class Lookalike:
    """A page at another origin on the same host (http://localhost:OTHER): a phishing site
    under the attacker's control, where alice's passkey for `localhost` still signs."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = b"<!doctype html><title>shield</title><p>Approve held calls</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_assertion_made_at_another_origin_is_refused(
    world: World, site: Site, alice_web: Person, attacker: Attacker
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    card = attacker.card(held(world, 1))
    phish = Lookalike()
    try:
        alice_web.page.goto(phish.url)
        decision = sign(alice_web, body_for(card))
    finally:
        phish.close()
    assert attacker.post(card["id"], decision) == 201
    detail = refused(world, card["id"], "not at 'http://localhost:")["detail"]
    assert phish.url.rstrip("/") in detail
    assert world.records() == [] and proc.poll() is None
    alice_web.page.goto(site.base)
    end(alice_web, proc, card["id"])


def test_the_servers_database_saying_approved_runs_nothing(
    world: World, site: Site, alice_web: Person, attacker: Attacker
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="6"))
    card = attacker.card(held(world, 1))
    db = site.relay.home / "server" / "shield.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE requests SET status = 'approved', outcome = ? WHERE id = ?",
            (json.dumps({"approver": "alice", "channel": "server"}), card["id"]),
        )
    # and a decision that claims alice approved, signed by nobody's passkey
    forged = {**body_for(card), "credential": "A" * 43, "authenticator_data": "AAAA",
              "client_data_json": "e30", "signature": "AAAA"}  # fmt: skip
    attacker.insert(card["id"], forged)
    refused(world, card["id"], "untrusted passkey")
    code, _, err = finish(proc)
    assert code == 124, err
    assert world.records() == []
    assert events(world, "expired")[-1]["request"] == card["id"]
