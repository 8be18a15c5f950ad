"""A tool's `grammar:` section -> the dict the parsers read (cold).

Flag tables (every spelling -> canonical name, takes a value), nested commands and aliases,
dry-run spellings, the alias file, override files and the context resolver. The schema is in
commands.d/README.md.
"""

from __future__ import annotations

from typing import Any

from shim.errors import RulesError
from shim.rules.yamlfile import key_line, line_of, only

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
        raise RulesError("flags must be a mapping with 'value' and/or 'bool' lists", *where)
    only(raw, ("value", "bool"), where)
    table: dict[str, tuple[str, bool]] = {}
    for key, takes in (("value", True), ("bool", False)):
        for spec in raw.get(key) or ():
            if not isinstance(spec, str):
                raise RulesError(
                    f"flag spelling must be a string: {spec!r}", where[0], line_of(raw, where[1])
                )
            names = _spellings(spec, (where[0], line_of(raw, where[1])))
            canon = max(names, key=len)
            for name in names:
                table[name] = (canon, takes)
    return table


def _command_node(name: str, raw: Any, path: str) -> dict:
    raw = raw if raw is not None else {}
    where = (path, line_of(raw))
    if not isinstance(raw, dict):
        raise RulesError(f"command {name!r} must be a mapping (or empty)", *where)
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
        node["flags"] = _flag_table(raw["flags"], where)
    for key in (
        "subcommand_required",
        "plugin_subcommands",
        "passthrough",
        "help_verb",
        "any_operation",
    ):
        if raw.get(key):
            node[key] = True
    if raw.get("min_args") is not None:
        node["min_args"] = int(raw["min_args"])
    if raw.get("commands") is not None:
        node["commands"] = _commands(raw["commands"], path)
    return node


def _commands(raw: Any, path: str) -> dict:
    if not isinstance(raw, dict):
        raise RulesError(
            "commands must be a mapping of command name to its definition", path, line_of(raw)
        )
    out: dict[str, dict] = {}
    for name, sub in raw.items():
        line = key_line(raw, name)
        _command_word(name, path, line)
        node = _command_node(str(name), sub, path)
        out[str(name)] = node
        aliases = (sub or {}).get("aliases") if isinstance(sub, dict) else None
        if aliases is not None and not isinstance(aliases, list):
            raise RulesError(f"aliases of {name!r} must be a list", path, line)
        for alias in aliases or ():
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
    return tuple(p.strip() for p in str(spec).split("|") if p.strip())


def _override(raw: Any, path: str, where: tuple[str, int]) -> dict:
    """One grammar `overrides:` entry: a file that changes what the real tool does."""
    owhere = (path, line_of(raw, where[1]))
    if not isinstance(raw, dict) or not {"path", "when", "reason"} <= set(raw):
        raise RulesError("an overrides entry needs 'path', 'when' and 'reason'", *owhere)
    only(raw, ("path", "when", "reason", "unless_env"), owhere)
    test, _, arg = str(raw["when"]).strip().partition(" ")
    if test not in ("exists", "dir", "contains", "section") or (
        test in ("contains", "section")
    ) != bool(arg):
        raise RulesError(
            "overrides 'when' is one of: exists, dir, 'contains TEXT', 'section NAME'", *owhere
        )
    return {
        "path": _path_alternatives(raw["path"]),
        "when": (test, arg.strip().lower() if test == "section" else arg.strip()),
        "unless_env": {str(k): str(v).lower() for k, v in (raw.get("unless_env") or {}).items()},
        "reason": str(raw["reason"]),
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
)


