"""Attempts, as an agent would make them, to slip a dangerous call past an allow rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shim.classify.classify import classify
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir

TEAM = """
tool: kubectl
rules:
  - id: team/kind-pods
    decision: allow
    reason: pods in local kind clusters are disposable
    match: {verb: delete, any_arg: [pod, pods, "pod/*"], context: {context: "kind-*"}}
    examples:
      match: [{argv: "delete pod web", context: {context: kind-dev}}]
      no_match: [{argv: "delete pod web", context: {context: prod-eu}}]
"""

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kind-dev
contexts:
- name: kind-dev
  context: {cluster: kind, user: kind}
"""


def relaxed_kubectl_yaml() -> str:
    """How a team relaxes a default: a same-named copy of kubectl.yaml in a higher layer, whose
    mutate rule no longer covers kind-* contexts, plus the allow rule."""
    text = (Path(defaults_dir()) / "kubectl.yaml").read_text()
    head = "  - id: kubectl/mutate\n    decision: ask\n    reason: this changes the cluster\n    match:\n"
    assert head in text
    text = text.replace(head, head + '      context: {context: {not: ["kind-*"]}}\n', 1)
    return text + TEAM.split("rules:\n", 1)[1]


@pytest.fixture
def kubectl(tmp_path: Path) -> dict:
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "kubectl.yaml").write_text(relaxed_kubectl_yaml())
    return compile_layers([defaults_dir(), str(layer)])["kubectl"]


def decide(compiled: dict, tmp_path: Path, *argv: str, env: dict[str, str] | None = None):
    kc = tmp_path / "kubeconfig"
    kc.write_text(KUBECONFIG)
    world = {"HOME": str(tmp_path), "KUBECONFIG": str(kc), **(env or {})}
    return classify(compiled, list(argv), world, str(tmp_path), "bot")


def test_the_team_rule_allows_deleting_pods_in_kind(kubectl: dict, tmp_path: Path) -> None:
    assert decide(kubectl, tmp_path, "delete", "pod", "web").decision == "allow"


@pytest.mark.parametrize(
    "override",
    [
        ["--server", "https://prod-api:6443"],
        ["--server=https://prod-api:6443"],
        ["-s", "https://prod"],
        ["--cluster", "prod"],
    ],
)
def test_pointing_a_kind_context_at_another_server_is_not_allowed_as_kind(
    kubectl: dict, tmp_path: Path, override: list[str]
) -> None:
    d = decide(kubectl, tmp_path, *override, "delete", "pod", "web")
    assert d.decision == "ask"
    assert d.context["context"] == "?"


def test_helm_apiserver_override_makes_the_context_unknown(tmp_path: Path) -> None:
    helm = compile_layers([defaults_dir()])["helm"]
    d = decide(helm, tmp_path, "list", env={"HELM_KUBEAPISERVER": "https://prod-api"})
    assert d.context["context"] == "?"
    assert d.decision == "allow"  # reads stay reads; only context-based relaxations stop applying


@pytest.mark.parametrize("verbosity", ["-v=8", "-v9", "--v=10", "-v", "8"])
def test_verbose_logging_of_a_secret_body_is_held(
    kubectl: dict, tmp_path: Path, verbosity: str
) -> None:
    argv = (
        ["describe", "pod", "db", verbosity]
        if verbosity != "-v"
        else ["describe", "pod", "db", "-v", "8"]
    )
    if verbosity == "8":
        argv = ["--v", "8", "get", "secret", "db"]
    d = decide(kubectl, tmp_path, *argv)
    assert (d.decision, d.rule) == ("ask", "kubectl/verbose-http")


def test_ordinary_verbosity_stays_allowed(kubectl: dict, tmp_path: Path) -> None:
    assert decide(kubectl, tmp_path, "describe", "pod", "db", "-v=4").decision == "allow"


