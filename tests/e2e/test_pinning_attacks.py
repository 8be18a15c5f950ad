"""What runs is what was shown, attacked from the agent's side with the real tools.

Each test holds a call through an installed shim, lets the agent change what it can (its
kubeconfig, its aws config, its terraform workspace and scripts, its manifests and the files
the shim writes, racing the preview with an inotify watcher), approves, and checks what the
real tool did against a local server: a recording Kubernetes API server (tests/e2e/kubeapi.py),
moto for aws, terraform's own state. Either the approved run does exactly what the approver was
shown, or it is refused with a `security` entry.
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

from tests.conftest import World, free_port
from tests.e2e.conftest import Approver, finish, start
from tests.e2e.kubeapi import KubeAPI
from tests.e2e.watcher import Watcher, overwrite, write_sealed_files

KUBECTL = shutil.which("kubectl")
TERRAFORM = shutil.which("terraform")
AWS = Path(sys.executable).parent / "aws"

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
needs_aws = pytest.mark.skipif(not AWS.exists(), reason="the aws CLI is not installed")


def events(world: World, request: str) -> list[dict]:
    return [e for e in world.log() if e.get("request") == request]


def kind_of(world: World, request: str, event: str) -> list[dict]:
    return [e for e in events(world, request) if e["event"] == event]


# --------------------------------------------------------------------------- kubectl


@pytest.fixture
def kube(world: World):
    api = KubeAPI().start()
    yield api
    api.stop()


def kubeconfig(api: KubeAPI, current: str, dev_server: str | None = None) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"current-context: {current}\n"
        "clusters:\n"
        f"- name: dev\n  cluster:\n    server: {dev_server or api.url('dev')}\n"
        f"- name: prod\n  cluster:\n    server: {api.url('prod')}\n"
        "contexts:\n"
        "- name: dev\n  context: {cluster: dev, user: u, namespace: shop}\n"
        "- name: prod\n  context: {cluster: prod, user: u, namespace: shop}\n"
        "users:\n- name: u\n  user: {token: t0ken}\n"
    )


def kube_env(world: World, **extra: str) -> dict[str, str]:
    assert KUBECTL is not None
    return world.env(path=f"{world.bin}:{Path(KUBECTL).parent}:/usr/bin:/bin", **extra)


@needs_kubectl
def test_attack_current_context_flipped_after_the_hold_runs_on_the_shown_cluster(
    world: World, approver: Approver, kube: KubeAPI
) -> None:
    for cluster in ("dev", "prod"):
        kube.add(cluster, "pods", "shop", "web")
    cfg = world.root / "user-home" / ".kube" / "config"
    cfg.parent.mkdir()
    cfg.write_text(kubeconfig(kube, "dev"))
    proc = start(world, "kubectl", "delete", "pod", "web", "--wait=false", env=kube_env(world))
    item = approver.wait_for_request()
    assert item["target"]["context"] == "dev" and item["target"]["namespace"] == "shop"
    assert item["target"]["server"] == kube.url("dev")
    assert item["preview"]["lines"] == ["- pod/web"]
    assert item["run_argv"][0].startswith("--kubeconfig=/proc/self/fd/")
    assert item["run_argv"][1] == "--context=dev"
    # the agent points its kubeconfig at prod while the call is held
    cfg.write_text(kubeconfig(kube, "prod"))
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert kube.writes() == [("dev", "DELETE", "/api/v1/namespaces/shop/pods/web")]
    assert kube.names("prod") == {"pods/shop/web"}


@needs_kubectl
def test_attack_kubeconfig_files_swapped_in_KUBECONFIG_after_the_hold(
    world: World, approver: Approver, kube: KubeAPI
) -> None:
    for cluster in ("dev", "prod"):
        kube.add(cluster, "pods", "shop", "web")
    first, second = world.root / "a.yaml", world.root / "b.yaml"
    first.write_text(kubeconfig(kube, "dev"))
    second.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod\n")
    env = kube_env(world, KUBECONFIG=f"{first}:{second}")
    proc = start(world, "kubectl", "delete", "pod", "web", "--wait=false", env=env)
    item = approver.wait_for_request()
    assert item["target"]["context"] == "dev"
    assert item["target"]["kubeconfig"]["files"] == [str(first), str(second)]
    # the agent swaps the files: the first now makes prod current, and dev's server is prod's
    first.write_text(kubeconfig(kube, "prod", dev_server=kube.url("prod")))
    second.write_text(kubeconfig(kube, "prod"))
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert kube.writes() == [("dev", "DELETE", "/api/v1/namespaces/shop/pods/web")]


MANIFEST_DB = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: db\n  namespace: shop\n"
MANIFEST_SCRATCH = MANIFEST_DB.replace("name: db", "name: scratch")


@needs_kubectl
def test_attack_manifest_copy_swapped_during_the_preview_and_put_back(
    world: World, approver: Approver, kube: KubeAPI
) -> None:
    # `kubectl delete -f app.yaml` names pod db. While the preview runs, the agent's watcher
    # rewrites every file the shim writes under its state dir to name pod scratch (so the
    # approver would see a harmless delete) and puts the bytes back once the request is
    # pending; it also tries to write the shim's sealed files through /proc.
    for name in ("db", "scratch"):
        kube.add("dev", "pods", "shop", name)
    cfg = world.root / "user-home" / ".kube" / "config"
    cfg.parent.mkdir()
    cfg.write_text(kubeconfig(kube, "dev"))
    work = world.root / "agent-cwd"
    work.mkdir()
    (work / "app.yaml").write_text(MANIFEST_DB)
    previews = world.home / "state" / "previews"
    previews.mkdir(parents=True, exist_ok=True)
    swapped: dict[str, bytes] = {}
    tried: list[str] = []
    proc: subprocess.Popen | None = None

    def on_file(path: str, _mask: int) -> None:
        if path in swapped:
            return
        data = Path(path).read_bytes()
        if b"name: db" in data and overwrite(path, data.replace(b"name: db", b"name: scratch")):
            swapped[path] = data
        if proc is not None:
            tried.extend(write_sealed_files(proc.pid, MANIFEST_SCRATCH.encode()))

    watcher = Watcher(str(previews), on_file)
    watcher.start()
    try:
        proc = start(
            world,
            "kubectl",
            "delete",
            "-f",
            "app.yaml",
            "--wait=false",
            cwd=work,
            env=kube_env(world),
        )
        item = approver.wait_for_request()
        tried.extend(write_sealed_files(proc.pid, MANIFEST_SCRATCH.encode()))
        for path, data in swapped.items():
            overwrite(path, data)  # put the bytes back
    finally:
        watcher.stop()
    assert not watcher.errors
    assert not any(t.endswith("WRITTEN") for t in tried), tried
    shown = item["preview"]["lines"]
    assert [i["text"] for i in item["inputs"]] == [MANIFEST_DB]
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    refused = kind_of(world, item["id"], "security")
    if code == 126:
        assert refused and "changed" in refused[-1]["detail"]
        assert kube.writes() == []
        return
    assert code == 0, err
    deleted = [f"- pod/{p.rsplit('/', 1)[1]}" for _, _, p in kube.writes()]
    assert deleted == shown == ["- pod/db"]


# --------------------------------------------------------------------------- terraform

TF_MAIN = """
resource "terraform_data" "web" {
  input            = "v1"
  triggers_replace = ["r1"]
  provisioner "local-exec" {
    command = "sh ./deploy.sh"
  }
}
"""


@pytest.fixture
def tf(world: World, tmp_path: Path):
    if TERRAFORM is None:
        pytest.skip("terraform is not installed")
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(TF_MAIN)
    (infra / "deploy.sh").write_text("echo original > ran.txt\n")
    env = world.env(
        path=f"{world.bin}:{Path(TERRAFORM).parent}:/usr/bin:/bin",
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        TF_CLI_CONFIG_FILE="/dev/null",
    )

    def real(*args: str) -> subprocess.CompletedProcess:
        assert TERRAFORM is not None
        done = subprocess.run(
            [TERRAFORM, f"-chdir={infra}", *args], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done

    real("init", "-input=false")
    real("apply", "-auto-approve", "-input=false")
    return infra, env, real


def tf_state(infra: Path, workspace: str = "default") -> dict:
    path = infra / "terraform.tfstate"
    if workspace != "default":
        path = infra / "terraform.tfstate.d" / workspace / "terraform.tfstate"
    state = json.loads(path.read_text())
    return {r["name"]: r["instances"][0]["attributes"] for r in state["resources"]}


@needs_terraform
def test_attack_provisioner_script_edited_after_the_hold_runs_the_shown_script(
    world: World, approver: Approver, tf
) -> None:
    infra, env, _ = tf
    (infra / "ran.txt").unlink()
    (infra / "main.tf").write_text(TF_MAIN.replace('"r1"', '"r2"'))  # replace: provision again
    proc = start(world, "terraform", f"-chdir={infra}", "apply", "-auto-approve", env=env)
    item = approver.wait_for_request()
    assert item["preview"]["counts"]["replace"] == 1
    assert "tf/deploy.sh" in item["snapshots"]
    (infra / "deploy.sh").write_text("echo EVIL > ran.txt\n")  # the agent's edit while held
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert (infra / "ran.txt").read_text() == "original\n"  # written back from the snapshot
    assert tf_state(infra)["web"]["triggers_replace"]["value"] == ["r2"]
    [executed] = kind_of(world, item["id"], "executed")
    assert executed["wrote_back"] == ["ran.txt"]


@needs_terraform
def test_attack_terraform_workspace_switched_after_the_hold(
    world: World, approver: Approver, tf
) -> None:
    infra, env, real = tf
    real("workspace", "new", "prod")
    real("apply", "-auto-approve", "-input=false")
    real("workspace", "select", "default")
    proc = start(world, "terraform", f"-chdir={infra}", "taint", "terraform_data.web", env=env)
    item = approver.wait_for_request()
    assert item["target"]["workspace"] == "default"
    assert item["run_env"]["TF_WORKSPACE"] == "default"
    (infra / ".terraform" / "environment").write_text("prod")  # the agent switches
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    default = json.loads((infra / "terraform.tfstate").read_text())
    prod = json.loads((infra / "terraform.tfstate.d" / "prod" / "terraform.tfstate").read_text())
    assert default["resources"][0]["instances"][0].get("status") == "tainted"
    assert prod["resources"][0]["instances"][0].get("status") is None


@needs_terraform
def test_attack_terraform_directory_replaced_after_the_hold_is_refused(
    world: World, approver: Approver, tf, tmp_path: Path
) -> None:
    infra, env, _ = tf
    proc = start(world, "terraform", f"-chdir={infra}", "taint", "terraform_data.web", env=env)
    item = approver.wait_for_request()
    shutil.copytree(infra, tmp_path / "other")
    infra.rename(tmp_path / "infra-held")
    (tmp_path / "other").rename(infra)  # the same path, another directory and another state
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 126
    assert b"target directory" in err
    [refused] = kind_of(world, item["id"], "security")
    assert str(infra) in refused["detail"] and "->" in refused["detail"]
    assert kind_of(world, item["id"], "executed") == []


TF_PLAN_MAIN = 'resource "terraform_data" "a" {\n  input = "v1"\n}\n'


@needs_terraform
def test_attack_plan_file_swapped_during_the_preview(
    world: World, approver: Approver, tf, tmp_path: Path
) -> None:
    # the agent has a destroy plan ready; its watcher copies it over every plan file the shim
    # writes under its state dir, and into the shim's sealed files through /proc
    infra, env, real = tf
    (infra / "main.tf").write_text(TF_MAIN.replace('"v1"', '"v2"'))
    real("plan", "-destroy", "-input=false", f"-out={tmp_path / 'evil.tfplan'}")
    evil = (tmp_path / "evil.tfplan").read_bytes()
    previews = world.home / "state" / "previews"
    previews.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    proc: subprocess.Popen | None = None

    def on_file(path: str, _mask: int) -> None:
        if path.endswith(".tfplan") and Path(path).read_bytes() != evil:
            tmp = tmp_path / "swap.tfplan"  # outside the watched dir, on the same filesystem
            tmp.write_bytes(evil)
            os.rename(tmp, path)  # one step: faster than the shim's read after plan exits
        if proc is not None:
            tried.extend(write_sealed_files(proc.pid, evil))

    watcher = Watcher(str(previews), on_file)
    watcher.start()
    try:
        proc = start(world, "terraform", f"-chdir={infra}", "apply", "-auto-approve", env=env)
        item = approver.wait_for_request()
    finally:
        watcher.stop()
    assert not watcher.errors
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    pv = item["preview"]
    after = tf_state(infra) if (infra / "terraform.tfstate").exists() else {}
    if code == 126:
        assert kind_of(world, item["id"], "security")
        return
    assert code == 0, err
    # what ran is what the approver was shown, whichever bytes were sealed
    if pv["counts"]["destroy"]:
        assert after == {}
    else:
        assert after.get("web", {}).get("input", {}).get("value") == "v2", (pv["summary"], after)
    assert not any(t.endswith("WRITTEN") for t in tried if "plan" not in t)


# --------------------------------------------------------------------------- aws


@pytest.fixture(scope="module")
def moto_prod(tmp_path_factory: pytest.TempPathFactory):
    """A second moto server: the "prod" account the agent would like to reach."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto_server is not installed")
    port = free_port()
    with open(tmp_path_factory.mktemp("moto-prod") / "moto.log", "wb") as log:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
        end = time.monotonic() + 30
        import socket

        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
        proc.terminate()
        proc.wait(timeout=10)