def compile_grammar(tool: str, raw: Any, path: str) -> dict:
    where = (path, line_of(raw))
    if not isinstance(raw, dict):
        raise RulesError("grammar must be a mapping", *where)
    only(raw, _GRAMMAR_KEYS, where)
    style = raw.get("style", "cobra")
    if style not in STYLES:
        raise RulesError(f"unknown grammar style {style!r} (one of {', '.join(STYLES)})", *where)
    g: dict[str, Any] = {"tool": tool, "style": style}
    g["flags"] = _flag_table(raw.get("flags"), where)
    g["local"] = _flag_table(raw.get("local"), where)
    g["help_flags"] = _help_flags(_as_list(raw, "help_flags", where), g["flags"], where)
    commands = _commands(raw.get("commands") or {}, path)
    for svc in _as_list(raw, "services", where):
        commands.setdefault(str(svc), {"name": str(svc), "any_operation": True})
    g["commands"] = commands
    g["dry_run"] = tuple(_dry_run(item, path, where) for item in _as_list(raw, "dry_run", where))
    neg = _as_map(raw, "negations", where)
    for k, v in neg.items():
        if not isinstance(v, list) or len(v) != 2:
            raise RulesError(f"negation {k!r} must be a list of two flags", *where)
    g["negations"] = {str(k): (str(v[0]), str(v[1])) for k, v in neg.items()}
    g["prefix_expand"] = tuple(str(x) for x in _as_list(raw, "prefix_expand", where))
    g["overrides"] = tuple(_override(o, path, where) for o in _as_list(raw, "overrides", where))
    if raw.get("alias_file") is not None:
        g["alias_file"] = _alias_file(raw["alias_file"], path, where)
    for key in ("plugins_no_flags", "early_globals", "normalize_underscores"):
        if raw.get(key):
            g[key] = True
    g["url_path_flags"] = tuple(str(f) for f in _as_list(raw, "url_path_flags", where))
    g["context"] = _context_spec(raw.get("context") or {"resolver": "none"}, path, where)
    return g


def _as_list(raw: dict, key: str, where: tuple[str, int]) -> list:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RulesError(f"{key} must be a list", where[0], key_line(raw, key, where[1]))
    return value


def _as_map(raw: dict, key: str, where: tuple[str, int]) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(f"{key} must be a mapping", where[0], key_line(raw, key, where[1]))
    return value


def _help_flags(specs: list, flags: dict, where: tuple[str, int]) -> frozenset[str]:
    help_flags: set[str] = set()
    for spec in specs:
        names = _spellings(spec, where)
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
    for key in ("values", "verbs", "unless"):
        _as_list(item, key, iwhere)
    return {
        "flag": str(item["flag"]),
        "values": tuple(str(v) for v in item["values"]),
        "verbs": tuple(str(v) for v in (item.get("verbs") or ("*",))),
        "unless": tuple(str(v) for v in (item.get("unless") or ())),
    }


def _alias_file(af: Any, path: str, where: tuple[str, int]) -> dict:
    awhere = (path, line_of(af, where[1]))
    if not isinstance(af, dict) or "path" not in af or "section" not in af:
        raise RulesError("alias_file needs 'path' and 'section'", *awhere)
    only(af, ("path", "section"), awhere)
    return {"path": _path_alternatives(af["path"]), "section": str(af["section"]).lower()}


def _context_spec(ctx: Any, path: str, where: tuple[str, int]) -> dict:
    cwhere = (path, line_of(ctx, where[1]))
    if not isinstance(ctx, dict):
        raise RulesError("context must be a mapping with a 'resolver'", *cwhere)
    only(ctx, ("resolver", "flags", "env", "defaults"), cwhere)
    if ctx.get("resolver", "none") not in RESOLVERS:
        raise RulesError(
            f"unknown context resolver {ctx.get('resolver')!r} (one of {', '.join(RESOLVERS)})",
            *cwhere,
        )
    return {
        "resolver": str(ctx.get("resolver", "none")),
        "flags": {str(k): str(v) for k, v in _as_map(ctx, "flags", cwhere).items()},
        "env": {
            str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in _as_map(ctx, "env", cwhere).items()
        },
        "defaults": {str(k): str(v) for k, v in _as_map(ctx, "defaults", cwhere).items()},
    }
