"""Previews with stand-in binaries: the exact read-only argv each kind runs (same target as the
held call), what it makes of the answers, snapshots and their binding, failures and refusals.

The stand-in answers by argv from a JSON table and records every call; `is_read_only` is the
shipped policy's own classifier unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from shim import canon
from shim.approval.show import render_lines
from shim.preview import runner
from shim.preview.bind import KUBE_BOOL_SHORTS, KUBE_VALUE_SHORTS
from shim.preview.flags import rewrite_flag_values
from shim.preview.kinds import kinds, select_kind
from shim.preview.kubectl import parse_kubectl_diff
from shim.preview.manifest import diff_manifests
from shim.preview.prepare import Bound, hold_preview, prepare
from shim.preview.runner import MAX_LINES
from shim.preview.sealed import SealedSet
from shim.preview.snapshot import check_snapshots
from shim.rules import rule
from tests.classify.support import classify, parse

STANDIN = """#!{python} -I
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["PV_RECORD"], "a") as fh:
    fh.write(json.dumps({{"argv": args, "cwd": os.getcwd()}}) + "\\n")
with open(os.environ["PV_ANSWERS"]) as fh:
    answers = json.load(fh)
for a in answers:
    want = a["argv"]
    if args == want or (a.get("prefix") and args[: len(want)] == want):
        if a.get("file"):
            with open(a["file"]) as src:
                sys.stdout.write(src.read())
        sys.stdout.write(a.get("out", ""))
        sys.stderr.write(a.get("err", ""))
        sys.stdout.flush()
        if a.get("hang"):
            time.sleep(3600)
        sys.exit(a.get("code", 0))
sys.stderr.write("standin: no answer for " + json.dumps(args) + "\\n")
sys.exit(99)
"""


class Bench:
    """A stand-in tool, its answers and its record, and a prepare() that uses them."""

    def __init__(self, root: Path, tool: str) -> None:
        self.root = root
        self.tool = tool
        self.real = root / "real" / tool
        self.real.parent.mkdir(exist_ok=True)
        self.real.write_text(STANDIN.format(python=sys.executable))
        self.real.chmod(0o755)
        self.record = root / f"{tool}.record"
        self.answers_file = root / f"{tool}.answers.json"
        self.answers: list[dict] = []
        self.cwd = root / "cwd"
        self.cwd.mkdir(exist_ok=True)
        self.workdir = root / "work"

    def answer(self, argv: list[str], out: str = "", code: int = 0, **kw: object) -> None:
        self.answers.append({"argv": argv, "out": out, "code": code, **kw})

    def calls(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [json.loads(line)["argv"] for line in self.record.read_text().splitlines()]

    def prepare(
        self,
        argv: list[str],
        kind: str = "auto",
        context: dict[str, str] | None = None,
        timeout_s: float = 20.0,
        is_read_only=None,
        stdin_fd: int | None = None,
        env: dict[str, str] | None = None,
    ) -> dict:
        self.answers_file.write_text(json.dumps(self.answers))
        inv = parse(self.tool, argv, env)
        e = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),  # without HOME kubectl reads ./.kube: shield holds that
            "PV_RECORD": str(self.record),
            "PV_ANSWERS": str(self.answers_file),
        }
        e.update(env or {})
        if is_read_only is None:

            def is_read_only(a: list[str]) -> bool:
                return classify(self.tool, a, env=e).decision == "allow"

        self.sealed = SealedSet()
        return prepare(
            kind,
            inv,
            context or {},
            real=str(self.real),
            env=e,
            cwd=str(self.cwd),
            workdir=str(self.workdir),
            timeout_s=timeout_s,
            is_read_only=is_read_only,
            stdin_fd=stdin_fd,
            sealed=self.sealed,
        )

    def sealed_text(self, path: str) -> bytes:
        """The bytes of a sealed file by its /proc/self/fd path."""
        [item] = [s for s in self.sealed.files if s.path == path]
        return item.read()


def anything(_argv: list[str]) -> bool:
    return True


@pytest.fixture
def kubectl(tmp_path: Path) -> Bench:
    return Bench(tmp_path, "kubectl")


@pytest.fixture
def helm(tmp_path: Path) -> Bench:
    return Bench(tmp_path, "helm")


@pytest.fixture
def aws(tmp_path: Path) -> Bench:
    return Bench(tmp_path, "aws")


def assert_plain(result: dict) -> None:
    """JSON-able, canonical (no floats), as the request digest needs."""
    canon.encode(result)
    assert json.loads(json.dumps(result)) == result
    pv = result["preview"]
    if pv is not None:
        assert (
            {
                "kind",
                "ok",
                "summary",
                "lines",
                "counts",
                "error",
                "argv",
                "duration_ms",
            }
            <= set(pv)
            <= {
                "kind",
                "ok",
                "summary",
                "lines",
                "counts",
                "error",
                "argv",
                "duration_ms",
                "diff",  # kubectl diff's text, for shield show
                "output",  # a failed command's raw output, for shield show
            }
        )
        assert "\n" not in pv["summary"]
        assert "\n" not in str(pv["error"] or "")
        assert len(pv["lines"]) <= MAX_LINES
        assert all(isinstance(v, int) for v in pv["counts"].values())


# --------------------------------------------------------------------------- kinds


def test_kinds_lists_every_kind_and_auto() -> None:
    assert set(kinds()) == {
        "terraform-plan",
        "kubectl-delete",
        "kubectl-diff",
        "kubectl-targets",
        "helm-release",
        "aws-s3-objects",
        "aws-ec2-instances",
        "auto",
    }


@pytest.mark.parametrize(
    ("tool", "line", "kind", "want"),
    [
        ("kubectl", "delete pod web", "auto", "kubectl-delete"),
        ("kubectl", "delete pod web", "kubectl-delete", "kubectl-delete"),
        ("kubectl", "delete pod web", "kubectl-diff", None),
        ("kubectl", "label pod web a=b", "auto", None),
        ("kubectl", "apply -f x.yaml", "auto", "kubectl-diff"),
        ("kubectl", "patch deploy web -p {}", "auto", "kubectl-diff"),
        ("kubectl", "create -f app.yaml", "auto", "kubectl-diff"),
        ("kubectl", "create deployment web --image=nginx", "auto", None),
        ("kubectl", "rollout restart deploy/web", "auto", "kubectl-targets"),
        ("kubectl", "drain node-1", "auto", "kubectl-targets"),
        ("kubectl", "delete pod web --dry-run=server", "auto", None),
        ("terraform", "apply", "auto", "terraform-plan"),
        ("terraform", "destroy -auto-approve", "terraform-plan", "terraform-plan"),
        ("terraform", "import a.b id", "auto", None),
        ("helm", "upgrade web ./chart", "auto", "helm-release"),
        ("helm", "del web", "auto", "helm-release"),
        ("helm", "install web ./chart", "auto", None),
        ("aws", "s3 rm s3://b --recursive", "auto", "aws-s3-objects"),
        ("aws", "s3 cp ./x s3://b/x", "auto", None),
        ("aws", "ec2 terminate-instances --instance-ids i-1", "auto", "aws-ec2-instances"),
        ("aws", "ec2 stop-instances --instance-ids i-1", "auto", None),
    ],
)
def test_select_kind_picks_the_kind_for_the_verb(
    tool: str, line: str, kind: str, want: str | None
) -> None:
    assert select_kind(kind, parse(tool, line)) == want


def test_a_kind_that_does_not_apply_runs_nothing(kubectl: Bench) -> None:
    res = kubectl.prepare(["label", "pod", "web", "a=b"], kind="kubectl-delete")
    assert res == {
        "preview": None,
        "run_argv": None,
        "run_env": {},
        "stdin_file": None,
        "snapshots": {},
        "inputs": [],
        "write_back": None,
        "stamps": {},
        "created": [],
    }
    assert kubectl.calls() == []


def test_an_unknown_kind_is_a_failed_preview_not_an_exception(kubectl: Bench) -> None:
    res = kubectl.prepare(["delete", "pod", "web"], kind="nonsense")
    assert res["preview"]["ok"] is False
    assert "unknown preview kind" in res["preview"]["error"]
    assert kubectl.calls() == []


# --------------------------------------------------------------------------- kubectl delete


def test_kubectl_delete_by_names_lists_them_with_the_same_context_and_namespace(
    kubectl: Bench,
) -> None:
    want = ["get", "pod", "web", "api", "--context=prod-eu", "--namespace=shop", "-o", "name"]
    kubectl.answer(want, "pod/web\npod/api\n")
    res = kubectl.prepare(
        ["--context", "prod-eu", "-n", "shop", "delete", "pod", "web", "api"],
        context={"context": "prod-eu", "namespace": "shop"},
    )
    assert kubectl.calls() == [want]
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"delete": 2}
    assert pv["lines"] == ["- pod/web", "- pod/api"]
    assert "context prod-eu, namespace shop" in pv["summary"]
    assert pv["argv"] == [["kubectl", *want]]
    assert res["run_argv"] is None
    assert_plain(res)


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (
            "delete pods -l app=web -A",
            ["get", "pods", "--selector=app=web", "--all-namespaces", "-o", "name"],
        ),
        (
            "-nprod delete deploy --all",
            ["get", "deploy", "--namespace=prod", "-o", "name"],
        ),
        (
            "delete pods --field-selector=status.phase=Failed --kubeconfig /k/cfg",
            # a kubeconfig that is not there is not sealed: given as the call gave it, first
            [
                "--kubeconfig=/k/cfg",
                "get",
                "pods",
                "--field-selector=status.phase=Failed",
                "-o",
                "name",
            ],
        ),
        (
            "delete ns/old --context=kind-x --as admin",
            ["get", "ns/old", "--context=kind-x", "--as=admin", "-o", "name"],
        ),
    ],
)
def test_kubectl_delete_selectors_and_targets_carry_over(
    kubectl: Bench, line: str, want: list[str]
) -> None:
    kubectl.answer(want, "x/a\nx/b\nx/c\n")
    res = kubectl.prepare(line.split())
    assert kubectl.calls() == [want]
    assert res["preview"]["counts"] == {"delete": 3}


def test_kubectl_delete_that_names_nothing_runs_no_preview(kubectl: Bench) -> None:
    res = kubectl.prepare(["delete", "pods"])
    assert kubectl.calls() == []
    assert res["preview"]["ok"] is True
    assert res["preview"]["counts"] == {"delete": 0}
    assert "refuse" in res["preview"]["summary"]


def test_kubectl_delete_f_file_is_snapshotted_and_bound(kubectl: Bench) -> None:
    manifest = kubectl.cwd / "app.yaml"
    manifest.write_text("kind: Deployment\nmetadata: {name: web}\n")
    res = kubectl.prepare(["delete", "-f", "app.yaml", "-n", "shop"])
    [call] = kubectl.calls()
    snap = call[2]
    assert call == ["get", "-f", snap, "--namespace=shop", "-o", "name"]
    [sealed] = kubectl.sealed.files
    assert snap == sealed.path == f"/proc/self/fd/{sealed.fd}"
    assert res["run_argv"] == ["delete", "-f", snap, "-n", "shop"]
    assert res["snapshots"] == {}  # nothing on disk: the bytes are sealed in memory
    assert res["inputs"] == [
        {
            "source": "app.yaml",
            "sha256": sealed.sha256,
            "bytes": 39,
            "text": "kind: Deployment\nmetadata: {name: web}\n",
        }
    ]
    # the agent edits its manifest after the preview: the approved command still reads the copy
    manifest.write_text("kind: Namespace\nmetadata: {name: prod}\n")
    assert Path(snap).read_text() == "kind: Deployment\nmetadata: {name: web}\n"
    assert kubectl.sealed.broken() == []


# --------------------------------------------------------------------------- kubectl diff

DIFF_OUT = """diff -u -N /tmp/LIVE-111/apps.v1.Deployment.shop.web /tmp/MERGED-222/apps.v1.Deployment.shop.web
--- /tmp/LIVE-111/apps.v1.Deployment.shop.web\t2025-01-01 00:00:00
+++ /tmp/MERGED-222/apps.v1.Deployment.shop.web\t2025-01-01 00:00:00
@@ -6,7 +6,7 @@
 spec:
-  replicas: 3
+  replicas: 1
   template:
-    image: nginx:1
+    image: nginx:2
diff -u -N /tmp/LIVE-111/v1.ConfigMap.shop.cfg.v2 /tmp/MERGED-222/v1.ConfigMap.shop.cfg.v2
--- /tmp/LIVE-111/v1.ConfigMap.shop.cfg.v2\t2025-01-01 00:00:00
+++ /tmp/MERGED-222/v1.ConfigMap.shop.cfg.v2\t2025-01-01 00:00:00
@@ -0,0 +1,4 @@
+apiVersion: v1
+kind: ConfigMap
+metadata:
+  name: cfg.v2
"""


def test_parse_kubectl_diff_names_objects_and_counts_lines() -> None:
    assert parse_kubectl_diff(DIFF_OUT) == [
        ("Deployment shop/web", 2, 2, False),
        ("ConfigMap shop/cfg.v2", 4, 0, True),
    ]


def test_kubectl_apply_from_piped_stdin_is_read_once_and_bound(kubectl: Bench) -> None:
    manifest = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
    r, w = os.pipe()
    os.write(w, manifest)
    os.close(w)
    kubectl.answer(["diff", "-f"], DIFF_OUT, code=1, prefix=True)
    try:
        res = kubectl.prepare(
            ["--context=kind-dev", "apply", "-n", "shop", "-f", "-"],
            context={"context": "kind-dev", "namespace": "shop"},
            stdin_fd=r,
        )
    finally:
        os.close(r)
    [sealed] = kubectl.sealed.files
    stdin_snap = sealed.path
    assert kubectl.calls() == [["diff", "-f", stdin_snap, "--context=kind-dev", "--namespace=shop"]]
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"] == {"objects": 2, "create": 1, "lines_added": 6, "lines_removed": 2}
    assert pv["lines"] == ["~ Deployment shop/web (+2 -2)", "+ ConfigMap shop/cfg.v2 (+4 -0)"]
    assert res["stdin_file"] == stdin_snap
    assert sealed.read() == manifest and sealed.label == "stdin"
    assert res["inputs"][0]["text"] == manifest.decode()
    assert res["run_argv"] is None  # `-f -` stays; the approved run reads stdin_file
    assert_plain(res)


def test_kubectl_apply_diff_without_changes_says_so(kubectl: Bench) -> None:
    (kubectl.cwd / "a.yaml").write_text("kind: ConfigMap\n")
    kubectl.answer(["diff", "-f"], "", code=0, prefix=True)
    res = kubectl.prepare(["apply", "-f", "a.yaml", "--server-side"])
    [call] = kubectl.calls()
    assert call[-1] == "--server-side"
    assert res["preview"]["counts"]["objects"] == 0
    assert "no changes" in res["preview"]["summary"]


def test_kubectl_diff_error_is_a_failed_preview_but_the_snapshot_stays_bound(
    kubectl: Bench,
) -> None:
    (kubectl.cwd / "a.yaml").write_text("kind: ConfigMap\n")
    kubectl.answer(
        ["diff", "-f"], "", code=2, err="error: the server is unreachable\n", prefix=True
    )
    res = kubectl.prepare(["apply", "-f", "a.yaml"])
    pv = res["preview"]
    assert pv["ok"] is False
    assert "exited 2" in pv["error"] and "unreachable" in pv["error"]
    assert res["run_argv"] is not None and res["run_argv"][2].startswith("/proc/self/fd/")
    assert len(kubectl.sealed.files) == 1


def test_attack_editing_the_manifest_after_the_preview_changes_nothing_that_runs(
    kubectl: Bench,
) -> None:
    manifest = kubectl.cwd / "deploy.yaml"
    manifest.write_text("kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n")
    kubectl.answer(["diff", "-f"], "", code=0, prefix=True)
    res = kubectl.prepare(["apply", "--filename=deploy.yaml"])
    run_argv = res["run_argv"]
    assert run_argv[0] == "apply" and run_argv[1].startswith("--filename=/proc/self/fd/")
    snap = run_argv[1].split("=", 1)[1]
    manifest.write_text("kind: Namespace\nmetadata: {name: kube-system}\n")  # the swap
    assert Path(snap).read_text().startswith("kind: Deployment")
    # and the sealed copy itself cannot be written, through its path or any other
    with pytest.raises(PermissionError), open(snap, "r+b") as fh:
        fh.write(b"kind: Namespace\n")
    with pytest.raises(OSError):
        os.truncate(snap, 0)
    assert kubectl.sealed.broken() == []
    assert Path(snap).read_text().startswith("kind: Deployment")


def test_kubectl_apply_f_directory_snapshots_the_manifests_in_it(kubectl: Bench) -> None:
    d = kubectl.cwd / "k8s"
    (d / "sub").mkdir(parents=True)
    (d / "a.yaml").write_text("a")
    (d / "sub" / "b.json").write_text("b")
    (d / "notes.txt").write_text("not a manifest")
    kubectl.answer(["diff", "-f"], "", code=0, prefix=True)
    res = kubectl.prepare(["apply", "-R", "-f", "k8s"])
    # each manifest is sealed, in the order kubectl reads a directory (names sorted per level)
    assert [s.label for s in kubectl.sealed.files] == ["k8s/a.yaml", "k8s/sub/b.json"]
    paths = [s.path for s in kubectl.sealed.files]
    assert res["run_argv"] == ["apply", "-R", "-f", ",".join(paths)]
    assert res["snapshots"] == {}
    [call] = kubectl.calls()
    assert call[:5] == ["diff", "-f", paths[0], "-f", paths[1]]
    # without -R kubectl reads the top level only
    kubectl.prepare(["apply", "-f", "k8s"])
    assert [s.label for s in kubectl.sealed.files] == ["k8s/a.yaml"]


def test_attack_a_file_added_to_a_manifest_directory_after_the_hold_is_not_read(
    kubectl: Bench,
) -> None:
    d = kubectl.cwd / "manifests"
    d.mkdir()
    (d / "a.yaml").write_text("kind: ConfigMap\n")
    kubectl.answer(["diff", "-f"], "", code=0, prefix=True)
    res = kubectl.prepare(["apply", "-f", "manifests/"])
    (d / "b-evil.yaml").write_text("kind: ClusterRoleBinding\n")
    # the approved run names each sealed manifest, never the directory
    assert res["run_argv"] == ["apply", "-f", kubectl.sealed.files[0].path]
    assert len(kubectl.sealed.files) == 1


def test_attack_a_directory_snapshot_swapped_and_put_back_is_caught(helm: Bench) -> None:
    # a directory that must stay a directory (a chart, an s3 sync source, a terraform
    # working directory) is copied to disk, where a process of the same user can write: a
    # file swapped while the preview reads it and put back afterwards has the bound bytes
    # again, but not the same inode and ctime, and the run is refused
    chart = helm.cwd / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("name: web\n")
    helm.answer(["history", "web", "-o", "json"], HISTORY)
    helm.answer(["template", "web"], NEW, prefix=True)
    res = helm.prepare(["upgrade", "web", "./chart"])
    [name] = res["snapshots"]
    copy = helm.workdir / name
    assert check_snapshots(str(helm.workdir), res["snapshots"], res["stamps"]) == []
    copy.chmod(0o600)
    copy.write_text("name: evil\n")
    copy.write_text("name: web\n")  # put back: the same bytes
    copy.chmod(0o400)
    assert check_snapshots(str(helm.workdir), res["snapshots"]) == []  # bytes alone: fooled
    assert check_snapshots(str(helm.workdir), res["snapshots"], res["stamps"]) == [name]


def test_attack_a_preview_that_fails_partway_binds_and_lists_nothing(kubectl: Bench) -> None:
    # good.yaml is copied, later.yaml is missing: the approved run reads the live files, so
    # the request must not list good.yaml's copy as if it were bound
    (kubectl.cwd / "good.yaml").write_text("kind: ConfigMap\n")
    res = kubectl.prepare(["apply", "-f", "good.yaml", "-f", "later.yaml"])
    assert res["preview"]["ok"] is False and "later.yaml" in res["preview"]["error"]
    assert res["run_argv"] is None and res["snapshots"] == {}


def test_kubectl_patch_lists_the_objects_and_binds_the_patch_file(kubectl: Bench) -> None:
    (kubectl.cwd / "p.yaml").write_text("spec: {replicas: 0}\n")
    want = ["get", "deploy", "web", "--namespace=shop", "-o", "name"]
    kubectl.answer(want, "deployment.apps/web\n")
    res = kubectl.prepare(["patch", "deploy", "web", "-n", "shop", "--patch-file", "p.yaml"])
    assert kubectl.calls() == [want]
    assert res["preview"]["counts"] == {"objects": 1}
    assert res["run_argv"][-2] == "--patch-file"
    assert Path(res["run_argv"][-1]).read_text() == "spec: {replicas: 0}\n"


# --------------------------------------------------------------------------- kubectl targets


def test_kubectl_scale_shows_the_objects_and_the_new_replica_count(kubectl: Bench) -> None:
    want = ["get", "deploy/web", "--context=prod", "--namespace=shop", "-o", "wide"]
    kubectl.answer(want, "NAME   READY   UP-TO-DATE\nweb    3/3     3\n")
    res = kubectl.prepare(
        ["scale", "deploy/web", "--replicas=0", "--context", "prod", "-n", "shop"],
        context={"context": "prod", "namespace": "shop"},
    )
    assert kubectl.calls() == [want]
    pv = res["preview"]
    assert pv["counts"] == {"objects": 1, "replicas": 0}
    assert pv["summary"].startswith("scale 1 object(s) to 0 replica(s)")
    assert pv["lines"][1].startswith("web")


def test_kubectl_drain_lists_the_node_and_its_pods(kubectl: Bench) -> None:
    node = ["get", "nodes", "node-1", "--context=prod", "-o", "wide"]
    pods = [
        "get",
        "pods",
        "--all-namespaces",
        "--field-selector=spec.nodeName=node-1",
        "--context=prod",
        "-o",
        "name",
    ]
    kubectl.answer(node, "NAME STATUS\nnode-1 Ready\n")
    kubectl.answer(pods, "pod/a\npod/b\npod/c\n")
    res = kubectl.prepare(["drain", "node-1", "--ignore-daemonsets", "--context", "prod"])
    assert kubectl.calls() == [node, pods]
    assert res["preview"]["counts"] == {"nodes": 1, "pods": 3}
    assert "- node-1: pod/a" in res["preview"]["lines"]


def test_kubectl_rollout_restart_and_cordon(kubectl: Bench) -> None:
    kubectl.answer(["get", "deployment", "web", "-o", "wide"], "NAME READY\nweb 2/2\n")
    kubectl.answer(["get", "nodes", "n1", "n2", "-o", "wide"], "NAME S\nn1 Ready\nn2 Ready\n")
    a = kubectl.prepare(["rollout", "restart", "deployment", "web"])
    b = kubectl.prepare(["cordon", "n1", "n2"])
    assert a["preview"]["counts"] == {"objects": 1}
    assert b["preview"]["counts"] == {"nodes": 2}
    assert b["preview"]["summary"].startswith("cordon 2 node(s)")


# --------------------------------------------------------------------------- helm

OLD = """---
# Source: web/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  port: 80
---
# Source: web/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    name: ignored
spec:
  replicas: 2
