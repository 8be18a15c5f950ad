"""The approver at a terminal (issue 15), in real pseudo-terminals driven with pexpect:
`shield approve` shows what it is about to sign and asks first, a critical request needs a
reason and a confirmation, `shield show` pages, `shield pending --watch` redraws in place and
announces an expiry. And the same commands without a terminal, where scripts run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shim import keys
from shim.approval.request import HeldRequest
from tests.approval.support import write_held

pexpect = pytest.importorskip("pexpect")

TIMEOUT_S = 60


class Desk:
    """An approver home (alice, trusted by the agent) and the agent's spool."""

    def __init__(self, root: Path) -> None:
        self.home = root / "approver"
        self.agent = root / "agent"
        self.spool = root / "spool"
        self.root = root
        keys.init_approver(str(self.home), "alice")
        keys.add_trusted(str(self.agent), keys.public_key_path(str(self.home)))
        self.fingerprint = keys.approver_identity(str(self.home)).fingerprint

    def env(self, **extra: str) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "PAGER"))}
        e.update(SHIELD_HOME=str(self.home), SHIELD_SPOOL=str(self.spool), COLUMNS="120")
        e.update(extra)
        return e

    def hold(self, risk: str, timeout_s: float = 600, **kw: Any) -> HeldRequest:
        extra = {
            "risk": risk,
            "preview": {
                "kind": "kubectl-delete",
                "ok": True,
                "summary": "delete 1 object(s) (context prod-eu, namespace prod)",
                "lines": ["- namespace/prod"],
                "error": None,
            },
            "trusted_keys": {self.fingerprint: "alice"},
            **kw.pop("extra", {}),
        }
        return write_held(str(self.spool), timeout_s, extra=extra, **kw)

    def spawn(self, *args: str, **env: str) -> Any:
        return pexpect.spawn(
            sys.executable,
            ["-m", "shim", *args],
            env=self.env(**env),
            timeout=TIMEOUT_S,
            dimensions=(40, 120),
            encoding="utf-8",
        )

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shim", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )

    def decisions(self) -> list[dict[str, Any]]:
        d = self.spool / "decisions"
        return (
            [json.loads((d / n).read_text()) for n in sorted(os.listdir(d))] if d.is_dir() else []
        )


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def finish(child: Any) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus)


def test_approve_on_a_terminal_shows_the_request_and_n_signs_nothing(desk: Desk) -> None:
    req = desk.hold("high")
    child = desk.spawn("approve", req.id)
    child.expect(r"Approve 1 request\? \[y/N\] ")
    shown = child.before
    for text in (
        req.id,
        "high",
        "kubectl delete namespace prod",
        "target   context=prod-eu namespace=prod",
        "preview  delete 1 object(s) (context prod-eu, namespace prod)",
    ):
        assert text in shown, text
    child.sendline("n")
    assert finish(child) == 1
    assert "not confirmed; nothing was signed" in child.before
    assert desk.decisions() == []


def test_approve_on_a_terminal_signs_after_y_and_repeats_the_risk(desk: Desk) -> None:
    req = desk.hold("high")
    child = desk.spawn("approve", req.id)
    child.expect(r"\[y/N\] ")
    child.sendline("y")
    child.expect(f"approved {req.id} \\(risk high\\): kubectl delete namespace prod")
    assert finish(child) == 0
    (decision,) = desk.decisions()
    assert (decision["id"], decision["verdict"]) == (req.id, "approve")


def test_critical_without_a_reason_is_refused_before_anything_is_asked(desk: Desk) -> None:
    req = desk.hold("critical")
    child = desk.spawn("approve", req.id)
    assert finish(child) == 1
    assert f"request {req.id} is critical: approving it needs --reason" in child.before
    assert "[y/N]" not in child.before
    assert desk.decisions() == []


def test_critical_with_a_reason_is_confirmed_on_the_terminal(desk: Desk) -> None:
    req = desk.hold("critical")
    child = desk.spawn("approve", req.id, "--reason", "planned teardown")
    child.expect(r"Approve 1 request \(1 critical\)\? \[y/N\] ")
    child.sendline("yes")
    child.expect(f"approved {req.id} \\(risk critical\\)")
    assert finish(child) == 0
    (decision,) = desk.decisions()
    assert decision["reason"] == "planned teardown"


def test_critical_without_a_terminal_needs_yes(desk: Desk) -> None:
    req = desk.hold("critical")
    refused = desk.run("approve", req.id, "--reason", "planned teardown")
    assert refused.returncode == 1
    assert f"request {req.id} is critical: approve it on a terminal" in refused.stderr
    assert desk.decisions() == []
    done = desk.run("approve", req.id, "--reason", "planned teardown", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"approved {req.id} (risk critical)")
    assert len(desk.decisions()) == 1


