"""The pinned target: the kubeconfig merged and sealed as kubectl reads it, the aws files and
variables, terraform's workspace and directory; what is resolved again before the run; sealed
files that nobody can change."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shim.approval.show import extra_lines
from shim.preview.kubepin import flatten
from shim.preview.pin import pin_target
from shim.preview.sealed import SealedSet, seal_bytes
from tests.classify.support import parse


@pytest.fixture
def sealed():
    s = SealedSet()
    yield s
    s.close()


def test_sealed_bytes_cannot_change_through_any_path_or_descriptor(tmp_path: Path) -> None:
    item = seal_bytes("app.yaml", b"kind: Pod\n")
    try:
        for flags in (os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
            try:
                fd = os.open(f"/proc/{os.getpid()}/fd/{item.fd}", flags)
            except PermissionError:
                continue  # O_TRUNC on a shrink-sealed file is refused at open
            try:
                with pytest.raises(PermissionError):
                    os.write(fd, b"kind: ClusterRoleBinding\n")
            finally:
                os.close(fd)
        with pytest.raises(PermissionError):
            os.ftruncate(item.fd, 0)
        assert item.read() == b"kind: Pod\n" and item.intact()
        assert Path(item.path).read_bytes() == b"kind: Pod\n"
    finally:
        os.close(item.fd)


def kubeconfig(server: str, current: str = "dev", ca: str | None = None) -> str:
    ca_line = f"\n    certificate-authority: {ca}" if ca else ""
    return (
        f"apiVersion: v1\nkind: Config\ncurrent-context: {current}\n"
        f"clusters:\n- name: dev\n  cluster:\n    server: {server}{ca_line}\n"
        "contexts:\n- name: dev\n  context: {cluster: dev, user: u, namespace: shop}\n"
        "users:\n- name: u\n  user:\n    tokenFile: token\n"
        "    exec: {command: ./bin/creds, apiVersion: client.authentication.k8s.io/v1}\n"
    )


def test_kubeconfig_is_merged_like_kubectl_and_made_self_contained(tmp_path: Path) -> None:
    a = tmp_path / "a" / "config"
    a.parent.mkdir()
    a.write_text(kubeconfig("https://dev.example:6443", ca="ca.crt"))
    (a.parent / "ca.crt").write_bytes(b"CA BYTES")
    (a.parent / "token").write_text("s3cret\n")
    b = tmp_path / "b.yaml"
    b.write_text(kubeconfig("https://prod.example:6443", current="prod"))
    data, read, notes = flatten([str(a), str(tmp_path / "missing"), str(b)])
    assert data is not None and read == [str(a), str(b)]
    doc = json.loads(data)
    assert doc["current-context"] == "dev"  # the first file to set it wins
    [cluster] = doc["clusters"]  # so does the first to name `dev`
    assert cluster["cluster"]["server"] == "https://dev.example:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA BYTES"
    [user] = doc["users"]
    assert user["user"]["token"] == "s3cret" and "tokenFile" not in user["user"]
    assert user["user"]["exec"]["command"] == str(a.parent / "bin" / "creds")
    assert any("exec plugin" in n for n in notes)


def test_kube_target_is_sealed_and_given_explicitly(tmp_path: Path, sealed: SealedSet) -> None:
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(kubeconfig("https://dev.example:6443"))
    env = {"HOME": str(home)}
    inv = parse("kubectl", ["--kubeconfig", str(home / ".kube" / "config"), "delete", "pod", "w"])
    pin = pin_target(inv, {"context": "dev", "namespace": "shop"}, env, sealed)
    [item] = sealed.files
    assert pin.args == [f"--kubeconfig={item.path}", "--context=dev"]
    assert pin.env == {"KUBECONFIG": item.path}
    # the call's own --kubeconfig points at the sealed copy too (the last value wins)
    assert pin.argv(list(inv.argv)) == [
        f"--kubeconfig={item.path}",
        "--context=dev",
        "--kubeconfig",
        item.path,
        "delete",
        "pod",
        "w",
    ]
    assert pin.shown["server"] == "https://dev.example:6443"
    assert pin.shown["kubeconfig"]["sha256"] == item.sha256
    # helm names the context flag --kube-context
    helm = pin_target(parse("helm", ["uninstall", "web"]), {"context": "dev"}, env, sealed)
    assert helm.args == [f"--kubeconfig={sealed.files[-1].path}", "--kube-context=dev"]


def test_a_target_that_changed_before_the_seal_is_a_conflict(
    tmp_path: Path, sealed: SealedSet
) -> None:
    # the classifier read current-context dev; by the time the shim seals the file it says
    # prod: the pinned target is resolved again from the sealed copy and refused
    env = {"HOME": str(tmp_path)}
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kubeconfig("https://x", current="dev"))
    inv = parse("kubectl", ["delete", "pod", "w"])

    def resolve(argv: list[str], env: dict[str, str]) -> dict[str, str]:
        return {"context": "dev", "namespace": "kube-system"}

    pin = pin_target(inv, {"context": "dev", "namespace": "shop"}, env, sealed, resolve)
    assert pin.conflicts == ["namespace: shop -> kube-system"]
    # and a key the classifier could not resolve takes the pinned value instead
    pin = pin_target(inv, {"context": "dev", "namespace": "?"}, env, sealed, resolve)
    assert pin.conflicts == [] and pin.shown["namespace"] == "kube-system"


def test_aws_files_and_variables_are_pinned(tmp_path: Path, sealed: SealedSet) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(
        "[profile dev]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9\n"
    )
    (tmp_path / "p.json").write_text('{"InstanceIds": ["i-1"]}')
    env = {"HOME": str(tmp_path)}
    inv = parse(
        "aws",
        ["--profile", "dev", "ec2", "terminate-instances", "--cli-input-json", "file://p.json"],
    )
    pin = pin_target(inv, {"profile": "dev", "region": "us-east-1"}, env, sealed, cwd=str(tmp_path))
    config, credentials, params = sealed.files
    assert pin.env == {
        "AWS_CONFIG_FILE": config.path,
        "AWS_SHARED_CREDENTIALS_FILE": credentials.path,
        "AWS_PROFILE": "dev",
        "AWS_DEFAULT_PROFILE": "dev",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    assert credentials.read() == b""  # none there: empty, and none can appear later
    assert pin.shown["endpoint"] == "http://127.0.0.1:9"
    assert pin.argv(list(inv.argv))[-1] == f"file://{params.path}"
    assert pin.inputs[0]["text"] == '{"InstanceIds": ["i-1"]}'


def test_an_aws_parameter_file_that_is_not_utf8_is_not_shown_as_other_text(
    tmp_path: Path, sealed: SealedSet
) -> None:
    # review 2: the approver reads every byte of a parameter file or none of it; bytes that
    # are not UTF-8 (which the aws CLI may read in another locale) were shown replaced by U+FFFD
    (tmp_path / "p.json").write_bytes(b'{"Bucket": "prod\xe9"}')
    inv = parse("aws", ["s3api", "delete-bucket", "--cli-input-json", "file://p.json"])
    pin = pin_target(
        inv, {"profile": "default"}, {"HOME": str(tmp_path)}, sealed, cwd=str(tmp_path)
    )
    (entry,) = pin.inputs
    assert "text" not in entry and "not UTF-8" in entry["note"]
    assert entry["bytes"] == 19 and len(entry["sha256"]) == 64


def test_terraform_workspace_and_directory_identity(tmp_path: Path, sealed: SealedSet) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    inv = parse("terraform", [f"-chdir={infra}", "taint", "a.b"])
    ctx = {"workspace": "prod", "dir": str(infra)}
    pin = pin_target(inv, ctx, {}, sealed)
    assert pin.env == {"TF_WORKSPACE": "prod"}
    assert pin.drift(None, list(inv.argv), pin.env) == []
    infra.rename(tmp_path / "old")
    infra.mkdir()
    [drift] = pin.drift(None, list(inv.argv), pin.env)
    assert drift.startswith(f"directory {infra}: ") and " -> " in drift
    # workspace commands refuse an overriding TF_WORKSPACE: not set for them
    ws = pin_target(parse("terraform", ["workspace", "delete", "old"]), ctx, {}, sealed)
    assert ws.env == {}


def test_the_panel_shows_target_and_inputs_one_line_each() -> None:
    extra = {
        "target": {"context": "dev", "namespace": "shop"},
        "inputs": [{"source": "app.yaml", "sha256": "ab" * 32, "bytes": 12, "text": "x" * 9999}],
    }
    rows = extra_lines(extra)
    assert ("target", "context=dev") in rows and ("", "namespace=shop") in rows
    assert ("inputs", f"app.yaml (12 bytes, sha256 {'ab' * 8})") in rows
    assert all(len(text) < 200 for _, text in rows)


HOLDER = """
import os, sys, time
{source}
if sys.argv[1] == "shielded":
    not_dumpable()