---
# Source: web/templates/old.yaml
kind: ConfigMap
metadata:
  name: legacy
"""
NEW = """---
# Source: web/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  port: 80
---
# Source: web/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    name: ignored
spec:
  replicas: 3
---
# Source: web/templates/new.yaml
kind: Secret
metadata:
  name: token
"""
HISTORY = json.dumps(
    [
        {"revision": 4, "chart": "web-1.0.0", "status": "superseded", "app_version": "1"},
        {"revision": 5, "chart": "web-1.1.0", "status": "deployed", "app_version": "1"},
    ]
)


def test_diff_manifests_counts_objects_created_changed_and_deleted() -> None:
    counts, lines = diff_manifests(OLD, NEW)
    assert counts == {
        "create": 1,
        "update": 1,
        "delete": 1,
        "lines_added": 4,
        "lines_removed": 4,
    }
    assert lines == [
        "- ConfigMap/legacy (-3)",
        "~ Deployment/web (+1 -1)",
        "+ Secret/token (+3)",
    ]


def _helm_target() -> list[str]:
    return ["--kube-context=prod", "--namespace=shop"]


def test_helm_upgrade_shows_release_and_manifest_diff_with_the_same_target(helm: Bench) -> None:
    chart = helm.cwd / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("name: web\nversion: 1.2.0\n")
    (helm.cwd / "prod.yaml").write_text("replicas: 3\n")
    history = ["history", "web", *_helm_target(), "-o", "json"]
    manifest = ["get", "manifest", "web", *_helm_target()]
    helm.answer(history, HISTORY)
    helm.answer(manifest, OLD)
    helm.answer(["template", "web"], NEW, prefix=True)
    res = helm.prepare(
        ["upgrade", "web", "./chart", "-f", "prod.yaml", "--kube-context", "prod", "-n", "shop"],
        context={"context": "prod", "namespace": "shop"},
        is_read_only=anything,  # a team that lets previews read manifests
    )
    calls = helm.calls()
    assert calls[:2] == [history, manifest]
    values_snap = res["run_argv"][4]
    chart_snap = res["run_argv"][2]
    assert calls[2] == [
        "template",
        "web",
        chart_snap,
        "-f",
        values_snap,
        *_helm_target(),
        "--is-upgrade",
        "--no-hooks",
    ]
    assert res["run_argv"] == [
        "upgrade",
        "web",
        chart_snap,
        "-f",
        values_snap,
        "--kube-context",
        "prod",
        "-n",
        "shop",
    ]
    assert Path(chart_snap, "Chart.yaml").read_text().startswith("name: web")
    pv = res["preview"]
    assert pv["ok"] is True, pv
    assert pv["counts"]["revision"] == 5
    assert (pv["counts"]["create"], pv["counts"]["update"], pv["counts"]["delete"]) == (1, 1, 1)
    assert pv["lines"][0] == "release web: revision 5 (web-1.1.0, deployed)"
    assert "- ConfigMap/legacy (-3)" in pv["lines"]
    assert_plain(res)


def test_helm_upgrade_under_the_default_policy_skips_the_secret_reading_manifest(
    helm: Bench,
) -> None:
    (helm.cwd / "chart").mkdir()
    helm.answer(["history", "web", "-o", "json"], HISTORY)
    helm.answer(["template", "web"], NEW, prefix=True)
    res = helm.prepare(["upgrade", "web", "./chart"])
    calls = helm.calls()
    assert [c[0] for c in calls] == ["history", "template"]  # get manifest was not run
    pv = res["preview"]
    assert pv["ok"] is True
    assert any(ln.startswith("(skipped, not allowed") for ln in pv["lines"])
    assert "manifest diff not available" in pv["summary"]


def test_helm_uninstall_counts_what_is_deleted(helm: Bench) -> None:
    helm.answer(["history", "web", "--namespace=shop", "-o", "json"], HISTORY)
    helm.answer(["get", "manifest", "web", "--namespace=shop"], OLD)
    res = helm.prepare(["uninstall", "web", "-n", "shop"], is_read_only=anything)
    assert res["preview"]["counts"]["delete"] == 3
    assert res["run_argv"] is None


def test_helm_rollback_compares_with_the_previous_revision(helm: Bench) -> None:
    helm.answer(["history", "web", "-o", "json"], HISTORY)
    helm.answer(["get", "manifest", "web"], NEW)
    helm.answer(["get", "manifest", "web", "--revision=4"], OLD)
    res = helm.prepare(["rollback", "web"], is_read_only=anything)
    pv = res["preview"]
    assert pv["counts"]["to_revision"] == 4
    assert "back to: revision 4 (web-1.0.0, superseded)" in pv["lines"]
    assert pv["counts"]["create"] == 1 and pv["counts"]["delete"] == 1


def test_helm_release_that_does_not_exist(helm: Bench) -> None:
    helm.answer(["history", "gone", "-o", "json"], "", code=1, err="Error: release: not found\n")
    res = helm.prepare(["uninstall", "gone"])
    assert res["preview"]["ok"] is True
    assert res["preview"]["counts"] == {"delete": 0}


# --------------------------------------------------------------------------- aws (stand-in)

EC2 = {
    "Reservations": [
        {
            "Instances": [
                {
                    "InstanceId": "i-1",
                    "InstanceType": "t3.micro",
                    "State": {"Name": "running"},
                    "Tags": [{"Key": "Name", "Value": "web-1"}],
                },
                {"InstanceId": "i-2", "InstanceType": "t3.large", "State": {"Name": "stopped"}},
            ]
        }
    ]
}


def test_ec2_terminate_shows_names_and_states(aws: Bench) -> None:
    want = [
        "ec2",
        "describe-instances",
        "--instance-ids",
        "i-1",
        "i-2",
        "--output",
        "json",
        "--profile=prod",
        "--region=eu-west-1",
    ]
    aws.answer(want, json.dumps(EC2))
    res = aws.prepare(
        [
            "--profile",
            "prod",
            "ec2",
            "terminate-instances",
            "--instance-ids",
            "i-1",
            "i-2",
            "--region",
            "eu-west-1",
        ],
        context={"profile": "prod", "region": "eu-west-1"},
    )
    assert aws.calls() == [want]
    pv = res["preview"]
    assert pv["counts"] == {"instances": 2, "terminate": 2, "running": 1}
    assert pv["lines"] == ["- i-1 web-1 (running, t3.micro)", "- i-2 - (stopped, t3.large)"]


# --------------------------------------------------------------------------- failures


def test_a_preview_that_hangs_times_out_and_prepare_returns_quickly(kubectl: Bench) -> None:
    kubectl.answer(["get"], "pod/web\n", hang=True, prefix=True)
    t0 = time.monotonic()
    res = kubectl.prepare(["delete", "pod", "web"], timeout_s=0.5)
    elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed
    pv = res["preview"]
    assert pv["ok"] is False
    assert pv["error"] == "timed out after 500ms"
    assert pv["summary"].startswith("preview failed")
    assert_plain(res)


def test_a_preview_that_fails_is_reported_with_its_exit_code(kubectl: Bench) -> None:
    kubectl.answer(["get"], "", code=1, err="error: You must be logged in\n", prefix=True)
    res = kubectl.prepare(["delete", "pod", "web"])
    assert res["preview"]["ok"] is False
    assert res["preview"]["error"] == "kubectl get exited 1: error: You must be logged in"


def test_a_missing_real_binary_is_a_failed_preview(kubectl: Bench) -> None:
    kubectl.real.unlink()
    res = kubectl.prepare(["delete", "pod", "web"])
    assert res["preview"]["ok"] is False
    assert "cannot run" in res["preview"]["error"]


def test_output_over_the_cap_is_an_error(kubectl: Bench, monkeypatch) -> None:
    monkeypatch.setattr(runner, "MAX_STDOUT", 1000)
    kubectl.answer(["get"], "pod/x\n" * 1000, prefix=True)
    res = kubectl.prepare(["delete", "pod", "web"])
    assert res["preview"]["ok"] is False
    assert res["preview"]["error"] == "output larger than 1000 bytes"


def test_a_preview_the_classifier_would_not_allow_is_not_run(kubectl: Bench) -> None:
    kubectl.answer(["get"], "pod/web\n", prefix=True)
    asked: list[list[str]] = []

    def refuse(argv: list[str]) -> bool:
        asked.append(argv)
        return False

    res = kubectl.prepare(["delete", "pod", "web"], is_read_only=refuse)
    assert asked == [["get", "pod", "web", "-o", "name"]]
    assert kubectl.calls() == []
    assert res["preview"]["ok"] is False
    assert res["preview"]["error"].startswith("not read-only: kubectl get pod web -o name")


def test_a_classifier_that_raises_counts_as_a_refusal(kubectl: Bench) -> None:
    def boom(argv: list[str]) -> bool:
        raise RuntimeError("rules broken")

    res = kubectl.prepare(["delete", "pod", "web"], is_read_only=boom)
    assert kubectl.calls() == []
    assert res["preview"]["error"].startswith("not read-only")


def test_the_shipped_policy_allows_every_preview_command_used_here() -> None:
    """The argvs the kinds run are allowed by the default rules (so is_read_only says yes)."""
    for tool, line in [
        ("kubectl", "get pod web --context=prod --namespace=shop -o name"),
        ("kubectl", "get secret db -o name"),
        ("kubectl", "get -f /w/snap-1/app.yaml -o name"),
        ("kubectl", "diff -f /w/stdin.yaml --server-side --context=prod"),
        ("kubectl", "get deploy/web -o wide"),
        ("kubectl", "get pods --all-namespaces --field-selector=spec.nodeName=n1 -o name"),
        ("terraform", "-chdir=infra plan -input=false -json -out=/w/plan.tfplan -var=a=b"),
        ("terraform", "show -no-color /w/plan.tfplan"),
        ("helm", "history web --kube-context=prod --namespace=shop -o json"),
        ("helm", "template web ./chart -f v.yaml --is-upgrade --no-hooks"),
        ("aws", "s3 ls s3://b --recursive --summarize --profile=prod"),
        ("aws", "s3 rm s3://b/p --recursive --exclude *.log --dryrun"),
        ("aws", "s3 sync ./d s3://b --delete --dryrun"),
        ("aws", "ec2 describe-instances --instance-ids i-1 --output json"),
    ]:
        assert classify(tool, line).decision == "allow", (tool, line)
    # and these are not: previews that need them are skipped or fail under the default policy
    for tool, line in [
        ("helm", "get manifest web"),
        ("terraform", "show -json /w/plan.tfplan"),
        ("kubectl", "get secret db -o yaml"),
    ]:
        assert classify(tool, line).decision != "allow", (tool, line)


def test_stdin_that_is_never_closed_binds_what_was_read_and_says_so(kubectl: Bench) -> None:
    r, w = os.pipe()
    os.write(w, b"kind: ConfigMap\n")
    try:
        t0 = time.monotonic()
        res = kubectl.prepare(["apply", "-f", "-"], stdin_fd=r, timeout_s=0.5)
        assert time.monotonic() - t0 < 5
    finally:
        os.close(w)
        os.close(r)
    pv = res["preview"]
    assert pv["ok"] is False
    assert "stdin was still open" in pv["error"]
    assert Path(res["stdin_file"]).read_bytes() == b"kind: ConfigMap\n"
    assert kubectl.calls() == []


def test_a_failed_preview_that_keeps_stdin_leaves_no_other_copy_to_trip_the_check(
    kubectl: Bench,
) -> None:
    # -f good.yaml is copied, -f - is read, -f missing.yaml fails: only stdin stays bound,
    # and the copy of good.yaml must not remain in the workdir (the check before the approved
    # run would call it tampering)
    (kubectl.cwd / "good.yaml").write_text("kind: ConfigMap\n")
    r, w = os.pipe()
    os.write(w, b"kind: Secret\n")
    os.close(w)
    try:
        res = kubectl.prepare(
            ["apply", "-f", "good.yaml", "-f", "-", "-f", "missing.yaml"], stdin_fd=r
        )
    finally:
        os.close(r)
    assert res["preview"]["ok"] is False and res["stdin_file"] is not None
    assert res["snapshots"] == {} and os.listdir(kubectl.workdir) == []
    assert Path(res["stdin_file"]).read_bytes() == b"kind: Secret\n"


def test_stdin_unavailable_leaves_f_dash_unbound(kubectl: Bench) -> None:
    res = kubectl.prepare(["apply", "-f", "-"], stdin_fd=None)
    assert res["stdin_file"] is None
    assert res["preview"]["ok"] is False
    assert kubectl.calls() == []


def test_a_missing_file_is_a_failed_preview(kubectl: Bench) -> None:
    res = kubectl.prepare(["apply", "-f", "nope.yaml"])
    assert res["preview"]["ok"] is False
    assert "cannot read nope.yaml" in res["preview"]["error"]
    assert res["run_argv"] is None


# --------------------------------------------------------------------------- argv rewriting


@pytest.mark.parametrize(
    ("argv", "expected", "want"),
    [
        (["apply", "-f", "a"], ["a"], ["apply", "-f", "A"]),
        (["apply", "-fa"], ["a"], ["apply", "-fA"]),
        (["apply", "-f=a"], ["a"], ["apply", "-f=A"]),
        (["apply", "--filename", "a"], ["a"], ["apply", "--filename", "A"]),
        (["apply", "--filename=a"], ["a"], ["apply", "--filename=A"]),
        (["apply", "-Rf", "a"], ["a"], ["apply", "-Rf", "A"]),
        (["apply", "-Rfa"], ["a"], ["apply", "-RfA"]),
        (["apply", "-n", "-f", "-f", "a"], ["a"], ["apply", "-n", "-f", "-f", "A"]),
        (["apply", "-f", "a", "--", "-f", "b"], ["a"], ["apply", "-f", "A", "--", "-f", "b"]),
    ],
)
def test_rewrite_flag_values_handles_every_pflag_spelling(
    argv: list[str], expected: list[str], want: list[str]
) -> None:
    got = rewrite_flag_values(
        argv,
        "-f",
        "--filename",
        expected,
        [v.upper() for v in expected],
        KUBE_VALUE_SHORTS,
        KUBE_BOOL_SHORTS,
    )
    assert got == want


def test_rewrite_flag_values_refuses_when_its_reading_differs_from_the_parser() -> None:
    # `-l -f a.yaml`: pflag gives "-f" to -l; a naive scan would see a file
    argv = ["apply", "-l", "-f", "a.yaml"]
    assert rewrite_flag_values(argv, "-f", "--filename", [], []) is None


def test_comma_lists_in_one_f_value_are_each_snapshotted(kubectl: Bench) -> None:
    (kubectl.cwd / "a.yaml").write_text("a")
    (kubectl.cwd / "b.yaml").write_text("b")
    kubectl.answer(["diff"], "", prefix=True)
    res = kubectl.prepare(["apply", "-f", "a.yaml,b.yaml"])
    value = res["run_argv"][2]
    parts = value.split(",")
    assert [Path(p).read_text() for p in parts] == ["a", "b"]
    [call] = kubectl.calls()
    assert call[:5] == ["diff", "-f", parts[0], "-f", parts[1]]


# --------------------------------------------------------------------------- the hold path glue


NO_KUBECONFIG = ["no kubeconfig file: in-cluster or built-in defaults, resolved again"]


def _hold(bench: Bench, argv: list[str], rule: dict | None, **kw) -> Bound:
    bench.answers_file.write_text(json.dumps(bench.answers))
    env = {
        "PATH": "/usr/bin:/bin",
        "PV_RECORD": str(bench.record),
        "PV_ANSWERS": str(bench.answers_file),
    }
    return hold_preview(
        rule,
        parse(bench.tool, argv),
        kw.pop("context", {}),
        real=str(bench.real),
        env=env,
        cwd=str(bench.cwd),
        home=str(bench.root / "home"),
        is_read_only=kw.pop("is_read_only", anything),
        stdin_fd=None,
        **kw,
    )


def test_a_preview_dir_that_cannot_be_made_still_rates_a_prod_delete_critical(
    kubectl: Bench,
) -> None:
    # the agent can make its own previews dir unwritable; the unknown blast radius of a
    # delete must then count as critical in prod, not as the rule's medium
    previews = kubectl.root / "home" / "state" / "previews"
    previews.parent.mkdir(parents=True, exist_ok=True)
    previews.write_text("not a directory")  # (a chmod would not stop root)
    rule = {"id": "kubectl/mutate", "preview": {"kind": "auto", "timeout": 10}}
    bound = _hold(kubectl, ["delete", "ns", "payments"], rule, context={"context": "prod-eu"})
    assert bound.extra["preview"]["ok"] is False
    assert bound.extra["preview"]["kind"] == "kubectl-delete"
    assert bound.extra["risk"] == "critical"


def test_hold_preview_without_a_declaration_only_rates_the_risk(kubectl: Bench) -> None:
    bound = _hold(kubectl, ["delete", "pod", "web"], {"id": "kubectl/mutate"})
    assert bound.extra == {"risk": "medium", "target": {"notes": NO_KUBECONFIG}}
    assert bound.workdir is None and bound.preview is None
    assert kubectl.calls() == []
    launch = bound.launch(["delete", "pod", "web"])
    assert (launch.argv, launch.stdin, launch.problems, launch.fields) == (
        ["delete", "pod", "web"],
        None,
        [],
        {},
    )


def test_hold_preview_binds_snapshots_in_a_private_dir_and_cleans_up(kubectl: Bench) -> None:
    (kubectl.cwd / "app.yaml").write_text("kind: Deployment\n")
    kubectl.answer(["get", "-f"], "deployment.apps/web\n", prefix=True)
    rule = {"id": "kubectl/mutate", "preview": {"kind": "auto", "timeout": 10}}
    bound = _hold(kubectl, ["delete", "-f", "app.yaml"], rule, context={"namespace": "shop-prod"})
    assert bound.workdir is not None
    assert bound.workdir.startswith(str(kubectl.root / "home" / "state" / "previews"))
    assert os.stat(bound.workdir).st_mode & 0o777 == 0o700
    extra = bound.extra
    assert extra["risk"] == "critical"  # one delete in a *prod* namespace
    assert extra["preview"]["counts"] == {"delete": 1}
    assert extra["workdir"] == bound.workdir and extra["stdin_file"] is None
    assert set(bound.held_fields()) == {
        "risk",
        "preview",
        "target",
        "run_argv",
        "run_env",
        "stdin_file",
        "snapshots",
        "sealed",
    }
    assert "preview: delete 1 object(s)" in bound.agent_lines()
    launch = bound.launch(["delete", "-f", "app.yaml"])
    assert launch.argv == extra["run_argv"] and launch.stdin is None and launch.problems == []
    assert launch.pass_fds == bound.sealed.fds and len(launch.pass_fds) == 1
    assert launch.fields == {"ran": launch.argv, "snapshots": sorted(extra["sealed"])}
    canon.encode(extra)
    bound.cleanup()
    assert not os.path.exists(bound.workdir)


def test_bound_launch_reports_a_snapshot_changed_after_the_preview(helm: Bench) -> None:
    (helm.cwd / "chart").mkdir()
    (helm.cwd / "chart" / "Chart.yaml").write_text("name: web\n")
    helm.answer(["history"], HISTORY, prefix=True)
    helm.answer(["get"], OLD, prefix=True)
    helm.answer(["template"], NEW, prefix=True)
    bound = _hold(helm, ["upgrade", "web", "./chart"], {"id": "r", "preview": {"kind": "auto"}})
    [name] = bound.extra["snapshots"]
    assert bound.launch(["upgrade", "web", "./chart"]).problems == []
    path = Path(bound.workdir, name)
    path.chmod(0o600)
    path.write_text("name: evil\n")
    assert bound.launch(["upgrade", "web", "./chart"]).problems == [name]
    bound.cleanup()


def test_hold_preview_never_outlasts_the_hold(kubectl: Bench) -> None:
    kubectl.answer(["get"], "", hang=True, prefix=True)
    t0 = time.monotonic()
    bound = _hold(
        kubectl,
        ["delete", "pod", "web"],
        {"id": "r", "preview": {"kind": "auto", "timeout": 60}},
        limit_s=0.3,
    )
    assert time.monotonic() - t0 < 5
    assert bound.extra["preview"]["error"] == "timed out after 300ms"
    assert bound.extra["risk"] == "high"  # a delete whose blast radius is unknown
    bound.cleanup()


def test_hold_preview_with_a_zero_hold_runs_nothing(kubectl: Bench) -> None:
    bound = _hold(
        kubectl, ["delete", "pod", "web"], {"id": "r", "preview": {"kind": "auto"}}, run=False
    )
    assert bound.extra == {"risk": "medium", "target": {"notes": NO_KUBECONFIG}}
    assert kubectl.calls() == []


def test_preview_runs_are_marked_in_their_environment(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "kubectl")
    bench.real.write_text(
        f"#!{sys.executable} -I\nimport os\nprint(os.environ.get('_SHIELD_PREVIEW'))\n"
    )
    res = bench.prepare(["delete", "pod", "web"], is_read_only=anything)
    assert res["preview"]["lines"] == ["- 1"]


def test_render_lines_shows_summary_failure_and_details() -> None:
    ok = {"summary": "delete 2 object(s)", "ok": True, "lines": ["- pod/a", "- pod/b"]}
    assert render_lines(ok) == ["delete 2 object(s)", "  - pod/a", "  - pod/b"]
    bad = {
        "summary": "delete 1 object(s)",
        "ok": False,
        "error": "timed out after 20s",
        "lines": [],
    }
    assert render_lines(bad) == [
        "delete 1 object(s)",
        "preview FAILED: timed out after 20s",
    ]


# --------------------------------------------------------------------------- rule declarations


def _rules_validate_previews() -> bool:

    return "risk" in getattr(rule, "_RULE_KEYS", ())


@pytest.mark.skipif(
    not _rules_validate_previews(), reason="shim/rules/rule.py does not validate preview/risk yet"
)
@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("preview: {kind: nonsense}", "preview kind must be one of"),
        ("preview: {kind: auto, timeout: 0}", "preview timeout must be whole seconds"),
        ("preview: {kind: auto, when: x}", "unknown key 'when'"),
        ("preview: auto", "preview must be a mapping"),
        ("risk: extreme", "risk must be one of"),
    ],
)
def test_rules_refuse_bad_preview_and_risk_declarations(
    tmp_path: Path, snippet: str, message: str
) -> None:
    from shim.errors import RulesError
    from shim.rules.compile import compile_layers
    from shim.rules.load import defaults_dir

    layer = tmp_path / "commands.d"
    layer.mkdir()
    (layer / "team.yaml").write_text(
        "tool: kubectl\nrules:\n  - id: team/x\n    decision: ask\n    reason: r\n"
        f"    {snippet}\n    match: {{verb: delete}}\n"
    )
    with pytest.raises(RulesError) as err:
        compile_layers([defaults_dir(), str(layer)])
    assert message in str(err.value)
    assert "team.yaml" in str(err.value)


@pytest.mark.skipif(
    not _rules_validate_previews(), reason="shim/rules/rule.py does not validate preview/risk yet"
)
def test_every_shipped_preview_declaration_names_a_known_kind() -> None:
    from tests.classify.support import shipped

    declared = {
        r["id"]: r["preview"] for t in shipped().values() for r in t["rules"] if "preview" in r
    }
    assert declared == {
        "kubectl/mutate": {"kind": "auto", "timeout": 20},
        "terraform/mutate": {"kind": "terraform-plan", "timeout": 120},
        "helm/mutate": {"kind": "helm-release", "timeout": 30},
        "aws/s3-write": {"kind": "aws-s3-objects", "timeout": 60},
        "aws/mutate": {"kind": "aws-ec2-instances", "timeout": 30},
    }


def test_kubectl_diff_exit_1_without_a_diff_is_an_error(kubectl: Bench) -> None:
    (kubectl.cwd / "a.yaml").write_text("")
    kubectl.answer(["diff"], "", code=1, err="error: no objects passed to diff\n", prefix=True)
    res = kubectl.prepare(["apply", "-f", "a.yaml", "--prune", "-l", "app=web"])
    assert res["preview"]["ok"] is False
    assert "no objects passed to diff" in res["preview"]["error"]
    assert any("--prune" in ln for ln in res["preview"]["lines"])


def test_kubectl_k_is_rendered_once_and_the_run_applies_that_rendering(kubectl: Bench) -> None:
    (kubectl.cwd / "overlay").mkdir()
    rendered = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"
    kubectl.answer(["kustomize", "overlay"], rendered)
    kubectl.answer(["diff", "-f"], "", code=0, prefix=True)
    res = kubectl.prepare(["apply", "-k", "overlay", "--server-side"])
    [item] = kubectl.sealed.files
    assert item.read() == rendered.encode() and item.label == "kubectl kustomize overlay"
    assert res["run_argv"] == ["apply", "-f", item.path, "--server-side"]
    assert kubectl.calls()[1][:3] == ["diff", "-f", item.path]
    assert res["inputs"][0]["text"] == rendered


def test_helm_set_file_files_are_sealed_and_rendered_from_the_seal(helm: Bench) -> None:
    (helm.cwd / "chart").mkdir()
    (helm.cwd / "cert.pem").write_text("CERT\n")
    helm.answer(["history", "web", "-o", "json"], HISTORY)
    helm.answer(["get", "manifest", "web"], OLD)
    helm.answer(["template", "web"], NEW, prefix=True)
    res = helm.prepare(
        ["upgrade", "web", "./chart", "--set-file", "tls.crt=cert.pem"], is_read_only=anything
    )
    [item] = helm.sealed.files
    assert item.read() == b"CERT\n"
    assert res["run_argv"][-2:] == ["--set-file", f"tls.crt={item.path}"]
    template = [c for c in helm.calls() if c[0] == "template"][0]
    assert f"--set-file=tls.crt={item.path}" in template


REFRESH_ONLY_SHOW = """
Note: Objects have changed outside of Terraform

