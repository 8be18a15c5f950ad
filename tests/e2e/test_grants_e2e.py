"""Grants and modes through real shims, stand-in tools and the `shield` CLI as two homes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import World, shield
from tests.e2e.conftest import Approver

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kind-dev
contexts:
- name: kind-dev
  context:
    cluster: dev
    namespace: web
"""


def kube(world: World) -> dict[str, str]:
    kube_dir = world.root / "user-home" / ".kube"
    kube_dir.mkdir(parents=True, exist_ok=True)
    (kube_dir / "config").write_text(KUBECONFIG)
    return world.env(SHIELD_HOLD_TIMEOUT="1")


def grant(approver: Approver, *args: str, check: bool = True):
    return approver.cli(
        "grant",
        *("--agent", "test-bot", "--rule", "kubectl/mutate", "--context", "kind-dev"),
        *args,
        check=check,
    )


def events(world: World, kind: str) -> list[dict]:
    return [e for e in world.log() if e["event"] == kind]


def test_two_calls_run_under_a_grant_and_a_third_elsewhere_is_held(
    world: World, approver: Approver
) -> None:
    env = kube(world)
    out = grant(approver, "--namespace", "web", "--for", "15m", "--reason", "deploy").stdout
    gid = out.split()[1].rstrip(":")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 0
    assert world.run("kubectl", "scale", "deploy/api", "--replicas=2", env=env).returncode == 0
    held = world.run("kubectl", "-n", "payments", "rollout", "restart", "deploy/api", env=env)
    assert held.returncode == 124
    ran = [a[:2] for a in world.argvs()]
    assert ran == [[b"rollout", b"restart"], [b"scale", b"deploy/api"]]
    used = events(world, "granted")
    assert [(e["grant"], e["use"], e["approver"], e["policy"]) for e in used] == [
        (gid, 1, "alice", "ask"),
        (gid, 2, "alice", "ask"),
    ]
    assert len(events(world, "grant")) == 1  # the issue, logged once
    listed = json.loads(
        approver.cli("grants", "--json", "--log", str(world.home / "log" / "shield.log")).stdout
    )
    assert [(g["id"], g["used"], g["status"]) for g in listed] == [(gid, 2, "live")]


def test_a_revoked_grant_stops_at_the_next_call(world: World, approver: Approver) -> None:
    env = kube(world)
    grant(approver, "--namespace", "web")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 0
    approver.cli("revoke", "--agent", "test-bot", "--reason", "window closed")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 124
    assert [e["reason"] for e in events(world, "grant-revoked")] == ["window closed"]


def test_a_use_count_the_agent_resets_shows_as_overused(world: World, approver: Approver) -> None:
    env = kube(world)
    grant(approver, "--namespace", "web", "--uses", "1")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 0
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 124
    (world.home / "state" / "grant-uses").write_text("")  # the agent edits its own state
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 0
    log = str(world.home / "log" / "shield.log")
    listed = json.loads(approver.cli("grants", "--json", "--all", "--log", log).stdout)
    assert listed[0]["status"].startswith("overused: 2 uses logged, 1 allowed")
    assert [e["use"] for e in events(world, "granted")] == [1, 1]  # the log shows the reset


def test_a_grant_from_a_key_the_agent_does_not_trust_holds_and_logs_once(
    world: World, approver: Approver, tmp_path: Path
) -> None:
    env = kube(world)
    mallory = Approver(tmp_path / "mallory", approver.spool)
    shield("approver", "init", "--name", "mallory", home=mallory.home)
    grant(mallory, "--namespace", "web")
    for _ in range(2):
        assert world.run("kubectl", "rollout", "restart", "deploy/api", env=env).returncode == 124
    security = [e["detail"] for e in events(world, "security")]
    assert len(security) == 1 and "untrusted key" in security[0]


def test_grant_options_are_checked(world: World, approver: Approver) -> None:
    too_long = grant(approver, "--namespace", "web", "--for", "9h", check=False)
    assert too_long.returncode == 2 and "8 hours" in too_long.stderr
    no_target = approver.cli(
        "grant", "--agent", "test-bot", "--rule", "kubectl/mutate", check=False
    )
    assert no_target.returncode == 1 and "pins its target" in no_target.stderr
    bad_span = grant(approver, "--namespace", "web", "--for", "soon", check=False)
    assert bad_span.returncode == 2 and "not a duration" in bad_span.stderr


