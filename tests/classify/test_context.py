"""Which target a call works on: kube context and namespace, aws profile and region, terraform
workspace and directory (reference/cli-grammars.md sections 1.3, 2.3, 3.4, 4.3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shim.classify.argv import parse_argv
from shim.classify.context import resolve_context
from shim.classify.decide import decide
from shim.classify.kubeconfig import scan_kubeconfig
from tests.classify.support import shipped


def kubeconfig(current: str | None, contexts: dict[str, str | None]) -> str:
    lines = ["apiVersion: v1", "kind: Config", "clusters: []", "contexts:"]
    for name, ns in contexts.items():
        lines += ["- context:", "    cluster: c", "    user: u"]
        if ns:
            lines.append(f"    namespace: {ns}")
        lines.append(f"  name: {name}")
    if current is not None:
        lines.append(f"current-context: {current}")
    lines += ["users: []", ""]
    return "\n".join(lines)


def ctx(
    tool: str, line: str | list[str], env: dict[str, str], cwd: str = "/w", **kw: object
) -> dict[str, str]:
    grammar = shipped()[tool]["grammar"]
    inv = parse_argv(grammar, line.split() if isinstance(line, str) else line, env)
    return resolve_context(grammar, inv, env, cwd, **kw)  # type: ignore[arg-type]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(
        kubeconfig("kind-dev", {"kind-dev": "team-a", "prod": "shop", "bare": None})
    )
    return tmp_path


# --------------------------------------------------------------------------- kubectl


def test_kube_context_and_namespace_come_from_home_kube_config(home: Path) -> None:
    got = ctx("kubectl", "get pods", {"HOME": str(home)})
    assert (got["context"], got["namespace"]) == ("kind-dev", "team-a")


@pytest.mark.parametrize(
    "line, context, namespace",
    [
        ("--context prod get pods", "prod", "shop"),
        ("--context=prod get pods", "prod", "shop"),
        ("get pods --context prod -n x", "prod", "x"),
        ("-nx get pods", "kind-dev", "x"),
        ("-n=x get pods", "kind-dev", "x"),
        ("--namespace x get pods", "kind-dev", "x"),
        ("--context bare get pods", "bare", "default"),
        ("--context nowhere get pods", "nowhere", "default"),
    ],
)
def test_kube_flags_beat_the_kubeconfig(
    home: Path, line: str, context: str, namespace: str
) -> None:
    got = ctx("kubectl", line, {"HOME": str(home)})
    assert (got["context"], got["namespace"]) == (context, namespace)


def test_kubeconfig_list_first_file_that_sets_current_context_wins(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text(kubeconfig(None, {"from-a": "ns-a"}))  # sets no current-context
    b.write_text(kubeconfig("from-a", {"from-a": "ns-b", "from-b": "x"}))
    c.write_text(kubeconfig("from-c", {}))
    env = {"HOME": str(tmp_path), "KUBECONFIG": f"{a}:{tmp_path / 'missing'}::{b}:{c}"}
    got = ctx("kubectl", "get pods", env)
    # b sets current-context first; for the context itself the first file that has it wins
    assert (got["context"], got["namespace"]) == ("from-a", "ns-a")


def test_kubeconfig_flag_reads_only_that_file(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text(kubeconfig("staging", {"staging": "web"}))
    env = {"HOME": str(home), "KUBECONFIG": str(home / ".kube" / "config")}
    got = ctx("kubectl", f"--kubeconfig {other} get pods", env)
    assert (got["context"], got["namespace"]) == ("staging", "web")


def test_a_json_kubeconfig_is_read_too(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "v1",
        "current-context": "gke_p_z_c",
        "contexts": [{"name": "gke_p_z_c", "context": {"cluster": "c", "namespace": "jobs"}}],
    }
    path = tmp_path / "kc.json"
    path.write_text(json.dumps(doc))
    got = ctx("kubectl", "get pods", {"KUBECONFIG": str(path)})
    assert (got["context"], got["namespace"]) == ("gke_p_z_c", "jobs")


@pytest.mark.parametrize(
    "text, want",
    [
        (
            "current-context: 'q'\ncontexts:\n  - name: q\n    context:\n      namespace: \"n1\"\n",
            ("q", {"q": "n1"}),
        ),
        (
            "contexts:\n- context: {cluster: c, namespace: flow, user: u}\n  name: f\ncurrent-context: f # hi\n",
            ("f", {"f": "flow"}),
        ),
        ('current-context: ""\n', (None, {})),
        ("[1, 2]", (None, {})),
        # fields of another type: kubectl refuses the file, shield leaves it unresolved
        ('{"contexts": 5, "current-context": 7}', ("?", {})),
        ('{"contexts": [{"name": "a", "context": "x"}]}', ("?", {})),
        ('{"contexts": [{"name": "a", "context": null}]}', (None, {"a": ""})),
        ('{"current-context": null, "contexts": [{"name": null}]}', (None, {"": ""})),
        ("{not json", ("?", {})),  # YAML flow style or garbage: not guessed
        ("\x00\udcff: -\n  - :\n", ("?", {})),
    ],
)
def test_kubeconfig_scanner_reads_what_kubectl_writes_and_survives_the_rest(
    text: str, want: tuple[str | None, dict[str, str]]
) -> None:
    assert scan_kubeconfig(text) == want


@pytest.mark.parametrize(
    "text",
    [
        # a multi-line quoted scalar whose second line looks like a key
        'current-context: prod-admin\nx: "one\ncurrent-context: kind-dev"\n',
        'current-context: "pro\\x64-admin"\n',  # an escape
        "current-context: >-\n  prod-admin\n",  # a block scalar
        "current-context: &cc prod-admin\n",  # an anchor
        "current-context: kind-dev\n---\ncurrent-context: prod-admin\n",  # two documents
        "current-context: prod\n  kind-dev\n",  # a plain scalar on two lines
        "contexts:\n- name: a\n  context: *ctx\n",  # an alias
        "contexts:\n- <<: *base\n  name: a\n",  # a merge key
    ],
)
def test_yaml_the_scanner_cannot_read_leaves_the_context_unresolved(text: str) -> None:
    assert scan_kubeconfig(text) == ("?", {})


@pytest.mark.parametrize(
    "text",
    [
        'current-context: kind-dev\n"current-context": eu-prod-1\n',  # a quoted key
        "current-context: kind-dev\fcurrent-context: prod\n",  # a form feed
        "current-context: kind-dev\u2028x: y\n",
    ],
)
def test_keys_and_line_breaks_kubectl_reads_differently_leave_it_unresolved(text: str) -> None:
    assert scan_kubeconfig(text) == ("?", {})


def test_a_comment_after_a_tab_is_a_comment() -> None:
    assert scan_kubeconfig("current-context: prod\t# was dev\n") == ("prod", {})


def test_a_wrapped_plain_scalar_elsewhere_is_fine_but_not_in_a_value_read_here() -> None:
    # gcloud writes long installHint values wrapped over several lines
    gke = (
        "contexts:\n- context:\n    cluster: c\n    namespace: jobs\n    user: u\n  name: gke\n"
        "current-context: gke\nusers:\n- name: u\n  user:\n    exec:\n"
        "      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following\n"
        "        https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access\n"
        "      command: gke-gcloud-auth-plugin\n"
    )
    assert scan_kubeconfig(gke) == ("gke", {"gke": "jobs"})
    assert scan_kubeconfig("contexts:\n- name: a\n  context:\n    namespace: x\n      y\n") == (
        "?",
        {},
    )


def test_an_unreadable_kubeconfig_in_the_list_leaves_context_and_namespace_unresolved(
    tmp_path: Path,
) -> None:
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.write_text("current-context: &a prod\n")
    good.write_text(kubeconfig("dev", {"dev": "sandbox", "prod": "sandbox"}))
    got = ctx("kubectl", "--context prod get pods", {"KUBECONFIG": f"{bad}:{good}"})
    assert (got["context"], got["namespace"]) == ("prod", "?")
    os.mkfifo(tmp_path / "fifo")  # a FIFO could hand kubectl other bytes than shield
    got = ctx("kubectl", "get pods", {"KUBECONFIG": f"{tmp_path / 'fifo'}:{good}"})
    assert got["context"] == "?"


def test_only_the_contexts_own_namespace_counts_not_one_nested_deeper() -> None:
    text = (
        "current-context: p\ncontexts:\n- context:\n    cluster: c\n    extensions:\n"
        "    - name: x\n      extension:\n        namespace: sandbox\n    namespace: payments\n"
        "  name: p\n"
    )
    assert scan_kubeconfig(text) == ("p", {"p": "payments"})


def test_all_namespaces_beats_the_namespace_flag(home: Path) -> None:
    env = {"HOME": str(home)}
    assert ctx("kubectl", "-n dev delete pods --all -A", env)["namespace"] == "*"
    assert ctx("kubectl", "-n dev get pods --all-namespaces=false", env)["namespace"] == "dev"


def test_in_cluster_config_when_there_is_no_kubeconfig(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "jobs"}
    got = ctx("kubectl", "get pods", env)
    assert (got["context"], got["namespace"]) == ("in-cluster", "jobs")
    env.pop("POD_NAMESPACE")

    def read(path: str) -> str | None:
        if path == "/var/run/secrets/kubernetes.io/serviceaccount/namespace":
            return "ci\n"
        return None

    got = ctx("kubectl", "get pods", env, read=read)
    assert (got["context"], got["namespace"]) == ("in-cluster", "ci")


def test_nothing_to_go_on_is_unresolved(tmp_path: Path) -> None:
    got = ctx("kubectl", "get pods", {"HOME": str(tmp_path)})
    assert (got["context"], got["namespace"]) == ("?", "?")
    assert ctx("kubectl", "-n x get pods", {"HOME": str(tmp_path)})["namespace"] == "x"


# --------------------------------------------------------------------------- helm


def test_helm_env_comes_between_flags_and_the_kubeconfig(home: Path) -> None:
    env = {"HOME": str(home)}
    assert ctx("helm", "list", env) == {"context": "kind-dev", "namespace": "team-a", "cwd": "/w"}
    env |= {"HELM_KUBECONTEXT": "prod"}
    assert ctx("helm", "list", env)["namespace"] == "shop"  # the context's namespace
    env |= {"HELM_NAMESPACE": "payments"}
    got = ctx("helm", "list", env)
    assert (got["context"], got["namespace"]) == ("prod", "payments")
    got = ctx("helm", "--kube-context kind-dev -n x list", env)
    assert (got["context"], got["namespace"]) == ("kind-dev", "x")


def test_an_empty_helm_flag_still_beats_the_helm_variables(home: Path) -> None:
    # helm: the flag overwrites the variable even with "", which means the current context
    env = {"HOME": str(home), "HELM_KUBECONTEXT": "prod", "HELM_NAMESPACE": "payments"}
    got = ctx("helm", ["--kube-context=", "uninstall", "web"], env)
    assert got["context"] == "kind-dev"
    got = ctx("helm", ["uninstall", "web", "-n", ""], env)
    assert (got["context"], got["namespace"]) == ("prod", "shop")


def test_kubectl_ignores_the_helm_variables(home: Path) -> None:
    env = {"HOME": str(home), "HELM_KUBECONTEXT": "prod", "HELM_NAMESPACE": "payments"}
    got = ctx("kubectl", "get pods", env)
    assert (got["context"], got["namespace"]) == ("kind-dev", "team-a")


# --------------------------------------------------------------------------- aws

AWS_CONFIG = """[default]
region = us-east-1
[profile prod]
region = eu-west-1
output = json
[profile dev]
# no region
"""


@pytest.fixture
def aws_home(tmp_path: Path) -> Path:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text(AWS_CONFIG)
    return tmp_path


@pytest.mark.parametrize(
    "major, env, line, profile",
    [
        (1, {"AWS_PROFILE": "a", "AWS_DEFAULT_PROFILE": "b"}, "s3 ls", "b"),
        (2, {"AWS_PROFILE": "a", "AWS_DEFAULT_PROFILE": "b"}, "s3 ls", "a"),
        (1, {"AWS_PROFILE": "a"}, "s3 ls", "a"),
        (2, {"AWS_DEFAULT_PROFILE": "b"}, "s3 ls", "b"),
        (1, {"AWS_PROFILE": "a", "AWS_DEFAULT_PROFILE": "b"}, "--profile c s3 ls", "c"),
        (2, {"AWS_PROFILE": "a"}, "s3 ls --prof=c", "c"),
        (1, {}, "s3 ls", "default"),
    ],
)
def test_aws_profile_order_follows_the_cli_version(
    aws_home: Path, major: int, env: dict[str, str], line: str, profile: str
) -> None:
    got = ctx("aws", line, {"HOME": str(aws_home), **env}, aws_major=major)
    assert got["profile"] == profile


@pytest.mark.parametrize(
    "major, env, line, region",
    [
        (1, {}, "s3 ls", "us-east-1"),
        (1, {"AWS_PROFILE": "prod"}, "s3 ls", "eu-west-1"),
        (1, {}, "--profile prod s3 ls", "eu-west-1"),
        (1, {"AWS_DEFAULT_REGION": "ap-south-1"}, "--profile prod s3 ls", "ap-south-1"),
        (1, {"AWS_REGION": "ca-central-1"}, "s3 ls", "us-east-1"),  # v1 ignores AWS_REGION
        (2, {"AWS_REGION": "ca-central-1", "AWS_DEFAULT_REGION": "x"}, "s3 ls", "ca-central-1"),
        (1, {"AWS_DEFAULT_REGION": "x"}, "s3 ls --region sa-east-1", "sa-east-1"),
        (1, {}, "--reg=sa-east-1 s3 ls", "sa-east-1"),
        (1, {"AWS_PROFILE": "dev"}, "s3 ls", "?"),
    ],
)
def test_aws_region_comes_from_flag_env_then_config(
    aws_home: Path, major: int, env: dict[str, str], line: str, region: str
) -> None:
    got = ctx("aws", line, {"HOME": str(aws_home), **env}, aws_major=major)
    assert got["region"] == region


def test_aws_config_file_variable_moves_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere"
    cfg.write_text("[profile ops]\nregion = eu-north-1\n")
    env = {"HOME": str(tmp_path), "AWS_CONFIG_FILE": str(cfg), "AWS_PROFILE": "ops"}
    assert ctx("aws", "s3 ls", env)["region"] == "eu-north-1"


def test_aws_env_credentials_are_marked_unless_a_profile_flag_wins(aws_home: Path) -> None:
    env = {"HOME": str(aws_home), "AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIA..."}
    got = ctx("aws", "s3 ls", env)
    assert got["profile"] == "prod" and got["credentials"] == "env"
    assert "credentials" not in ctx("aws", "--profile prod s3 ls", env)


# --------------------------------------------------------------------------- terraform


def test_terraform_workspace_from_env_then_environment_file(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    (infra / ".terraform").mkdir(parents=True)
    (infra / ".terraform" / "environment").write_text("staging\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "environment").write_text("blue")
    cwd = str(tmp_path)
    assert ctx("terraform", "plan", {}, cwd) == {"workspace": "default", "dir": cwd, "cwd": cwd}
    got = ctx("terraform", "-chdir=infra plan", {}, cwd)
    assert (got["workspace"], got["dir"]) == ("staging", str(infra))
    assert (
        ctx("terraform", "-chdir=infra plan", {"TF_WORKSPACE": "prod"}, cwd)["workspace"] == "prod"
    )
    got = ctx("terraform", "plan", {"TF_DATA_DIR": str(tmp_path / "data")}, cwd)
    assert got["workspace"] == "blue"
    got = ctx("terraform", f"-chdir={infra} apply", {}, "/elsewhere")
    assert got["dir"] == str(infra)


# --------------------------------------------------------------------------- rules on context

TEAM = """tool: kubectl
rules:
  - id: team/prod-namespaces
    decision: deny
    reason: prod namespaces change through the pipeline
    match: {verb: [apply, delete, scale, rollout restart], context: {namespace: "prod*"}}
    examples:
      match: [{argv: "delete pod x", context: {namespace: prod-eu}}]
      no_match: [{argv: "delete pod x", context: {namespace: dev}}]
  - id: team/kind-reads-secrets
    decision: allow
    reason: secrets in kind clusters are test data
    match: {verb: get, context: {context: "kind-*"}}
    examples:
      match: [{argv: "get secret x -o yaml", context: {context: kind-dev}}]
      no_match: [{argv: "get secret x -o yaml", context: {context: "?"}}]
