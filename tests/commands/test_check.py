"""`shield check`, `shield rules lint|show`: the command-line contract scripts depend on."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import shield


def test_check_json_has_the_contract_fields(tmp_path: Path) -> None:
    proc = shield(
        "check",
        "--json",
        "--",
        "kubectl",
        "-n",
        "prod",
        "get",
        "secret",
        "db",
        "-o",
        "yaml",
        home=tmp_path,
    )
    out = json.loads(proc.stdout)
    assert out["decision"] == "ask"
    assert out["rule"] == "kubectl/secret-read"
    assert out["reason"]
    assert out["tool"] == "kubectl"
    assert out["verb"] == ["get"]
    assert out["context"]["namespace"] == "prod"
    assert {m["id"] for m in out["matched"]} == {"kubectl/read", "kubectl/secret-read"}


def test_check_no_match_is_ask_with_null_rule(tmp_path: Path) -> None:
    out = json.loads(
        shield("check", "--json", "--", "kubectl", "ctx", "prod", home=tmp_path).stdout
    )
    assert out["decision"] == "ask"
    assert out["rule"] is None
    assert out["matched"] == []
    assert "unknown" in out["reason"]


def test_check_exit_code_mode(tmp_path: Path) -> None:
    assert shield("check", "--exit-code", "--", "aws", "s3", "ls", home=tmp_path).returncode == 0
    assert (
        shield(
            "check", "--exit-code", "--", "aws", "s3", "rb", "s3://b", home=tmp_path, check=False
        ).returncode
        == 10
    )
    (tmp_path / "commands.d").mkdir()
    (tmp_path / "commands.d" / "team.yaml").write_text(
        "tool: aws\nrules:\n  - id: team/no-rb\n    decision: deny\n    reason: never\n"
        "    match: {verb: s3 rb}\n    examples: {match: ['s3 rb s3://b'], no_match: ['s3 ls']}\n"
    )
    proc = shield(
        "check", "--exit-code", "--", "aws", "s3", "rb", "s3://b", home=tmp_path, check=False
    )
    assert proc.returncode == 11


def test_check_human_output_explains_the_decision(tmp_path: Path) -> None:
    out = shield(
        "check", "--", "terraform", "-chdir=infra", "apply", "-auto-approve", home=tmp_path
    ).stdout
    assert "ASK" in out and "terraform/mutate" in out and "apply" in out


def test_check_without_a_tool_is_a_usage_error(tmp_path: Path) -> None:
    assert shield("check", home=tmp_path, check=False).returncode == 2
    assert shield("check", "--bogus", home=tmp_path, check=False).returncode == 2


def test_rules_lint_ok_and_broken_layer_names_file_and_line(tmp_path: Path) -> None:
    assert "ok:" in shield("rules", "lint", home=tmp_path).stdout
    (tmp_path / "commands.d").mkdir()
    bad = tmp_path / "commands.d" / "team.yaml"
    bad.write_text(
        "tool: kubectl\nrules:\n  - id: team/x\n    decision: allow\n    reason: r\n    match: {verb: [get}\n"
    )
    proc = shield("rules", "lint", home=tmp_path, check=False)
    assert proc.returncode == 1
    assert f"{bad}:6" in proc.stderr
    # and check refuses to classify with a broken layer: nothing is allowed because of it
    proc = shield("check", "--", "kubectl", "get", "pods", home=tmp_path, check=False)
    assert proc.returncode == 1
    assert str(bad) in proc.stderr


def test_rules_show_lists_effective_rules_with_sources(tmp_path: Path) -> None:
    out = json.loads(shield("rules", "show", "helm", "--json", home=tmp_path).stdout)
    ids = [r["id"] for r in out]
    assert "helm/read" in ids and "helm/mutate" in ids
    assert all(":" in r["source"] for r in out)
