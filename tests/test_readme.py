"""The README's promises: a two-command Quick start that .ci/run mirrors, and rule examples that compile."""

from __future__ import annotations

import re
from pathlib import Path

from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_quick_start_is_exactly_two_commands_and_ci_runs_the_second() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("shield demo")
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_readme_rule_examples_compile(tmp_path: Path) -> None:
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if b.startswith("tool:")]
    assert blocks  # complete rule files; fragments (a rule to edit into a copy) are not files
    for i, text in enumerate(blocks):
        layer = tmp_path / f"layer{i}"
        layer.mkdir()
        (layer / "team.yaml").write_text(text)
        compiled = compile_layers([defaults_dir(), str(layer)])
        ids = {r["id"] for r in compiled["kubectl"]["rules"]}
        assert "team/no-namespace-delete-in-prod" in ids
