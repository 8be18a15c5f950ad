"""Property tests (hypothesis) for the classifier.

- Moving a global flag before or after the verb, or switching its spelling, never changes the
  decision (with team rules that do depend on the namespace, context and profile).
- Random command lines never crash, and never allow a mutating verb outside a real dry run or
  a help request.
- A command line that does not parse (unknown verb or parse error) is never allowed.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim.classify.argv import parse_argv
from shim.classify.context import resolve_context
from shim.classify.decide import decide
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEAM = """tool: {tool}
rules:
{rules}
"""

TEAM_RULES = {
    "kubectl": """
  - id: team/kubectl-prod-delete
    decision: deny
    reason: nothing is deleted in prod namespaces
    match: {verb: delete, context: {namespace: "prod*"}}
    examples:
      match: [{argv: "delete pod x", context: {namespace: prod}}]
      no_match: [{argv: "delete pod x", context: {namespace: dev}}]
  - id: team/kubectl-kind-delete
    decision: allow
    reason: kind clusters are throw-away
    match: {verb: delete, context: {context: "kind-*"}}
    examples:
      match: [{argv: "delete pod x", context: {context: kind-a}}]
      no_match: [{argv: "delete pod x", context: {context: prod}}]
""",
    "helm": """
  - id: team/helm-prod
    decision: deny
    reason: no helm changes in prod namespaces
    match: {verb: [install, upgrade, uninstall], context: {namespace: "prod*"}}
    examples:
      match: [{argv: "install web ./c", context: {namespace: prod}}]
""",
    "aws": """
  - id: team/aws-prod-terminate
    decision: deny
    reason: instances in prod are terminated by the change process only
    match: {verb: "ec2 terminate-instances", context: {profile: "prod*"}}
    examples:
      match: [{argv: "ec2 terminate-instances --instance-ids i-1", context: {profile: prod}}]
  - id: team/aws-dev-region
    decision: allow
    reason: the sandbox region is free for all
    match: {verb: "ec2 *", context: {region: "ap-south-1"}}
    examples:
      match: [{argv: "ec2 run-instances", context: {region: ap-south-1}}]
""",
}

KUBECONFIG = """apiVersion: v1
kind: Config
contexts:
- context: {cluster: c, user: u, namespace: team-a}
  name: kind-dev
- name: prod
  context:
    cluster: c
    namespace: prod-main
