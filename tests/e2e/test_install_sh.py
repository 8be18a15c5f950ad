"""install.sh: one command sets up an agent side; re-running upgrades in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, write_standin


def test_install_sh_sets_up_shims_that_work_and_is_idempotent(tmp_path: Path) -> None:
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("/usr/bin/python3 is needed to re-run with another --python")
    prefix = tmp_path / "opt-shield"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
    cmd = ["sh", str(REPO / "install.sh"), "--prefix", str(prefix), "--agent", "deploy-bot"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f'export PATH="{prefix}/bin:$PATH"' in first.stdout
    names = sorted(p.name for p in (prefix / "bin").iterdir())
    assert names == [".shield-hot.bundle", "aws", "helm", "kubectl", "terraform"]
    # doctor's remedy for a Python other users cannot start: re-run with --python, which
    # rebuilds the venv from that interpreter (the old one was kept before issue 14)
    venv_python = prefix / "venv" / "bin" / "python"
    before = os.path.realpath(venv_python)
    other = "/usr/bin/python3"
    second = subprocess.run(
        [*cmd, "--python", other], env=env, capture_output=True, text=True, timeout=900
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert os.path.realpath(venv_python) == os.path.realpath(other)
    assert ("rebuilding" in second.stdout) == (before != os.path.realpath(other))
    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0 and "rebuilding" not in third.stdout  # kept without --python
    assert os.path.realpath(venv_python) == os.path.realpath(other)

    real = tmp_path / "real"
    write_standin(real, "kubectl")
    run_env = dict(
        env,
        PATH=f"{prefix}/bin:{real}:/usr/bin:/bin",
        STANDIN_RECORD=str(tmp_path / "rec"),
        HOME=str(tmp_path),
    )
    ok = subprocess.run(["kubectl", "get", "pods"], env=run_env, capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    held = subprocess.run(
        ["kubectl", "delete", "pod", "x"],
        env=dict(run_env, SHIELD_HOLD_TIMEOUT="0"),
        capture_output=True,
        timeout=60,
    )
    assert held.returncode == 124
    log = (prefix / "home" / "log" / "shield.log").read_text()
    assert '"agent":"deploy-bot"' in log
    # the installed package carries its own default rules (not the source tree's)
    shim_text = (prefix / "bin" / "kubectl").read_text()
    assert str(REPO / "commands.d") not in shim_text


def test_install_sh_rejects_unknown_options(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["sh", str(REPO / "install.sh"), "--bogus"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "unknown option" in proc.stderr


def test_install_sh_help_prints_the_usage() -> None:
    proc = subprocess.run(
        ["sh", str(REPO / "install.sh"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: install.sh [OPTIONS]")
    for option in ("--prefix", "--python", "--real", "--spool", "--agent-user", "--approver-group"):
        assert f"  {option} " in proc.stdout, option
