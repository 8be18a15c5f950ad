"""Rules: every shipped example, layers, a fifth tool in one file, malformed files, bad input."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.classify.argv import parse_argv
from shim.classify.context import resolve_context
from shim.classify.decide import decide, rule_matches
from shim.errors import RulesError
from shim.rules.compile import compile_layers, compile_tool, load_layers, load_tool
from shim.rules.examples import rule_examples
from shim.rules.load import defaults_dir

DEFAULTS = defaults_dir()


def _shipped_rules() -> list[tuple[str, dict]]:
    tools = load_layers([DEFAULTS], keep_examples=True)
    return [(tool, rule) for tool, entry in sorted(tools.items()) for rule in entry["rules"]]


SHIPPED = _shipped_rules()


@functools.lru_cache(maxsize=1)
def _defaults() -> dict[str, dict]:
    return compile_layers([DEFAULTS])


GRAMMARS = {tool: entry["grammar"] for tool, entry in load_layers([DEFAULTS]).items()}


@pytest.mark.parametrize("tool, rule", [pytest.param(t, r, id=r["id"]) for t, r in SHIPPED])
def test_every_example_of_every_shipped_rule(tool: str, rule: dict) -> None:
    path = rule["source"].rsplit(":", 1)[0]
    pos, neg = rule_examples(rule, path)
    assert pos, "every rule has examples that must match"
    wrong = []
    for want, examples in ((True, pos), (False, neg)):
        for ex in examples:
            inv = parse_argv(GRAMMARS[tool], ex.argv, ex.env)
            if ex.kinds is not None and inv.kinds:
                inv.kinds = ex.kinds
            if rule_matches(rule, inv, ex.context, ex.agent, ex.env) != want:
                wrong.append(
                    f"{path}:{ex.line}: {' '.join(ex.argv)!r} should {'' if want else 'not '}match"
                )
    assert not wrong, "\n".join(wrong)


def test_every_shipped_rule_has_a_stable_namespaced_id_and_a_reason() -> None:
    ids = [rule["id"] for _, rule in SHIPPED]
    assert len(ids) == len(set(ids))
    for tool, rule in SHIPPED:
        assert rule["id"].startswith(f"{tool}/"), rule["id"]
        assert rule["reason"].strip()


def test_the_defaults_never_deny() -> None:
    assert {rule["decision"] for _, rule in SHIPPED} <= {"allow", "ask"}


# --------------------------------------------------------------------------- layers


def _layer(tmp: Path, name: str, files: dict[str, str]) -> str:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (d / fname).write_text(text)
    return str(d)


def _decide(
    tools: dict, tool: str, line: str, context: dict[str, str] | None = None
) -> tuple[str, str | None]:
    env = {"HOME": "/home/agent"}
    inv = parse_argv(tools[tool]["grammar"], line.split(), env)
    d = decide(inv, tools[tool]["rules"], context or {}, "agent", env)
    return d.decision, d.rule


TEAM_KUBECTL = """tool: kubectl
rules:
  - id: team/no-prod-namespace-delete
    decision: deny
    reason: namespaces in production clusters are deleted through the change process
    hint: open a change request
    match:
      verb: delete
      any_arg: [namespace, namespaces, ns, "namespace/*", "namespaces/*", "ns/*"]
      context: {context: "*prod*"}
    examples:
      match: [{argv: "delete namespace shop", context: {context: eu-prod-1}}]
      no_match: [{argv: "delete namespace shop", context: {context: kind-dev}}]