def _s3(url: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _bucket(url: str, name: str, keys: list[str]) -> None:
    s3 = _s3(url)
    s3.create_bucket(Bucket=name)
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=b"x")


def _keys(url: str, name: str) -> list[str]:
    return sorted(o["Key"] for o in _s3(url).list_objects_v2(Bucket=name).get("Contents", []))


def aws_env(world: World, **extra: str) -> dict[str, str]:
    return world.env(
        path=f"{world.bin}:{AWS.parent}:/usr/bin:/bin",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        **extra,
    )


@needs_aws
def test_attack_aws_profile_endpoint_and_region_flipped_after_the_hold(
    world: World, approver: Approver, moto_url: str, moto_prod: str
) -> None:
    for url in (moto_url, moto_prod):
        _bucket(url, "pin-data", ["a.txt", "b.txt", "logs/c.txt"])
    config = world.root / "user-home" / ".aws" / "config"
    config.parent.mkdir()
    config.write_text(f"[profile dev]\nregion = us-east-1\nendpoint_url = {moto_url}\n")
    (config.parent / "credentials").write_text(
        "[dev]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    argv = ["aws", "--profile", "dev", "s3", "rm", "s3://pin-data/logs", "--recursive"]
    proc = start(world, *argv, env=aws_env(world))
    item = approver.wait_for_request()
    assert item["target"]["profile"] == "dev" and item["target"]["region"] == "us-east-1"
    assert item["target"]["endpoint"] == moto_url
    assert item["preview"]["counts"].get("delete") == 1, item["preview"]
    # the agent moves the profile to prod, and the call to the whole bucket's region
    config.write_text(f"[profile dev]\nregion = eu-west-1\nendpoint_url = {moto_prod}\n")
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert _keys(moto_url, "pin-data") == ["a.txt", "b.txt"]
    assert _keys(moto_prod, "pin-data") == ["a.txt", "b.txt", "logs/c.txt"]


@needs_aws
@pytest.mark.parametrize("change", ["empty", "add"])
def test_attack_s3_sync_source_changed_after_the_hold(
    world: World, approver: Approver, moto_url: str, change: str
) -> None:
    bucket = f"pin-sync-{change}"
    _bucket(moto_url, bucket, ["a.txt", "b.txt"])
    site = world.root / "site"
    site.mkdir()
    for name in ("a.txt", "b.txt"):
        (site / name).write_bytes(b"x")
    env = aws_env(world, AWS_ENDPOINT_URL=moto_url, AWS_DEFAULT_REGION="us-east-1")
    proc = start(
        world, "aws", "s3", "sync", "site", f"s3://{bucket}", "--delete", env=env, cwd=world.root
    )
    item = approver.wait_for_request()
    assert item["preview"]["counts"]["delete"] == 0
    if change == "empty":
        for p in site.iterdir():
            p.unlink()
    else:
        (site / "evil.txt").write_bytes(b"evil")
    approver.cli("approve", item["id"])
    code, _, err = finish(proc)
    assert code == 0, err
    assert _keys(moto_url, bucket) == ["a.txt", "b.txt"]
