"""Rule files of any shape: the compiler refuses with file:line or compiles, never crashes.

Hypothesis puts random YAML shapes (nested mappings, lists and scalars) in every key of a rule,
of its match, examples and preview, and of the grammar (commands, flags, dry_run, overrides,
alias file, context), and compiles the layer.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim.errors import RulesError
from shim.rules.compile import compile_layers

BASE: dict[str, Any] = {
    "tool": "toy",
    "grammar": {
        "style": "cobra",
        "help_flags": ["-h --help"],
        "flags": {"value": ["-n --namespace", "--context"], "bool": ["--all"]},
        "local": {"value": ["-o --output", "-f --filename"], "bool": ["--dry-run"]},
        "commands": {
            "get": {"aliases": ["g"], "flags": {"value": ["--watch-for"]}},
            "delete": {},
            "config": {"subcommand_required": True, "commands": {"view": {}}},
        },
        "dry_run": [{"flag": "--dry-run", "values": ["true"], "verbs": ["delete"]}],
        "overrides": [{"path": "~/.toyrc", "when": "exists", "reason": "a toyrc"}],
        "context": {"resolver": "generic", "flags": {"context": "--context"}},
        "url_path_flags": ["--output"],
    },
    "rules": [
        {
            "id": "toy/read",
            "decision": "allow",
            "reason": "reads",
            "hint": "none",
            "timeout": 30,
            "match": {"verb": ["get", "config view"], "flags": {"--output": {"not": ["yaml"]}}},
            "examples": {"match": ["get pods"], "no_match": ["delete pods"]},
        },
        {
            "id": "toy/delete",
            "decision": "deny",
            "reason": "deletes",
            "risk": "high",
            "require_reason": True,
            "preview": {"kind": "auto", "timeout": 10},
            "match": [
                {
                    "verb": "delete",
                    "args": {0: "pods"},
                    "nargs": ">=1",
                    "any_arg": {"any": ["p*"], "except": ["x"]},
                    "no_arg": ["secret"],
                    "ignore_case": True,
                    "context": {"context": {"not": ["kind-*"]}},
                    "agent": ["bot"],
                    "env": {"TOY": "present"},
                    "kind": ["ok"],
                    "dry_run": False,
                }
            ],
            "examples": {
                "match": [
                    {
                        "argv": "delete pods",
                        "context": {"context": "prod"},
                        "env": {"TOY": "1"},
                        "agent": "bot",
                    }
                ],
                "no_match": ["get pods"],
            },
        },
    ],
}

# every place a shape can go: a path of keys into BASE
PATHS: list[tuple[Any, ...]] = [
    (),
    ("tool",),
    ("grammar",),
    ("rules",),
    ("rules", 0),
    *[("grammar", k) for k in BASE["grammar"]],
    *[
        ("grammar", k)
        for k in (
            "services",
            "negations",
            "prefix_expand",
            "plugins_no_flags",
            "early_globals",
            "normalize_underscores",
            "alias_file",
        )
    ],
    ("grammar", "flags", "value"),
    ("grammar", "flags", "value", 0),
    ("grammar", "local", "bool"),
    ("grammar", "commands", "get"),
    ("grammar", "commands", "get", "aliases"),
    ("grammar", "commands", "get", "flags"),
    ("grammar", "commands", "get", "flags", "value"),
    ("grammar", "commands", "config", "commands"),
    ("grammar", "commands", "config", "commands", "view"),
    *[
        ("grammar", "commands", "delete", k)
        for k in (
            "subcommand_required",
            "plugin_subcommands",
            "passthrough",
            "help_verb",
            "any_operation",
            "min_args",
        )
    ],
    ("grammar", "dry_run", 0),
    *[("grammar", "dry_run", 0, k) for k in ("flag", "values", "verbs", "unless")],
    ("grammar", "overrides", 0),
    *[("grammar", "overrides", 0, k) for k in ("path", "when", "reason", "unless_env")],
    *[("grammar", "context", k) for k in ("resolver", "flags", "env", "defaults")],
    *[("rules", 0, k) for k in BASE["rules"][0]],
    *[("rules", 1, k) for k in BASE["rules"][1]],
    ("rules", 0, "match", "flags", "--output"),
    ("rules", 0, "match", "flags", "--output", "not"),
    ("rules", 1, "match", 0),
    *[("rules", 1, "match", 0, k) for k in BASE["rules"][1]["match"][0]],
    ("rules", 1, "match", 0, "file_kinds"),
    ("rules", 1, "mode"),
    ("rules", 1, "grantable"),
    ("rules", 0, "mode"),
    ("grammar", "option_tables"),
    ("grammar", "file_objects"),
    ("rules", 1, "match", 0, "args", 0),
    ("rules", 1, "match", 0, "any_arg", "any"),
    ("rules", 1, "match", 0, "context", "context"),
    ("rules", 1, "match", 0, "context", "context", "not"),
    ("rules", 1, "match", 0, "env", "TOY"),
    ("rules", 1, "preview", "kind"),
    ("rules", 1, "preview", "timeout"),
    ("rules", 0, "examples", "match"),
    ("rules", 0, "examples", "match", 0),
    ("rules", 1, "examples", "match", 0, "argv"),
    ("rules", 1, "examples", "match", 0, "context"),
    ("rules", 1, "examples", "match", 0, "env"),
    ("rules", 1, "examples", "match", 0, "agent"),
]

WORDS = ["present", "absent", "true", "ok", "help", "ask", "deny", "allow", ">=high", "high"]
WORDS += ["get", "delete", "--output", "-n", "*", "exists", "kube", "generic", "a b", ""]
WORDS += ["not", "any", "except", "kind", "value", "bool", "pods", "1-2", "auto", "Secret"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(WORDS)
    | st.text(alphabet="ab-*=:|$~ ", max_size=6)
)
KEYS = st.sampled_from(WORDS) | st.integers(min_value=-1, max_value=2) | st.booleans()
SHAPES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


def _put(doc: dict, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _compile_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as layer:
        path = os.path.join(layer, "toy.yaml")
        Path(path).write_text(text)
        try:
            compile_layers([layer])
        except RulesError as exc:
            assert exc.path == path and exc.line > 0, exc.message
            assert exc.message.startswith(f"{path}:{exc.line}: "), exc.message


def test_the_base_toy_file_compiles() -> None:
    with tempfile.TemporaryDirectory() as layer:
        Path(layer, "toy.yaml").write_text(yaml.safe_dump(BASE))
        tools = compile_layers([layer])
    assert [r["id"] for r in tools["toy"]["rules"]] == ["toy/read", "toy/delete"]


@settings(
    max_examples=int(os.environ.get("SHIELD_SHAPE_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.sampled_from(PATHS), SHAPES)
def test_any_shape_in_any_key_is_compiled_or_refused_with_file_and_line(
    path: tuple[Any, ...], shape: Any
) -> None:
    doc = _put(copy.deepcopy(BASE), path, shape)
    _compile_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize(
    "text",
    [
        # keys YAML allows and Python dicts do not: sequences and mappings as keys
        "tool: toy\ngrammar: {style: cobra}\nrules:\n- {id: a, decision: ask, reason: r,"
        " match: {flags: {[a]: b}}, examples: {match: [x]}}\n",
        "tool: toy\ngrammar: {commands: {? {a: b} : {}}}\n",
        "? [tool]\n: toy\n",
        "tool: toy\ngrammar: {style: cobra}\nrules:\n- {id: a, decision: ask, reason: r,"
        " match: {context: {? [x] : y}}, examples: {match: [x]}}\n",
        # anchors, aliases and merge keys
        "tool: toy\ngrammar: &g {style: cobra, commands: {get: *g}}\n",
        "tool: toy\ngrammar: {style: cobra}\nrules:\n- &r {id: a, decision: ask, reason: r,"
        " match: {verb: get}, examples: {match: [get]}}\n- {<<: *r, id: b}\n",
        # tags YAML resolves to other types
        "tool: toy\ngrammar: {style: cobra}\nrules:\n- {id: a, decision: ask, reason: r,"
        " match: {verb: !!binary aGk=}, examples: {match: [get]}}\n",
        "tool: toy\ngrammar: {style: cobra, flags: {value: [!!timestamp 2001-12-14]}}\n",
        "tool: toy\ngrammar: {style: cobra}\nrules:\n- {id: a, decision: ask, reason: r,"
        " match: {verb: get}, examples: {match: [{argv: [1, [2]]}]}}\n",
        "tool: !!set {a, b}\n",
        "\ufeff\x00",
        "tool: toy\ngrammar: {style: cobra}\nrules: {a: 1}\n",
        "[1, 2]\n",
    ],
)
def test_yaml_that_python_reads_oddly_is_refused_with_file_and_line(text: str) -> None:
    _compile_text(text)
