"""Two homes, one spool, real processes: held calls approved, denied, expired, interrupted (issue 5).

The agent runs shims; the approver runs `shield` with its own home in another process. The real
aws CLI runs against a local moto server and real terraform against local state.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import World, shield
from tests.e2e.conftest import Approver, finish, start


def test_approved_call_runs_with_its_own_exit_code_and_is_logged(
    world: World, approver: Approver
) -> None:
    proc = start(
        world, "kubectl", "-n", "prod", "delete", "pod", "web", env=world.env(STANDIN_EXIT="3")
    )
    item = approver.wait_for_request()
    assert item["tool"] == "kubectl"
    assert item["argv"] == ["-n", "prod", "delete", "pod", "web"]
    assert item["agent"] == "test-bot"
    assert item["rule"] == "kubectl/mutate"
    assert item["context"]["namespace"] == "prod"
    assert world.records() == []  # nothing ran while held
    approver.cli("approve", item["id"], "--reason", "ok", "--yes")  # critical (prod)
    code, _, err = finish(proc)
    assert code == 3, err
    assert world.argvs() == [[b"-n", b"prod", b"delete", b"pod", b"web"]]
    events = [(e["event"], e.get("request")) for e in world.log()]
    assert ("held", item["id"]) in events
    assert ("approved", item["id"]) in events
    executed = [e for e in world.log() if e["event"] == "executed"]
    assert executed and executed[-1]["exit"] == 3 and executed[-1]["approver"] == "alice"
    assert isinstance(executed[-1]["duration_ms"], int)


def test_denied_call_exits_126_and_never_runs(world: World, approver: Approver) -> None:
    proc = start(world, "helm", "uninstall", "web")
    item = approver.wait_for_request()
    approver.cli("deny", item["id"], "--reason", "still serving")
    code, _, err = finish(proc)
    assert code == 126
    assert b"still serving" in err
    assert world.records() == []
    assert any(e["event"] == "denied" for e in world.log())


def test_no_decision_before_the_deadline_exits_124(world: World, approver: Approver) -> None:
    proc = start(world, "terraform", "destroy", env=world.env(SHIELD_HOLD_TIMEOUT="1"))
    code, _, err = finish(proc)
    assert code == 124
    assert b"expired" in err
    assert world.records() == []
    assert any(e["event"] == "expired" for e in world.log())


def test_ctrl_c_while_waiting_exits_130_and_withdraws_the_request(
    world: World, approver: Approver
) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    item = approver.wait_for_request()
    proc.send_signal(signal.SIGINT)
    code, _, _ = finish(proc)
    assert code == 130
    assert approver.pending() == []
    assert world.records() == []
    late = approver.cli("approve", item["id"], check=False)
    assert late.returncode != 0
    assert any(e["event"] == "cancelled" for e in world.log())


def test_sigterm_while_waiting_exits_143(world: World, approver: Approver) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web")
    approver.wait_for_request()
    proc.send_signal(signal.SIGTERM)
    code, _, _ = finish(proc)
    assert code == 143
    assert world.records() == []


def test_approver_key_made_in_the_agents_own_home_approves_nothing(
    world: World, approver: Approver
) -> None:
    # the agent makes itself an "approver" in its own home and approves its own request
    shield("approver", "init", "--name", "agent-itself", home=world.home)
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="4"))
    item = approver.wait_for_request()
    self_approve = shield(
        "approve", item["id"], "--spool", str(approver.spool), home=world.home, check=False
    )
    # it can sign (and is told that the agent's shim does not list its key); the shim must
    # not accept it
    assert self_approve.returncode == 1
    assert "signed, but the agent's shim does not trust this home's key" in self_approve.stderr
    code, _, _ = finish(proc)
    assert code == 124
    assert world.records() == []
    assert any(e["event"] == "security" for e in world.log())


def test_stdin_of_an_approved_call_reaches_the_tool(world: World, approver: Approver) -> None:
    manifest = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"
    proc = subprocess.Popen(
        ["kubectl", "apply", "-f", "-"],
        env=world.env(STANDIN_STDIN="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(manifest)
    proc.stdin.close()
    item = approver.wait_for_request()
    approver.cli("approve", item["id"])
    proc.wait(timeout=60)
    assert proc.returncode == 0
    assert bytes.fromhex(world.records()[0]["stdin"]) == manifest


# --------------------------------------------------------------------------- real aws + moto


def _aws_env(world: World, url: str) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "aws").exists():
        pytest.skip("the aws CLI is not installed in this environment (pip install awscli)")
    env = world.env(path=f"{world.bin}:{venv_bin}:/usr/bin:/bin")
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=url,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    return env


def _bucket_exists(env: dict[str, str], url: str, name: str) -> bool:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return name in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]


def _make_bucket(url: str, name: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="a.txt", Body=b"hello")


def test_real_aws_s3_ls_allowed_rb_approved_removes_the_bucket(
    world: World, approver: Approver, moto_url: str
) -> None:
    env = _aws_env(world, moto_url)
    _make_bucket(moto_url, "doomed")
    ls = subprocess.run(["aws", "s3", "ls"], env=env, capture_output=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    assert b"doomed" in ls.stdout
    proc = start(world, "aws", "s3", "rb", "s3://doomed", "--force", env=env)
    item = approver.wait_for_request()
    assert item["rule"] == "aws/s3-write"
    assert _bucket_exists(env, moto_url, "doomed")  # still there while held
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert not _bucket_exists(env, moto_url, "doomed")


def test_real_aws_s3_rb_denied_keeps_the_bucket(
    world: World, approver: Approver, moto_url: str
) -> None:
    env = _aws_env(world, moto_url)
    _make_bucket(moto_url, "keeper")
    proc = start(world, "aws", "s3", "rb", "s3://keeper", "--force", env=env)
    item = approver.wait_for_request()
    approver.cli("deny", item["id"], "--reason", "no")
    code, _, _ = finish(proc)
    assert code == 126
    assert _bucket_exists(env, moto_url, "keeper")


# --------------------------------------------------------------------------- real terraform


def test_real_terraform_apply_approved_changes_state_and_destroy_denied_keeps_it(
    world: World, approver: Approver, tf_project: tuple[Path, dict[str, str]]
) -> None:
    work, env = tf_project
    tfrun = ["terraform", f"-chdir={work}"]
    assert (
        subprocess.run(
            [*tfrun, "init", "-input=false"], env=env, capture_output=True, timeout=120
        ).returncode
        == 0
    )
    plan = subprocess.run(
        [*tfrun, "plan", "-input=false"], env=env, capture_output=True, timeout=120
    )
    assert plan.returncode == 0 and b"1 to add" in plan.stdout
    proc = start(world, *tfrun, "apply", "-auto-approve", "-input=false", env=env)
    item = approver.wait_for_request()
    assert item["context"]["workspace"] == "default"
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    state = json.loads((work / "terraform.tfstate").read_text())
    assert [r["type"] for r in state["resources"]] == ["terraform_data"]
    before = (work / "terraform.tfstate").read_bytes()
    proc = start(world, *tfrun, "destroy", "-auto-approve", "-input=false", env=env)
    item = approver.wait_for_request()
    approver.cli("deny", item["id"], "--reason", "keep it")
    code, _, _ = finish(proc)
    assert code == 126
    assert (work / "terraform.tfstate").read_bytes() == before


def test_pending_json_has_the_contract_fields(world: World, approver: Approver) -> None:
    proc = start(world, "kubectl", "--context", "kind-x", "scale", "deploy/web", "--replicas=0")
    item = approver.wait_for_request()
    for key in (
        "id",
        "agent",
        "tool",
        "argv",
        "cwd",
        "context",
        "rule",
        "reason",
        "created",
        "expires",
    ):
        assert key in item, key
    approver.cli("deny", item["id"])
    finish(proc)
    assert os.path.isdir(approver.spool)
