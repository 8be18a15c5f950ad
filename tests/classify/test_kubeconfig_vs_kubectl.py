"""The kubeconfig reader agrees with the real kubectl, or says `?` (issue 14).

A differential property test: hypothesis writes sets of kubeconfig files (several on
KUBECONFIG, null spellings, empty and quoted strings, booleans and numbers where strings go,
duplicate contexts, contexts without a `context:` or a namespace, flow and block style), and the
context and namespace shield resolves are compared with what the real kubectl 1.32 reads
(`kubectl config view -o json`, the merged configuration). Where kubectl cannot load the files
at all, no call reaches a cluster, and shield may say anything.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shim.classify.argv import parse_argv
from shim.classify.context import resolve_context
from shim.classify.kubeconfig import scan_kubeconfig
from tests.classify.support import real_kubectl, shipped

KUBECTL = real_kubectl()
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="the real kubectl 1.32 is not here")

NAMES = ["prod", "dev", "kind-dev"]
# how a name or a namespace can be written; the first few are what kubectl writes
SPELLINGS = [
    *NAMES,
    "null",
    "~",
    "Null",
    "NULL",
    "",
    '""',
    "''",
    '"prod"',
    "'dev'",
    '"null"',
    "'~'",
    "nULL",
    "true",
    "yes",
    "No",
    "on",
    "y",
    "123",
    "1e3",
    "0x1f",
    "-1",
    ".inf",
    "!!str prod",
    "!!null ''",
    '"pr\\x6fd"',
    "prod # a comment",
    "&a prod",
    "*a",
    "2001-12-14",
]

# mostly names kubectl writes, so that most sets load and resolve
spelling = st.sampled_from(NAMES) | st.sampled_from(SPELLINGS)


@st.composite
def context_item(draw: st.DrawFn) -> str:
    name = draw(spelling | st.sampled_from(NAMES))
    style = draw(st.sampled_from(["block", "block", "flow", "no-context", "null-context"]))
    ns = draw(st.none() | spelling)
    if style == "flow":
        inner = f"{{cluster: c, namespace: {ns}}}" if ns is not None else "{cluster: c}"
        return f"- name: {name}\n  context: {inner}\n"
    if style == "no-context":
        return f"- name: {name}\n"
    if style == "null-context":
        return f"- name: {name}\n  context: null\n"
    lines = "- context:\n    cluster: c\n    user: u\n"
    if ns is not None:
        lines += f"    namespace: {ns}\n"
    return lines + f"  name: {name}\n"


JSON_VALUES = st.none() | st.sampled_from(NAMES + ["", "null"]) | st.booleans() | st.integers(0, 9)


@st.composite
def json_file(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["current-context"] = draw(JSON_VALUES)
    if draw(st.booleans()):
        items = []
        for _ in range(draw(st.integers(0, 3))):
            item: dict[str, Any] = {"name": draw(JSON_VALUES)}
            if draw(st.booleans()):
                item["context"] = {"cluster": "c", "namespace": draw(JSON_VALUES)}
            items.append(item)
        doc["contexts"] = draw(st.sampled_from([items, None, "prod"]))
    if draw(st.booleans()):
        doc["kind"] = draw(st.sampled_from(["Config", "Pod", None]))
    return json.dumps(doc)


@st.composite
def kubeconfig_file(draw: st.DrawFn) -> str | None:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return None  # a file on KUBECONFIG that is not there
    if roll == 1:
        return draw(json_file())
    parts = []
    if draw(st.booleans()):
        parts.append("apiVersion: v1\nkind: Config\n")
    if draw(st.integers(0, 3)):
        parts.append(f"current-context: {draw(spelling)}\n")
    shape = draw(st.sampled_from(["list", "list", "empty", "null", "none"]))
    if shape == "list":
        items = draw(st.lists(context_item(), min_size=1, max_size=3))
        parts.append("contexts:\n" + "".join(items))
    elif shape == "empty":
        parts.append("contexts: []\n")
    elif shape == "null":
        parts.append("contexts:\n")
    if draw(st.booleans()):
        parts.append("clusters:\n- cluster:\n    server: https://127.0.0.1:1\n  name: c\n")
    order = draw(st.permutations(parts))
    return "".join(order)


_SEEN: dict[tuple[str | None, ...], dict[str, Any] | None] = {}


def kubectl_reads(files: list[Path]) -> dict[str, Any] | None:
    """The merged configuration as kubectl reads it; None when kubectl cannot load it."""
    assert KUBECTL is not None
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBECONFIG": ":".join(map(str, files))}
    proc = subprocess.run(
        [KUBECTL, "config", "view", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def shield_reads(files: list[Path]) -> dict[str, str]:
    grammar = shipped()["kubectl"]["grammar"]
    env = {"HOME": "/nonexistent", "KUBECONFIG": ":".join(map(str, files))}
    inv = parse_argv(grammar, ["get", "pods"], env)
    return resolve_context(grammar, inv, env, "/")


def _expected(view: dict[str, Any]) -> tuple[str, str]:
    """(context, namespace) of a kubectl call with this merged configuration."""
    current = view.get("current-context") or ""
    namespace = ""
    for item in view.get("contexts") or ():
        if item.get("name") == current:
            namespace = (item.get("context") or {}).get("namespace") or ""
    return current or "?", namespace or "default"


@needs_kubectl
@settings(
    max_examples=int(os.environ.get("SHIELD_KUBECONFIG_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(kubeconfig_file(), min_size=1, max_size=3))
def test_shield_reads_kubeconfig_sets_as_kubectl_does_or_says_unresolved(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str | None]
) -> None:
    root = tmp_path_factory.mktemp("kc")
    files = []
    for k, text in enumerate(texts):
        path = root / f"config-{k}"
        if text is not None:
            path.write_text(text)
        files.append(path)
    key = tuple(texts)
    if key not in _SEEN:
        _SEEN[key] = kubectl_reads(files)
    view = _SEEN[key]
    got = shield_reads(files)
    if view is None:
        event("kubectl refuses the files")
        return  # kubectl fails on these files: no call reaches a cluster
    want_ctx, want_ns = _expected(view)
    if got["context"] != "?":
        event("shield resolves the context")
    elif want_ctx == "?":
        event("neither has a current context")
    else:
        event("shield alone says ?")
    if got["context"] == "?":
        assert got["namespace"] == "?" or want_ctx == "?", (got, view)
        return
    assert got["context"] == want_ctx, (texts, got, view)
    assert got["namespace"] == want_ns, (texts, got, view)


# the spellings of the issue, checked by hand against kubectl 1.32 (see the property test)
@pytest.mark.parametrize("null", ["null", "~", "Null", "NULL", "", '""', "''"])
def test_a_null_or_empty_current_context_leaves_it_to_the_next_file(
    tmp_path: Path, null: str
) -> None:
    first = tmp_path / "first"
    first.write_text(f"current-context: {null}\ncontexts:\n- name: null\n  context: {{}}\n")
    second = tmp_path / "second"
    second.write_text(
        "current-context: prod-eu\ncontexts:\n- name: prod-eu\n  context:\n    namespace: shop\n"
    )
    got = shield_reads([first, second])
    assert (got["context"], got["namespace"]) == ("prod-eu", "shop")


@pytest.mark.parametrize(
    "value", ["true", "yes", "No", "on", "y", "123", "1e3", "0x1f", ".inf", "!!str prod", "&a x"]
)
def test_a_current_context_kubectl_reads_as_no_string_is_unresolved(value: str) -> None:
    assert scan_kubeconfig(f"current-context: {value}\n")[0] == "?"


@pytest.mark.parametrize("null", ["null", "~", "NULL", ""])
def test_a_null_namespace_is_the_default_namespace(tmp_path: Path, null: str) -> None:
    path = tmp_path / "config"
    path.write_text(
        f"current-context: p\ncontexts:\n- name: p\n  context:\n    namespace: {null}\n"
    )
    assert shield_reads([path])["namespace"] == "default"


def test_a_context_named_twice_in_one_file_is_unresolved() -> None:
    # kubectl refuses the file: "duplicate name"
    text = "current-context: p\ncontexts:\n- name: p\n  context: {namespace: a}\n- name: p\n"
    assert scan_kubeconfig(text) == ("?", {})


def test_a_second_context_mapping_in_an_item_replaces_the_first() -> None:
    text = "current-context: p\ncontexts:\n- name: p\n  context:\n    namespace: a\n  context:\n    cluster: c\n"
    cur, namespaces = scan_kubeconfig(text)
    assert cur == "?" or namespaces == {"p": ""}


@pytest.mark.parametrize(
    "text",
    [
        "kind: Pod\ncurrent-context: p\n",
        "apiVersion: v2\ncurrent-context: p\n",
        "contexts: prod\n",
        "contexts: [{name: p}]\n",
    ],
)
def test_files_kubectl_refuses_or_reads_otherwise_are_unresolved(text: str) -> None:
    assert scan_kubeconfig(text)[0] == "?"
