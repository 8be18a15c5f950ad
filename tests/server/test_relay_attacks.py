"""The relay is not trusted: a compromised server, forged or misdirected decisions arriving
through it, and agents reaching for what is not theirs (issue 11). Each test is written from
the attacker's side and checks that nothing runs and that the shim logs what it refused."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shim.approval.decision import sign_decision
from shim.approval.request import new_request, to_dict
from tests.conftest import World
from tests.server.conftest import Approver, Relay, events, finish, start, wait_until


def db_path(relay: Relay) -> Path:
    return relay.home / "server" / "shield.db"


def server_writes(relay: Relay, sql: str, params: tuple = ()) -> None:
    """What an attacker who owns the server's database does: write rows directly."""
    with sqlite3.connect(db_path(relay)) as conn:
        conn.execute(sql, params)


def plant_decision(relay: Relay, rid: str, decision: Any) -> None:
    server_writes(
        relay,
        "INSERT INTO decisions (kind, request_id, agent, body, posted_by, received) "
        "VALUES ('decision', ?, 'test-bot', ?, 'mallory', ?)",
        (rid, json.dumps(decision), time.time()),
    )


def call_api(
    relay: Relay, token: Path, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        relay.url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token.read_text().strip()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_approved_row_written_into_the_servers_database_runs_nothing(
    world: World, relay: Relay, alice: Approver
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="4"))
    item = alice.wait_for_request()
    server_writes(relay, "UPDATE requests SET status = 'approved' WHERE id = ?", (item["id"],))
    code, _, _ = finish(proc)
    assert code == 124
    assert world.records() == []
    assert not events(world, "approved")


def test_another_requests_decision_replayed_by_the_server_is_refused_and_logged(
    world: World, relay: Relay, alice: Approver
) -> None:
    held = start(
        world, "kubectl", "delete", "pod", "victim", env=world.env(SHIELD_HOLD_TIMEOUT="6")
    )
    victim = alice.wait_for_request()
    other = start(world, "kubectl", "delete", "pod", "other")
    wait_until(lambda: len(alice.pending()) == 2, what="both requests")
    other_id = next(i["id"] for i in alice.pending() if i["id"] != victim["id"])
    alice.cli("approve", other_id)
    assert finish(other)[0] == 0
    with sqlite3.connect(db_path(relay)) as conn:
        (body,) = conn.execute(
            "SELECT body FROM decisions WHERE request_id = ?", (other_id,)
        ).fetchone()
    plant_decision(relay, victim["id"], json.loads(body))  # the server replays it for the victim
    code, _, _ = finish(held)
    assert code == 124
    assert [argv[-1] for argv in world.argvs()] == [b"other"]
    details = [e["detail"] for e in events(world, "security") if e["request"] == victim["id"]]
    assert any("copied from another request" in d for d in details), details


def test_decisions_with_a_bad_signature_digest_id_or_expiry_are_refused_even_from_the_server(
    world: World, relay: Relay, alice: Approver
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="8"))
    item = alice.wait_for_request()
    good = sign_decision(str(alice.home), item, "approve", "ok")
    bad_sig = {**good, "reason": "edited after signing"}
    other_content = {**item, "argv": ["delete", "pod", "something-else"]}
    wrong_digest = sign_decision(str(alice.home), other_content, "approve", "")
    other_id = new_request(
        agent="test-bot", tool="kubectl", argv=["delete", "pod", "web"], cwd=item["cwd"],
        context=item["context"], rule=item["rule"], reason=item["reason"], timeout_s=60,
    )  # fmt: skip
    wrong_id = sign_decision(str(alice.home), to_dict(other_id), "approve", "")
    expired = sign_decision(str(alice.home), item, "approve", "", ttl_s=1, now=time.time() - 3600)
    for decision in (bad_sig, wrong_digest, wrong_id, expired, "junk"):
        plant_decision(relay, item["id"], decision)
    code, _, _ = finish(proc)
    assert code == 124
    assert world.records() == []
    details = " | ".join(e["detail"] for e in events(world, "security"))
    assert "signature does not verify" in details
    assert "digest does not match" in details
    assert "copied from another request" in details
    assert "expired at" in details
    assert "not a JSON object" in details