"""


def test_team_rules_on_the_resolved_context_apply(tmp_path: Path) -> None:
    from shim.rules.compile import compile_layers
    from shim.rules.load import defaults_dir

    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "team.yaml").write_text(TEAM)
    tools = compile_layers([defaults_dir(), str(layer)])
    grammar, rules = tools["kubectl"]["grammar"], tools["kubectl"]["rules"]
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    (home / ".kube" / "config").write_text(kubeconfig("live", {"live": "prod-eu", "kind-x": ""}))

    def run(line: str, env: dict[str, str]) -> tuple[str, str | None, dict[str, str]]:
        inv = parse_argv(grammar, line.split(), env)
        c = resolve_context(grammar, inv, env, "/w")
        d = decide(inv, rules, c, "agent", env)
        return d.decision, d.rule, c

    env = {"HOME": str(home)}
    # the namespace comes from the kubeconfig's current context: deny
    assert run("delete pod web", env)[:2] == ("deny", "team/prod-namespaces")
    assert run("-n dev delete pod web", env)[:2] == ("ask", "kubectl/mutate")
    assert run("--context kind-x scale deploy/web --replicas=2", env)[0] == "ask"
    assert run("--namespace=prod-us rollout restart deploy/web", env)[0] == "deny"
    # -A covers the prod namespaces too, whatever -n says
    assert run("-n dev delete pods --all -A", env)[:2] == ("deny", "team/prod-namespaces")
    # an unresolved context: the restrictive rule matches, the allow does not
    nothing = {"HOME": str(tmp_path / "nobody")}
    decision, rule, c = run("delete pod web", nothing)
    assert (decision, rule, c["namespace"]) == ("deny", "team/prod-namespaces", "?")
    assert run("get secret db -o yaml", nothing)[:2] == ("ask", "kubectl/secret-read")
    # a kind context: the allow applies, but a default ask still wins over it
    kind = run("--context kind-x get secret db -o yaml", env)
    assert kind[:2] == ("ask", "kubectl/secret-read")
    assert run("--context kind-x get pods", env)[0] == "allow"
