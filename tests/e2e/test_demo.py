"""`shield demo`: the Quick start's main job works on a clean machine, quickly."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pexpect


def test_demo_shows_allow_hold_approve_deny_and_a_verified_log(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "shim", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "deployment.apps/api restarted" in out  # the approved call ran
    assert 'release "web" uninstalled' not in out  # the denied call did not
    assert "team/no-namespace-delete-in-prod" in out
    assert "hint: ask #platform to remove the namespace" in out  # the team rule's whole hint
    assert "intact" in out
    assert "demo complete" in out


def test_demo_server_shows_the_approval_server_path(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "shim", "demo", "--server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "shield serve --listen 127.0.0.1:" in out
    assert "is on the approval server: http://localhost:" in out
    assert "approved through the approval server" in out
    assert "deployment.apps/api restarted" in out
    assert "demo complete" in out


def test_demo_tables_fit_an_80_column_terminal(tmp_path) -> None:
    """The demo indents what each command prints by 4: a `shield pending` row is cut to the
    terminal's width minus that indent, never wrapped onto a second line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    env["HOME"] = str(tmp_path)
    child = pexpect.spawn(
        sys.executable, ["-m", "shim", "demo"], env=env, dimensions=(40, 80), encoding="utf-8"
    )
    child.expect(pexpect.EOF, timeout=120)
    child.close()
    assert child.exitstatus == 0, child.before
    lines = re.sub(r"\x1b\[[0-9;]*m", "", child.before).replace("\r", "").splitlines()
    rows = [line for line in lines if re.match(r"    [a-z0-9]{6}  (medium|high) ", line)]
    assert len(rows) == 3, lines  # one held request in each of scenes 3, 4 and 5
    for row in rows:
        assert len(row) <= 80, row
    assert not [line for line in lines if line.strip() == "deploy/api"], lines  # no wrapped row