def test_a_server_flooding_bad_decisions_is_ignored_after_a_bound(
    world: World, relay: Relay, alice: Approver
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="6"))
    item = alice.wait_for_request()
    for i in range(60):
        plant_decision(relay, item["id"], {"junk": i})
    code, _, err = finish(proc)
    assert code == 124
    assert "ignoring it for this request" in err
    refused = [e for e in events(world, "security") if e["request"] == item["id"]]
    assert 20 <= len(refused) <= 22  # bounded: the relay cannot fill the log


def test_an_agent_token_reaches_only_its_own_agents_requests(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    mine = tmp_path / "agent-test-bot.token"
    mine.write_text((world.home / "server-token").read_text())
    theirs = relay.token("agent", "other-bot")
    other = new_request(
        agent="other-bot", tool="kubectl", argv=["delete", "ns", "prod"], cwd="/",
        context={}, rule=None, reason="r", timeout_s=300,
    )  # fmt: skip
    assert call_api(relay, theirs, "POST", "/api/v1/requests", to_dict(other))[0] == 201
    rid = other.id
    # the agent's token, used by the agent against another agent's request
    assert call_api(relay, mine, "GET", "/api/v1/requests")[0] == 403
    assert call_api(relay, mine, "GET", f"/api/v1/requests/{rid}")[0] == 404
    assert call_api(relay, mine, "GET", f"/api/v1/requests/{rid}/decisions?wait=0")[0] == 404
    status, _ = call_api(
        relay, mine, "POST", f"/api/v1/requests/{rid}/withdraw", {"outcome": "cancelled"}
    )
    assert status == 404
    decision = sign_decision(str(alice.home), to_dict(other), "approve", "")
    assert call_api(relay, mine, "POST", f"/api/v1/requests/{rid}/decisions", decision)[0] == 403
    forged = new_request(
        agent="other-bot", tool="kubectl", argv=["get", "pods"], cwd="/",
        context={}, rule=None, reason="r", timeout_s=300,
    )  # fmt: skip
    status, answer = call_api(relay, mine, "POST", "/api/v1/requests", to_dict(forged))
    assert status == 403 and "other-bot" in answer["error"]
    # nothing changed: the other request is still pending, with no decision, and no new row
    status, state = call_api(relay, alice.token, "GET", f"/api/v1/requests/{rid}")
    assert (state["status"], state["decisions"]) == ("pending", [])
    with sqlite3.connect(db_path(relay)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1


def test_the_server_can_never_see_an_approver_key(relay: Relay, alice: Approver) -> None:
    # what the server keeps: token hashes, requests and decisions as posted; no key material
    with sqlite3.connect(db_path(relay)) as conn:
        dump = "\n".join(conn.iterdump())
    private = (alice.home / "keys" / "approver.key").read_text()
    token = alice.token.read_text().strip()
    assert token not in dump
    assert "PRIVATE KEY" not in dump and private not in dump


def test_a_server_showing_the_approver_another_command_gets_nothing_run(
    world: World, relay: Relay, alice: Approver
) -> None:
    from shim.approval.request import request_from_dict

    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="6"))
    item = alice.wait_for_request()
    # the server rewrites what approvers see: first a naive edit (the stored digest kept) ...
    shown = {k: v for k, v in item.items() if k != "status"}
    naive = {**shown, "argv": ["get", "pods"]}
    server_writes(
        relay, "UPDATE requests SET body = ? WHERE id = ?", (json.dumps(naive), item["id"])
    )
    assert alice.pending()[0]["status"] == "modified"
    refused = alice.cli("approve", item["id"], check=False)
    assert refused.returncode == 1 and "nothing was signed" in refused.stderr
    # ... then a consistent one: harmless-looking content with its own digest, same id
    harmless = {**shown, "argv": ["get", "pods"]}
    harmless["digest"] = request_from_dict(harmless).digest
    server_writes(
        relay,
        "UPDATE requests SET body = ?, digest = ? WHERE id = ?",
        (json.dumps(harmless), harmless["digest"], item["id"]),
    )
    signed = alice.cli("approve", item["id"])  # alice signs what she was shown ...
    assert "get pods" in signed.stdout
    code, _, _ = finish(proc)
    assert code == 124  # ... which is not the held call: nothing ran
    assert world.records() == []
    details = [e["detail"] for e in events(world, "security") if e["request"] == item["id"]]
    assert any("digest does not match" in d for d in details), details