fd = os.memfd_create("shield-test", os.MFD_ALLOW_SEALING)
os.write(fd, b"kind: Pod\\n")
print(fd, flush=True)
time.sleep(30)
"""
PROBE = """
import os, sys
try:
    os.close(os.open(f"/proc/{sys.argv[1]}/fd/{sys.argv[2]}", os.O_RDONLY))
    print("opened")
except OSError as exc:
    print(exc.strerror)
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
    reason="needs root, setpriv and a python the other user can run",
)
@pytest.mark.parametrize(("mode", "want"), [("plain", "opened"), ("shielded", "Permission denied")])
def test_a_held_shim_is_out_of_reach_of_other_processes_of_its_user(mode: str, want: str) -> None:
    # two processes of the same unprivileged user: the agent's probe opens the plain process's
    # descriptors through /proc, and not the held shim's (PR_SET_DUMPABLE 0)
    import inspect

    from shim.held import not_dumpable

    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3"]
    holder = subprocess.Popen(
        [*user, "-c", HOLDER.format(source=inspect.getsource(not_dumpable)), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        fd = holder.stdout.readline().strip()
        probe = subprocess.run(
            [*user, "-c", PROBE, str(holder.pid), fd],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert probe.stdout.strip() == want, probe.stderr
    finally:
        holder.kill()
        holder.wait()
