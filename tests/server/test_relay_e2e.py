"""The approval relay end to end: a real `shield serve` on loopback, real shims, approvers in
their own homes and processes (issue 11). Decisions travel through the server; the shim
verifies each one itself."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import World, shield
from tests.e2e.test_approval_e2e import _aws_env, _bucket_exists, _make_bucket
from tests.server.conftest import (
    Approver,
    Relay,
    events,
    finish,
    install_with_relay,
    start,
    wait_until,
)


def api(relay: Relay, token: Path, path: str) -> dict:
    req = urllib.request.Request(
        relay.url + path, headers={"Authorization": f"Bearer {token.read_text().strip()}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_held_call_approved_through_the_server_runs_and_the_log_names_channel_and_approver(
    world: World, relay: Relay, alice: Approver
) -> None:
    proc = start(
        world, "kubectl", "-n", "prod", "delete", "pod", "web", env=world.env(STANDIN_EXIT="3")
    )
    item = alice.wait_for_request()
    assert item["argv"] == ["-n", "prod", "delete", "pod", "web"]
    assert item["agent"] == "test-bot"
    assert world.records() == []
    out = alice.cli("approve", item["id"], "--reason", "ok", "--yes").stdout  # critical
    assert f"approved {item['id']}" in out
    code, _, err = finish(proc)
    assert code == 3, err
    # the agent is told where its request is on the server
    assert f"{relay.public}/r/{item['id']}" in err
    assert world.argvs() == [[b"-n", b"prod", b"delete", b"pod", b"web"]]
    held = [e for e in events(world, "held") if e["request"] == item["id"]]
    assert held and held[0]["channels"] == ["spool", "server"]
    approved = events(world, "approved")[-1]
    assert (approved["channel"], approved["approver"]) == ("server", "alice")
    assert events(world, "executed")[-1]["approver"] == "alice"
    # the shim told the server how the hold ended (for approvers and notifications)
    state = api(relay, alice.token, f"/api/v1/requests/{item['id']}")
    assert state["status"] == "approved"
    assert state["outcome"]["approver"] == "alice"
    assert alice.pending() == []


def test_denied_through_the_server_exits_126_and_never_runs(
    world: World, relay: Relay, alice: Approver
) -> None:
    proc = start(world, "helm", "uninstall", "web")
    item = alice.wait_for_request()
    alice.cli("deny", item["id"], "--reason", "still serving")
    code, _, err = finish(proc)
    assert code == 126
    assert "still serving" in err
    assert world.records() == []
    denied = events(world, "denied")[-1]
    assert (denied["channel"], denied["approver"]) == ("server", "alice")
    late = alice.cli("approve", item["id"], check=False)
    assert late.returncode == 1 and "already denied" in late.stderr


def test_server_down_when_a_call_is_held_waits_on_the_spool_and_exits_124(
    world: World, relay: Relay, alice: Approver
) -> None:
    relay.stop()
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="3"))
    code, _, err = finish(proc)
    assert code == 124
    rid = events(world, "held")[-1]["request"]
    assert f"cannot reach the approval server for request {rid}" in err
    assert "still waiting on the other channels" in err
    assert world.records() == []
    assert events(world, "relay-unreachable")
    expired = events(world, "expired")[-1]
    assert expired["channels"] == ["spool", "server"]


def test_server_down_a_spool_approval_still_runs_the_call(
    world: World, relay: Relay, alice: Approver
) -> None:
    relay.stop()
    shield("trust", "add", alice.pub, home=world.home)
    proc = start(world, "kubectl", "delete", "pod", "web")
    spool = world.home / "state" / "spool"

    def listed() -> list[dict]:
        return json.loads(
            shield("pending", "--json", "--spool", str(spool), home=alice.home).stdout
        )

    wait_until(listed, what="the request in the spool")
    shield("approve", listed()[0]["id"], "--spool", str(spool), home=alice.home)
    code, _, err = finish(proc)
    assert code == 0, err
    assert "cannot reach the approval server" in err
    assert events(world, "approved")[-1]["channel"] == "spool"


def test_a_server_coming_back_gets_the_request_and_its_approval_runs_the_call(
    world: World, relay: Relay, alice: Approver
) -> None:
    relay.stop()
    proc = start(world, "kubectl", "delete", "pod", "web")
    wait_until(lambda: events(world, "relay-unreachable"), what="the shim to notice")
    relay.start()  # same port, same database: the shim submits again on its own
    item = alice.wait_for_request()
    alice.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert events(world, "relay-reached")


def _restart_loses_nothing(world: World, relay: Relay, alice: Approver) -> None:
    procs = [start(world, "kubectl", "delete", "pod", f"web-{i}") for i in range(3)]
    wait_until(lambda: len(alice.pending()) == 3, what="three requests on the server")
    relay.kill()  # SIGKILL while three calls wait
    relay.start()
    items = alice.pending()
    assert len(items) == 3
    for item in items:
        alice.cli("approve", item["id"])
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0, 0], [r[2] for r in results]
    ran = sorted(argv[-1] for argv in world.argvs())
    assert ran == [b"web-0", b"web-1", b"web-2"]


def test_server_killed_and_restarted_while_requests_wait_loses_none_sqlite(
    world: World, relay: Relay, alice: Approver
) -> None:
    _restart_loses_nothing(world, relay, alice)


def test_server_killed_and_restarted_while_requests_wait_loses_none_postgresql(
    world: World, tmp_path: Path, pg_url: str
) -> None:
    relay = Relay(tmp_path / "pg-server", pg_url).start()
    try:
        approver = Approver(tmp_path / "alice-pg", relay, "alice")
        shield("trust", "add", approver.pub, home=world.home)
        install_with_relay(world, relay)
        _restart_loses_nothing(world, relay, approver)
    finally:
        relay.stop()


def test_two_servers_on_one_postgresql_held_through_one_approved_through_the_other(
    world: World, tmp_path: Path, pg_url: str
) -> None:
    first = Relay(tmp_path / "server-1", pg_url).start()
    second = Relay(tmp_path / "server-2", pg_url).start()
    try:
        approver = Approver(tmp_path / "alice", first, "alice")
        shield("trust", "add", approver.pub, home=world.home)
        install_with_relay(world, first)
        proc = start(world, "kubectl", "delete", "pod", "web")
        item = approver.wait_for_request(url=second.url)  # listed by the other server
        approver.cli("approve", item["id"], url=second.url)
        code, _, err = finish(proc)
        assert code == 0, err
        assert f"{first.public}/r/{item['id']}" in err
        assert events(world, "approved")[-1]["channel"] == "server"
    finally:
        first.stop()
        second.stop()


def test_quorum_of_two_runs_only_after_two_distinct_approvers_sign(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    bob = Approver(tmp_path / "bob-home", relay, "bob")
    shield("trust", "add", bob.pub, home=world.home)
    (world.home / "commands.d" / "team.yaml").write_text(
        "tool: kubectl\nrules:\n"
        "  - id: team/two-person-delete\n    decision: ask\n    approvals: 2\n"
        "    reason: deleting needs two people\n    match: {verb: delete}\n"
        "    examples: {match: ['delete pod x'], no_match: ['get pods']}\n"
    )
    proc = start(world, "kubectl", "delete", "pod", "web")
    item = alice.wait_for_request()
    assert item["approvals"] == 2  # in the signed request: the approvers see it
    alice.cli("approve", item["id"])
    alice.cli("approve", item["id"])  # the same approver twice is still one
    spool = world.home / "state" / "spool"
    wait_until(lambda: events(world, "note"), what="the second approval by alice to be noted")
    assert world.records() == []
    assert proc.poll() is None
    # the second approver uses the spool: channels mix, the count is per approver
    shield("approve", item["id"], "--spool", str(spool), home=bob.home)
    code, _, err = finish(proc)
    assert code == 0, err
    approved = events(world, "approved")[-1]
    assert approved["approvers"] == ["alice", "bob"]
    assert [e["approver"] for e in events(world, "approval")] == ["alice"]


def test_quorum_one_denial_denies(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    bob = Approver(tmp_path / "bob-home", relay, "bob")
    shield("trust", "add", bob.pub, home=world.home)
    (world.home / "commands.d" / "team.yaml").write_text(
        "tool: kubectl\nrules:\n"
        "  - id: team/two-person-delete\n    decision: ask\n    approvals: 2\n"
        "    reason: deleting needs two people\n    match: {verb: delete}\n"
        "    examples: {match: ['delete pod x'], no_match: ['get pods']}\n"
    )
    proc = start(world, "kubectl", "delete", "pod", "web")
    item = alice.wait_for_request()
    alice.cli("approve", item["id"])
    bob.cli("deny", item["id"], "--reason", "not today")
    code, _, err = finish(proc)
    assert code == 126
    assert "not today" in err
    assert world.records() == []


def test_tls_with_a_self_signed_certificate_and_cacert(world: World, tmp_path: Path) -> None:
    from tests.server.tlscert import write_self_signed

    cert, key = write_self_signed(tmp_path / "tls")
    relay = Relay(
        tmp_path / "tls-server", None, "--cert", str(cert), "--key", str(key), cacert=cert
    )
    relay.start()
    try:
        url = f"https://127.0.0.1:{relay.port}"
        approver = Approver(tmp_path / "alice", relay, "alice")
        shield("trust", "add", approver.pub, home=world.home)
        token = relay.token("agent", "test-bot")
        world.install("--server", url, "--token-file", str(token), "--cacert", str(cert))
        proc = start(world, "kubectl", "delete", "pod", "web")
        untrusted = approver.cli("pending", url=url, check=False)
        assert untrusted.returncode == 1
        assert "TLS certificate not trusted" in untrusted.stderr
        assert "hint: pass the server's CA certificate: --cacert F" in untrusted.stderr

        def listed() -> list[dict]:
            out = approver.cli("pending", "--json", "--cacert", str(cert), url=url).stdout
            return json.loads(out)

        wait_until(listed, what="the request on the TLS server")
        item = listed()[0]
        approver.cli("approve", item["id"], "--cacert", str(cert), url=url)
        code, _, err = finish(proc)
        assert code == 0, err
        assert f"{relay.public}/r/{item['id']}" in err
    finally:
        relay.stop()


def test_real_terraform_apply_approved_through_the_server(
    world: World, relay: Relay, alice: Approver, tf_project: tuple[Path, dict[str, str]]
) -> None:
    work, env = tf_project
    tfrun = ["terraform", f"-chdir={work}"]
    init = subprocess.run(
        [*tfrun, "init", "-input=false"], env=env, capture_output=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    proc = start(world, *tfrun, "apply", "-auto-approve", "-input=false", env=env)
    item = alice.wait_for_request()
    assert item["context"]["workspace"] == "default"
    state_file = work / "terraform.tfstate"
    if state_file.exists() and state_file.read_text().strip():  # the preview may leave one
        assert json.loads(state_file.read_text()).get("resources") in (None, [])
    alice.cli("approve", item["id"])
    code, _, err = finish(proc, timeout=180)
    assert code == 0, err
    state = json.loads((work / "terraform.tfstate").read_text())
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]


def test_real_aws_s3_rb_approved_through_the_server(
    world: World, relay: Relay, alice: Approver, moto_url: str
) -> None:
    env = _aws_env(world, moto_url)
    _make_bucket(moto_url, "relay-doomed")
    proc = start(world, "aws", "s3", "rb", "s3://relay-doomed", "--force", env=env)
    item = alice.wait_for_request()
    assert _bucket_exists(env, moto_url, "relay-doomed")
    alice.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert not _bucket_exists(env, moto_url, "relay-doomed")


@pytest.mark.parametrize("via", ["flags", "env"])
def test_approvers_commands_take_server_and_token_from_flags_or_env(
    world: World, relay: Relay, alice: Approver, via: str
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    item = alice.wait_for_request()
    if via == "env":
        env = {"SHIELD_SERVER": relay.url, "SHIELD_TOKEN_FILE": str(alice.token)}
        listed = json.loads(shield("pending", "--json", home=alice.home, env=env).stdout)
        assert [i["id"] for i in listed] == [item["id"]]
        shield("approve", item["id"], home=alice.home, env=env)
    else:
        alice.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err


def test_a_decision_refused_by_the_shim_is_flagged_to_approvers_on_the_server(
    world: World, relay: Relay, alice: Approver, tmp_path: Path
) -> None:
    bob = Approver(tmp_path / "bob-home", relay, "bob")  # on the server, not trusted by the agent
    proc = start(world, "kubectl", "-n", "shop", "rollout", "restart", "deploy/web")
    item = alice.wait_for_request()
    signed = bob.cli("approve", item["id"], check=False)
    assert signed.returncode == 1 and "does not trust this home's key" in signed.stderr

    def flagged() -> str:
        out = alice.cli("pending", check=False).stdout
        return out if "was refused" in out else ""

    wait_until(flagged, what="the shim's refusal note on the server")
    assert f"! {item['id']}  a decision by bob was refused: decision signed by an untrusted" in (
        flagged()
    )
    assert "a decision by bob was refused" in alice.cli("show", item["id"]).stdout
    alice.cli("approve", item["id"], "--reason", "restart it")
    code, _, err = finish(proc)
    assert code == 0, err
    assert "shield: kubectl: approved by alice: restart it" in err
