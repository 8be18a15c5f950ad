"""The TTY prompt: pure parts, then a held call in a real pty driven with pexpect.

The held script's stdin is a pipe carrying a manifest (like `kubectl apply -f -`), while the code is
typed on the pty (/dev/tty). After the hold the script reads its stdin: it must be intact.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from shim import keys
from shim.approval.decision import sign_decision
from shim.approval.prompt import TtyPrompt, judge, render_panel
from shim.approval.request import new_request
from shim.approval.show import command_line, duration, extra_lines, printable
from shim.approval.spool import list_pending, lookup, write_decision

MANIFEST = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n---\ny\ny\n"

SCRIPT = r"""
import dataclasses, json, sys
from shim import keys
from shim.approval.channels import transports_for
from shim.approval.request import new_request
from shim.approval.spool import write_request
from shim.approval.wait import wait_for_decision

spool, agent, out, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
req = new_request(
    agent="deploy-bot", tool="kubectl", argv=["kubectl", "apply", "-f", "-"], cwd="/work",
    context={"context": "prod-eu"}, rule="kubectl/apply-prod", reason="changes prod",
    timeout_s=timeout,
)
write_request(spool, req)

def log(fields):
    with open(out + ".log", "a") as fh:
        fh.write(json.dumps(fields) + "\n")

transports = transports_for(req, spool, tty=True, log=log)
verdict = wait_for_decision(
    req, transports, trusted=keys.load_trusted(agent), used_path=agent + "/state/used", log=log,
    publish=transports[1:],
)
stdin = sys.stdin.read()
with open(out, "w") as fh:
    json.dump({"verdict": dataclasses.asdict(verdict), "id": req.id, "stdin": stdin}, fh)