"""


def test_another_file_adds_rules_and_most_restrictive_wins(tmp_path: Path) -> None:
    tools = compile_layers([DEFAULTS, _layer(tmp_path, "user", {"team.yaml": TEAM_KUBECTL})])
    prod = {"context": "eu-prod-1", "namespace": "default"}
    assert _decide(tools, "kubectl", "delete namespace shop", prod) == (
        "deny",
        "team/no-prod-namespace-delete",
    )
    assert _decide(tools, "kubectl", "delete ns/shop", prod)[0] == "deny"
    # the deny does not apply elsewhere; the default still asks
    kind = {"context": "kind-dev", "namespace": "default"}
    assert _decide(tools, "kubectl", "delete namespace shop", kind) == ("ask", "kubectl/mutate")
    # an unresolved context: a restrictive rule assumes the worst
    assert _decide(tools, "kubectl", "delete namespace shop", {"context": "?"})[0] == "deny"
    # the default layer alone is untouched
    assert _decide(_defaults(), "kubectl", "delete namespace shop", prod)[0] == "ask"


def test_an_added_allow_does_not_relax_a_default_ask(tmp_path: Path) -> None:
    relax = """tool: kubectl
rules:
  - id: team/kind-delete
    decision: allow
    reason: kind clusters are throw-away
    match: {verb: delete, context: {context: "kind-*"}}
    examples:
      match: [{argv: "delete pod x", context: {context: kind-a}}]
"""
    tools = compile_layers([DEFAULTS, _layer(tmp_path, "user", {"team.yaml": relax})])
    decision, rule = _decide(tools, "kubectl", "delete pod web", {"context": "kind-a"})
    assert (decision, rule) == ("ask", "kubectl/mutate")  # deny > ask > allow


def _relaxed_kubectl() -> str:
    """The default kubectl.yaml, with kubectl/mutate limited to contexts that are not kind-*
    and a new allow for deleting pods there: what a team writes to relax a default."""
    text = Path(DEFAULTS, "kubectl.yaml").read_text()
    old = "  - id: kubectl/mutate\n    decision: ask\n    reason: this changes the cluster\n    match:\n"
    assert old in text
    text = text.replace(old, old + '      context: {context: {not: "kind-*"}}\n')
    return (
        text
        + """
  - id: team/kind-delete-pod
    decision: allow
    reason: pods in kind clusters are throw-away
    match:
      verb: delete
      args: {0: [pod, pods, po, "pod/*", "pods/*", "po/*"]}
      context: {context: "kind-*"}
    examples:
      match: [{argv: "delete pod web", context: {context: kind-dev}}]
      no_match:
        - {argv: "delete pod web", context: {context: prod}}
        - {argv: "delete pod web", context: {context: "?"}}
        - {argv: "delete deploy web", context: {context: kind-dev}}
"""
    )


def test_a_higher_layers_same_named_file_replaces_the_default(tmp_path: Path) -> None:
    etc = _layer(tmp_path, "etc", {})
    user = _layer(tmp_path, "user", {"kubectl.yaml": _relaxed_kubectl()})
    tools = compile_layers([DEFAULTS, etc, user])
    assert tools["kubectl"]["files"] == [os.path.join(user, "kubectl.yaml")]
    assert _decide(tools, "kubectl", "delete pod web", {"context": "kind-dev"}) == (
        "allow",
        "team/kind-delete-pod",
    )
    assert _decide(tools, "kubectl", "delete pod web", {"context": "prod"})[0] == "ask"
    # an unresolved context: the allow does not apply, the ask does
    assert _decide(tools, "kubectl", "delete pod web", {"context": "?"}) == (
        "ask",
        "kubectl/mutate",
    )
    assert _decide(tools, "kubectl", "delete deploy web", {"context": "kind-dev"})[0] == "ask"
    # the other tools still come from the defaults
    assert _decide(tools, "helm", "list")[0] == "allow"


def test_most_restrictive_wins_across_three_layers(tmp_path: Path) -> None:
    etc = _layer(
        tmp_path,
        "etc",
        {
            "site.yaml": """tool: terraform
rules:
  - id: site/no-destroy
    decision: deny
    reason: destroy goes through the pipeline
    match: {verb: destroy}
    examples: {match: [destroy]}
"""
        },
    )
    user = _layer(
        tmp_path,
        "user",
        {
            "mine.yaml": """tool: terraform
rules:
  - id: me/destroy-is-fine
    decision: allow
    reason: I know what I am doing
    match: {verb: destroy}
    examples: {match: [destroy]}
