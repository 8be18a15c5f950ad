"""kubectl: table tests (command lines from `kubectl <cmd> --help` examples and the kubectl
reference), checked against the policy and, where the binary is here, against kubectl 1.32.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
from pathlib import Path

import pytest

from shim.classify.cobra import _strip_bool
from shim.classify.invocation import node_tables
from tests.classify.support import (
    Row,
    check_row,
    parse,
    real_kubectl,
    rows_params,
    run_kubectl,
    shipped,
)

DIFF = {"KUBECTL_EXTERNAL_DIFF": "meld"}

ROWS: list[Row] = [
    # reads (examples of `kubectl get --help`, `describe`, `logs`, `top`, ...)
    Row("get pods", "allow", "get", "kubectl/read", source="kubectl get --help"),
    Row("get pods -o wide", "allow", "get", "kubectl/read"),
    Row("get replicationcontroller web", "allow", "get", "kubectl/read"),
    Row("get deployments.v1.apps -o json", "allow", "get", "kubectl/read"),
    Row("get -o json pod web-pod-13je7", "allow", "get", "kubectl/read"),
    Row("get rc,services", "allow", "get", "kubectl/read"),
    Row("get pods web-pod-13je7 --subresource status", "allow", "get", "kubectl/read"),
    Row("get pods -- --help", "allow", "get", "kubectl/read"),
    Row("describe pods/nginx", "allow", "describe", "kubectl/read"),
    Row("describe pods -l name=myLabel", "allow", "describe", "kubectl/read"),
    Row("logs nginx --prefix", "allow", "logs", "kubectl/read"),
    Row("logs -f deploy/web -c app", "allow", "logs", "kubectl/read"),
    Row("logs deployment/nginx --all-pods=true", "allow", "logs", "kubectl/read"),
    Row("top pod POD_NAME --containers", "allow", "top pod", "kubectl/read"),
    Row("top no", "allow", "top node", "kubectl/read"),
    Row("explain pods.spec.containers", "allow", "explain", "kubectl/read"),
    Row("api-resources --namespaced=true", "allow", "api-resources", "kubectl/read"),
    Row("api-versions", "allow", "api-versions", "kubectl/read"),
    Row("version --client", "allow", "version", "kubectl/read"),
    Row("cluster-info", "allow", "cluster-info", "kubectl/read"),
    Row("wait --for=condition=Ready pod/busybox1", "allow", "wait", "kubectl/read"),
    Row("events --types=Warning", "allow", "events", "kubectl/read"),
    Row("auth can-i create pods --all-namespaces", "allow", "auth can-i", "kubectl/read"),
    Row("auth whoami", "allow", "auth whoami", "kubectl/read"),
    Row("rollout status deploy/web", "allow", "rollout status", "kubectl/read"),
    Row("rollout history deployment/abc", "allow", "rollout history", "kubectl/read"),
    Row("config get-contexts", "allow", "config get-contexts", "kubectl/read"),
    Row("config current-context", "allow", "config current-context", "kubectl/read"),
    Row("completion bash", "allow", "completion", "kubectl/read"),
    Row("plugin list", "allow", "plugin list", "kubectl/read"),
    Row("options", "allow", "options", "kubectl/read"),
    Row("diff -f pod.json", "allow", "diff", "kubectl/diff"),
    Row("diff -f pod.json", "ask", "diff", "kubectl/diff-external", env=DIFF),
    Row("kustomize overlays/prod", "allow", "kustomize", "kubectl/kustomize"),
    Row("kustomize --enable-helm overlays/prod", "ask", "kustomize", "kubectl/kustomize-exec"),
    Row("get --raw=/healthz", "allow", "get", "kubectl/read"),
    # every global-flag spelling, before and after the verb, between nested words
    Row("-n prod get pods", "allow", "get", "kubectl/read"),
    Row("-nprod get pods", "allow", "get", "kubectl/read"),
    Row("-n=prod get pods", "allow", "get", "kubectl/read"),
    Row("--namespace prod get pods", "allow", "get", "kubectl/read"),
    Row("--namespace=prod get pods", "allow", "get", "kubectl/read"),
    Row("get pods -n prod", "allow", "get", "kubectl/read"),
    Row("get -nprod pods", "allow", "get", "kubectl/read"),
    Row("--context prod get pods", "allow", "get", "kubectl/read"),
    Row("--context=prod delete pod web", "ask", "delete", "kubectl/mutate"),
    Row("-n prod delete pod web", "ask", "delete", "kubectl/mutate"),
    Row("-v 3 get pods", "allow", "get", "kubectl/read"),
    Row("-v3 get pods", "allow", "get", "kubectl/read"),
    Row("--v=3 get pods", "allow", "get", "kubectl/read"),
    Row("--insecure-skip-tls-verify config current-context", "allow", "config current-context"),
    Row("config --kubeconfig /tmp/k current-context", "allow", "config current-context"),
    Row("config --kubeconfig /tmp/k use-context prod", "ask", "config use-context"),
    Row("rollout -n prod restart deploy/web", "ask", "rollout restart", "kubectl/mutate"),
    Row("cluster-info --context prod dump", "ask", "cluster-info dump"),
    Row("--as=system:serviceaccount:dev:foo auth can-i list pods", "allow", "auth can-i"),
    # secret reads (an allowed verb that prints secret data)
    Row("get secret db -o yaml", "ask", "get", "kubectl/secret-read"),
    Row("get secrets -o json", "ask", "get", "kubectl/secret-read"),
    Row("get secret db -o jsonpath={.data.password}", "ask", "get", "kubectl/secret-read"),
    Row("get secret/db -ojson", "ask", "get", "kubectl/secret-read"),
    Row("-o yaml get secret db", "ask", "get", "kubectl/secret-read"),
    Row("-oyaml get secret db", "ask", "get", "kubectl/secret-read"),
    Row("--output=yaml -n prod get secret db", "ask", "get", "kubectl/secret-read"),
    Row("get pods,secrets -o yaml", "ask", "get", "kubectl/secret-read"),
    Row("get SECRETS -o yaml", "ask", "get", "kubectl/secret-read"),
    Row("get secrets.v1 -o go-template={{.data}}", "ask", "get", "kubectl/secret-read"),
    Row("get secret db --template={{.data.password}}", "ask", "get", "kubectl/secret-read"),
    Row("get secret db -o custom-columns=D:.data", "ask", "get", "kubectl/secret-read"),
    Row("get secret db -o jsonpath-file=p.txt", "ask", "get", "kubectl/secret-read"),
    Row("get --raw /api/v1/namespaces/prod/secrets/db", "ask", "get", "kubectl/secret-read"),
    Row("get -f pod.yaml -o json", "ask", "get", "kubectl/get-file-output"),
    Row("get -k dir/ -o yaml", "ask", "get", "kubectl/get-file-output"),
    Row("get secrets", "allow", "get", "kubectl/read"),
    Row("get secret db -o name", "allow", "get", "kubectl/read"),
    Row("get secret db -o yaml -o name", "allow", "get", "kubectl/read"),
    # describe prints a service-account token in full (kubectl describe.go), so it is a read
    # of Secret data although POLICY.md expected sizes only
    Row("describe secret db", "ask", "describe", "kubectl/secret-read"),
    Row("config view", "allow", "config view", "kubectl/config-view"),
    Row(
        "config view -o jsonpath='{.users[?(@.name == \"e2e\")].user.password}'",
        "allow",
        "config view",
        "kubectl/config-view",
        source="kubectl config view --help (prints REDACTED)",
    ),
    Row("config view --raw", "ask", "config view", "kubectl/config-view-raw"),
    Row("config view --flatten", "ask", "config view", "kubectl/config-view-raw"),
    Row("config view --minify --flatten", "ask", "config view", "kubectl/config-view-raw"),
    Row("-o yaml config view --raw", "ask", "config view", "kubectl/config-view-raw"),
    Row("config view --raw=false", "allow", "config view", "kubectl/config-view"),
    Row("edit secret db", "ask", "edit", "kubectl/mutate"),
    Row("create token builder", "ask", "create token", "kubectl/mutate"),
    # dry-run: every row of the reference's value table (section 1.5)
    Row("delete pod web --dry-run=client", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=server", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=none", "ask", "delete", "kubectl/mutate"),
    Row("delete pod web --dry-run", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=true", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=false", "ask", "delete", "kubectl/mutate"),
    Row("delete pod web --dry-run=FALSE", "ask", "delete", "kubectl/mutate"),
    Row("delete pod web --dry-run server", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=unchanged", "allow", "delete", "kubectl/dry-run"),
    Row("delete pod web --dry-run=client --dry-run=none", "ask", "delete", "kubectl/mutate"),
    Row("--dry-run=server delete pod web", "allow", "delete", "kubectl/dry-run"),
    Row("apply -f app.yaml --dry-run=server", "allow", "apply", "kubectl/dry-run"),
    Row("run nginx --image=nginx --dry-run=client", "allow", "run", "kubectl/dry-run"),
    Row(
        "create deployment web --image=nginx --dry-run=client -o yaml",
        "allow",
        "create deployment",
        "kubectl/dry-run",
    ),
    Row("rollout undo deployment/abc --dry-run=server", "allow", "rollout undo"),
    Row("rollout restart deploy/web --dry-run=client", "ask", "rollout restart"),
    Row("exec web --dry-run=client -- ls", "ask", "exec", "kubectl/runs-code"),
    # help anywhere before `--` (and not after it); `--help=false` is no help request
    Row("delete pod web --help", "allow", "delete", "kubectl/help"),
    Row("delete pod web -h", "allow", "delete", "kubectl/help"),
    Row("exec web --help -- ls", "allow", "exec", "kubectl/help"),
    Row("exec web -- ls --help", "ask", "exec", "kubectl/runs-code"),
    Row("help delete", "allow", "help", "kubectl/help"),
    Row("", "allow", "help", "kubectl/help"),
    Row("delete pod web --help=false", "ask", "delete", "kubectl/mutate"),
    Row("--help=false delete pod web", "ask", "delete", "kubectl/mutate"),
    Row("delete pod web --help=maybe", "ask", "delete", None),
    Row("-h delete pod web", "ask", "pod", None),
    # unknown verbs, typos, plugins, unknown flags before the verb
    Row("desc pods", "ask", "desc", None),
    Row("rm pod web", "ask", "rm", None),
    Row("ctx prod", "ask", "ctx", None),
    Row("-n prod ctx", "ask", "ctx", None),
    Row("krew install ctx", "ask", "krew", None),
    Row("view-secret db", "ask", "view-secret", None),
    Row("create foo web", "ask", "create foo", None),
    Row("-A get pods", "ask", "pods", None),
    Row("--raw config view", "ask", "view", None),
    Row("--no-such-flag=1 get pods", "ask", "get", None),
    # changes (examples of each command's --help)
    Row("apply -f ./pod.json", "ask", "apply", "kubectl/mutate"),
    Row("apply -k dir/", "ask", "apply", "kubectl/mutate"),
    Row("apply --prune -f manifest.yaml -l app=nginx", "ask", "apply", "kubectl/mutate"),
    Row("apply -f -", "ask", "apply", "kubectl/mutate"),
    Row("delete -f ./pod.json", "ask", "delete", "kubectl/mutate"),
    Row("delete pod,service baz foo", "ask", "delete", "kubectl/mutate"),
    Row("delete --cascade pod web", "ask", "delete", "kubectl/mutate"),
    Row("scale --replicas=3 rs/foo", "ask", "scale", "kubectl/mutate"),
    Row("rollout restart deployment/nginx", "ask", "rollout restart", "kubectl/mutate"),
    Row("rollout undo deployment/abc --to-revision=3", "ask", "rollout undo", "kubectl/mutate"),
    Row("set image deployment/nginx busybox=busybox nginx=nginx:1.9.1", "ask", "set image"),
    Row("label pods foo unhealthy=true", "ask", "label", "kubectl/mutate"),
    Row("annotate pods foo description='my frontend'", "ask", "annotate", "kubectl/mutate"),
    Row("taint nodes foo dedicated=special-user:NoSchedule", "ask", "taint", "kubectl/mutate"),
    Row("cordon foo", "ask", "cordon", "kubectl/mutate"),
    Row("drain foo --force", "ask", "drain", "kubectl/mutate"),
    Row(
        'patch node k8s-node-1 -p \'{"spec":{"unschedulable":true}}\'',
        "ask",
        "patch",
        "kubectl/mutate",
    ),
    Row("create deploy web --image=nginx", "ask", "create deployment", "kubectl/mutate"),
    Row(
        "create secret generic my-secret --from-literal=key1=supersecret",
        "ask",
        "create secret generic",
        "kubectl/mutate",
    ),
    Row("certificate approve csr-1", "ask", "certificate approve", "kubectl/mutate"),
    Row("auth reconcile -f rbac.yaml", "ask", "auth reconcile", "kubectl/mutate"),
    Row("config use prod", "ask", "config use-context", "kubectl/config-write"),
    Row("config set-context --current --namespace=x", "ask", "config set-context"),
    Row("cluster-info dump --output-directory=/tmp/state", "ask", "cluster-info dump"),
    # runs code or opens a connection
    Row("exec mypod -- date", "ask", "exec", "kubectl/runs-code"),
    Row("exec mypod -c ruby-container -i -t -- bash -il", "ask", "exec", "kubectl/runs-code"),
    Row("cp /tmp/foo_dir mypod:/tmp/bar_dir", "ask", "cp", "kubectl/runs-code"),
    Row("port-forward pod/mypod 5000 6000", "ask", "port-forward", "kubectl/runs-code"),
    Row("debug mypod -it --image=busybox", "ask", "debug", "kubectl/runs-code"),
    Row("attach mypod -i", "ask", "attach", "kubectl/runs-code"),
    Row("proxy --port=8011 --www=./local/www/", "ask", "proxy", "kubectl/runs-code"),
    Row("run nginx --image=nginx", "ask", "run", "kubectl/runs-code"),
    Row("expose rc nginx --port=80 --target-port=8000", "ask", "expose", "kubectl/runs-code"),
    # flag names read `_` as `-`: an unknown-looking string flag must not swallow a dry run
    Row("delete pod web --cache_dir --dry-run=client", "ask", "delete", "kubectl/mutate"),
    Row("delete ns prod --profile_output --dry-run=server", "ask", "delete", "kubectl/mutate"),
    Row("exec web --cache_dir --help -- id", "ask", "exec", "kubectl/runs-code"),
    Row("run x --image=busybox --field_manager --help", "ask", "run", "kubectl/runs-code"),
    Row("kustomize --enable_helm overlays/prod", "ask", "kustomize", "kubectl/kustomize-exec"),
    Row("delete pod web --dry_run=server", "allow", "delete", "kubectl/dry-run"),
    Row("--insecure_skip_tls_verify get pods", "allow", "get", "kubectl/read"),
    Row("--cache_dir=/tmp/c get pods", "ask", "get", "kubectl/discovery-cache"),
    # a flag kubectl 1.32 does not have: shield cannot place its value
    Row("get pods --frobnicate", "ask", "get", None),
    Row("delete pod web --frobnicate --dry-run=client", "ask", "delete", None),
    # --raw sends the request as it is: --dry-run does not apply
    Row(
        "create --raw /api/v1/namespaces/default/pods -f pod.json --dry-run=client",
        "ask",
        "create",
        "kubectl/mutate",
    ),
    Row("delete --raw /api/v1/namespaces/default --dry-run=client", "ask", "delete"),
    Row("replace --raw /api/v1/namespaces/d/pods/web -f p.json --dry-run=server", "ask", "replace"),
    # the path kubectl requests: %XX decoded, dot segments resolved, query dropped
    Row("get --raw /api/v1/namespaces/default/%73ecrets/db", "ask", "get", "kubectl/secret-read"),
    Row("get --raw=/api/v1/namespaces/x/pods/../secrets?watch=1", "ask", "get"),
    Row("get --raw /api/v1/namespaces/default/pods?limit=1", "allow", "get", "kubectl/read"),
    # a dry run with an output prints the live object: a Secret's data too
    Row("label secret db a=b --dry-run=client -o yaml", "ask", "label", "kubectl/secret-read"),
    Row("label secrets --all -A a=b --dry-run=server -o json", "ask", "label"),
    Row("patch secret db -p {} --dry-run=client -o jsonpath={.data}", "ask", "patch"),
    Row("apply -f s.yaml --dry-run=client -o yaml", "ask", "apply", "kubectl/secret-read"),
    Row("label pod web a=b --dry-run=client -o yaml", "allow", "label", "kubectl/dry-run"),
    Row("apply -f s.yaml --dry-run=server", "allow", "apply", "kubectl/dry-run"),
    # diff --prune prints what it would prune, Secrets unmasked
    Row("diff --prune -l app=web -f cm.yaml", "ask", "diff", "kubectl/secret-read"),
    Row("diff -f cm.yaml", "allow", "diff", "kubectl/diff"),
    Row("describe secrets -n kube-system", "ask", "describe", "kubectl/secret-read"),
]


@pytest.mark.parametrize("row", rows_params(ROWS))
def test_kubectl_table(row: Row) -> None:
    check_row("kubectl", row)


def test_dry_run_server_with_a_space_makes_server_a_positional() -> None:
    inv = parse("kubectl", "delete pod web --dry-run server")
    assert inv.dry_run and inv.args == ("pod", "web", "server")


def test_the_container_command_after_double_dash_is_not_parsed() -> None:
    inv = parse("kubectl", "exec web -c app -- ls --help -n kube-system")
    assert inv.kind == "ok" and inv.rest == ("ls", "--help", "-n", "kube-system")
    assert inv.flag("--namespace") is None and inv.flag("--container") == "app"


@pytest.mark.parametrize(
    "line, value",
    [
        ("-n prod get pods", "prod"),
        ("-nprod get pods", "prod"),
        ("-n=prod get pods", "prod"),
        ("--namespace prod get pods", "prod"),
        ("--namespace=prod get pods", "prod"),
        ("get pods -n prod", "prod"),
        ("get pods --namespace=prod -n dev", "dev"),
    ],
)
def test_every_namespace_spelling_reads_the_same_value(line: str, value: str) -> None:
    assert parse("kubectl", line).flag("--namespace") == value


# --------------------------------------------------------------------------- the real kubectl

# long-running or connection-opening rows the real binary must not run here
_NOT_RUN = {"proxy --port=8011 --www=./local/www/", "attach mypod -i"}

# After the verb, shield reads flags against the tool-wide union, so a flag the command does
# not have is read, not refused; kubectl refuses it. Nothing runs in either case, and these
# rows are ask anyway.
_LENIENT = {"rollout restart deploy/web --dry-run=client", "exec web --dry-run=client -- ls"}


def _expected_real(kind: str) -> set[str]:
    return {
        "help": {"help"},
        "unknown": {"unknown", "error"},
        "error": {"error", "unknown"},
        "ok": {"ran"},
    }[kind]


def _worth_running(row: Row) -> bool:
    """Rows whose reading is not plain `verb args --flags`: flags before or between the verb
    words, help, dry-run spellings, `--`, and everything shield does not read as `ok`."""
    if row.line in _NOT_RUN or row.env:
        return False
    inv = parse("kubectl", row.line)
    argv = inv.argv
    return (
        inv.kind != "ok"
        or (bool(argv) and argv[0].startswith("-"))
        or (len(inv.verb) > 1 and len(argv) > 1 and argv[1].startswith("-"))
        or any(t == "--" or t.startswith(("-h", "--help", "--dry-run")) for t in argv)
    )


REAL_ROWS = [r for r in ROWS if _worth_running(r)]


def _binary_key(binary: str) -> str:
    st = os.stat(binary)
    return f"{binary}:{st.st_size}:{st.st_mtime_ns}"


@pytest.fixture(scope="module")
def real_outcomes(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict[str, str]:
    """What kubectl does with each row, remembered in pytest's cache per kubectl binary (the
    facts change only with the binary)."""
    binary = real_kubectl()
    if binary is None:
        pytest.skip("kubectl 1.32 is not installed here")
    key = "shield/kubectl-outcomes/" + _binary_key(binary).replace("/", "_")
    known: dict[str, str] = pytestconfig.cache.get(key, {})
    todo = sorted({r.line for r in REAL_ROWS} - set(known))
    homes = {line: tmp_path_factory.mktemp("kube") for line in todo}

    def one(line: str) -> tuple[str, str]:
        return line, run_kubectl(binary, list(parse("kubectl", line).argv), homes[line])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        known.update(pool.map(one, todo))
    pytestconfig.cache.set(key, known)
    return known


@pytest.mark.parametrize("row", rows_params(REAL_ROWS))
def test_kubectl_table_agrees_with_the_real_kubectl(
    row: Row, real_outcomes: dict[str, str]
) -> None:
    inv = parse("kubectl", row.line)
    real = real_outcomes[row.line]
    expected = _expected_real(inv.kind) | ({"error"} if row.line in _LENIENT else set())
    assert real in expected, f"shield read {inv.kind}, kubectl {real}"


def _real_flags(binary: str, path: tuple[str, ...], home: Path) -> dict[str, tuple[str, bool]]:
    """Flags of `kubectl <path> --help`: spelling -> (long name, takes no value)."""
    out = subprocess.run(
        [binary, *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    ).stdout
    body = out.split("\nOptions:\n", 1)[1].split("\nUsage:", 1)[0] if "\nOptions:\n" in out else ""
    # pflag prints bools with a true/false default; these string flags have a default for
    # the bare spelling (NoOptDefVal) and take no value either
    no_value = {"--dry-run", "--cascade", "--validate"}
    flags: dict[str, tuple[str, bool]] = {}
    for m in re.finditer(r"^    (?:-(\w), )?--([\w-]+)=(.*):$", body, re.M):
        short, name, default = m.groups()
        bare = default in ("true", "false") or f"--{name}" in no_value
        flags[f"--{name}"] = (f"--{name}", bare)
        if short:
            flags[f"-{short}"] = (f"--{name}", bare)
    return flags


def _command_paths(node: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    out = []
    for name, child in (node.get("commands") or {}).items():
        if child["name"] != name or child.get("help_verb"):
            continue  # an alias, or `help`
        out.append((prefix + (name,), child))
        out.extend(_command_paths(child, prefix + (name,)))
    return out


def test_kubectl_flag_tables_agree_with_kubectl_help(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """Every flag of every command has the arity kubectl 1.32 gives it (a value flag read as a
    bool, or the reverse, would move the positionals a rule looks at), and at every command
    group the flags that take no value while cobra looks for the subcommand are the group's."""
    binary = real_kubectl()
    if binary is None:
        pytest.skip("kubectl 1.32 is not installed here")
    grammar = shipped()["kubectl"]["grammar"]
    paths = _command_paths(grammar)
    key = "shield/kubectl-flags/" + _binary_key(binary).replace("/", "_")
    cached: dict[str, dict[str, list]] = pytestconfig.cache.get(key, {})
    todo = [p for p, _ in paths if " ".join(p) not in cached]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for path, flags in zip(
            todo, pool.map(lambda p: _real_flags(binary, p, tmp_path), todo), strict=True
        ):
            cached[" ".join(path)] = {k: list(v) for k, v in flags.items()}
    pytestconfig.cache.set(key, cached)
    real = {p: {k: (v[0], v[1]) for k, v in cached[" ".join(p)].items()} for p, _ in paths}
    help_flags = grammar["help_flags"]
    problems = []
    for path, node in paths:
        tables = node_tables(grammar, node)
        for spelling, (long, bare) in real[path].items():
            hit = None
            for table in tables:
                if spelling in table:
                    hit = table[spelling]
                    break
            cmd = " ".join(path)
            if hit is None:
                problems.append(f"{cmd}: {spelling} is missing")
            elif hit[1] == bare or hit[0] != long:
                problems.append(f"{cmd}: {spelling} is {hit}, kubectl has {long} bare={bare}")
        if node.get("commands"):
            level = (node.get("flags") or {}, grammar["flags"])
            for spelling, (_long, bare) in real[path].items():
                if spelling in ("-h", "--help"):
                    continue
                if _strip_bool(level, spelling, help_flags) != bare:
                    problems.append(f"{' '.join(path)} (group): {spelling} bare={bare} differs")
    assert not problems, "\n".join(problems)
