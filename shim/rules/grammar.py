"""A tool's `grammar:` section -> the dict the parsers read (cold).

Flag tables (every spelling -> canonical name, takes a value), nested commands and aliases,
dry-run spellings, the alias file, override files and the context resolver. The schema is in
commands.d/README.md.
"""

from __future__ import annotations

from typing import Any

from shim.errors import RulesError
from shim.rules.yamlfile import (
    at,
    key_line,
    line_of,
    only,
    type_name,
    want_bool,
    want_int,
    want_list,
    want_map,
    want_str,
    want_strs,
)

STYLES = ("cobra", "aws", "terraform")
RESOLVERS = ("kube", "helm", "aws", "terraform", "generic", "none")


def _spellings(spec: str, where: tuple[str, int]) -> list[str]:
    names = spec.replace(",", " ").replace("/", " ").split()
    if not names or not all(n.startswith("-") for n in names):
        raise RulesError(f"a flag spelling must start with '-': {spec!r}", *where)
    return names


def _flag_table(raw: Any, where: tuple[str, int]) -> dict[str, tuple[str, bool]]:
    """{value: [...], bool: [...]} -> spelling -> (canonical, takes_value)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RulesError(
            f"flags must be a mapping with 'value' and/or 'bool' lists, not {type_name(raw)}",
            *where,
        )
    where = (where[0], line_of(raw, where[1]))
    only(raw, ("value", "bool"), where)
    table: dict[str, tuple[str, bool]] = {}
    for key, takes in (("value", True), ("bool", False)):
        specs = want_list(raw, key, f"flags {key}", where)
        swhere = (where[0], line_of(specs, key_line(raw, key, where[1])))
        for spec in specs:
            names = _spellings(want_str(spec, "a flag spelling", swhere), swhere)
            canon = max(names, key=len)
            for name in names:
                table[name] = (canon, takes)
    return table


def _command_node(name: str, raw: Any, path: str, line: int) -> dict:
    raw = raw if raw is not None else {}
    where = (path, line_of(raw, line))
    if not isinstance(raw, dict):
        raise RulesError(
            f"command {name!r} must be a mapping (or empty), not {type_name(raw)}", *where
        )
    only(
        raw,
        (
            "aliases",
            "commands",
            "flags",
            "subcommand_required",
            "plugin_subcommands",
            "passthrough",
            "help_verb",
            "any_operation",
            "min_args",
        ),
        where,
    )
    node: dict[str, Any] = {"name": name}
    if raw.get("flags") is not None:
        node["flags"] = _flag_table(raw["flags"], at(raw, "flags", where))
    for key in (
        "subcommand_required",
        "plugin_subcommands",
        "passthrough",
        "help_verb",
        "any_operation",
    ):
        if raw.get(key) is not None and want_bool(raw[key], key, at(raw, key, where)):
            node[key] = True
    if raw.get("min_args") is not None:
        node["min_args"] = want_int(raw["min_args"], "min_args", at(raw, "min_args", where))
    if raw.get("commands") is not None:
        node["commands"] = _commands(raw["commands"], path, key_line(raw, "commands", where[1]))
    return node


def _commands(raw: Any, path: str, line: int = 1) -> dict:
    if not isinstance(raw, dict):
        raise RulesError(
            f"commands must be a mapping of command name to its definition, not {type_name(raw)}",
            path,
            line_of(raw, line),
        )
    out: dict[str, dict] = {}
    for name, sub in raw.items():
        line = key_line(raw, name, line)
        _command_word(name, path, line)
        aliases = (
            want_list(sub, "aliases", f"aliases of {name!r}", (path, line))
            if isinstance(sub, dict)
            else []
        )
        node = _command_node(str(name), sub, path, line)
        out[str(name)] = node
        for alias in aliases:
            _command_word(alias, path, line_of(aliases, line))
            out[str(alias)] = node
    return out


def _command_word(word: Any, path: str, line: int) -> None:
    """Command names and aliases are strings; YAML reads bare no/yes/on/off as booleans."""
    if not isinstance(word, str) or not word:
        hint = " (quote it: YAML reads a bare no, yes, on or off as a boolean)"
        raise RulesError(
            f"a command name or alias must be a string, got {word!r}"
            + (hint if isinstance(word, bool) else ""),
            path,
            line,
        )


def _path_alternatives(spec: Any) -> tuple[str, ...]:
    """`"$VAR | ~/path"`: the first that applies (a set variable, a path under $HOME, a path)."""
    return tuple(p.strip() for p in spec.split("|") if p.strip())


def _override(raw: Any, path: str, where: tuple[str, int]) -> dict:
    """One grammar `overrides:` entry: a file that changes what the real tool does."""
    owhere = (path, line_of(raw, where[1]))
    if not isinstance(raw, dict) or not {"path", "when", "reason"} <= set(raw):
        raise RulesError("an overrides entry needs 'path', 'when' and 'reason'", *owhere)
    only(raw, ("path", "when", "reason", "unless_env"), owhere)
    for key in ("path", "when", "reason"):
        want_str(raw[key], f"overrides {key}", at(raw, key, owhere), empty=False)
    unless = want_map(raw, "unless_env", "overrides unless_env", owhere)
    for var, value in unless.items():
        want_str(var, "an unless_env variable name", at(unless, var, owhere), empty=False)
        want_str(value, f"unless_env {var}", at(unless, var, owhere))
    test, _, arg = raw["when"].strip().partition(" ")
    if test not in ("exists", "dir", "contains", "section") or (
        test in ("contains", "section")
    ) != bool(arg):
        raise RulesError(
            "overrides 'when' is one of: exists, dir, 'contains TEXT', 'section NAME'", *owhere
        )
    return {
        "path": _path_alternatives(raw["path"]),
        "when": (test, arg.strip().lower() if test == "section" else arg.strip()),
        "unless_env": {k: v.lower() for k, v in unless.items()},
        "reason": raw["reason"],
    }


_GRAMMAR_KEYS = (
    "style",
    "help_flags",
    "flags",
    "local",
    "commands",
    "services",
    "dry_run",
    "negations",
    "prefix_expand",
    "context",
    "plugins_no_flags",
    "early_globals",
    "normalize_underscores",
    "url_path_flags",
    "overrides",
    "alias_file",
    "file_objects",
    "option_tables",
)


def compile_grammar(tool: str, raw: Any, path: str) -> dict:
    where = (path, line_of(raw))
    if not isinstance(raw, dict):
        raise RulesError("grammar must be a mapping", *where)
    only(raw, _GRAMMAR_KEYS, where)
    style = raw.get("style", "cobra")
    if not isinstance(style, str) or style not in STYLES:
        raise RulesError(f"unknown grammar style {style!r} (one of {', '.join(STYLES)})", *where)
    g: dict[str, Any] = {"tool": tool, "style": style}
    g["flags"] = _flag_table(raw.get("flags"), at(raw, "flags", where))
    g["local"] = _flag_table(raw.get("local"), at(raw, "local", where))
    g["help_flags"] = _help_flags(_as_list(raw, "help_flags", where), g["flags"], where)
    commands = _commands(raw.get("commands") or {}, path, key_line(raw, "commands", where[1]))
    for svc in _as_list(raw, "services", where):
        _command_word(svc, path, at(raw, "services", where)[1])
        commands.setdefault(svc, {"name": svc, "any_operation": True})
    g["commands"] = commands
    g["dry_run"] = tuple(_dry_run(item, path, where) for item in _as_list(raw, "dry_run", where))
    neg = _as_map(raw, "negations", where)
    for k, v in neg.items():
        nwhere = at(neg, k, where)
        if (
            not isinstance(k, str)
            or not isinstance(v, list)
            or len(v) != 2
            or not all(isinstance(x, str) for x in v)
        ):
            raise RulesError(f"negation {k!r} must be a list of two strings (flag, value)", *nwhere)
    g["negations"] = {k: (v[0], v[1]) for k, v in neg.items()}
    g["prefix_expand"] = tuple(_strings(raw, "prefix_expand", where))
    g["overrides"] = tuple(_override(o, path, where) for o in _as_list(raw, "overrides", where))
    if raw.get("alias_file") is not None:
        g["alias_file"] = _alias_file(raw["alias_file"], path, at(raw, "alias_file", where))
    for key in ("plugins_no_flags", "early_globals", "normalize_underscores"):
        if raw.get(key) is not None and want_bool(raw[key], key, at(raw, key, where)):
            g[key] = True
    g["url_path_flags"] = tuple(_strings(raw, "url_path_flags", where))
    if raw.get("option_tables") is not None:
        source = raw["option_tables"]
        if source != "aws-cli":
            raise RulesError(
                f"option_tables names where an operation's options come from: aws-cli, not "
                f"{type_name(source)}",
                *at(raw, "option_tables", where),
            )
        g["option_tables"] = source
    if raw.get("file_objects") is not None:
        g["file_objects"] = _file_objects(raw["file_objects"], at(raw, "file_objects", where))
    g["context"] = _context_spec(
        raw.get("context") or {"resolver": "none"}, path, at(raw, "context", where)
    )
    return g


def _as_list(raw: dict, key: str, where: tuple[str, int]) -> list:
    return want_list(raw, key, key, where)


def _as_map(raw: dict, key: str, where: tuple[str, int]) -> dict:
    return want_map(raw, key, key, where)


def _strings(raw: dict, key: str, where: tuple[str, int]) -> list[str]:
    """`raw[key]`: a list of strings (absent: none)."""
    items = _as_list(raw, key, where)
    return want_strs(items, key, at(raw, key, where))


def _scalars(raw: dict, key: str, where: tuple[str, int]) -> list[str]:
    """A list of words, numbers or booleans as the strings a flag's value is compared with
    (YAML reads a bare true as a boolean: it stands for "true")."""
    out: list[str] = []
    for v in _as_list(raw, key, where):
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, (str, int, float)):
            out.append(str(v))
        else:
            raise RulesError(f"{key}: expected words, not {type_name(v)}", *at(raw, key, where))
    return out


def _help_flags(specs: list, flags: dict, where: tuple[str, int]) -> frozenset[str]:
    help_flags: set[str] = set()
    for spec in specs:
        names = _spellings(want_str(spec, "a help flag spelling", where), where)
        canon = max(names, key=len)
        help_flags.add(canon)
        for name in names:  # a help flag is a bool the tool knows everywhere
            flags.setdefault(name, (canon, False))
    return frozenset(help_flags)


def _dry_run(item: Any, path: str, where: tuple[str, int]) -> dict:
    iwhere = (path, line_of(item, where[1]))
    if not isinstance(item, dict) or "flag" not in item or "values" not in item:
        raise RulesError("a dry_run entry needs 'flag' and 'values'", *iwhere)
    only(item, ("flag", "values", "verbs", "unless"), iwhere)
    flag = want_str(item["flag"], "dry_run flag", at(item, "flag", iwhere), empty=False)
    return {
        "flag": flag,
        "values": tuple(_scalars(item, "values", iwhere)),
        "verbs": tuple(_strings(item, "verbs", iwhere) or ("*",)),
        "unless": tuple(_strings(item, "unless", iwhere)),
    }


def _file_objects(raw: Any, where: tuple[str, int]) -> dict:
    """`file_objects: {filename: --filename, kustomize: --kustomize, recursive: --recursive,
    recursive_default: [wait]}`: the flags that name files of objects (rules' file_kinds)."""
    if not isinstance(raw, dict):
        raise RulesError(f"file_objects must be a mapping, not {type_name(raw)}", *where)
    where = (where[0], line_of(raw, where[1]))
    only(raw, ("filename", "kustomize", "recursive", "recursive_default"), where)
    out: dict[str, Any] = {}
    for key in ("filename", "kustomize", "recursive"):
        value = raw.get(key, f"--{key}")
        out[key] = want_str(value, f"file_objects {key}", at(raw, key, where), empty=False)
    out["recursive_default"] = tuple(_strings(raw, "recursive_default", where))
    return out


def _alias_file(af: Any, path: str, where: tuple[str, int]) -> dict:
    awhere = (path, line_of(af, where[1]))
    if not isinstance(af, dict) or "path" not in af or "section" not in af:
        raise RulesError("alias_file needs 'path' and 'section'", *awhere)
    only(af, ("path", "section"), awhere)
    file = want_str(af["path"], "alias_file path", at(af, "path", awhere), empty=False)
    section = want_str(af["section"], "alias_file section", at(af, "section", awhere), empty=False)
    return {"path": _path_alternatives(file), "section": section.lower()}


def _context_spec(ctx: Any, path: str, where: tuple[str, int]) -> dict:
    cwhere = (path, line_of(ctx, where[1]))
    if not isinstance(ctx, dict):
        raise RulesError("context must be a mapping with a 'resolver'", *cwhere)
    only(ctx, ("resolver", "flags", "env", "defaults"), cwhere)
    resolver = ctx.get("resolver", "none")
    if not isinstance(resolver, str) or resolver not in RESOLVERS:
        raise RulesError(
            f"unknown context resolver {resolver!r} (one of {', '.join(RESOLVERS)})",
            *at(ctx, "resolver", cwhere),
        )
    out: dict[str, Any] = {"resolver": resolver}
    for key, what in (("flags", "a flag"), ("env", "variable names"), ("defaults", "a value")):
        table = _as_map(ctx, key, cwhere)
        for name, value in table.items():
            kwhere = at(table, name, cwhere)
            want_str(name, f"a context {key} key", kwhere, empty=False)
            if key == "env":
                want_strs(value, f"context env {name}", kwhere)
            elif not (key == "defaults" and _is_number(value)):
                want_str(value, f"context {key} {name} ({what})", kwhere)
        out[key] = {
            k: (list(want_strs(v, k, cwhere)) if key == "env" else str(v)) for k, v in table.items()
        }
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