"""
        },
    )
    tools = compile_layers([DEFAULTS, etc, user])
    inv = parse_argv(tools["terraform"]["grammar"], ["destroy", "-auto-approve"], {})
    d = decide(inv, tools["terraform"]["rules"], {}, "agent", {})
    assert (d.decision, d.rule) == ("deny", "site/no-destroy")
    assert {m["id"] for m in d.matched} == {
        "site/no-destroy",
        "me/destroy-is-fine",
        "terraform/mutate",
    }


def test_no_match_is_ask_with_no_rule() -> None:
    tools = _defaults()
    for tool, line in [
        ("aws", "dynamodb scan --table-name t"),
        ("kubectl", "frob"),
        ("helm", "docs"),
    ]:
        assert _decide(tools, tool, line) == ("ask", None)


def test_rules_match_on_the_agent_name(tmp_path: Path) -> None:
    text = """tool: helm
rules:
  - id: team/ci-bot-no-upgrades
    decision: deny
    reason: the CI bot only renders charts
    match: {verb: [install, upgrade], agent: "ci-*"}
    examples:
      match: [{argv: "upgrade web ./c", agent: ci-bot}]
      no_match: [{argv: "upgrade web ./c", agent: deploy-bot}]
"""
    tools = compile_layers([DEFAULTS, _layer(tmp_path, "user", {"ci.yaml": text})])
    inv = parse_argv(tools["helm"]["grammar"], ["upgrade", "web", "./c"], {})
    assert decide(inv, tools["helm"]["rules"], {}, "ci-bot", {}).decision == "deny"
    assert decide(inv, tools["helm"]["rules"], {}, "deploy-bot", {}).decision == "ask"


# --------------------------------------------------------------------------- a fifth tool

GCLOUD = """# a toy fifth tool: nothing but this file
tool: gcloud
grammar:
  style: cobra
  help_flags: ["-h --help"]
  flags:
    value: [--project, --account, --configuration, --format, --verbosity]
    bool: [--quiet, -q, --no-user-output-enabled]
  local:
    value: [--zone, --region, --machine-type]
  commands:
    compute:
      subcommand_required: true
      commands:
        instances:
          subcommand_required: true
          commands:
            list: {}
            describe: {}
            delete: {}
            create: {}
    config:
      commands:
        list: {}
        set: {}
  context:
    resolver: generic
    flags: {project: --project}
    env: {project: [CLOUDSDK_CORE_PROJECT]}
    defaults: {project: "?"}
rules:
  - id: gcloud/help
    decision: allow
    reason: help runs nothing
    match: {kind: help}
    examples: {match: ["compute instances delete vm-1 --help"], no_match: ["compute instances delete vm-1"]}
  - id: gcloud/read
    decision: allow
    reason: read-only
    match: {verb: ["compute instances list", "compute instances describe", "config list"]}
    examples:
      match: ["compute instances list", "--project p compute instances list --zone z"]
      no_match: ["compute instances delete vm-1"]
  - id: gcloud/prod
    decision: deny
    reason: production projects change only through the pipeline
    match: {verb: ["compute instances delete", "compute instances create"], context: {project: "*-prod"}}
    examples:
      match: [{argv: "compute instances delete vm-1", context: {project: shop-prod}}]
      no_match: [{argv: "compute instances delete vm-1", context: {project: shop-dev}}]
"""

TOFU = """tool: tofu
grammar:
  style: terraform
  help_flags: ["-h -help --help"]
  flags: {value: [-chdir], bool: ["-h -help --help", "-v -version --version"]}
  local: {value: [-var, -out, -target], bool: [-auto-approve, -destroy, -json]}
  commands: {plan: {}, apply: {}, output: {}, version: {}}
  context: {resolver: terraform}