def test_lambda_list_functions_is_a_secret_read(tmp_path: Path) -> None:
    aws = compile_layers([defaults_dir()])["aws"]
    d = classify(aws, ["lambda", "list-functions"], {"HOME": str(tmp_path)}, str(tmp_path), "bot")
    assert (d.decision, d.rule) == ("ask", "aws/secret-read")


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "-o", "yaml", "--", "secret", "db"],  # `--` does not hide the resource type
        ["get", "secret", "db", "--vmodule=*=9"],  # --vmodule logs bodies like -v=9
        ["get", "-f", "s.yaml", "-v=9"],  # a Secret named by a file, logged
        ["describe", "-k", "overlays/prod", "-v=9"],
        ["wait", "--for=create", "secret/db", "-o", "yaml"],  # wait prints the object it waited for
        ["wait", "--for=create", "secret/db", "-o", "jsonpath={.data.password}"],
    ],
)
def test_secret_reads_found_in_review_are_held(
    kubectl: dict, tmp_path: Path, argv: list[str]
) -> None:
    assert decide(kubectl, tmp_path, *argv).decision == "ask"


def aws_decide(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None):
    aws = compile_layers([defaults_dir()])["aws"]
    return classify(aws, argv, {"HOME": str(tmp_path), **(env or {})}, str(tmp_path), "bot")


@pytest.mark.parametrize("line", ["S3 = !echo pwned", "s3: !echo pwned", "s3=!echo pwned"])
def test_an_aws_alias_for_the_first_word_is_held_however_it_is_spelled(
    tmp_path: Path, line: str
) -> None:
    alias = tmp_path / ".aws" / "cli" / "alias"
    alias.parent.mkdir(parents=True)
    alias.write_text(f"[toplevel]\n{line}\n")
    d = aws_decide(tmp_path, ["s3", "ls"])
    assert d.decision == "ask" and "alias" in d.reason


def test_an_alias_for_another_word_leaves_s3_ls_allowed(tmp_path: Path) -> None:
    alias = tmp_path / ".aws" / "cli" / "alias"
    alias.parent.mkdir(parents=True)
    alias.write_text("[toplevel]\nwhoami = sts get-caller-identity\n")
    assert aws_decide(tmp_path, ["s3", "ls"]).decision == "allow"


@pytest.mark.parametrize("var", ["PYTHONPATH", "PYTHONHOME", "AWS_DATA_PATH"])
def test_code_loading_environment_holds_aws_reads(tmp_path: Path, var: str) -> None:
    d = aws_decide(
        tmp_path, ["s3api", "head-object", "--bucket", "b", "--key", "k"], {var: "/tmp/x"}
    )
    assert (d.decision, d.rule) == ("ask", "aws/code-hooks")


def test_custom_aws_models_or_plugins_hold_aws_reads(tmp_path: Path) -> None:
    (tmp_path / ".aws" / "models").mkdir(parents=True)
    assert aws_decide(tmp_path, ["s3", "ls"]).decision == "ask"
    (tmp_path / ".aws" / "models").rmdir()
    (tmp_path / ".aws" / "config").write_text("[plugins]\nevil = evil_module\n")
    d = aws_decide(tmp_path, ["s3", "ls"])
    assert d.decision == "ask" and "plugins" in d.reason


def test_a_kuberc_file_holds_every_kubectl_call(kubectl: dict, tmp_path: Path) -> None:
    kuberc = tmp_path / ".kube" / "kuberc"
    kuberc.parent.mkdir(parents=True, exist_ok=True)
    kuberc.write_text("overrides:\n- command: get\n  flags: [{name: output, default: yaml}]\n")
    d = decide(kubectl, tmp_path, "get", "secret", "db")
    assert d.decision == "ask" and "kuberc" in d.reason
    assert (
        decide(kubectl, tmp_path, "get", "secret", "db", env={"KUBECTL_KUBERC": "false"}).decision
        == "allow"
    )


