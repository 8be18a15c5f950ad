"""Secret reads by file (issue 14): `kubectl describe -f secret.yaml` printed a service-account
token in full, because the secret-read rule looked only at positional names.

Every read verb of kubectl 1.32 that takes objects from `-f`/`-k` is in the table (the real
binary's `--help` says which verbs accept `-f`). The kind scanner is compared with the real
kubectl, which reads the same files offline with `annotate --local -f FILE`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shim.classify.classify import classify
from shim.classify.manifests import MAX_FILES, _Unsure, scan_kinds
from tests.classify.support import real_kubectl, shipped

KUBECTL = real_kubectl()
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="the real kubectl 1.32 is not here")

SECRET = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sa-token\ntype: kubernetes.io/service-account-token\n"
DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
SERVICE = '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}\n'
LIST = (
    "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n"
)
HIDDEN = DEPLOY + "items:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "secret.yaml").write_text(SECRET)
    (tmp_path / "deploy.yaml").write_text(DEPLOY)
    (tmp_path / "svc.json").write_text(SERVICE)
    (tmp_path / "list.yaml").write_text(LIST)
    (tmp_path / "hidden.yaml").write_text(HIDDEN)
    (tmp_path / "both.yaml").write_text(DEPLOY + "---\n" + SECRET)
    app = tmp_path / "app"
    (app / "nested").mkdir(parents=True)
    (app / "deploy.yaml").write_text(DEPLOY)
    (app / "notes.txt").write_text(SECRET)  # not read from a directory: no .yaml/.yml/.json
    (app / "nested" / "secret.yml").write_text(SECRET)
    return tmp_path


def decide(work: Path, line: str) -> str:
    env = {"HOME": str(work), "KUBECONFIG": str(work / "none")}
    return classify(shipped()["kubectl"], line.split(), env, str(work), "agent").decision


# the read verbs of kubectl 1.32 that accept -f (test_the_table_covers_every_read_verb_with_f)
READ_VERBS_WITH_F = {"get", "describe", "wait", "rollout status", "rollout history", "diff"}

TABLE = [
    # describe prints a service-account token's data in full
    ("describe -f secret.yaml", "ask"),
    ("describe --filename=secret.yaml", "ask"),
    ("describe -f deploy.yaml", "allow"),
    ("describe -f deploy.yaml,svc.json", "allow"),
    ("describe -f deploy.yaml -f secret.yaml", "ask"),
    ("describe -f deploy.yaml,secret.yaml", "ask"),
    ("describe -f both.yaml", "ask"),
    ("describe -f list.yaml", "ask"),
    ("describe -f hidden.yaml", "ask"),  # kubectl visits `items` of any kind
    ("describe -f -", "ask"),
    ("describe -f https://example.com/s.yaml", "ask"),
    ("describe -f missing.yaml", "ask"),
    ("describe -f *.yaml", "ask"),  # a glob kubectl expands
    ("describe -k overlays/prod", "ask"),
    ("describe -f app", "allow"),  # without -R the nested secret is not read
    ("describe -f app -R", "ask"),
    ("describe -R=false -f app", "allow"),
    # get and wait print objects only with an output that prints data
    ("get -f secret.yaml", "allow"),
    ("get -f secret.yaml -o yaml", "ask"),
    ("get -f secret.yaml --template={{.data}}", "ask"),
    ("get -f deploy.yaml -o yaml", "allow"),
    ("get -f deploy.yaml -o json -f list.yaml", "ask"),
    ("get -f app -R -o yaml", "ask"),
    ("get -k overlays/prod -o yaml", "ask"),
    ("get -f deploy.yaml -o wide", "allow"),
    ("wait --for=create -f secret.yaml", "allow"),
    ("wait --for=create -f secret.yaml -o yaml", "ask"),
    ("wait --for=create -f deploy.yaml -o yaml", "allow"),
    ("wait --for=create -f app -o yaml", "ask"),  # wait reads directories recursively
    ("wait --for=create -f app -R=false -o yaml", "allow"),
    # rollout status/history have no viewer for a Secret (kubectl: "no status viewer has
    # been implemented", "no history viewer has been implemented"): nothing of it is printed
    ("rollout status -f deploy.yaml", "allow"),
    ("rollout status -f secret.yaml", "allow"),
    ("rollout history -f deploy.yaml", "allow"),
    ("rollout history -f secret.yaml -o yaml", "allow"),
    # diff masks Secret data (unless --prune, see the shipped examples)
    ("diff -f secret.yaml", "allow"),
    # dry runs print what they would send
    ("apply -f secret.yaml --dry-run=client -o yaml", "ask"),
    ("apply -f deploy.yaml --dry-run=client -o yaml", "allow"),
    ("apply -f deploy.yaml --dry-run=server", "allow"),
]


@pytest.mark.parametrize("line, want", TABLE, ids=[t[0] for t in TABLE])
def test_reads_of_objects_from_files_ask_unless_no_file_holds_a_secret(
    work: Path, line: str, want: str
) -> None:
    assert decide(work, line) == want


@needs_kubectl
def test_the_table_covers_every_read_verb_with_f() -> None:
    """The allowed kubectl verbs (kubectl/read, diff) that accept -f, by the real binary."""
    assert KUBECTL is not None
    rules = {r["id"]: r for r in shipped()["kubectl"]["rules"]}
    verbs = set(rules["kubectl/read"]["alts"][0]["verb"]) | {"diff"}
    with_f = set()
    for verb in sorted(verbs):
        out = subprocess.run(
            [KUBECTL, *verb.split(), "--help"], capture_output=True, text=True, timeout=60
        ).stdout
        if "-f, --filename=" in out:
            with_f.add(verb)
    assert with_f == READ_VERBS_WITH_F
    covered = {
        " ".join(line.split()[:2]) if line.startswith("rollout") else line.split()[0]
        for line, _ in TABLE
    }
    assert covered >= READ_VERBS_WITH_F


@needs_kubectl
def test_wait_reads_directories_recursively_by_default() -> None:
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "wait", "--help"], capture_output=True, text=True).stdout
    assert "-R, --recursive=true:" in out
    grammar = shipped()["kubectl"]["grammar"]
    assert grammar["file_objects"]["recursive_default"] == ("wait",)


def test_too_many_files_are_not_read(work: Path) -> None:
    many = work / "many"
    many.mkdir()
    for k in range(MAX_FILES + 1):
        (many / f"d{k:03}.yaml").write_text(DEPLOY)
    assert decide(work, "describe -f many") == "ask"
    (many / "d000.yaml").unlink()
    assert decide(work, "describe -f many") == "allow"


def test_special_files_and_symlinks_are_read_as_kubectl_reads_them(work: Path) -> None:
    os.mkfifo(work / "fifo.yaml")
    assert decide(work, "describe -f fifo.yaml") == "ask"
    (work / "link.yaml").symlink_to(work / "deploy.yaml")
    assert decide(work, "describe -f link.yaml") == "allow"
    (work / "app" / "to-secret.yaml").symlink_to(work / "secret.yaml")
    assert decide(work, "describe -f app") == "ask"  # a link in a directory is followed
    (work / "app" / "to-secret.yaml").unlink()
    (work / "app" / "sub.yaml").symlink_to(work / "app" / "nested")
    assert decide(work, "describe -f app") == "ask"  # kubectl fails reading a directory


# --------------------------------------------------------------------------- the scanner


@pytest.mark.parametrize(
    "text, kinds",
    [
        (SECRET, ["Secret"]),
        (DEPLOY + "---\n" + SECRET, ["Deployment", "Secret"]),
        (
            "---\n# only a comment\n---\n" + DEPLOY + "--- # next\n" + SECRET,
            ["Deployment", "Secret"],
        ),
        ("kind : Secret\napiVersion: v1\n", ["Secret"]),
        ('kind: "Secret" # quoted\n', ["Secret"]),
        ("  kind: Secret\n  apiVersion: v1\n", ["Secret"]),  # an indented top level
        ("Kind: Secret\n", ["Secret"]),  # case: kept for the rules to match
        ("metadata:\n  kind: Deployment\nkind: Secret\n", ["Secret"]),
        ("kind: Deployment\ndata: |\n  kind: Secret\n", ["Deployment"]),
        ('{"kind": "Secret", "metadata": {"kind": "x", "l": [1, {"a": "}"}]}}', ["Secret"]),
        ('{"kind":"ConfigMap"}\n{"kind":"Secret"}', ["ConfigMap", "Secret"]),
        ("", []),
        ("# nothing\n", []),
    ],
)
def test_the_scanner_reads_top_level_kinds(text: str, kinds: list[str]) -> None:
    assert scan_kinds(text) == kinds


@pytest.mark.parametrize(
    "text",
    [
        LIST,
        HIDDEN,
        "kind: SecretList\n",
        "kind: &k Secret\n",
        "kind: !!str Secret\n",
        "kind: *k\n",
        "kind:\n  Secret\n",
        "kind: Sec\n ret\n",
        "? kind\n: Secret\n",
        "{kind: Secret}\n",
        "- kind: Secret\n",
        'metadata: {name: "x",\nkind: Secret}\n',
        'name: "a\nkind: Deployment"\n',
        "x: &a {kind: Secret}\n<<: *a\n",
        '"\\x6bind": Secret\n',
        "\u212aind: Secret\n",  # the Kelvin sign folds to k in Go's JSON decoding
        "kind: Secret\r",
        "kind:\tSecret\n",
        "apiVersion: v1\n",  # no kind
        "---foo\nkind: Deployment\n",
        '{"\\u006bind": "Secret"}',
        '{"kind": "Sec\\u0072et"}',
        '{"kind": "Deployment"} kind: Secret',
        '[{"kind": "Secret"}]',
        '{"kind": "Deployment", "Items": []}',
        "%YAML 1.1\n---\nkind: Secret\n",
        "kind: Deployment\n...\nkind: Secret\n",
    ],
)
def test_what_the_scanner_does_not_read_for_certain_is_unknown(text: str) -> None:
    with pytest.raises(_Unsure):
        scan_kinds(text)


def kubectl_kinds(path: Path) -> list[str]:
    """The kinds of the objects the real kubectl visits in a file, offline."""
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "annotate", "--local", "-f", str(path), "shield-test=x", "-o", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null", "HOME": str(path.parent)},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    kinds = []
    decoder = json.JSONDecoder()
    text = proc.stdout.strip()
    while text:
        obj, end = decoder.raw_decode(text)
        text = text[end:].strip()
        kinds.extend(i["kind"] for i in obj.get("items", [obj]))
    return kinds


FRAGMENTS = [
    "apiVersion: v1\n",
    "metadata: {name: a}\n",
    "metadata:\n  name: b\n",
    "kind: Secret\n",
    "kind: ConfigMap\n",
    "kind : Secret\n",
    'kind: "Secret"\n',
    "Kind: Secret\n",
    "kind: List\n",
    "items:\n- {apiVersion: v1, kind: Secret, metadata: {name: i}}\n",
    "---\n",
    "# comment\n",
    "data: |\n  kind: Secret\n",
    'note: "a\n  b"\n',
    "x: &a {kind: Secret}\n",
    "<<: *a\n",
    "  kind: Secret\n",
    "kind: Secret\n  more\n",
    "? kind\n: Secret\n",
    '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j"}}\n',
    '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}}\n',
]


@needs_kubectl
@settings(
    max_examples=int(os.environ.get("SHIELD_MANIFEST_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=7))
def test_the_scanner_never_misses_a_kind_the_real_kubectl_visits(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    text = "".join(parts)
    path = tmp_path_factory.mktemp("m") / "objects.yaml"
    path.write_text(text)
    try:
        mine = scan_kinds(text)
    except _Unsure:
        event("shield: unknown")
        return  # asked: fine whatever kubectl reads
    seen = kubectl_kinds(path)
    event("shield reads the kinds" if seen else "kubectl visits nothing")
    assert {k.lower() for k in seen} <= {k.lower() for k in mine}, (text, mine, seen)