rules:
  - id: tofu/plan
    decision: allow
    reason: plan is the dry run
    match: {verb: [plan, version]}
    examples: {match: [plan, "-chdir=x plan -destroy"], no_match: [apply]}
  - id: tofu/help
    decision: allow
    reason: help runs nothing
    match: {kind: help}
    examples: {match: ["apply -help"], no_match: [apply]}
"""


def test_a_fifth_tool_is_one_yaml_file_in_a_layer(tmp_path: Path) -> None:
    layer = _layer(tmp_path, "user", {"gcloud.yaml": GCLOUD, "tofu.yaml": TOFU})
    cache = tmp_path / "compiled"
    data = compile_tool("gcloud", [DEFAULTS, layer], str(cache))
    assert (cache / "gcloud.marshal").exists() and (cache / "tofu.marshal").exists()
    loaded = load_tool("gcloud", [DEFAULTS, layer], str(cache))  # from the cache, no yaml
    assert loaded["rules"] == data["rules"]
    grammar = loaded["grammar"]

    def run(argv: list[str], env: dict[str, str]) -> tuple[str, str | None, dict[str, str]]:
        inv = parse_argv(grammar, argv, env)
        ctx = resolve_context(grammar, inv, env, "/w")
        d = decide(inv, loaded["rules"], ctx, "agent", env)
        return d.decision, d.rule, ctx

    assert run(["compute", "instances", "list"], {})[:2] == ("allow", "gcloud/read")
    decision, rule, ctx = run(
        ["--project", "shop-prod", "compute", "instances", "delete", "vm"], {}
    )
    assert (decision, rule, ctx["project"]) == ("deny", "gcloud/prod", "shop-prod")
    env = {"CLOUDSDK_CORE_PROJECT": "shop-dev"}
    assert run(["compute", "instances", "delete", "vm"], env)[:2] == ("ask", None)
    # the project cannot be resolved: the deny assumes the worst
    assert run(["compute", "instances", "delete", "vm"], {})[:2] == ("deny", "gcloud/prod")
    assert run(["compute", "instances", "delete", "vm", "--help"], {})[0] == "allow"
    assert run(["compute", "disks", "list"], {})[0] == "ask"  # unknown subcommand

    tofu = load_tool("tofu", [DEFAULTS, layer], str(cache))
    for argv, want in [(["plan"], "allow"), (["apply", "-auto-approve"], "ask"), (["aply"], "ask")]:
        inv = parse_argv(tofu["grammar"], argv, {})
        assert decide(inv, tofu["rules"], {}, "agent", {}).decision == want


def test_a_changed_rule_file_is_compiled_again(tmp_path: Path) -> None:
    layer = _layer(tmp_path, "user", {"tofu.yaml": TOFU})
    cache = str(tmp_path / "compiled")
    first = load_tool("tofu", [DEFAULTS, layer], cache)
    assert [r["id"] for r in first["rules"]] == ["tofu/plan", "tofu/help"]
    path = Path(layer, "tofu.yaml")
    path.write_text(TOFU.replace("tofu/plan", "tofu/plan-renamed"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = load_tool("tofu", [DEFAULTS, layer], cache)
    assert [r["id"] for r in again["rules"]] == ["tofu/plan-renamed", "tofu/help"]


# --------------------------------------------------------------------------- malformed files

RULE = """tool: kubectl
rules:
  - id: team/x
    decision: deny
    reason: not in this team
    match: {verb: delete}
    examples: {match: ["delete pod x"]}
