"""`shield report` replays the logged calls through a rule set (a real log, real rules)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shim.clock import now_iso
from shim.log.append import append_entry, init_log
from shim.report import grant_savings, replay
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir
from tests.conftest import shield

DEV = {"context": "kind-dev", "namespace": "web", "cwd": "/w"}


def call(argv: list[str], decision: str, t: float, agent: str = "deploy-bot", **extra) -> dict:
    return {
        "event": "call",
        "agent": agent,
        "tool": "kubectl",
        "argv": argv,
        "context": DEV,
        "decision": decision,
        "time": now_iso(t),
        **extra,
    }


ENTRIES = [
    call(["get", "pods"], "allow", 1000.0),
    call(["rollout", "restart", "deploy/api"], "ask", 1100.0),
    call(["rollout", "restart", "deploy/api"], "ask", 1200.0),
    call(["rollout", "restart", "deploy/api"], "ask", 1000.0 + 86400),
    call(["get", "configmaps"], "allow", 1300.0, agent="ci-bot"),
    call(["delete", "pod", "x"], "allow", 1400.0, policy="ask", mode="observe"),
    {"event": "held", "tool": "kubectl", "argv": ["rollout", "restart", "deploy/api"]},
]
TEAM = """tool: kubectl
rules:
  - id: team/configmaps-by-hand
    decision: ask
    reason: configmaps are read by hand
    match: {verb: get, any_arg: [configmaps]}
    examples: {match: [get configmaps]}
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    return compile_layers([defaults_dir()])


def test_replay_counts_by_rule_and_agent_and_forecasts_prompts(compiled) -> None:
    r = replay(ENTRIES, compiled)
    assert r["calls"] == 6 and r["days"] == 1.0
    by_rule = {row["name"]: row for row in r["by_rule"]}
    assert by_rule["kubectl/mutate"]["ask"] == 4 and by_rule["kubectl/read"]["allow"] == 2
    by_agent = {row["name"]: row for row in r["by_agent"]}
    assert by_agent["deploy-bot"] == {
        "name": "deploy-bot",
        "allow": 1,
        "ask": 4,
        "deny": 0,
        "prompts_per_day": 4.0,
    }
    assert r["prompts_per_day"] == 4.0
    assert r["top_prompts"][0] == {"command": "kubectl rollout restart deploy/api", "prompts": 3}
    assert r["changed"] == []  # the observed call was recorded with its policy (ask)


def test_a_candidate_rule_set_shows_the_calls_it_would_change(compiled, tmp_path) -> None:
    layer = tmp_path / "team"
    layer.mkdir()
    (layer / "team.yaml").write_text(TEAM)
    candidate = compile_layers([defaults_dir(), str(layer)])
    r = replay(ENTRIES, candidate)
    assert [(c["command"], c["was"], c["now"]) for c in r["changed"]] == [
        ("kubectl get configmaps", "allow", "ask")
    ]
    by_agent = {row["name"]: row for row in r["by_agent"]}
    assert by_agent["ci-bot"]["ask"] == 1


def test_grant_savings_count_one_prompt_per_15_minute_window_and_target() -> None:
    asks = [(0.0, "a", "r", "t"), (60.0, "a", "r", "t"), (899.0, "a", "r", "t")]
    asks += [(900.0, "a", "r", "t"), (10.0, "a", "r", "other"), (20.0, "b", "r", "t")]
    assert grant_savings(asks) == {"prompts": 6, "with_15m_grants": 4, "saved": 2}


def test_the_cli_reports_json_and_warns_first_when_the_log_fails_verification(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    log_dir = home / "log"
    init_log(str(log_dir))
    for e in ENTRIES[:6]:
        append_entry(str(log_dir), {k: v for k, v in e.items() if k != "time"})
    out = shield("report", "--json", "--since", "30d", home=home)
    r = json.loads(out.stdout)
    assert r["verified"]["ok"] is True and r["calls"] == 6
    # tamper with one entry: the report still comes, after it says so
    path = log_dir / "shield.log"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("deploy/api", "deploy/web")
    path.write_text("\n".join(lines) + "\n")
    text = shield("report", "--since", "30d", home=home, env={"COLUMNS": "80"})
    first = text.stdout.splitlines()[0]
    assert first.startswith("WARNING: the log failed verification")
    assert "prompts a day" in text.stdout
    assert all(len(line) <= 80 for line in text.stdout.splitlines())