TEAM = """tool: kubectl
rules:
  - id: team/configmaps-by-hand
    decision: {cm_decision}
    reason: configmaps are read by hand this week
    mode: {cm_mode}
    match: {{verb: get, any_arg: [configmaps, cm]}}
    examples: {{match: [get configmaps]}}
  - id: team/no-pod-delete
    decision: deny
    reason: pods are restarted, not deleted
    mode: {delete_mode}
    match: {{verb: delete, any_arg: [pod]}}
    examples: {{match: [delete pod x]}}
"""


def team_rules(world: World, cm_decision: str, cm_mode: str, delete_mode: str) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(
        TEAM.format(cm_decision=cm_decision, cm_mode=cm_mode, delete_mode=delete_mode)
    )


def test_warn_mode_runs_what_the_defaults_allow_with_one_warning_line(world: World) -> None:
    env = kube(world)
    team_rules(world, "ask", "warn", "warn")
    proc = world.run("kubectl", "get", "configmaps", env=env)
    assert proc.returncode == 0
    assert proc.stderr.decode().splitlines() == [
        "shield: kubectl: warning: rule team/configmaps-by-hand would hold this call "
        "(configmaps are read by hand this week); it runs because the rule is in warn mode"
    ]
    last = world.log()[-1]
    assert (last["decision"], last["policy"], last["mode"], last["policy_rule"]) == (
        "allow",
        "ask",
        "warn",
        "team/configmaps-by-hand",
    )
    # a deny in warn mode never lets through what the defaults hold: it is held, with a warning
    held = world.run("kubectl", "delete", "pod", "x", env=env)
    assert held.returncode == 124 and b"would deny this call" in held.stderr
    call = [e for e in world.log() if e["event"] == "call"][-1]
    assert (call["decision"], call["policy"], call["mode"]) == ("ask", "deny", "warn")


def test_a_rule_in_observe_mode_changes_nothing_and_the_log_keeps_it(world: World) -> None:
    env = kube(world)
    team_rules(world, "deny", "observe", "enforce")
    proc = world.run("kubectl", "get", "configmaps", env=env)
    assert proc.returncode == 0 and proc.stderr == b""
    last = world.log()[-1]
    assert (last["decision"], last["policy"], last["mode"]) == ("allow", "deny", "observe")
    doctor = shield("doctor", "--json", home=world.home, check=False)
    checks = json.loads(doctor.stdout)["checks"]
    assert any(
        c["check"] == "modes" and "team/configmaps-by-hand" in c["detail"] and c["status"] == "warn"
        for c in checks
    )


def test_a_rule_in_warn_or_observe_mode_on_an_allow_rule_is_refused(world: World) -> None:
    team_rules(world, "allow", "observe", "enforce")
    lint = shield("rules", "lint", home=world.home, check=False)
    assert lint.returncode == 1 and "mode applies to ask and deny rules" in lint.stderr


def test_an_agent_installed_in_observe_mode_runs_everything_and_doctor_warns(
    world: World,
) -> None:
    env = kube(world)
    world.install("--mode", "observe")
    team_rules(world, "ask", "enforce", "enforce")
    assert world.run("kubectl", "delete", "pod", "x", env=env).returncode == 0
    assert world.run("kubectl", "scale", "deploy/api", "--replicas=1", env=env).returncode == 0
    assert [(e["policy"], e["mode"]) for e in world.log()[-2:]] == [
        ("deny", "observe"),
        ("ask", "observe"),
    ]
    doctor = shield("doctor", "--json", "--dir", str(world.bin), home=world.home, check=False)
    checks = json.loads(doctor.stdout)["checks"]
    assert any(c["check"] == "modes" and "observe mode" in c["detail"] for c in checks)


def test_approve_for_a_while_grants_the_same_rule_and_target(
    world: World, approver: Approver
) -> None:
    from tests.e2e.conftest import finish, start

    env = {**kube(world), "SHIELD_HOLD_TIMEOUT": "60"}
    proc = start(world, "kubectl", "rollout", "restart", "deploy/api", env=env)
    rid = approver.wait_for_request()["id"]
    out = approver.cli("approve", rid, "--reason", "deploy", "--for", "15m").stdout
    assert "granted" in out and "context=kind-dev namespace=web" in out
    assert finish(proc)[0] == 0
    # the next call under the same rule and target runs at once; another namespace is held
    assert world.run("kubectl", "scale", "deploy/api", "--replicas=2", env=env).returncode == 0
    other = world.run(
        "kubectl", "-n", "prod", "scale", "deploy/api", "--replicas=2", env=kube(world)
    )
    assert other.returncode == 124
    assert [e["event"] for e in world.log() if e["event"] in ("executed", "granted")] == [
        "executed",
        "granted",
    ]
