"""The folders are the architecture: the import graph of `shim` keeps the house rules.

Every `import` counts, lazy ones inside functions included: they are dependencies too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "shim"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the shim modules it imports (a package's own submodules resolve to them)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                # a module importing its own package (for a sibling) is not a dependency on it
                if target and target != name and not name.startswith(target + "."):
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_approval_and_log_do_not_import_each_other() -> None:
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("shim.approval"):
            assert not {d for d in deps if d.startswith("shim.log")}, name
        if name.startswith("shim.log"):
            assert not {d for d in deps if d.startswith("shim.approval")}, name


def test_only_the_cli_imports_the_commands() -> None:
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("shim.commands") or name in ("shim.cli", "shim.__main__"):
            continue
        assert not {d for d in deps if d.startswith(("shim.commands", "shim.cli"))}, name


def test_the_hot_classifier_imports_nothing_cold() -> None:
    graph = import_graph()
    cold = ("shim.approval", "shim.preview", "shim.commands", "shim.cli", "shim.held")
    for name, deps in graph.items():
        if name.startswith("shim.classify"):
            assert not {d for d in deps if d.startswith(cold)}, name


def test_the_server_is_reached_only_through_the_cli() -> None:
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith(("shim.server", "shim.commands")) or name == "shim.cli":
            continue
        assert not {d for d in deps if d.startswith("shim.server")}, name


def test_the_shims_side_of_the_relay_uses_the_standard_library_only() -> None:
    # a held call talks to `shield serve` with http.client: no web framework, HTTP client
    # library or database driver is ever imported on the shim's side
    heavy = ("starlette", "uvicorn", "psycopg", "psycopg_pool", "httpx", "requests", "sqlite3")
    for path in (PACKAGE / "approval").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for mod in names:
                assert mod.split(".")[0] not in heavy, f"{path.name} imports {mod}"


def test_the_webauthn_library_is_imported_only_when_a_passkey_is_checked() -> None:
    # py_webauthn (and cbor2, pyOpenSSL behind it) costs about 0.1 s: on the shim's side it is
    # imported inside the functions that check a passkey, never when a module loads, so an
    # allowed call, a grant and a hold without passkeys never pay for it
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        top_level = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top_level |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module.split(".")[0])
        if "webauthn" in top_level:
            assert path.parent.name == "server", f"{path} imports webauthn when it loads"


def test_loading_the_held_path_and_the_trust_store_imports_no_webauthn(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; import shim.held; from shim.approval.passkey import load_passkeys; "
        f"load_passkeys({str(tmp_path)!r}); print('webauthn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
