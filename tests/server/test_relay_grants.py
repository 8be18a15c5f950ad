"""Grants and revocations through the approval server: posted by approvers, read by shims,
verified by the shim like every statement the relay carries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shim import canon
from tests.conftest import World, shield
from tests.server.conftest import Approver, Relay, events

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kind-dev
contexts:
- name: kind-dev
  context:
    cluster: dev
    namespace: web
"""


def agent_env(world: World) -> dict[str, str]:
    kube = world.root / "user-home" / ".kube"
    kube.mkdir(parents=True, exist_ok=True)
    (kube / "config").write_text(KUBECONFIG)
    return world.env(SHIELD_HOLD_TIMEOUT="2")


def grant(alice: Approver, *extra: str) -> str:
    out = alice.cli(
        *("grant", "--agent", "test-bot", "--rule", "kubectl/mutate"),
        *("--context", "kind-dev", "--namespace", "web", "--for", "15m", *extra),
    ).stdout
    return out.split()[1].rstrip(":")


def test_a_grant_posted_to_the_server_lets_the_call_run_and_a_revocation_stops_it(
    world: World, relay: Relay, alice: Approver
) -> None:
    env = agent_env(world)
    gid = grant(alice, "--reason", "deploy window")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 0
    assert [e["grant"] for e in events(world, "granted")] == [gid]
    listed = json.loads(alice.cli("grants", "--json").stdout)
    assert [(g["id"], g["status"]) for g in listed] == [(gid, "live")]
    alice.cli("revoke", gid, "--reason", "done")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 124
    assert [e["reason"] for e in events(world, "grant-revoked")] == ["done"]


def test_a_server_grant_is_not_used_while_the_server_is_down(
    world: World, relay: Relay, alice: Approver
) -> None:
    env = agent_env(world)
    grant(alice)
    relay.stop()
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 124
    assert events(world, "granted") == []


def test_a_grant_the_server_forges_runs_nothing(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    env = agent_env(world)
    gid = grant(alice)
    db = relay.home / "server" / "shield.db"
    con = sqlite3.connect(db)
    body = json.loads(con.execute("SELECT body FROM decisions WHERE kind='grant'").fetchone()[0])
    body["target"] = {"context": "kind-dev", "namespace": "prod"}  # widened by the server
    con.execute("UPDATE decisions SET body = ? WHERE kind='grant'", (canon.encode(body),))
    con.commit()
    con.close()
    prod = world.run("kubectl", "-n", "prod", "rollout", "restart", "deploy/api", env=env)
    assert prod.returncode == 124
    assert any(
        gid in str(e["detail"]) or "server:" in str(e["detail"]) for e in events(world, "security")
    )


def test_an_agent_token_sees_only_its_own_grants(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    grant(alice)
    other = relay.token("agent", "other-bot")
    import urllib.request

    req = urllib.request.Request(
        relay.url + "/api/v1/statements",
        headers={"Authorization": f"Bearer {other.read_text().strip()}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read()) == {"grants": [], "revocations": []}


def test_an_agent_cannot_post_a_grant_and_the_server_refuses_malformed_ones(
    world: World, relay: Relay, alice: Approver
) -> None:
    import urllib.error
    import urllib.request

    token = (world.home / "server-token").read_text().strip()
    for who, body, status in (
        (token, {"type": "shield.grant/1"}, 403),
        (alice.token.read_text().strip(), {"type": "shield.grant/1"}, 400),
        (alice.token.read_text().strip(), {"type": "nonsense"}, 400),
    ):
        req = urllib.request.Request(
            relay.url + "/api/v1/statements",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {who}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == status
    assert shield("grants", "--json", "--all", home=alice.home).stdout.strip() == "[]"


def test_approve_for_a_while_through_the_server_grants_the_same_rule_and_target(
    world: World, relay: Relay, alice: Approver
) -> None:
    from tests.server.conftest import finish, start

    env = {**agent_env(world), "SHIELD_HOLD_TIMEOUT": "60"}
    proc = start(world, "kubectl", "rollout", "restart", "deploy/api", env=env)
    rid = alice.wait_for_request()["id"]
    out = alice.cli("approve", rid, "--reason", "deploy", "--for", "15m").stdout
    assert "granted" in out and "context=kind-dev namespace=web" in out
    assert finish(proc)[0] == 0
    assert world.run("kubectl", "scale", "deploy/api", "--replicas=2", env=env).returncode == 0
    assert [e["event"] for e in world.log() if e["event"] in ("executed", "granted")] == [
        "executed",
        "granted",
    ]