print("RESULT", verdict.outcome, flush=True)
"""


@dataclasses.dataclass
class Held:
    child: pexpect.spawn
    out: Path
    spool: str
    approver: str

    def code(self) -> str:
        self.child.expect(r"type the code:\s+([a-z0-9]{4})")
        code = self.child.match.group(1)
        self.child.expect_exact("code> ")
        return str(code)

    def finish(self, outcome: str) -> dict[str, Any]:
        self.child.expect_exact(f"RESULT {outcome}")
        self.child.expect(pexpect.EOF)
        self.child.close()
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result

    def events(self) -> list[dict[str, Any]]:
        log = Path(str(self.out) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Held]]:
    approver, agent = str(tmp_path / "approver"), str(tmp_path / "agent")
    keys.init_approver(approver, "alice")
    keys.add_trusted(agent, keys.public_key_path(approver))
    script = tmp_path / "held.py"
    script.write_text(SCRIPT)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST)
    spool = str(tmp_path / "spool")
    children: list[pexpect.spawn] = []

    def run(timeout_s: float = 20.0) -> Held:
        out = tmp_path / "result.json"
        command = f"cat {manifest} | {sys.executable} {script} {spool} {agent} {out} {timeout_s}"
        child = pexpect.spawn(
            "/bin/bash", ["-c", command], encoding="utf-8", timeout=15, dimensions=(40, 120)
        )
        children.append(child)
        return Held(child, out, spool, approver)

    yield run
    for child in children:
        if child.isalive():
            child.terminate(force=True)


# --- pure -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("k7mp", "approve"),
        ("K7MP", "approve"),
        ("  k7mp  ", "approve"),
        ("", "empty"),
        ("   ", "empty"),
        ("y", "wrong"),
        ("yes", "wrong"),
        ("k7m", "wrong"),
        ("k7mpq", "wrong"),
        ("n", "deny"),
        ("no", "deny"),
        ("deny", "deny"),
        ("deny use staging", "deny"),
        ("denied", "wrong"),
    ],
)
def test_judge_approves_only_the_exact_code(typed: str, kind: str) -> None:
    assert judge(typed, "k7mp") == kind


def test_printable_escapes_control_and_invisible_characters() -> None:
    assert printable("plain text") == "plain text"
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("tab\there") == "tab\\x09here"
    assert printable("\u202eabc\u200b") == "\\u202eabc\\u200b"
    assert command_line(["kubectl", "delete", "ns", "my ns"]) == "kubectl delete ns 'my ns'"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"), (3725, "1h02m"), (-5, "0s")]
)
def test_duration_is_short(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_snapshot_rows_show_a_bound_symlinks_whole_target() -> None:
    """A terraform snapshot binds the real state files as "link:<target>": the row names the
    target in full instead of cutting it to the 16 characters of a hash column."""
    target = "/srv/infra/prod/terraform.tfstate"
    snaps = {"tf/main.tf": "cd02926351dc57cb" + "0" * 48, "tf/terraform.tfstate": f"link:{target}"}
    rows = extra_lines({"snapshots": snaps})
    assert rows == [
        ("snapshots", "cd02926351dc57cb  tf/main.tf"),
        ("", f"link              tf/terraform.tfstate -> {target}"),
    ]


def test_the_panel_shows_command_rule_reason_context_agent_expiry_and_code() -> None:
    req = new_request(
        agent="deploy-bot",
        tool="kubectl",
        argv=["kubectl", "delete", "namespace", "prod"],
        cwd="/work",
        context={"context": "prod-eu", "namespace": "prod"},
        rule="kubectl/delete-namespace",
        reason="deletes every object in the namespace",
        timeout_s=600,
        extra={"preview": "namespace/prod\n  12 pods", "risk": "high"},
        now=1_700_000_000.0,
    )
    panel = render_panel(req, "k7mp", 1_700_000_000.0)
    for text in (
        req.id,
        "expires in 10m00s",
        "deploy-bot",
        "kubectl delete namespace prod",
        "kubectl/delete-namespace",
        "deletes every object",
        "context=prod-eu namespace=prod",
        "/work",
        "12 pods",
        "risk",
        "type the code:  k7mp",
        f"shield approve {req.id}",
    ):
        assert text in panel


def test_a_prompt_reads_lines_split_across_reads_and_crlf(tmp_path: Path) -> None:
    import os

    req = new_request(
        agent="a", tool="t", argv=["t"], cwd="/", context={}, rule=None, reason="r", timeout_s=60
    )
    read_fd, write_fd = os.pipe()
    prompt = TtyPrompt(read_fd, req, "k7mp")
    prompt.write = lambda text: None  # type: ignore[method-assign]
    os.write(write_fd, b"y\r\nk7")
    assert prompt.poll(1) == ("wrong", "y", 2)
    assert prompt.poll(0.01) is None
    os.write(write_fd, b"mp\n")
    assert prompt.poll(1) == ("approve", "", 2)
    os.close(write_fd)
    assert prompt.poll(1) == ("closed", "", 2)
    prompt.close()


# --- in a real pty ----------------------------------------------------------------------------


def test_the_right_code_approves_and_stdin_is_untouched(start: Callable[..., Held]) -> None:
    held = start()
    held.child.sendline(held.code())
    result = held.finish("approved")
    assert result["verdict"]["channel"] == "tty"
    assert result["verdict"]["approver"].startswith("tty:")
    assert result["stdin"] == MANIFEST
    (approved,) = [e for e in held.events() if e["event"] == "approved"]
    assert approved["channel"] == "tty" and approved["approver"].startswith("tty:")


def test_a_blind_y_or_enter_does_not_approve(start: Callable[..., Held]) -> None:
    held = start(timeout_s=3.0)
    held.code()
    held.child.sendline("y")
    held.child.expect_exact("wrong code: not approved (2 tries left)")
    held.child.sendline("")
    held.child.expect_exact("code> ")
    result = held.finish("expired")
    assert result["stdin"] == MANIFEST
    security = [e for e in held.events() if e["event"] == "security"]
    assert len(security) == 1 and "wrong approval code" in security[0]["detail"]
    assert "approved" not in [e["event"] for e in held.events()]


def test_a_wrong_code_three_times_denies(start: Callable[..., Held]) -> None:
    held = start()
    held.code()
    for left in (2, 1):
        held.child.sendline("0000")  # 0 is not in the code alphabet
        held.child.expect_exact(f"({left} tries left)")
    held.child.sendline("0000")
    result = held.finish("denied")
    assert result["verdict"]["reason"] == "wrong code typed 3 times"
    assert [e["event"] for e in held.events()] == ["security"] * 3 + ["denied"]


def test_typing_deny_denies_with_the_reason(start: Callable[..., Held]) -> None:
    held = start()
    held.code()
    held.child.sendline("deny use staging first")
    result = held.finish("denied")
    assert result["verdict"]["reason"] == "use staging first"
    assert result["stdin"] == MANIFEST


def test_a_timeout_at_the_prompt_does_not_approve(start: Callable[..., Held]) -> None:
    held = start(timeout_s=1.0)
    held.code()
    result = held.finish("expired")
    assert result["stdin"] == MANIFEST
    assert [e["event"] for e in held.events()] == ["expired"]


def test_ctrl_c_at_the_prompt_interrupts_and_withdraws(start: Callable[..., Held]) -> None:
    held = start()
    held.code()
    held.child.sendintr()
    result = held.finish("interrupted")
    assert result["verdict"]["signal"] == 2
    assert list_pending(held.spool) == []
    assert lookup(held.spool, result["id"])[0] == "cancelled"


def test_the_spool_stays_live_while_the_prompt_waits(start: Callable[..., Held]) -> None:
    held = start()
    held.code()
    (pending,) = list_pending(held.spool)
    decision = sign_decision(held.approver, pending, "approve", "from the host")
    write_decision(held.spool, decision)
    held.child.expect_exact("approved by alice")
    result = held.finish("approved")
    assert result["verdict"]["channel"] == "spool" and result["verdict"]["approver"] == "alice"
    assert result["stdin"] == MANIFEST


def test_without_a_terminal_the_hold_falls_back_to_the_spool(tmp_path: Path) -> None:
    approver, agent = str(tmp_path / "approver"), str(tmp_path / "agent")
    keys.init_approver(approver, "alice")
    keys.add_trusted(agent, keys.public_key_path(approver))
    script = tmp_path / "held.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "spool"), agent, str(out), "0.5"],
        input=MANIFEST,
        text=True,
        capture_output=True,
        start_new_session=True,  # no controlling terminal: /dev/tty cannot open
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    result = json.loads(out.read_text())
    assert result["verdict"]["outcome"] == "expired" and result["stdin"] == MANIFEST