current-context: kind-dev
"""

AWS_CONFIG = "[default]\nregion = eu-west-1\n[profile prod]\nregion = us-east-1\n"


def _read(path: str) -> str | None:
    if path.endswith(os.path.join(".kube", "config")):
        return KUBECONFIG
    if path.endswith(os.path.join(".aws", "config")):
        return AWS_CONFIG
    return None


@lru_cache(maxsize=1)
def compiled_with_team() -> dict[str, dict]:
    layer = Path(tempfile.mkdtemp(prefix="shield-team-"))
    for tool, rules in TEAM_RULES.items():
        (layer / f"team-{tool}.yaml").write_text(TEAM.format(tool=tool, rules=rules))
    return compile_layers([defaults_dir(), str(layer)])


@lru_cache(maxsize=1)
def compiled_default() -> dict[str, dict]:
    return compile_layers([defaults_dir()])


ENV = {"HOME": "/home/agent"}


def outcome(tool: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[str, str]:
    """(decision, rule) with team rules, the context resolved from fixed config files."""
    tools = compiled_with_team()
    grammar = tools[tool]["grammar"]
    env = env or ENV
    inv = parse_argv(grammar, argv, env)
    ctx = resolve_context(grammar, inv, env, "/work", read=_read)
    d = decide(inv, tools[tool]["rules"], ctx, "agent", env)
    return d.decision, str(d.rule)


def insert(units: list[list[str]], flag: list[str], pos: int) -> list[str]:
    """The argv of `units` with `flag` placed before unit `pos` (never after a `--` unit)."""
    out: list[str] = []
    for i, unit in enumerate(units):
        if i == pos:
            out.extend(flag)
        out.extend(unit)
    if pos >= len(units):
        out.extend(flag)
    return out


def positions(units: list[list[str]]) -> int:
    """How many places a flag may go: before each unit, or at the end, but not after `--`."""
    for i, unit in enumerate(units):
        if unit and unit[0] == "--":
            return i  # places 0..i
    return len(units)


VALUES = st.sampled_from(
    ["prod", "prod-eu", "dev", "kind-a", "team-a", "get", "delete", "help", "secret"]
) | st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)

# --------------------------------------------------------------------------- kubectl / helm

KUBECTL_BASES = [
    [["get"], ["pods"]],
    [["get"], ["secret"], ["db"], ["-o", "yaml"]],
    [["delete"], ["pod"], ["web"]],
    [["delete"], ["pod"], ["web"], ["--dry-run=client"]],
    [["delete"], ["namespace"], ["prod"], ["--now"]],
    [["config"], ["view"], ["--raw"]],
    [["config"], ["view"]],
    [["rollout"], ["restart"], ["deploy/web"]],
    [["rollout"], ["status"], ["deploy/web"]],
    [["cluster-info"], ["dump"]],
    [["exec"], ["web"], ["-c", "app"], ["--", "ls", "--help"]],
    [["create"], ["deployment"], ["web"], ["--image=nginx"]],
    [["top"], ["pod"]],
    [["apply"], ["-f", "x.yaml"], ["--dry-run=server"]],
    [["logs"], ["-f"], ["web"]],
    [["describe"], ["secret"], ["db"]],
    [["ctx"], ["prod"]],
]


def kube_spellings(short: str | None, long: str, value: str) -> list[list[str]]:
    out = [[long, value], [f"{long}={value}"]]
    if short:
        out += [[short, value], [short + value], [f"{short}={value}"]]
    return out


KUBE_FLAGS = [("-n", "--namespace"), (None, "--context"), (None, "--kubeconfig"), ("-v", "--v")]


@st.composite
def kube_variants(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    units = draw(st.sampled_from(KUBECTL_BASES))
    short, long = draw(st.sampled_from(KUBE_FLAGS))
    value = draw(VALUES) if long != "--v" else draw(st.sampled_from(["0", "3", "9"]))
    if long == "--kubeconfig":
        value = "/home/agent/.kube/config"  # the same file, so the context is the same
    spellings = kube_spellings(short, long, value)
    a, b = draw(st.sampled_from(spellings)), draw(st.sampled_from(spellings))
    top = positions(units)
    pa, pb = draw(st.integers(0, top)), draw(st.integers(0, top))
    return insert(units, a, pa), insert(units, b, pb)


@SETTINGS
@given(kube_variants())
def test_kubectl_global_flag_position_and_spelling_never_change_the_decision(
    pair: tuple[list[str], list[str]],
) -> None:
    one, two = pair
    if outcome("kubectl", one)[0] != outcome("kubectl", two)[0]:
        raise AssertionError(
            f"{one} -> {outcome('kubectl', one)}, {two} -> {outcome('kubectl', two)}"
        )


HELM_BASES = [
    [["list"]],
    [["install"], ["web"], ["./chart"]],
    [["install"], ["web"], ["./chart"], ["--dry-run=server"]],
    [["upgrade"], ["--install"], ["web"], ["./chart"], ["-f", "v.yaml"]],
    [["get"], ["values"], ["web"]],
    [["repo"], ["update"]],
    [["uninstall"], ["web"]],
    [["status"], ["web"]],
]
HELM_FLAGS = [("-n", "--namespace"), (None, "--kube-context")]


@st.composite
def helm_variants(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    units = draw(st.sampled_from(HELM_BASES))
    short, long = draw(st.sampled_from(HELM_FLAGS))
    spellings = kube_spellings(short, long, draw(VALUES))
    a, b = draw(st.sampled_from(spellings)), draw(st.sampled_from(spellings))
    top = positions(units)
    return (
        insert(units, a, draw(st.integers(0, top))),
        insert(units, b, draw(st.integers(0, top))),
    )


@SETTINGS
@given(helm_variants())
def test_helm_global_flag_position_and_spelling_never_change_the_decision(
    pair: tuple[list[str], list[str]],
) -> None:
    one, two = pair
    assert outcome("helm", one)[0] == outcome("helm", two)[0], (one, two)


# --------------------------------------------------------------------------- aws

AWS_BASES = [
    [["ec2"], ["describe-instances"]],
    [["ec2"], ["terminate-instances"], ["--instance-ids", "i-1"]],
    [["ec2"], ["terminate-instances"], ["--instance-ids", "i-1", "i-2"], ["--dry-run"]],
    [["ec2"], ["run-instances"], ["--image-id", "ami-1"]],
    [["s3"], ["ls"]],
    [["s3"], ["cp"], ["s3://b/k"], ["./k"]],
    [["s3"], ["cp"], ["./k"], ["s3://b/k"]],
    [["s3"], ["sync"], ["s3://b"], ["./d"], ["--delete"]],
    [["ssm"], ["get-parameter"], ["--name", "p"], ["--with-decryption"]],
    [["ssm"], ["get-parameter"], ["--name", "p"]],
    [["secretsmanager"], ["get-secret-value"], ["--secret-id", "x"]],
    [["configure"], ["get"], ["region"]],
    [["ec2"], ["describe-instances"], ["help"]],
    [["ec2"], ["terminate-instances"], ["--instance-ids", "i-1"], ["help"]],
    [["sts"], ["get-caller-identity"]],
]
AWS_FLAGS = {
    "--profile": ["--profile", "--profil", "--prof", "--pro", "--p"],
    "--region": ["--region", "--regio", "--reg"],
}


@st.composite
def aws_variants(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    units = draw(st.sampled_from(AWS_BASES))
    name = draw(st.sampled_from(sorted(AWS_FLAGS)))
    value = draw(st.sampled_from(["prod", "prod-eu", "dev", "ap-south-1", "eu-west-1"]) | VALUES)

    def spelling() -> list[str]:
        prefix = draw(st.sampled_from(AWS_FLAGS[name]))
        return draw(st.sampled_from([[prefix, value], [f"{prefix}={value}"]]))

    top = positions(units)
    one = insert(units, spelling(), draw(st.integers(0, top)))
    two = insert(units, spelling(), draw(st.integers(0, top)))
    return one, two


@SETTINGS
@given(aws_variants())
def test_aws_global_option_position_prefix_and_spelling_never_change_the_decision(
    pair: tuple[list[str], list[str]],
) -> None:
    one, two = pair
    assert outcome("aws", one)[0] == outcome("aws", two)[0], (one, two)


# --------------------------------------------------------------------------- terraform


TF_BASES = [
    ["apply", "-auto-approve"],
    ["apply", "-var", "a=1", "-target=aws_instance.x"],
    ["init", "-migrate-state"],
    ["init", "-upgrade", "-backend-config", "b.hcl"],
    ["output", "-json"],
    ["show", "-json"],
    ["plan", "-destroy", "-out=tfplan"],
    ["destroy", "-auto-approve", "-lock=false"],
]


@st.composite
def tf_variants(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    base = draw(st.sampled_from(TF_BASES))

    def respell() -> list[str]:
        out = [base[0]]
        i = 1
        while i < len(base):
            tok = base[i]
            dash = draw(st.sampled_from(["-", "--"]))
            name, eq, value = tok.lstrip("-").partition("=")
            if eq:
                out += draw(st.sampled_from([[f"{dash}{name}={value}"], [f"{dash}{name}", value]]))
            elif i + 1 < len(base) and not base[i + 1].startswith("-"):
                value = base[i + 1]
                out += draw(st.sampled_from([[f"{dash}{name}={value}"], [f"{dash}{name}", value]]))
                i += 1
            else:
                out.append(f"{dash}{name}")
            i += 1
        chdir = draw(st.sampled_from([[], ["-chdir=infra"]]))
        return chdir + out

    return respell(), respell()


@SETTINGS
@given(tf_variants())
def test_terraform_flag_spelling_never_changes_the_decision(
    pair: tuple[list[str], list[str]],
) -> None:
    one, two = pair
    assert outcome("terraform", one)[0] == outcome("terraform", two)[0], (one, two)


# --------------------------------------------------------------------------- random argvs

WORDS = (
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
        lambda s: not s.startswith("-") and s != "help"
    )
    | st.binary(max_size=12).map(os.fsdecode).filter(lambda s: not s.startswith("-"))
    | st.builds(
        lambda s, n: s * n, st.sampled_from(["x", "secret", "\udcff"]), st.integers(0, 20_000)
    )
    | st.sampled_from(["secret", "pods", "s3://b/k", "./k", "-", "prod", "i-1", "x=y"])
)

# help and dry-run spellings, tracked by the oracle
KUBE_HELP = ["-h", "--help", "--help=true", "-h=1"]
KUBE_NOT_HELP = ["--help=false", "-h=0"]
KUBE_DRY = {
    "--dry-run": True,
    "--dry-run=client": True,
    "--dry-run=server": True,
    "--dry-run=true": True,
    "--dry-run=unchanged": True,
    "--dry-run=none": False,
    "--dry-run=false": False,
    "--dry-run=0": False,
}
KUBE_UNITS = [
    ["-o", "yaml"],
    ["-n", "prod"],
    ["-f", "x.yaml"],
    ["--all"],
    ["-R"],
    ["--force"],
    ["--grace-period=0"],
    ["--selector", "a=b"],
    ["--frobnicate=1"],
    ["-i"],
    ["--"],
]
KUBE_MUTATING = [
    ["apply"],
    ["create", "deployment"],
    ["create", "secret", "generic"],
    ["replace"],
    ["patch"],
    ["edit"],
    ["delete"],
    ["scale"],
    ["autoscale"],
    ["rollout", "restart"],
    ["rollout", "undo"],
    ["set", "image"],
    ["label"],
    ["annotate"],
    ["taint"],
    ["cordon"],
    ["drain"],
    ["exec"],
    ["attach"],
    ["cp"],
    ["run"],
    ["expose"],
    ["debug"],
    ["port-forward"],
    ["proxy"],
    ["certificate", "approve"],
    ["config", "use-context"],
    ["config", "set-credentials"],
]
# verbs whose --dry-run is real (reference section 1.5)
KUBE_DRY_VERBS = {
    "apply",
    "create deployment",
    "create secret generic",
    "replace",
    "patch",
    "delete",
    "scale",
    "autoscale",
    "rollout undo",
    "set image",
    "label",
    "annotate",
    "taint",
    "cordon",
    "drain",
    "run",
    "expose",
}


def _tail(draw: st.DrawFn, units: list[list[str]], extra: list[str]) -> list[list[str]]:
    pool = (
        st.sampled_from(units)
        | st.sampled_from(extra).map(lambda t: [t])
        | WORDS.map(lambda w: [w])
    )
    return draw(st.lists(pool, max_size=10))


def _oracle(
    tail: list[list[str]], help_tokens: list[str], dry: dict[str, bool]
) -> tuple[bool, bool]:
    """(a help request, a real dry run) in the tokens before `--`."""
    is_help = False
    last_dry: bool | None = None
    for unit in tail:
        if unit == ["--"]:
            break
        tok = unit[0]
        if tok in help_tokens:
            is_help = True
        if tok in dry:
            last_dry = dry[tok]
    return is_help, bool(last_dry)


@SETTINGS
@given(st.data())
def test_kubectl_never_allows_a_mutating_verb_outside_a_dry_run_or_help(
    data: st.DataObject,
) -> None:
    verb = data.draw(st.sampled_from(KUBE_MUTATING))
    prefix = data.draw(st.sampled_from([[], ["-n", "prod"], ["--context=kind-a"], ["-v3"]]))
    tail = _tail(data.draw, KUBE_UNITS, KUBE_HELP + KUBE_NOT_HELP + list(KUBE_DRY))
    argv = prefix + verb + [t for unit in tail for t in unit]
    for tools in (compiled_default(), compiled_with_team()):
        inv = parse_argv(tools["kubectl"]["grammar"], argv, {})
        d = decide(
            inv, tools["kubectl"]["rules"], {"context": "prod", "namespace": "prod"}, "a", {}
        )
        if d.decision == "allow":
            is_help, is_dry = _oracle(tail, KUBE_HELP, KUBE_DRY)
            assert is_help or (is_dry and " ".join(verb) in KUBE_DRY_VERBS), (argv, d.rule)


HELM_MUTATING = {
    "install": ["install", "web", "./chart"],
    "upgrade": ["upgrade", "--install", "web", "./chart"],
    "uninstall": ["uninstall", "web"],
    "rollback": ["rollback", "web", "1"],
    "test": ["test", "web"],
    "push": ["push", "c.tgz", "oci://r"],
    "registry login": ["registry", "login", "r"],
    "plugin install": ["plugin", "install", "https://x"],
}
HELM_DRY = {
    "--dry-run": True,
    "--dry-run=client": True,
    "--dry-run=server": True,
    "--dry-run=true": True,
    "--dry-run=false": False,
    "--dry-run=none": False,
}
HELM_UNITS = [
    ["-n", "prod"],
    ["-f", "v.yaml"],
    ["--set", "a=b"],
    ["--wait"],
    ["--post-renderer", "./x"],
    ["--"],
]


@SETTINGS
@given(st.data())
def test_helm_never_allows_a_mutating_verb_outside_a_dry_run_or_help(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(HELM_MUTATING)))
    tail = _tail(data.draw, HELM_UNITS, KUBE_HELP + KUBE_NOT_HELP + list(HELM_DRY))
    argv = HELM_MUTATING[name] + [t for unit in tail for t in unit]
    tools = compiled_default()
    inv = parse_argv(tools["helm"]["grammar"], argv, {})
    d = decide(inv, tools["helm"]["rules"], {}, "a", {})
    if d.decision == "allow":
        is_help, is_dry = _oracle(tail, KUBE_HELP, HELM_DRY)
        can_dry = name in ("install", "upgrade", "uninstall", "rollback")
        assert is_help or (is_dry and can_dry), (argv, d.rule)
        if not is_help:
            assert ["--post-renderer", "./x"] not in tail, argv


AWS_MUTATING = [
    ["ec2", "terminate-instances"],
    ["ec2", "run-instances"],
    ["iam", "put-role-policy"],
    ["lambda", "invoke"],
    ["ssm", "send-command"],
    ["s3", "rm", "s3://b/k"],
    ["s3", "mv", "s3://b/k", "./k"],
    ["s3", "cp", "./k", "s3://b/k"],
    ["s3", "sync", "./d", "s3://b"],
    ["configure", "set", "region", "x"],
    ["cloudformation", "deploy"],
    ["eks", "update-kubeconfig"],
]
AWS_HELP = ["--help", "--version", "--vers"]
AWS_DRY = {"--dry-run": True, "--no-dry-run": False, "--dryrun": True, "--no-dry": False}
AWS_UNITS = [
    ["--instance-ids", "i-1"],
    ["--profile", "prod"],
    ["--region=eu-west-1"],
    ["--name", "x"],
    ["--recursive"],
    ["--cli-input-json", "file://x.json"],
    ["--"],
]


@SETTINGS
@given(st.data())
def test_aws_never_allows_a_mutating_operation_outside_a_dry_run_or_help(
    data: st.DataObject,
) -> None:
    op = data.draw(st.sampled_from(AWS_MUTATING))
    tail = _tail(data.draw, AWS_UNITS, AWS_HELP + list(AWS_DRY))
    argv = op + [t for unit in tail for t in unit]
    tools = compiled_default()
    inv = parse_argv(tools["aws"]["grammar"], argv, {})
    d = decide(inv, tools["aws"]["rules"], {}, "a", {})
    if d.decision == "allow":
        is_help, is_dry = _oracle(tail, AWS_HELP, AWS_DRY)
        assert is_help or is_dry, (argv, d.rule)


TF_MUTATING = [
    ["apply"],
    ["destroy"],
    ["import"],
    ["refresh"],
    ["taint"],
    ["untaint"],
    ["force-unlock"],
    ["state", "rm"],
    ["state", "mv"],
    ["state", "push"],
    ["workspace", "select"],
    ["workspace", "delete"],
    ["test"],
    ["init", "-migrate-state"],
]
TF_HELP = ["-h", "-help", "--help"]
TF_UNITS = [["-auto-approve"], ["-var", "a=1"], ["-target=x"], ["-lock=false"], ["-v"], ["--"]]


@SETTINGS
@given(st.data())
def test_terraform_never_allows_a_mutating_command_outside_help(data: st.DataObject) -> None:
    verb = data.draw(st.sampled_from(TF_MUTATING))
    chdir = data.draw(st.sampled_from([[], ["-chdir=infra"]]))
    tail = _tail(data.draw, TF_UNITS, TF_HELP + ["-help=false"])
    injected = data.draw(
        st.lists(st.sampled_from(["-auto-approve", "-destroy", "-force-copy"]), max_size=2)
    )
    env = {"TF_CLI_ARGS": " ".join(injected)} if injected else {}
    argv = chdir + verb + [t for unit in tail for t in unit]
    tools = compiled_default()
    inv = parse_argv(tools["terraform"]["grammar"], argv, env)
    d = decide(inv, tools["terraform"]["rules"], {}, "a", env)
    if d.decision == "allow":
        assert _oracle(tail, TF_HELP, {})[0], (argv, env, d.rule)


# --------------------------------------------------------------------------- anything at all

ANY_TOKEN = (
    st.text(max_size=20)
    | st.binary(max_size=20).map(os.fsdecode)
    | st.sampled_from(
        [
            "--",
            "-",
            "-n",
            "--namespace=",
            "=",
            "--help",
            "help",
            "-h",
            "--dry-run",
            "--dry-run=",
            "-chdir=",
            "-chdir",
            "--profile",
            "--p",
            "--no-",
            "s3://",
            "secret",
            "get",
            "delete",
            "apply",
            "ec2",
            "s3",
            "rm",
            "install",
            "state",
            "'",
            '"',
            "\x00",
        ]
    )
    | st.builds(
        lambda s, n: s * n, st.sampled_from(["-", "=", "a", "\udcff"]), st.integers(0, 50_000)
    )
)


@SETTINGS
@given(
    tool=st.sampled_from(["kubectl", "aws", "terraform", "helm"]),
    argv=st.lists(ANY_TOKEN, max_size=25),
    tf_args=st.sampled_from(["", "-auto-approve", "'", "-help", "\udcff"]),
)
def test_any_argv_gets_a_decision_and_what_does_not_parse_is_never_allowed(
    tool: str, argv: list[str], tf_args: str
) -> None:
    env = {"HOME": "/nonexistent", "TF_CLI_ARGS": tf_args, "KUBECONFIG": "/nonexistent"}
    for tools in (compiled_default(), compiled_with_team()):
        grammar = tools[tool]["grammar"]
        inv = parse_argv(grammar, argv, env)
        ctx = resolve_context(grammar, inv, env, "/work", read=_read)
        d = decide(inv, tools[tool]["rules"], ctx, "agent", env)
        assert d.decision in ("allow", "ask", "deny")
        assert inv.kind in ("ok", "help", "unknown", "error")
        if inv.kind in ("unknown", "error"):
            assert d.decision != "allow", (tool, argv, d.rule)
