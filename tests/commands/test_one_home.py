"""One home: without SHIELD_HOME, `shield` works on the home baked into the shims first on
PATH, so that run by the agent's user it decides, logs and checks as the shims do (issue 14).

The finding: run by the agent user, `shield check` said ask where the shim said deny, and
`shield doctor` and `shield log` looked in ~/.config/shield.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from shim.baked import read_shim_config
from tests.conftest import PY, World

TEAM_RULE = """\
tool: kubectl
rules:
  - id: team/no-namespace-delete
    decision: deny
    reason: namespaces are removed by the platform team
    hint: "ask #platform"
    match: {verb: delete, any_arg: [ns, namespace]}
    examples:
      match: [{argv: "delete ns payments"}]
      no_match: [{argv: "delete pod web"}]
"""


def agent_shield(world: World, *args: str) -> subprocess.CompletedProcess:
    """`shield` as the agent's user runs it: the shims first on PATH, no SHIELD_HOME."""
    env = world.env()
    assert "SHIELD_HOME" not in env
    return subprocess.run(
        [PY, "-m", "shim", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_check_by_the_agent_decides_as_the_shim_does(world: World) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(TEAM_RULE)
    ran = world.run("kubectl", "delete", "ns", "payments")
    assert ran.returncode == 126 and b"team/no-namespace-delete" in ran.stderr
    checked = agent_shield(world, "check", "--json", "--", "kubectl", "delete", "ns", "payments")
    assert checked.returncode == 0, checked.stderr
    out = json.loads(checked.stdout)
    assert (out["decision"], out["rule"]) == ("deny", "team/no-namespace-delete")
    # the agent name is the shims', as rules on `agent` see it
    (world.home / "commands.d" / "team.yaml").write_text(
        TEAM_RULE.replace("match: {verb: delete,", "match: {agent: test-bot, verb: delete,")
        .replace('{argv: "delete ns payments"}', '{argv: "delete ns payments", agent: test-bot}')
        .replace('[{argv: "delete pod web"}]', '[{argv: "delete ns payments", agent: other}]')
    )
    out = json.loads(
        agent_shield(world, "check", "--json", "--", "kubectl", "delete", "ns", "x").stdout
    )
    assert out["decision"] == "deny"
    assert world.run("kubectl", "delete", "ns", "x").returncode == 126


def test_log_and_doctor_by_the_agent_use_the_shims_home(world: World) -> None:
    assert world.run("kubectl", "get", "pods").returncode == 0
    log = agent_shield(world, "log", "--json")
    assert log.returncode == 0, log.stderr
    (entry,) = [json.loads(line) for line in log.stdout.splitlines()]
    assert entry["argv"] == ["get", "pods"] and entry["agent"] == "test-bot"
    doctor = agent_shield(world, "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["home"]["detail"] == (
        f"{world.home} (baked into {world.bin / 'aws'}, the first shim on PATH)"
    )
    assert checks["PATH kubectl"]["status"] == "ok"  # found its shim dir without --dir
    assert not (world.root / "user-home" / ".config" / "shield").exists()


def test_doctor_warns_when_shield_home_is_not_the_shims_home(world: World, tmp_path: Path) -> None:
    env = dict(world.env(), SHIELD_HOME=str(tmp_path / "elsewhere"))
    proc = subprocess.run(
        [PY, "-m", "shim", "doctor", "--json"], env=env, capture_output=True, text=True
    )
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["home of the shims"]["status"] == "warn"
    assert str(world.home) in checks["home of the shims"]["detail"]


def test_approver_init_refuses_the_agents_home_from_the_shims(world: World) -> None:
    proc = agent_shield(world, "approver", "init", "--name", "alice")
    assert proc.returncode == 1
    assert "would be the agent's home" in proc.stderr and "SHIELD_HOME=" in proc.stderr
    assert not (world.home / "keys").exists()


def test_the_baked_configuration_is_read_never_run(world: World, tmp_path: Path) -> None:
    cfg = read_shim_config(str(world.bin / "kubectl"))
    assert cfg is not None
    assert (cfg["home"], cfg["agent"], cfg["tool"]) == (str(world.home), "test-bot", "kubectl")
    marker = (world.bin / "kubectl").read_text().splitlines()[1]
    canary = tmp_path / "ran"
    payload = f"__import__('os').system('touch {canary}')"
    for text in (
        f"#!/bin/sh\n{marker}\nexec({payload})\n",
        f"#!/bin/sh\n{marker}\nexec({'raise SystemExit(main(' + payload + '))'!r})\n",
        f"#!/bin/sh\n{marker}\nexec({'raise SystemExit(main({}))'!r})\n",
        "#!/bin/sh\n# no marker\nexec('raise SystemExit(main({}))')\n",
    ):
        fake = tmp_path / "kubectl"
        fake.write_text(text)
        assert read_shim_config(str(fake)) is None
    assert not canary.exists()
    os.mkfifo(tmp_path / "fifo")
    assert read_shim_config(str(tmp_path / "fifo")) is None  # never blocks on a FIFO
