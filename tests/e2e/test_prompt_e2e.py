"""The TTY prompt through a real shim: `kubectl apply -f - < manifest` in a terminal (issue 5)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import World

pexpect = pytest.importorskip("pexpect")

MANIFEST = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k: v}\n"


def spawn_held(world: World, tmp_path: Path, *argv: str, prompt: bool = True, timeout: str = "60"):
    if prompt:  # the operator turned the prompt on for this home (it is off by default)
        (world.home / "config.json").write_text(json.dumps({"tty_prompt": True}))
    manifest = tmp_path / "manifest.yaml"
    manifest.write_bytes(MANIFEST)
    line = " ".join(shlex.quote(a) for a in argv) + f" < {shlex.quote(str(manifest))}"
    env = world.env(STANDIN_STDIN="1", SHIELD_HOLD_TIMEOUT=timeout)
    return pexpect.spawn("/bin/sh", ["-c", line], env=env, timeout=60, dimensions=(50, 160))


def code_of(child) -> str:
    child.expect(r"To approve, type the code:\s+(\S+)")
    return child.match.group(1).decode()


def test_code_typed_at_the_terminal_approves_and_piped_stdin_reaches_the_tool(
    world: World, tmp_path: Path
) -> None:
    child = spawn_held(world, tmp_path, "kubectl", "apply", "-f", "-")
    code = code_of(child)
    child.expect("code> ")
    child.sendline(code)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    (rec,) = world.records()
    assert bytes.fromhex(rec["stdin"]) == MANIFEST
    approved = [e for e in world.log() if e["event"] == "approved"]
    assert approved and approved[-1]["approver"].startswith("tty:")


def test_a_blind_y_at_the_terminal_does_not_approve(world: World, tmp_path: Path) -> None:
    child = spawn_held(world, tmp_path, "kubectl", "delete", "pod", "web")
    code_of(child)
    child.expect("code> ")
    for answer in ("y", "yes", ""):
        child.sendline(answer)
    child.sendline("deny not today")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 126
    assert world.records() == []
    assert re.search(r"denied", (world.home / "log" / "shield.log").read_text())


def test_by_default_an_agent_in_its_own_pty_gets_no_prompt_to_answer(
    world: World, tmp_path: Path
) -> None:
    # the attack: start the held call in a pseudo-terminal the agent controls and type the code
    child = spawn_held(
        world, tmp_path, "kubectl", "delete", "pod", "web", prompt=False, timeout="3"
    )
    child.expect(pexpect.EOF)
    child.close()
    assert b"To approve, type the code" not in (child.before or b"")
    assert child.exitstatus == 124  # held until the deadline; nothing to type into
    assert world.records() == []