"""


def _refused(tmp_path: Path, text: str, name: str = "team.yaml") -> RulesError:
    layer = _layer(tmp_path, "user", {name: text})
    with pytest.raises(RulesError) as info:
        compile_layers([DEFAULTS, layer])
    err = info.value
    assert err.path == os.path.join(layer, name), err.message
    assert f"{err.path}:{err.line}: " in err.message
    return err


@pytest.mark.parametrize(
    "text, line, words",
    [
        pytest.param("tool: kubectl\nrules:\n  - id: [unclosed\n", 4, "YAML", id="bad-yaml"),
        pytest.param(
            RULE.replace(
                "    reason: not in this team\n", "    reason: not in this team\n    colour: red\n"
            ),
            6,
            "unknown key 'colour'",
            id="unknown-key",
        ),
        pytest.param(
            RULE.replace("    match: {verb: delete}", "    match: {verb: delete, verbs: x}"),
            6,
            "unknown key 'verbs'",
            id="unknown-match-key",
        ),
        pytest.param(
            RULE.replace("    reason: not in this team\n", ""), 3, "reason", id="missing-reason"
        ),
        pytest.param(
            RULE.replace("decision: deny", "decision: block"),
            4,
            "decision must be one of",
            id="bad-decision",
        ),
        pytest.param(
            RULE.replace('["delete pod x"]', '["delete pod x", "get pods"]'),
            7,
            "should match but does not",
            id="failing-example",
        ),
        pytest.param(
            RULE.replace(
                '{match: ["delete pod x"]}',
                '{match: ["delete pod x"], no_match: ["delete deploy x"]}',
            ),
            7,
            "should not match but does",
            id="failing-no-match",
        ),
        pytest.param(RULE + RULE.split("rules:\n", 1)[1], 8, "already defined", id="duplicate-id"),
        pytest.param(
            RULE.replace('    examples: {match: ["delete pod x"]}\n', ""),
            3,
            "examples",
            id="no-examples",
        ),
        pytest.param(
            RULE.replace("match: {verb: delete}", "match: {verb: delete, verb: get}"),
            6,
            "duplicate key",
            id="duplicate-key",
        ),
        pytest.param(
            RULE.replace("tool: kubectl", "tool: kubectll"),
            1,
            "no grammar",
            id="rules-without-grammar",
        ),
        pytest.param(
            RULE.replace("match: {verb: delete}", "match: {verb: delete, nargs: lots}"),
            6,
            "nargs",
            id="bad-nargs",
        ),
        pytest.param(
            RULE.replace("match: {verb: delete}", "match: {verb: delete, kind: weird}"),
            6,
            "kind must be",
            id="bad-kind",
        ),
    ],
)
def test_a_malformed_rule_file_is_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    err = _refused(tmp_path, text)
    assert err.line == line, err.message
    assert words in err.message


def test_a_malformed_grammar_is_refused_with_file_and_line(tmp_path: Path) -> None:
    text = GCLOUD.replace("        set: {}\n", "        set: {aliases: [no]}\n")
    err = _refused(tmp_path, text, "gcloud.yaml")
    line = text.splitlines().index("        set: {aliases: [no]}") + 1
    assert "quote it" in err.message and err.line == line, err.message
    err = _refused(tmp_path, GCLOUD.replace("style: cobra", "style: argparse"), "gcloud.yaml")
    assert "unknown grammar style" in err.message
    err = _refused(tmp_path, TOFU, "tofu-extra.yaml")
    assert "must live in tofu.yaml" in err.message


def test_a_broken_layer_gives_no_decision_at_all(tmp_path: Path) -> None:
    """The shim loads rules through load_tool: a broken layer raises (exit 125), for every
    tool, even one whose own file is fine, and nothing is classified with stale rules."""
    layer = _layer(tmp_path, "user", {"team.yaml": RULE.replace("decision: deny", "decision: yes")})
    cache = str(tmp_path / "compiled")
    for tool in ("kubectl", "helm"):
        with pytest.raises(RulesError):
            load_tool(tool, [DEFAULTS, layer], cache)
    good = load_tool("helm", [DEFAULTS], cache)
    assert good["rules"]
    Path(layer, "team.yaml").write_text("tool: kubectl\nrules: [")
    with pytest.raises(RulesError):
        load_tool("helm", [DEFAULTS, layer], cache)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("tool", ["kubectl", "aws", "terraform", "helm"])
def test_a_hundred_thousand_arguments_and_binary_bytes_get_a_decision(tool: str) -> None:
    tools = _defaults()
    grammar, rules = tools[tool]["grammar"], tools[tool]["rules"]
    junk = os.fsdecode(b"\xff\xfe\x80secret\x00")
    verb = {"kubectl": ["get"], "aws": ["s3", "ls"], "terraform": ["plan"], "helm": ["list"]}[tool]
    cases = [
        verb + [junk, f"--{junk}", "-o", junk] * 25_000,
        verb + ["x"] * 100_000,
        [junk] * 100_000,
        ["-" + "a" * 1_000_000],
        [os.fsdecode(bytes(range(256)))] * 1000,
    ]
    for argv in cases:
        start = time.perf_counter()
        inv = parse_argv(grammar, argv, {"TF_CLI_ARGS": junk})
        ctx = resolve_context(grammar, inv, {"HOME": "/nonexistent"}, "/", read=lambda p: None)
        d = decide(inv, rules, ctx, "agent", {})
        assert d.decision in ("allow", "ask", "deny")
        assert time.perf_counter() - start < 5


def test_rules_compiled_without_the_verb_index_decide_the_same() -> None:
    """A cache written before `verb_set`/`verb_globs` existed still decides by `verb` globs."""
    from tests.classify.test_aws import ROWS as AWS
    from tests.classify.test_kubectl import ROWS as KUBECTL

    tools = _defaults()
    for tool, rows in (("kubectl", KUBECTL), ("aws", AWS)):
        old = [
            {
                **r,
                "alts": tuple(
                    {k: v for k, v in a.items() if not k.startswith("verb_")} for a in r["alts"]
                ),
            }
            for r in tools[tool]["rules"]
        ]
        for row in rows:
            inv = parse_argv(tools[tool]["grammar"], row.line.split(), row.env or {})
            new_d = decide(inv, tools[tool]["rules"], {}, "agent", row.env or {})
            old_d = decide(inv, old, {}, "agent", row.env or {})
            assert (new_d.decision, new_d.rule) == (old_d.decision, old_d.rule), row.line


def _readme_block(after: str) -> str:
    """The first ```yaml block after the heading `after` in commands.d/README.md."""
    text = Path(DEFAULTS, "README.md").read_text()
    rest = text.split(after, 1)[1]
    return rest.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_examples_compile_and_do_what_they_say(tmp_path: Path) -> None:
    team = _readme_block("## Relaxing and tightening")
    gcloud = _readme_block("## A fifth tool in one file")
    layer = _layer(tmp_path, "user", {"team.yaml": team, "gcloud.yaml": gcloud})
    tools = compile_layers([DEFAULTS, layer])
    prod = {"context": "eu-prod-1"}
    assert _decide(tools, "kubectl", "delete ns shop", prod)[0] == "deny"
    assert _decide(tools, "gcloud", "compute instances list") == ("allow", "gcloud/read")
    assert (
        _decide(tools, "gcloud", "compute instances delete vm", {"project": "a-prod"})[0] == "deny"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet="ab -*?", min_size=1, max_size=8), min_size=1, max_size=6),
    st.lists(st.text(alphabet="ab -", min_size=1, max_size=4), min_size=1, max_size=3),
)
def test_the_split_verb_globs_match_exactly_what_the_globs_match(
    patterns: list[str], words: list[str]
) -> None:
    # decide splits a rule's verbs into a set, first-word buckets, `*MID*`, `*TAIL` and the
    # rest for speed; the result must be the plain glob match of the joined verb path
    from shim.classify.argv import parse_argv
    from shim.classify.decide import rule_matches
    from shim.classify.glob import match
    from shim.rules.rule import compile_rule

    raw = {"id": "t/x", "decision": "ask", "reason": "r", "match": {"verb": patterns}}
    raw["examples"] = {"match": ["x"]}
    rule = compile_rule(raw, "toy", "toy.yaml", 0)
    inv = parse_argv({"style": "cobra"}, ["x"], {})
    inv.verb = tuple(words)
    inv.kind = "ok"
    want = any(match(p, " ".join(words)) for p in patterns)
    assert rule_matches(rule, inv, {}, "a", {}) == want