def test_a_high_request_without_a_terminal_is_signed_without_asking(desk: Desk) -> None:
    req = desk.hold("high")
    done = desk.run("approve", req.id)
    assert done.returncode == 0, done.stderr
    assert len(desk.decisions()) == 1


@pytest.mark.parametrize(
    ("setting", "risk", "needs_reason"),
    [("high", "high", True), ("never", "critical", False), ("critical", "high", False)],
)
def test_from_which_risk_a_reason_is_required_is_the_approvers_setting(
    desk: Desk, setting: str, risk: str, needs_reason: bool
) -> None:
    (desk.home / "config.json").write_text(json.dumps({"reason_required_at": setting}))
    req = desk.hold(risk)
    result = desk.run("approve", req.id, "--yes")
    assert (result.returncode == 1) is needs_reason, result.stderr
    assert ("needs --reason" in result.stderr) is needs_reason


def test_a_bad_reason_setting_is_an_error_not_a_silent_default(desk: Desk) -> None:
    (desk.home / "config.json").write_text(json.dumps({"reason_required_at": "severe"}))
    req = desk.hold("low")
    result = desk.run("approve", req.id)
    assert result.returncode == 1 and "reason_required_at is 'severe'" in result.stderr
    assert desk.decisions() == []


def test_approve_all_asks_once_for_the_whole_burst(desk: Desk) -> None:
    reqs = [desk.hold("high", argv=["delete", "pod", f"web-{n}"]) for n in range(3)]
    other = desk.hold("high", tool="aws", argv=["s3", "rm", "s3://b/k"])
    child = desk.spawn("approve", "--all", "--tool", "kubectl")
    child.expect(r"Approve 3 requests\? \[y/N\] ")
    assert all(r.id in child.before for r in reqs) and other.id not in child.before
    child.sendline("y")
    assert finish(child) == 0
    assert {d["id"] for d in desk.decisions()} == {r.id for r in reqs}


def test_yes_skips_the_question_on_a_terminal(desk: Desk) -> None:
    req = desk.hold("critical")
    child = desk.spawn("approve", req.id, "--yes", "--reason", "planned")
    assert finish(child) == 0
    assert "[y/N]" not in child.before and f"approved {req.id}" in child.before


def test_show_pages_on_a_terminal_and_prints_without_one(desk: Desk, tmp_path: Path) -> None:
    req = desk.hold(
        "high",
        extra={
            "inputs": [
                {
                    "source": "web.yaml",
                    "sha256": "ab" * 32,
                    "bytes": 20,
                    "text": "kind: Deployment\n",
                }
            ]
        },
    )
    paged = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ncat > {paged}\n")
    pager.chmod(0o755)
    child = desk.spawn("show", req.id, PAGER=str(pager))
    assert finish(child) == 0
    text = paged.read_text()
    assert req.id in text and "kind: Deployment" in text and "web.yaml" in text
    direct = desk.spawn("show", req.id, "--no-pager", PAGER=str(pager))
    paged.unlink()
    assert finish(direct) == 0
    assert "kind: Deployment" in direct.before and not paged.exists()
    piped = desk.run("show", req.id, PAGER=str(pager))
    assert "kind: Deployment" in piped.stdout and not paged.exists()


def test_pending_watch_redraws_in_place_and_announces_an_expiry(desk: Desk) -> None:
    child = desk.spawn("pending", "--watch")
    child.expect("no held requests")
    assert "\x1b[H" in child.before  # drawn from the top of the screen, not scrolled
    req = desk.hold("high", timeout_s=3)
    child.expect(req.id)
    child.expect(f"expired without a decision: {req.id}", timeout=30)
    child.expect("no held requests")  # it left the queue
    child.sendintr()
    assert finish(child) == 0


def test_pending_watch_on_a_pipe_prints_arrivals_and_departures(desk: Desk) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shim", "pending", "--watch"],
        env=desk.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        req = desk.hold("high", timeout_s=2)
        assert proc.stdout is not None
        lines: list[str] = []
        end = time.monotonic() + TIMEOUT_S
        while time.monotonic() < end and not any("expired" in x for x in lines):
            lines.append(proc.stdout.readline())
        held = [x for x in lines if f"held  {req.id}  high" in x]
        assert held and "kubectl delete namespace prod" in held[0]
        assert any(f"expired without a decision: {req.id}" in x for x in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT_S)


def test_a_request_that_expires_while_the_question_is_up_is_not_signed(desk: Desk) -> None:
    from shim.clock import parse_iso

    req = desk.hold("high", timeout_s=2)
    child = desk.spawn("approve", req.id)
    child.expect(r"\[y/N\] ")
    while time.time() <= parse_iso(req.expires) + 0.1:  # the human is slow to answer
        time.sleep(0.05)
    child.sendline("y")
    assert finish(child) == 1
    assert f"skipped {req.id}: expired at {req.expires}; not signed" in child.before
    assert desk.decisions() == []