def test_terraform_dev_overrides_hold_even_a_plan(tmp_path: Path) -> None:
    tf = compile_layers([defaults_dir()])["terraform"]
    rc = tmp_path / "tf.rc"
    rc.write_text(
        'provider_installation {\n  dev_overrides {\n    "hashicorp/null" = "/tmp/evil"\n  }\n}\n'
    )
    env = {"HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(rc)}
    d = classify(tf, ["plan"], env, str(tmp_path), "bot")
    assert d.decision == "ask" and "dev_overrides" in d.reason
    rc.write_text('plugin_cache_dir = "/tmp/cache"\n')
    assert classify(tf, ["plan"], env, str(tmp_path), "bot").decision == "allow"


@pytest.mark.parametrize(
    "name, text",
    [
        (
            ".terraform.d/dev.tfrc",
            'provider_installation {\n  dev_overrides {\n  "a/b" = "/x"\n}}\n',
        ),
        (
            ".terraform.d/dev.tfrc.json",
            '{"provider_installation": [{"dev_overrides": [{"a/b": "/x"}]}]}',
        ),
        (".terraformrc", 'provider_installation {\n  "dev\\u005foverrides" {\n "a/b" = "/x"\n}}\n'),
    ],
)
def test_dev_overrides_in_every_cli_config_terraform_reads_hold_a_plan(
    tmp_path: Path, name: str, text: str
) -> None:
    # terraform merges ~/.terraformrc with every *.tfrc(.json) in ~/.terraform.d, and HCL and
    # JSON both allow the block name with \u escapes
    tf = compile_layers([defaults_dir()])["terraform"]
    env = {"HOME": str(tmp_path)}
    assert classify(tf, ["plan"], env, str(tmp_path), "bot").decision == "allow"
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    d = classify(tf, ["plan"], env, str(tmp_path), "bot")
    assert d.decision == "ask" and "dev_overrides" in d.reason


TOY = """
tool: toy
grammar:
  style: cobra
  commands: {list: {}}
  overrides:
    - path: "$TOYRC | ~/.toyrc"
      when: contains exec
      unless_env: {TOY_SAFE: "yes"}
      reason: "{path} makes toy run programs"
rules:
  - id: toy/list
    decision: allow
    reason: lists
    match: {verb: list}
    examples: {match: ["list"], no_match: ["drop"]}
"""


def test_overrides_are_grammar_data_any_tool_can_declare(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "toy.yaml").write_text(TOY)
    toy = compile_layers([str(layer)])["toy"]
    rc = tmp_path / ".toyrc"
    world = {"HOME": str(tmp_path)}
    assert classify(toy, ["list"], world, str(tmp_path), "bot").decision == "allow"
    rc.write_text("exec = /tmp/x\n")
    d = classify(toy, ["list"], world, str(tmp_path), "bot")
    assert d.decision == "ask" and d.reason.startswith(f"{rc} makes toy run programs")
    assert (
        classify(toy, ["list"], {**world, "TOY_SAFE": "YES"}, str(tmp_path), "bot").decision
        == "allow"
    )


def test_a_malformed_overrides_entry_is_refused_with_its_line(tmp_path: Path) -> None:
    from shim.errors import RulesError

    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "toy.yaml").write_text(TOY.replace("when: contains exec", "when: smells"))
    with pytest.raises(RulesError) as err:
        compile_layers([str(layer)])
    assert "toy.yaml:" in err.value.message and "overrides 'when'" in err.value.message


# --- config files the tools read differently from a quick look (found in review) ---------------


def test_an_alias_hidden_past_a_form_feed_is_still_found(tmp_path: Path) -> None:
    alias = tmp_path / ".aws" / "cli" / "alias"
    alias.parent.mkdir(parents=True)
    alias.write_text("[toplevel]\nwhoami = sts get-caller-identity\f[other]\ns3 = !echo pwned\n")
    assert aws_decide(tmp_path, ["s3", "ls"]).decision == "ask"


def test_a_config_file_too_large_to_read_whole_counts_as_a_hit(tmp_path: Path, monkeypatch) -> None:
    from shim import fs

    monkeypatch.setattr(fs, "CONFIG_LIMIT", 1000)
    monkeypatch.setattr(fs.read_config, "__defaults__", (1000,))
    cfg = tmp_path / ".aws" / "config"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("# padding\n" * 200 + "[plugins]\nevil = evil_module\n")
    d = aws_decide(tmp_path, ["sts", "get-caller-identity"])
    assert d.decision == "ask" and "plugins" in d.reason


