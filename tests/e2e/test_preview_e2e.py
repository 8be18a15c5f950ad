"""Previews against real tools: terraform (terraform_data, local state) and the aws CLI against
a local moto server. Each test runs prepare() the way the shim's hold path does, then runs
`run_argv` the way the approved call does, and checks that what ran is what was previewed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shim.preview.prepare import prepare
from shim.preview.sealed import SealedSet
from shim.preview.snapshot import check_snapshots, sha256_file
from tests.classify.support import classify, parse
from tests.conftest import free_port

# --------------------------------------------------------------------------- helpers


def held(
    tool: str,
    argv: list[str],
    *,
    real: str,
    env: dict[str, str],
    cwd: Path,
    workdir: Path,
    context: dict[str, str] | None = None,
    timeout_s: float = 60.0,
    stdin_fd: int | None = None,
) -> dict:
    """prepare() for a held call, with the shipped policy as the classifier."""
    inv = parse(tool, argv, env)
    asked: list[list[str]] = []

    def is_read_only(a: list[str]) -> bool:
        asked.append(a)
        return classify(tool, a, env=env).decision == "allow"

    sealed = SealedSet()
    res = prepare(
        "auto",
        inv,
        context or {},
        real=real,
        env=env,
        cwd=str(cwd),
        workdir=str(workdir),
        timeout_s=timeout_s,
        is_read_only=is_read_only,
        stdin_fd=stdin_fd,
        sealed=sealed,
    )
    # every command the preview ran was put to the classifier first
    assert [a[1:] for a in res["preview"]["argv"]] == asked
    res["_sealed"] = sealed
    return res


def approved(real: str, res: dict, original: list[str], env: dict[str, str], cwd: Path):
    """What the hold path runs on approval: run_argv (or the original) and run_env on the
    sealed files and snapshots."""
    argv = res["run_argv"] if res["run_argv"] is not None else original
    sealed = res["_sealed"]
    assert sealed.broken() == []
    stdin = os.open(res["stdin_file"], os.O_RDONLY) if res["stdin_file"] else subprocess.DEVNULL
    try:
        return subprocess.run(
            [real, *argv],
            env={**env, **res["run_env"]},
            cwd=cwd,
            capture_output=True,
            stdin=stdin,
            timeout=120,
            pass_fds=sealed.fds,
        )
    finally:
        if isinstance(stdin, int) and stdin >= 0:
            os.close(stdin)


# --------------------------------------------------------------------------- terraform

MAIN_V1 = """
variable "suffix" {
  type    = string
  default = "a"
}
resource "terraform_data" "keep" {
  input = "keep"
}
resource "terraform_data" "gone" {
  input = "gone"
}
resource "terraform_data" "swap" {
  triggers_replace = ["v1"]
}
resource "terraform_data" "edit" {
  input = "e1"
}
"""
# gone removed (destroy), swap replaced, edit updated in place, new created
MAIN_V2 = """
variable "suffix" {
  type    = string
  default = "a"
}
resource "terraform_data" "keep" {
  input = "keep"
}
resource "terraform_data" "swap" {
  triggers_replace = ["v2"]
}
resource "terraform_data" "edit" {
  input = "e2"
}
resource "terraform_data" "new" {
  input = "new-${var.suffix}"
}
"""
# what the agent writes after the preview, hoping it runs instead
MAIN_SNEAKY = MAIN_V2.replace('input = "keep"', 'input = "changed"') + (
    'resource "terraform_data" "sneaky" {\n  input = "x"\n}\n'
)


@pytest.fixture(scope="module")
def tf_bin() -> str:
    tf = shutil.which("terraform")
    if tf is None:
        pytest.skip("terraform is not installed")
    return tf


@pytest.fixture
def tf(tf_bin: str, tmp_path: Path):
    """An initialised and applied MAIN_V1 in <tmp>/infra, then MAIN_V2 written over it."""
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(MAIN_V1)
    (tmp_path / "home").mkdir()
    env = {
        "PATH": f"{Path(tf_bin).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": "/dev/null",
    }
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        proc = subprocess.run(
            [tf_bin, "-chdir=infra", *args], env=env, cwd=tmp_path, capture_output=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    (infra / "main.tf").write_text(MAIN_V2)
    return tf_bin, env, tmp_path, infra


def state_of(infra: Path) -> dict[str, object]:
    state = json.loads((infra / "terraform.tfstate").read_text())
    out: dict[str, object] = {}
    for r in state["resources"]:
        attrs = r["instances"][0]["attributes"]
        value = attrs.get("input") or attrs.get("triggers_replace")
        out[r["name"]] = value["value"] if isinstance(value, dict) else value
    return out


def test_terraform_apply_preview_counts_and_names_what_is_destroyed_and_replaced(tf) -> None:
    real, env, cwd, infra = tf
    argv = ["-chdir=infra", "apply", "-auto-approve", "-var", "suffix=b"]
    res = held("terraform", argv, real=real, env=env, cwd=cwd, workdir=cwd / "work")
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"add": 2, "change": 1, "destroy": 2, "replace": 1}
    assert pv["lines"][:2] == [
        "- terraform_data.gone (because terraform_data.gone is not in configuration)",
        "-/+ terraform_data.swap",
    ]
    assert "~ terraform_data.edit" in pv["lines"] and "+ terraform_data.new" in pv["lines"]
    assert pv["summary"] == (
        "terraform plan (workspace default): 2 to add, 1 to change, 2 to destroy (1 replaced)"
    )
    copy = str(cwd / "work" / "tf")
    [plan] = res["_sealed"].files
    assert pv["argv"] == [
        [
            "terraform",
            f"-chdir={copy}",
            "plan",
            "-input=false",
            "-json",
            f"-out={plan.path}",
            "-var=suffix=b",
        ],
        ["terraform", f"-chdir={copy}", "show", "-no-color", plan.path],
    ]
    assert res["run_argv"] == [f"-chdir={copy}", "apply", "-input=false", plan.path]
    assert res["run_env"]["TF_DATA_DIR"] == f"{copy}/.terraform"
    # the approver gets the saved plan as `terraform show` prints it
    [shown] = res["inputs"]
    assert shown["source"] == "terraform show of the saved plan"
    assert "# terraform_data.gone will be destroyed" in shown["text"]
    assert res["snapshots"]["tf/main.tf"] == sha256_file(str(infra / "main.tf"))
    assert state_of(infra) == {"keep": "keep", "gone": "gone", "swap": ["v1"], "edit": "e1"}

    # the agent rewrites main.tf after the preview; the approved run applies the saved plan
    (infra / "main.tf").write_text(MAIN_SNEAKY)
    assert check_snapshots(str(cwd / "work"), res["snapshots"]) == []
    done = approved(real, res, argv, env, cwd)
    assert done.returncode == 0, done.stderr
    assert b"2 added, 1 changed, 2 destroyed" in done.stdout
    assert state_of(infra) == {"keep": "keep", "swap": ["v2"], "edit": "e2", "new": "new-b"}


def test_terraform_destroy_preview_is_a_destroy_plan_and_applies_it(tf) -> None:
    real, env, cwd, infra = tf
    argv = ["-chdir=infra", "destroy", "-auto-approve"]
    res = held(
        "terraform",
        argv,
        real=real,
        env=env,
        cwd=cwd,
        workdir=cwd / "work",
        context={"workspace": "default"},
    )
    pv = res["preview"]
    assert pv["counts"] == {"add": 0, "change": 0, "destroy": 4, "replace": 0}
    assert all(ln.startswith("- terraform_data.") for ln in pv["lines"])
    assert {ln.split()[1] for ln in pv["lines"]} == {
        "terraform_data.keep",
        "terraform_data.gone",
        "terraform_data.swap",
        "terraform_data.edit",
    }
    assert "-destroy" in pv["argv"][0]
    done = approved(real, res, argv, env, cwd)
    assert done.returncode == 0, done.stderr
    assert json.loads((infra / "terraform.tfstate").read_text())["resources"] == []


def test_terraform_apply_of_a_saved_plan_shows_it_and_binds_a_copy(tf) -> None:
    real, env, cwd, infra = tf
    plan = subprocess.run(
        [real, "-chdir=infra", "plan", "-input=false", "-out=agent.tfplan"],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )
    assert plan.returncode == 0, plan.stderr
    argv = ["-chdir=infra", "apply", "agent.tfplan"]  # relative to -chdir, as terraform reads it
    res = held("terraform", argv, real=real, env=env, cwd=cwd, workdir=cwd / "work")
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"add": 2, "change": 1, "destroy": 2, "replace": 1}
    assert "-/+ terraform_data.swap" in pv["lines"]
    assert pv["lines"][0].startswith("- terraform_data.gone")
    assert pv["summary"].endswith("(saved plan)")
    [plan] = res["_sealed"].files
    assert plan.read() == (infra / "agent.tfplan").read_bytes()
    copy = str(cwd / "work" / "tf")
    assert res["run_argv"] == [f"-chdir={copy}", "apply", "-input=false", plan.path]
    assert pv["argv"] == [["terraform", f"-chdir={copy}", "show", "-no-color", plan.path]]

    # attack: after the preview the agent replaces its plan file with a destroy plan
    (infra / "main.tf").write_text(MAIN_SNEAKY)
    destroy = subprocess.run(
        [real, "-chdir=infra", "plan", "-destroy", "-input=false", "-out=agent.tfplan"],
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )
    assert destroy.returncode == 0, destroy.stderr
    assert check_snapshots(str(cwd / "work"), res["snapshots"]) == []
    done = approved(real, res, argv, env, cwd)
    assert done.returncode == 0, done.stderr
    assert state_of(infra) == {"keep": "keep", "swap": ["v2"], "edit": "e2", "new": "new-a"}


def test_terraform_plan_is_sealed_and_cannot_be_written_after_the_preview(tf) -> None:
    real, env, cwd, infra = tf
    res = held(
        "terraform", ["-chdir=infra", "apply"], real=real, env=env, cwd=cwd, workdir=cwd / "w"
    )
    [plan] = res["_sealed"].files
    # the agent opens the sealed plan through /proc and tries to change it: the seals refuse
    fd = os.open(f"/proc/{os.getpid()}/fd/{plan.fd}", os.O_RDWR)
    try:
        with pytest.raises(PermissionError):
            os.write(fd, b"PK")
        with pytest.raises(PermissionError):
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    assert res["_sealed"].broken() == []
    # a file changed in the snapshot of the working directory is caught before the run
    script = cwd / "w" / "tf" / "main.tf"
    script.chmod(0o600)
    script.write_text("# changed\n")
    assert check_snapshots(str(cwd / "w"), res["snapshots"]) == ["tf/main.tf"]


def test_terraform_plan_that_fails_is_reported_and_binds_nothing(tf) -> None:
    real, env, cwd, infra = tf
    (infra / "main.tf").write_text('resource "terraform_data" "x" {\n  bogus = 1\n}\n')
    t0 = time.monotonic()
    res = held(
        "terraform", ["-chdir=infra", "apply"], real=real, env=env, cwd=cwd, workdir=cwd / "w"
    )
    assert time.monotonic() - t0 < 30
    pv = res["preview"]
    assert pv["ok"] is False
    assert "terraform plan failed (exit 1)" in pv["error"]
    assert "Unsupported argument" in pv["error"]
    assert res["run_argv"] is None and res["snapshots"] == {}


# --------------------------------------------------------------------------- aws + moto


@pytest.fixture
def aws(tmp_path: Path) -> tuple[str, dict[str, str]]:
    real = Path(sys.executable).parent / "aws"
    if not real.exists():
        pytest.skip("the aws CLI is not installed in this environment (pip install awscli)")
    (tmp_path / "home").mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    return str(real), env


def _s3(url: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _bucket(url: str, name: str, objects: dict[str, bytes]) -> None:
    s3 = _s3(url)
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


def _keys(url: str, name: str) -> list[str]:
    return sorted(o["Key"] for o in _s3(url).list_objects_v2(Bucket=name).get("Contents", []))


OBJECTS = {
    "logs/a.txt": b"x" * 100,
    "logs/b.log": b"x" * 20,
    "logs/sp ace.txt": b"x" * 3,
    "logs2/c.txt": b"x" * 7,  # shares the prefix "logs" but is not under logs/
    "logsX.txt": b"x" * 5,
    "top.txt": b"x" * 1,
}


def test_s3_rm_recursive_shows_object_count_and_total_size(moto_url: str, aws, tmp_path) -> None:
    real, env = aws
    _bucket(moto_url, "pv-rm", OBJECTS)
    argv = ["s3", "rm", "s3://pv-rm/logs", "--recursive", "--endpoint-url", moto_url]
    res = held(
        "aws",
        argv,
        real=real,
        env=env,
        cwd=tmp_path,
        workdir=tmp_path / "w",
        context={"profile": "default", "region": "us-east-1"},
    )
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"objects": 3, "bytes": 123, "delete": 3}
    assert pv["summary"].startswith("s3 rm s3://pv-rm/logs --recursive: 3 object(s), 123 B")
    assert pv["lines"] == [
        "- s3://pv-rm/logs/a.txt (100 B)",
        "- s3://pv-rm/logs/b.log (20 B)",
        "- s3://pv-rm/logs/sp ace.txt (3 B)",
    ]
    assert pv["argv"] == [
        [
            "aws",
            "s3",
            "ls",
            "s3://pv-rm/logs/",
            "--recursive",
            "--summarize",
            f"--endpoint-url={moto_url}",
        ]
    ]
    # and the approved rm deletes exactly those
    done = approved(real, res, argv, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _keys(moto_url, "pv-rm") == ["logs2/c.txt", "logsX.txt", "top.txt"]


def test_s3_rm_with_filters_uses_its_own_dry_run(moto_url: str, aws, tmp_path) -> None:
    real, env = aws
    _bucket(moto_url, "pv-filter", OBJECTS)
    env = dict(env, AWS_ENDPOINT_URL=moto_url)
    argv = ["s3", "rm", "s3://pv-filter", "--recursive", "--exclude", "*.txt"]
    res = held("aws", argv, real=real, env=env, cwd=tmp_path, workdir=tmp_path / "w")
    pv = res["preview"]
    assert pv["counts"] == {"objects": 1, "bytes": 20, "delete": 1}
    assert pv["lines"] == ["- s3://pv-filter/logs/b.log (20 B)"]
    assert pv["argv"][1] == ["aws", *argv, "--dryrun"]


def test_s3_rb_force_counts_everything_in_the_bucket(moto_url: str, aws, tmp_path) -> None:
    real, env = aws
    _bucket(moto_url, "pv-rb", OBJECTS)
    env = dict(env, AWS_ENDPOINT_URL=moto_url)
    res = held(
        "aws",
        ["s3", "rb", "s3://pv-rb", "--force"],
        real=real,
        env=env,
        cwd=tmp_path,
        workdir=tmp_path / "w",
    )
    assert res["preview"]["counts"] == {"objects": 6, "bytes": 136, "delete": 6, "buckets": 1}


def test_s3_sync_delete_lists_what_it_would_delete(moto_url: str, aws, tmp_path) -> None:
    real, env = aws
    _bucket(moto_url, "pv-sync", OBJECTS)
    src = tmp_path / "site"
    (src / "logs").mkdir(parents=True)
    (src / "logs" / "a.txt").write_bytes(b"x" * 100)
    (src / "top.txt").write_bytes(b"y")
    env = dict(env, AWS_ENDPOINT_URL=moto_url)
    res = held(
        "aws",
        ["s3", "sync", "site", "s3://pv-sync", "--delete"],
        real=real,
        env=env,
        cwd=tmp_path,
        workdir=tmp_path / "w",
    )
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"]["delete"] == 4
    assert pv["counts"]["bytes"] == 20 + 3 + 7 + 5
    assert "- s3://pv-sync/logsX.txt" in pv["lines"]


def test_ec2_terminate_shows_instance_names_and_states(moto_url: str, aws, tmp_path) -> None:
    import boto3

    real, env = aws
    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    made = ec2.run_instances(
        ImageId=ami,
        MinCount=2,
        MaxCount=2,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )
    ids = [i["InstanceId"] for i in made["Instances"]]
    ec2.stop_instances(InstanceIds=ids[1:])
    env = dict(env, AWS_ENDPOINT_URL=moto_url)
    res = held(
        "aws",
        ["ec2", "terminate-instances", "--instance-ids", *ids],
        real=real,
        env=env,
        cwd=tmp_path,
        workdir=tmp_path / "w",
    )
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"instances": 2, "terminate": 2, "running": 1}
    assert pv["lines"][0] == f"- {ids[0]} web (running, t3.micro)"
    assert pv["lines"][1].startswith(f"- {ids[1]} web (")


def test_aws_preview_against_an_unreachable_endpoint_fails_within_its_timeout(
    aws, tmp_path
) -> None:
    real, env = aws
    port = free_port()  # nothing listens there
    env = dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_MAX_ATTEMPTS="1")
    t0 = time.monotonic()
    res = held(
        "aws",
        ["s3", "rm", "s3://x/y", "--recursive"],
        real=real,
        env=env,
        cwd=tmp_path,
        workdir=tmp_path / "w",
        timeout_s=20,
    )
    assert time.monotonic() - t0 < 25
    assert res["preview"]["ok"] is False
    assert res["preview"]["error"]
    assert os.path.isdir(tmp_path / "w")


# --------------------------------------------------------------------------- through the shim
# Two homes, one spool, real shim processes: the hold path runs the rule's preview, the request
# carries it, the approver signs it, and what runs is what was shown. These need the hold path
# to call shim.preview.prepare.hold_preview and the rules to declare `preview:`.


from tests.e2e.conftest import finish, start  # noqa: E402 - shared e2e helpers


def _events(world, request: str) -> list[dict]:
    return [e for e in world.log() if e.get("request") == request]


def test_shim_terraform_apply_runs_the_previewed_plan_after_main_tf_changes(
    world, approver, tf_bin: str, tmp_path: Path
) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(MAIN_V1)
    env = world.env(
        path=f"{world.bin}:{Path(tf_bin).parent}:/usr/bin:/bin",
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_CLI_CONFIG_FILE="/dev/null",
    )
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        done = subprocess.run(
            [tf_bin, f"-chdir={infra}", *args], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    (infra / "main.tf").write_text(MAIN_V2)
    proc = start(world, "terraform", f"-chdir={infra}", "apply", "-auto-approve", env=env)
    item = approver.wait_for_request()
    pv = item["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"add": 2, "change": 1, "destroy": 2, "replace": 1}
    assert pv["lines"][0].startswith("- terraform_data.gone")
    assert item["risk"] == "high"
    copy = f"{item['workdir']}/tf"
    assert item["run_argv"][:3] == [f"-chdir={copy}", "apply", "-input=false"]
    assert item["target"]["workspace"] == "default" and item["target"]["dir"] == str(infra)
    assert item["run_env"]["TF_WORKSPACE"] == "default"
    assert [s["source"] for s in item["sealed"].values()] == ["plan.tfplan"]
    assert "tf/main.tf" in item["snapshots"]
    (infra / "main.tf").write_text(MAIN_SNEAKY)  # the agent changes the config while held
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert state_of(infra) == {"keep": "keep", "swap": ["v2"], "edit": "e2", "new": "new-a"}
    events = {e["event"]: e for e in _events(world, item["id"])}
    assert events["held"]["preview"]["counts"]["destroy"] == 2
    assert events["executed"]["ran"] == item["run_argv"]
    assert not Path(item["workdir"]).exists()  # snapshots removed once the call ended


def test_shim_kubectl_apply_from_stdin_previews_and_runs_the_snapshot(world, approver) -> None:
    manifest = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
    proc = subprocess.Popen(
        ["kubectl", "--context", "kind-dev", "-n", "shop", "apply", "-f", "-"],
        env=world.env(STANDIN_STDIN="1"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(manifest)
    proc.stdin.close()
    item = approver.wait_for_request()
    snap = item["stdin_file"]
    assert item["preview"]["kind"] == "kubectl-diff"
    # the stand-in answered the preview's diff: same context and namespace, the snapshot
    assert world.argvs(previews=True) == [
        [b"diff", b"-f", snap.encode(), b"--context=kind-dev", b"--namespace=shop"]
    ]
    assert world.argvs() == []  # nothing but the preview ran while held
    # the approver is shown the sealed bytes themselves, not a path into the agent's home
    [stdin] = item["inputs"]
    assert stdin["source"] == "stdin" and stdin["text"] == manifest.decode()
    assert item["sealed"][snap]["sha256"] == stdin["sha256"]
    approver.cli("approve", item["id"])
    code = proc.wait(timeout=60)
    assert proc.stderr is not None and proc.stdout is not None
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert code == 0, err
    last = world.records()[-1]
    assert [bytes.fromhex(a) for a in last["argv"]] == [
        b"--context",
        b"kind-dev",
        b"-n",
        b"shop",
        b"apply",
        b"-f",
        b"-",
    ]
    assert bytes.fromhex(last["stdin"]) == manifest
    assert _events(world, item["id"])[-1]["stdin"] == "snapshot"


def test_attack_manifest_edited_while_held_the_approved_call_reads_the_snapshot(
    world, approver, tmp_path: Path
) -> None:
    work = tmp_path / "agent-cwd"
    work.mkdir()
    (work / "app.yaml").write_text("kind: Deployment\nmetadata: {name: web}\n")
    proc = start(
        world, "kubectl", "apply", "-f", "app.yaml", cwd=work, env=world.env(STANDIN_CAT="1")
    )
    item = approver.wait_for_request()
    snap = item["run_argv"][2]
    assert snap.startswith("/proc/self/fd/")
    assert item["inputs"][0]["text"] == "kind: Deployment\nmetadata: {name: web}\n"
    (work / "app.yaml").write_text("kind: Namespace\nmetadata: {name: kube-system}\n")
    approver.cli("approve", item["id"])
    code, out, err = finish(proc)
    assert code == 0, err
    assert world.argvs()[-1] == [b"apply", b"-f", snap.encode()]
    # what the approved kubectl read through that path: the bytes shown, not the edit
    assert b"kind: Deployment" in out and b"kube-system" not in out
    executed = [e for e in _events(world, item["id"]) if e["event"] == "executed"]
    assert executed[-1]["ran"] == ["apply", "-f", snap]


def test_a_failing_preview_does_not_block_the_request(world, approver) -> None:
    proc = start(world, "kubectl", "delete", "pod", "web", env=world.env(STANDIN_EXIT="1"))
    item = approver.wait_for_request()
    assert item["preview"]["ok"] is False
    assert "exited 1" in item["preview"]["error"]
    assert item["risk"] == "high"  # an unknown blast radius of a delete
    approver.cli("deny", item["id"], "--reason", "no")
    code, _, _ = finish(proc)
    assert code == 126
