"""commands.d YAML -> validated -> compiled (cold).

Layers, lowest first: package defaults, /etc/shield/commands.d, <home>/commands.d. A file in a
higher layer with the same name replaces the lower one; other files add rules. A tool's grammar
comes from the effective `<tool>.yaml`; its rules from every effective file whose `tool:` is it.
Every rule's `examples:` are checked at compile time: a rule that does not do what its own
examples say is refused like a syntax error (file:line). The schema is documented in
commands.d/README.md.
"""

from __future__ import annotations

import marshal
import os
from typing import Any

from shim.errors import RulesError
from shim.rules.examples import check_examples
from shim.rules.grammar import compile_grammar
from shim.rules.load import FORMAT, load_cached
from shim.rules.rule import compile_rule
from shim.rules.yamlfile import key_line, line_of, load_yaml, only, type_name

# --------------------------------------------------------------------------- layers


def effective_files(layers: list[str]) -> dict[str, str]:
    """File name -> path of the highest layer that has it."""
    out: dict[str, str] = {}
    for layer in layers:
        try:
            names = sorted(os.listdir(layer))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RulesError(f"cannot list rule layer: {exc.strerror}", layer) from exc
        for name in names:
            if name.endswith((".yaml", ".yml")) and not name.startswith("."):
                out[name] = os.path.join(layer, name)
    return out


def stamp(layers: list[str], files: dict[str, str]) -> list[tuple[str, int, int]]:
    """What the compiled form depends on: every layer dir and every effective file."""
    out: list[tuple[str, int, int]] = []
    for layer in layers:
        try:
            st = os.stat(layer)
            out.append((layer, st.st_mtime_ns, -2))
        except OSError:
            out.append((layer, -1, -1))
    for path in sorted(files.values()):
        st = os.stat(path)
        out.append((path, st.st_mtime_ns, st.st_size))
    return out


# --------------------------------------------------------------------------- compile


def load_layers(layers: list[str], keep_examples: bool = False) -> dict[str, dict]:
    """Every tool in the effective files -> {"grammar", "rules", "files"} (validated).

    With `keep_examples`, each rule keeps its raw `_examples` (see rule_examples)."""
    files = effective_files(layers)
    docs: list[tuple[str, str, Any]] = []
    for name, path in sorted(files.items()):
        raw = load_yaml(path)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise RulesError(
                "a rule file must be a mapping with 'tool', 'grammar' and/or 'rules'", path, 1
            )
        only(raw, ("tool", "grammar", "rules", "version"), (path, 1))
        stem = name.rsplit(".", 1)[0]
        tool = raw.get("tool") or stem
        if not isinstance(tool, str):
            raise RulesError(
                f"tool must be the tool's name (a string), not {type_name(tool)}",
                path,
                key_line(raw, "tool", 1),
            )
        if "grammar" in raw and tool != stem:
            raise RulesError(f"a grammar for {tool!r} must live in {tool}.yaml", path, line_of(raw))
        docs.append((tool, path, raw))
    tools: dict[str, dict] = {}
    for tool, path, raw in docs:
        if "grammar" in raw:
            tools.setdefault(tool, {"rules": [], "files": []})["grammar"] = compile_grammar(
                tool, raw["grammar"], path
            )
    seen: dict[str, str] = {}
    for tool, path, raw in docs:
        entry = tools.get(tool)
        if entry is None:
            raise RulesError(
                f"rules for {tool!r} but no grammar: add {tool}.yaml with a 'grammar' section",
                path,
                line_of(raw),
            )
        entry["files"].append(path)
        rules_raw = raw.get("rules") or []
        if not isinstance(rules_raw, list):
            raise RulesError(
                f"'rules' must be a list, not {type_name(rules_raw)}",
                path,
                key_line(raw, "rules", line_of(raw)),
            )
        item_lines = getattr(rules_raw, "item_lines", None) or []
        for i, r in enumerate(rules_raw):
            at = item_lines[i] if i < len(item_lines) else key_line(raw, "rules", 1)
            rule = compile_rule(r, tool, path, i, at)
            if rule["id"] in seen:
                raise RulesError(
                    f"rule id {rule['id']!r} is already defined at {seen[rule['id']]}",
                    path,
                    line_of(r),
                )
            seen[rule["id"]] = rule["source"]
            entry["rules"].append(rule)
    for tool, entry in tools.items():
        check_examples(tool, entry["grammar"], entry["rules"])
        if not keep_examples:
            for rule in entry["rules"]:
                rule.pop("_examples", None)
    return tools


def compile_layers(layers: list[str]) -> dict[str, dict]:
    """Compile every tool; each value is the marshal-able form a shim loads."""
    files = effective_files(layers)
    st = stamp(layers, files)
    tools = load_layers(layers)
    out = {}
    for tool, entry in tools.items():
        out[tool] = {
            "format": FORMAT,
            "tool": tool,
            "layers": list(layers),
            "stamp": st,
            "grammar": entry["grammar"],
            "rules": entry["rules"],
            "files": entry["files"],
        }
    return out


def write_compiled(compiled: dict[str, dict], cache_dir: str) -> list[str]:
    os.makedirs(cache_dir, exist_ok=True)
    written = []
    for tool, data in compiled.items():
        if data["grammar"].get("option_tables"):
            # the aws CLI's own option tables, made beside the compiled rules (rules/awstables)
            data["tables"] = os.path.join(cache_dir, "aws-tables")
        path = os.path.join(cache_dir, f"{tool}.marshal")
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(marshal.dumps(data))
        os.replace(tmp, path)
        written.append(path)
    return written


def compile_tool(tool: str, layers: list[str], cache_dir: str | None) -> dict:
    """Compile all layers (so a broken layer is refused whichever tool asks), cache, return `tool`."""
    compiled = compile_layers(layers)
    if cache_dir:
        try:
            write_compiled(compiled, cache_dir)
        except OSError:
            pass  # a read-only cache still lets the call be classified
    if tool not in compiled:
        raise RulesError(
            f"no rules for {tool!r} in any layer ({', '.join(layers)})",
            hint=f"add {tool}.yaml to a commands.d layer",
        )
    return compiled[tool]


def load_tool(tool: str, layers: list[str], cache_dir: str | None) -> dict:
    """The compiled rules for `tool`: the cache when it is fresh, else compiled again."""
    return load_cached(tool, layers, cache_dir) or compile_tool(tool, layers, cache_dir)
