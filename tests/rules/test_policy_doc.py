"""docs/policy.md says what the shipped rules decide, and cannot drift from them; every YAML
example in the docs reads as written (a `#` in an unquoted hint starts a YAML comment: the
README's `hint: ask #platform ...` reached the agent as `hint: ask`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from shim.rules.compile import load_layers
from shim.rules.load import defaults_dir
from tests.conftest import REPO

POLICY = REPO / "docs" / "policy.md"
BEGIN = "<!-- rules: generated from commands.d -->\n"
END = "<!-- rules: end -->\n"
DOCS = [
    REPO / "README.md",
    REPO / "commands.d" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]


def _rules() -> list[tuple[str, dict]]:
    tools = load_layers([defaults_dir()], keep_examples=True)
    return [(tool, rule) for tool in sorted(tools) for rule in tools[tool]["rules"]]


def _example(tool: str, rule: dict) -> str:
    first = (rule.get("_examples") or {}).get("match", [""])[0]
    argv = first["argv"] if isinstance(first, dict) else first
    argv = " ".join(argv) if isinstance(argv, list) else argv
    env = first.get("env") if isinstance(first, dict) else None
    where = "".join(f"{k}={v} " for k, v in (env or {}).items())
    return f"`{where}{tool} {argv}`".replace("|", "\\|")


def render() -> str:
    out = []
    for tool in dict.fromkeys(t for t, _ in _rules()):
        out.append(
            f"\n### {tool}\n\n| rule | decision | why | for example |\n| --- | --- | --- | --- |\n"
        )
        for t, rule in _rules():
            if t == tool:
                why = rule["reason"].replace("|", "\\|")
                out.append(
                    f"| `{rule['id']}` | {rule['decision']} | {why} | {_example(t, rule)} |\n"
                )
    return "".join(out) + "\n"


def test_the_generated_table_is_the_rule_files() -> None:
    text = POLICY.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    fresh = head + BEGIN + render() + END + tail
    if os.environ.get("SHIELD_WRITE_POLICY") == "1":
        POLICY.write_text(fresh)
    assert text == fresh, "docs/policy.md is stale: SHIELD_WRITE_POLICY=1 writes it again"


def test_the_prose_names_every_rule_with_its_decision() -> None:
    prose = POLICY.read_text().split(BEGIN, 1)[0]
    rules = {rule["id"]: rule["decision"] for _, rule in _rules()}
    named = set(re.findall(r"`((?:kubectl|aws|terraform|helm)/[a-z0-9-]+)`", prose))
    assert named - set(rules) == set(), "docs/policy.md names rules that do not exist"
    assert set(rules) - named == set(), "docs/policy.md does not explain these rules"
    # each rule is named under the heading of its decision
    for section in re.split(r"\n\*\*", prose)[1:]:
        heading = section.split("**", 1)[0].lower()
        want = "allow" if heading.startswith("allowed") else "ask"
        for rid in re.findall(r"`((?:kubectl|aws|terraform|helm)/[a-z0-9-]+)`", section):
            assert rules[rid] == want, f"{rid} is {rules[rid]}, named under '{heading}'"


def test_the_defaults_never_deny_as_the_policy_says() -> None:
    assert {rule["decision"] for _, rule in _rules()} == {"allow", "ask"}


def _yaml_blocks() -> list[tuple[Path, str]]:
    out = []
    for path in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S):
            out.append((path, block))
    return out


@pytest.mark.parametrize(
    "path, block",
    [pytest.param(p, b, id=f"{p.name}:{i}") for i, (p, b) in enumerate(_yaml_blocks())],
)
def test_hints_and_reasons_in_doc_examples_read_as_written(path: Path, block: str) -> None:
    for line in block.splitlines():
        m = re.match(r"\s*(?:- )?(hint|reason): (.*)$", line)
        if not m or m.group(2)[:1] in "\"'":
            continue
        text = m.group(2)
        assert " #" not in text.split("   #", 1)[0], f"{path.name}: quote it: {line.strip()}"
        parsed = yaml.safe_load(f"{m.group(1)}: {text}")
        assert isinstance(parsed[m.group(1)], str), f"{path.name}: {line.strip()}"


def test_no_doc_points_at_a_file_the_repository_does_not_have() -> None:
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to {target}"
        assert "POLICY.md" not in path.read_text(), f"{path.name} names POLICY.md: docs/policy.md"


def test_the_readme_team_rule_gives_the_agent_its_whole_hint(tmp_path: Path) -> None:
    from shim.rules.compile import compile_layers

    block = next(
        b
        for b in re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
        if b.startswith("tool:")
    )
    (tmp_path / "team.yaml").write_text(block)
    rules = compile_layers([defaults_dir(), str(tmp_path)])["kubectl"]["rules"]
    rule = next(r for r in rules if r["id"] == "team/no-namespace-delete-in-prod")
    assert rule["hint"] == "ask #platform to remove the namespace"
