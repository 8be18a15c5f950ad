"""Rules on risk: `match: {risk: ">=high"}` and `require_reason: true` (issue 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.approval.decision import sign_decision, verify_decision
from shim.approval.request import new_request, to_dict
from shim.classify.argv import parse_argv
from shim.classify.decide import decide
from shim.clock import parse_iso
from shim.errors import RulesError
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir

TEAM = """
tool: kubectl
rules:
  - id: team/no-critical
    decision: deny
    reason: critical changes go through the change board
    match: {verb: delete, risk: ">=critical"}
    examples:
      match: [{argv: "delete pod web", risk: critical}]
      no_match: [{argv: "delete pod web", risk: high}, "delete pod web"]
  - id: team/reason-when-high
    decision: ask
    reason: say why a high-risk change is safe
    require_reason: true
    match: {risk: [high, critical]}
    examples:
      match: [{argv: "scale deploy/web --replicas=0", risk: high}]
      no_match: [{argv: "scale deploy/web --replicas=0", risk: medium}]
"""


def compiled(tmp_path: Path, text: str = TEAM) -> dict:
    layer = tmp_path / "layer"
    layer.mkdir(exist_ok=True)
    (layer / "team.yaml").write_text(text)
    return compile_layers([defaults_dir(), str(layer)])["kubectl"]


def test_risk_conditions_match_only_once_the_risk_is_known(tmp_path: Path) -> None:
    c = compiled(tmp_path)
    inv = parse_argv(c["grammar"], ["delete", "pod", "web"])
    assert decide(inv, c["rules"]).decision == "ask"  # before the preview: no risk yet
    assert decide(inv, c["rules"], risk="medium").decision == "ask"
    d = decide(inv, c["rules"], risk="critical")
    assert (d.decision, d.rule) == ("deny", "team/no-critical")
    high = decide(inv, c["rules"], risk="high")
    assert high.decision == "ask" and high.require_reason is True
    assert decide(inv, c["rules"], risk="medium").require_reason is False


@pytest.mark.parametrize("bad", ['">=extreme"', "huge", "[high, 7]"])
def test_a_bad_risk_condition_is_refused_with_its_line(tmp_path: Path, bad: str) -> None:
    text = TEAM.replace('risk: ">=critical"', f"risk: {bad}")
    with pytest.raises(RulesError) as err:
        compiled(tmp_path, text)
    assert "team.yaml:" in err.value.message and "risk must be" in err.value.message


def test_require_reason_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="require_reason must be true or false"):
        compiled(tmp_path, TEAM.replace("require_reason: true", "require_reason: sure"))


def test_the_shim_refuses_an_approval_without_a_reason_when_one_is_required(tmp_path: Path) -> None:
    from shim import keys

    approver, agent = tmp_path / "approver", tmp_path / "agent"
    pub = keys.init_approver(str(approver), "alice")
    keys.add_trusted(str(agent), pub)
    trusted = keys.load_trusted(str(agent))
    req = new_request(
        agent="bot",
        tool="kubectl",
        argv=["delete", "pod", "web"],
        cwd="/",
        context={},
        rule="team/reason-when-high",
        reason="r",
        timeout_s=60,
        extra={"risk": "high", "require_reason": True},
    )
    data = to_dict(req)
    bare = sign_decision(str(approver), data, "approve", "")
    ok, why = verify_decision(bare, req, trusted, parse_iso(req.created), 30.0, set())
    assert not ok and "reason" in why
    good = sign_decision(str(approver), data, "approve", "rollback is ready")
    assert verify_decision(good, req, trusted, parse_iso(req.created), 30.0, set())[0]
    # a denial needs no reason
    no = sign_decision(str(approver), data, "deny", "")
    assert verify_decision(no, req, trusted, parse_iso(req.created), 30.0, set())[0]
