"""`shield demo`: the Quick start's main job works on a clean machine, quickly."""

from __future__ import annotations

import os
import subprocess
import sys


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
