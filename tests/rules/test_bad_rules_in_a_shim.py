"""A rule layer of the wrong shape, met by real shim processes and by `shield rules lint`:
one message naming file:line, exit 125, nothing run, and the refused call in the log (issue 14:
a team rule's `context: "*prod*"` made every shim print a traceback and exit 1, unlogged)."""

from __future__ import annotations

import pytest

from tests.conftest import World, shield

TEAM = """tool: kubectl
rules:
  - id: team/no-prod-delete
    decision: deny
    reason: not in prod
    match:
      verb: delete
      {key}
    examples:
      match: ["delete ns x"]
"""

SHAPES = [
    pytest.param('context: "*prod*"', "context must be a mapping", id="context-as-string"),
    pytest.param('flags: "--force"', "flags must be a mapping", id="flags-as-string"),
    pytest.param('args: "payments"', "args must be a mapping", id="args-as-string"),
    pytest.param('env: "KUBECONFIG"', "env must be a mapping", id="env-as-string"),
    pytest.param("agent: {name: bot}", "agent: expected a string", id="agent-as-mapping"),
    pytest.param("nargs: [1, 2]", "nargs: expected", id="nargs-as-list"),
    pytest.param("dry_run: [false]", "dry_run must be true or false", id="dry-run-as-list"),
    pytest.param("flags: {[--force]: present}", "a key must be a word", id="list-as-key"),
]


@pytest.mark.parametrize("key, words", SHAPES)
def test_a_rule_of_the_wrong_shape_stops_every_shim_with_one_message_and_125(
    world: World, key: str, words: str
) -> None:
    world.install()
    team = world.home / "commands.d" / "team.yaml"
    team.write_text(TEAM.format(key=key))
    where = f"{team}:8: "
    for tool, argv in (("kubectl", ["get", "pods"]), ("aws", ["s3", "ls"])):
        proc = world.run(tool, *argv)
        err = proc.stderr.decode()
        assert proc.returncode == 125, err
        assert "Traceback" not in err and len(err.splitlines()) <= 2, err
        first = err.splitlines()[0]
        assert first.startswith(f"shield: {tool}: {where}") and words in first, err
        assert "the call did not run" in first
        entry = world.log()[-1]
        assert entry["event"] == "error" and entry["tool"] == tool, entry
        assert entry["argv"] == argv
        assert where in entry["detail"] and words in entry["detail"], entry
    assert world.records() == []  # no real binary ran
    lint = shield("rules", "lint", home=world.home, check=False)
    assert lint.returncode == 1, lint.stderr
    assert lint.stderr.startswith(f"shield: {where}") and words in lint.stderr, lint.stderr
    assert "Traceback" not in lint.stderr
