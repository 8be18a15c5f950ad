"""`shield show` as the approver's own Unix user: what will actually run, read from the request.

The agent (root here) holds a call through its shim; the approver is another uid (`setpriv`
with numeric ids) that can read the shared spool and nothing of the agent's home, where the
snapshots live. What it sees must come from the request itself: the saved terraform plan's
attribute-level `terraform show` (real terraform, `terraform_data`, local state), the
snapshotted manifest and piped stdin of a `kubectl apply`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World

SETPRIV = shutil.which("setpriv")
APPROVER_UID = 23571  # nobody on this machine: a numeric id, as in CI
DEADLINE_S = 120.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to act as another user"
)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A spool the agent (root) writes and the approver's uid can read, outside the tests'
    private temporary directory (which the approver cannot enter)."""
    base = Path(tempfile.mkdtemp(prefix="shield-show-"))
    base.chmod(0o755)
    (base / "spool").mkdir(mode=0o755)
    (base / "approver-home").mkdir()
    os.chown(base / "approver-home", APPROVER_UID, APPROVER_UID)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def as_approver(shared: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert SETPRIV is not None
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(shared / "approver-home"),
        "SHIELD_HOME": str(shared / "approver-home"),
        "COLUMNS": "200",
        "PAGER": "",  # not a terminal anyway: never paged
    }
    user = [f"--reuid={APPROVER_UID}", f"--regid={APPROVER_UID}", "--clear-groups"]
    return subprocess.run(
        [SETPRIV, *user, sys.executable, "-m", "shim", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )


def held_id(spool: Path) -> str:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        names = os.listdir(spool / "requests") if (spool / "requests").is_dir() else []
        if names:
            return names[0][:-5]
        time.sleep(0.1)
    raise AssertionError("no held request reached the spool")


def withdraw(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)


def test_show_prints_the_saved_plans_attribute_diff_to_the_approvers_own_uid(
    world: World, tf_project: tuple[Path, dict[str, str]], shared: Path
) -> None:
    work, env = tf_project
    tf = shutil.which("terraform")
    assert tf is not None
    for argv in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run([tf, *argv], cwd=work, env=env, check=True, capture_output=True)
    (work / "main.tf").write_text('resource "terraform_data" "web" {\n  input = "v2"\n}\n')
    spool = shared / "spool"
    proc = subprocess.Popen(
        [str(world.bin / "terraform"), "apply", "-auto-approve"],
        cwd=work,
        env={**env, "SHIELD_SPOOL": str(spool)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        rid = held_id(spool)
        shown = as_approver(shared, "show", rid, "--spool", str(spool))
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        assert "terraform plan (workspace default): 0 to add, 1 to change, 0 to destroy" in out
        assert "terraform show of the saved plan" in out
        assert "# terraform_data.web will be updated in-place" in out
        assert re.search(r'~ input\s+= "v1" -> "v2"', out), out
        assert "what will run" in out and "apply -input=false /proc/self/fd/" in out
        # the approver's uid reads none of the agent's home, where the plan and snapshot are
        probe = "import os, sys; sys.exit(os.access(sys.argv[1], os.R_OK))"
        no_read = subprocess.run(
            [SETPRIV, f"--reuid={APPROVER_UID}", f"--regid={APPROVER_UID}", "--clear-groups"]
            + [sys.executable, "-c", probe, str(world.home / "state")],
        )
        assert no_read.returncode == 0
    finally:
        withdraw(proc)


def test_show_prints_the_snapshotted_manifest_and_piped_stdin(
    world: World, shared: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n")
    spool = shared / "spool"
    env = world.env(SHIELD_SPOOL=str(spool))
    proc = subprocess.Popen(
        [str(world.bin / "kubectl"), "-n", "shop", "apply", "-f", str(manifest), "-f", "-"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"kind: ConfigMap\nmetadata:\n  name: piped-\x1b[2Jcfg\n")
    proc.stdin.close()
    try:
        rid = held_id(spool)
        manifest.write_text("kind: Namespace\nmetadata:\n  name: kube-system\n")  # too late
        shown = as_approver(shared, "show", rid, "--spool", str(spool))
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        assert "kind: Deployment\nmetadata:\n  name: web" in out
        assert "kind: ConfigMap" in out and "name: piped-\\x1b[2Jcfg" in out
        assert "kube-system" not in out and "\x1b" not in out
        assert re.search(r"^stdin \(\d+ bytes, sha256 [0-9a-f]{16}\) ─", out, re.M), out
    finally:
        proc.stdin = None
        withdraw(proc)