def test_a_fifo_in_place_of_a_config_file_counts_as_a_hit(tmp_path: Path) -> None:
    # shield would read one thing from it, the tool another
    tf = compile_layers([defaults_dir()])["terraform"]
    fifo = tmp_path / "tf.rc"
    os.mkfifo(fifo)
    env = {"HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(fifo)}
    assert classify(tf, ["plan"], env, str(tmp_path), "bot").decision == "ask"


@pytest.mark.parametrize("spelling", ["dev\\x5foverrides", "dev\\137overrides"])
def test_dev_overrides_spelled_with_hex_or_octal_escapes_hold_a_plan(
    tmp_path: Path, spelling: str
) -> None:
    tf = compile_layers([defaults_dir()])["terraform"]
    rc = tmp_path / "tf.rc"
    rc.write_text(f'provider_installation {{\n  "{spelling}" {{ "a/b" = "/x" }}\n}}\n')
    env = {"HOME": str(tmp_path), "TF_CLI_CONFIG_FILE": str(rc)}
    assert classify(tf, ["plan"], env, str(tmp_path), "bot").decision == "ask"


def test_aws_config_file_with_tilde_user_or_vars_is_expanded_as_botocore_does(
    tmp_path: Path,
) -> None:
    import pwd

    me = pwd.getpwuid(os.getuid())
    cfg = tmp_path / "cfg"
    cfg.write_text("[plugins]\nevil = evil_module\n")
    rel = os.path.relpath(cfg, me.pw_dir)
    for value in (f"~{me.pw_name}/{rel}", "$D/cfg"):
        d = aws_decide(
            tmp_path, ["sts", "get-caller-identity"], {"AWS_CONFIG_FILE": value, "D": str(tmp_path)}
        )
        assert d.decision == "ask", value
    # expandvars reads ASCII names only: `$Dé` is not $D followed by é
    d = aws_decide(
        tmp_path, ["sts", "get-caller-identity"], {"AWS_CONFIG_FILE": "$Dé", "D": str(cfg)}
    )
    assert d.decision == "allow"


def test_kubectl_with_a_discovery_cache_of_the_callers_choosing_is_held(
    kubectl: dict, tmp_path: Path
) -> None:
    assert decide(kubectl, tmp_path, "get", "pods", "-o", "yaml").decision == "allow"
    d = decide(kubectl, tmp_path, "--cache-dir", str(tmp_path), "get", "pods", "-o", "yaml")
    assert (d.decision, d.rule) == ("ask", "kubectl/discovery-cache")
    d = decide(kubectl, tmp_path, "get", "pods", env={"KUBECACHEDIR": str(tmp_path)})
    assert d.decision == "ask"


@pytest.mark.parametrize(
    "var",
    ["PYTHONPYCACHEPREFIX", "PYTHONUSERBASE", "PYTHONWARNINGS", "BOTOCORE_EXPERIMENTAL__PLUGINS"],
)
def test_more_code_loading_variables_hold_aws_reads(tmp_path: Path, var: str) -> None:
    d = aws_decide(tmp_path, ["s3", "ls"], {var: "x"})
    assert (d.decision, d.rule) == ("ask", "aws/code-hooks")


@pytest.mark.parametrize("var", ["HELM_PLUGINS", "HELM_DATA_HOME", "XDG_DATA_HOME"])
def test_helm_plugins_from_a_directory_of_the_callers_choosing_are_held(
    tmp_path: Path, var: str
) -> None:
    helm = compile_layers([defaults_dir()])["helm"]
    env = {"HOME": str(tmp_path), var: str(tmp_path)}
    d = classify(helm, ["repo", "update"], env, str(tmp_path), "bot")
    assert (d.decision, d.rule) == ("ask", "helm/plugin-dirs")