Terraform detected the following changes made outside of Terraform since the
last "terraform apply" which may have affected this plan:

  # aws_instance.web has changed
  ~ resource "aws_instance" "web" {
      ~ instance_type = "t3.micro" -> "t3.large"
    }

  # aws_s3_bucket.logs has been deleted
  - resource "aws_s3_bucket" "logs" {
    }

This is a refresh-only plan, so Terraform will not take any actions to undo
these. If you were expecting these changes then you can apply this plan to
record the updated values in the Terraform state without changing any remote
objects.
"""


def test_a_refresh_only_plan_is_summarised_from_its_show_text() -> None:
    from shim.preview.runner import Preview
    from shim.preview.terraform import _tf_summarise_text

    pv = Preview("terraform-plan")
    _tf_summarise_text(pv, REFRESH_ONLY_SHOW, "prod")
    assert pv.summary == "terraform refresh-only plan (workspace prod): 2 drifted"
    assert pv.counts == {"add": 0, "change": 0, "destroy": 0, "replace": 0, "drift": 2}


# --------------------------------------------------------------------------- for shield show

KLOG_REFUSED = (
    'E1206 19:16:26.197835   29286 memcache.go:265] "Unhandled Error" err="couldn\'t get '
    'current server API group list: Get \\"https://127.0.0.1:6443/api?timeout=32s\\": dial tcp '
    '127.0.0.1:6443: connect: connection refused"\n'
    * 5
    + "The connection to the server 127.0.0.1:6443 was refused - did you specify the right "
    "host or port?\n"
)


def test_kubectl_diff_text_is_kept_for_show_with_its_temporary_paths_shortened(
    kubectl: Bench,
) -> None:
    (kubectl.cwd / "a.yaml").write_text("kind: Deployment\n")
    kubectl.answer(["diff", "-f"], DIFF_OUT, code=1, prefix=True)
    res = kubectl.prepare(["apply", "-f", "a.yaml"])
    diff = res["preview"]["diff"]
    assert diff.splitlines()[0] == (
        "diff -u -N LIVE/apps.v1.Deployment.shop.web MERGED/apps.v1.Deployment.shop.web"
    )
    assert "-  replicas: 3\n+  replicas: 1" in diff and "/tmp/LIVE-111" not in diff
    assert_plain(res)


def test_unreachable_cluster_is_one_line_and_the_raw_output_is_kept(kubectl: Bench) -> None:
    kubectl.answer(["get"], "", code=1, err=KLOG_REFUSED, prefix=True)
    res = kubectl.prepare(["delete", "pod", "web"], context={"context": "kind-dev"})
    pv = res["preview"]
    assert pv["ok"] is False
    assert pv["error"] == "cluster unreachable (127.0.0.1:6443)"
    assert pv["summary"] == "preview failed: cluster unreachable (127.0.0.1:6443)"
    assert pv["output"] == KLOG_REFUSED  # every line, for shield show
    assert_plain(res)


@pytest.mark.parametrize(
    ("tool", "err", "said"),
    [
        ("kubectl", KLOG_REFUSED, "cluster unreachable (127.0.0.1:6443)"),
        (
            "kubectl",
            "Unable to connect to the server: dial tcp: lookup nohost.invalid on "
            "10.0.0.53:53: no such host\n",
            "cluster unreachable (nohost.invalid: no such host)",
        ),
        (
            "helm",
            'Error: Kubernetes cluster unreachable: Get "https://10.1.2.3:6443/version": dial '
            "tcp 10.1.2.3:6443: i/o timeout\n",
            "cluster unreachable (10.1.2.3:6443: timed out)",
        ),
        (
            "aws",
            '\nCould not connect to the endpoint URL: "http://127.0.0.1:1/"\n',
            "endpoint unreachable (http://127.0.0.1:1/)",
        ),
        (
            "aws",
            "\nAn error occurred (AccessDenied) when calling the ListObjectsV2 operation: "
            "Access Denied\n",
            "AccessDenied on ListObjectsV2: Access Denied",
        ),
        ("aws", "Unable to locate credentials. You can configure ...\n", "no aws credentials"),
        ("kubectl", 'error: the server doesn\'t have a resource type "pdo"\n', None),
    ],
)
def test_common_failures_read_as_one_short_phrase(tool: str, err: str, said: str | None) -> None:
    from shim.preview.failure import describe, explain

    assert explain(tool, err) == said
    line = describe(tool, "get", 1, err)
    assert "\n" not in line and len(line) <= 330
    if said is None:
        assert line == 'kubectl get exited 1: error: the server doesn\'t have a resource type "pdo"'


def test_the_log_gets_the_preview_without_its_diff_or_raw_output(kubectl: Bench) -> None:
    (kubectl.cwd / "a.yaml").write_text("kind: Deployment\n")
    kubectl.answer(["diff", "-f"], DIFF_OUT, code=1, prefix=True)
    rule = {"id": "kubectl/mutate", "preview": {"kind": "auto", "timeout": 10}}
    bound = _hold(kubectl, ["apply", "-f", "a.yaml"], rule)
    try:
        assert "diff" in bound.extra["preview"]
        assert "diff" not in bound.held_fields()["preview"]
        assert bound.held_fields()["preview"]["summary"] == bound.extra["preview"]["summary"]
    finally:
        bound.cleanup()


def test_the_agent_reads_a_failed_preview_in_one_line(kubectl: Bench) -> None:
    kubectl.answer(["get"], "", code=1, err=KLOG_REFUSED, prefix=True)
    rule = {"id": "kubectl/mutate", "preview": {"kind": "auto", "timeout": 10}}
    bound = _hold(kubectl, ["delete", "pod", "web"], rule)
    try:
        lines = bound.agent_lines().splitlines()
        assert lines[0] == "  preview failed: cluster unreachable (127.0.0.1:6443)"
    finally:
        bound.cleanup()
