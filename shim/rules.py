"""commands.d YAML -> validated -> compiled (cold: the only module that imports yaml).

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
import shlex
from typing import Any

import yaml

from shim.argv import ERROR, HELP, OK, UNKNOWN, parse_argv
from shim.compiled import FORMAT
from shim.decide import rule_matches
from shim.errors import RulesError

DECISIONS = ("allow", "ask", "deny")
KINDS = (OK, HELP, UNKNOWN, ERROR)
STYLES = ("cobra", "aws", "terraform")
RESOLVERS = ("kube", "helm", "aws", "terraform", "generic", "none")


# --------------------------------------------------------------------------- YAML with lines


class _LineDict(dict):
    """A mapping that remembers its line and the line of each key."""

    line = 0
    key_lines: dict[Any, int] = {}


class _LineList(list):
    """A list that remembers its line and the line of each item."""

    line = 0
    item_lines: list[int] = []


# libyaml's parser when pyyaml has it (about five times faster); the constructors below, which
# keep line numbers, are Python either way
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise RulesError(f"duplicate key {key!r}", "", key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read: {exc}", path) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except RulesError as exc:
        raise RulesError(exc.message.split(": ", 1)[-1], path, exc.line) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise RulesError(f"YAML: {exc.problem}", path, line) from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"YAML: {exc}", path) from exc


def _line(obj: Any, default: int = 1) -> int:
    return getattr(obj, "line", 0) or default


def _key_line(obj: Any, key: Any, default: int = 1) -> int:
    """The line of `key` in a mapping read by load_yaml, else the mapping's own line."""
    lines = getattr(obj, "key_lines", None) or {}
    return lines.get(key) or _line(obj, default)


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


# --------------------------------------------------------------------------- grammar


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
    _only(raw, ("value", "bool"), where)
    table: dict[str, tuple[str, bool]] = {}
    for key, takes in (("value", True), ("bool", False)):
        for spec in raw.get(key) or ():
            if not isinstance(spec, str):
                raise RulesError(
                    f"flag spelling must be a string: {spec!r}", where[0], _line(raw, where[1])
                )
            names = _spellings(spec, (where[0], _line(raw, where[1])))
            canon = max(names, key=len)
            for name in names:
                table[name] = (canon, takes)
    return table


def _only(raw: dict, allowed: tuple[str, ...], where: tuple[str, int]) -> None:
    for key in raw:
        if key not in allowed:
            raise RulesError(
                f"unknown key {key!r} (expected one of: {', '.join(allowed)})",
                where[0],
                _key_line(raw, key, where[1]),
            )


def _command_node(name: str, raw: Any, path: str) -> dict:
    raw = raw if raw is not None else {}
    where = (path, _line(raw))
    if not isinstance(raw, dict):
        raise RulesError(f"command {name!r} must be a mapping (or empty)", *where)
    _only(
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
            "commands must be a mapping of command name to its definition", path, _line(raw)
        )
    out: dict[str, dict] = {}
    for name, sub in raw.items():
        line = _key_line(raw, name)
        _command_word(name, path, line)
        node = _command_node(str(name), sub, path)
        out[str(name)] = node
        aliases = (sub or {}).get("aliases") if isinstance(sub, dict) else None
        if aliases is not None and not isinstance(aliases, list):
            raise RulesError(f"aliases of {name!r} must be a list", path, line)
        for alias in aliases or ():
            _command_word(alias, path, _line(aliases, line))
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
    owhere = (path, _line(raw, where[1]))
    if not isinstance(raw, dict) or not {"path", "when", "reason"} <= set(raw):
        raise RulesError("an overrides entry needs 'path', 'when' and 'reason'", *owhere)
    _only(raw, ("path", "when", "reason", "unless_env"), owhere)
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


def compile_grammar(tool: str, raw: Any, path: str) -> dict:
    where = (path, _line(raw))
    if not isinstance(raw, dict):
        raise RulesError("grammar must be a mapping", *where)
    _only(
        raw,
        (
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
        ),
        where,
    )
    style = raw.get("style", "cobra")
    if style not in STYLES:
        raise RulesError(f"unknown grammar style {style!r} (one of {', '.join(STYLES)})", *where)
    g: dict[str, Any] = {"tool": tool, "style": style}
    g["flags"] = _flag_table(raw.get("flags"), where)
    g["local"] = _flag_table(raw.get("local"), where)
    help_flags: set[str] = set()
    for spec in raw.get("help_flags") or ():
        names = _spellings(spec, where)
        canon = max(names, key=len)
        help_flags.add(canon)
        for name in names:  # a help flag is a bool the tool knows everywhere
            g["flags"].setdefault(name, (canon, False))
    g["help_flags"] = frozenset(help_flags)
    commands = _commands(raw.get("commands") or {}, path)
    for svc in raw.get("services") or ():
        commands.setdefault(str(svc), {"name": str(svc), "any_operation": True})
    g["commands"] = commands
    dry: list[dict] = []
    for item in raw.get("dry_run") or ():
        iwhere = (path, _line(item, where[1]))
        if not isinstance(item, dict) or "flag" not in item or "values" not in item:
            raise RulesError("a dry_run entry needs 'flag' and 'values'", *iwhere)
        _only(item, ("flag", "values", "verbs", "unless"), iwhere)
        dry.append(
            {
                "flag": str(item["flag"]),
                "values": tuple(str(v) for v in item["values"]),
                "verbs": tuple(str(v) for v in (item.get("verbs") or ("*",))),
                "unless": tuple(str(v) for v in (item.get("unless") or ())),
            }
        )
    g["dry_run"] = tuple(dry)
    neg = raw.get("negations") or {}
    g["negations"] = {str(k): (str(v[0]), str(v[1])) for k, v in neg.items()}
    g["prefix_expand"] = tuple(str(x) for x in raw.get("prefix_expand") or ())
    g["overrides"] = tuple(_override(o, path, where) for o in raw.get("overrides") or ())
    if raw.get("alias_file") is not None:
        af = raw["alias_file"]
        awhere = (path, _line(af, where[1]))
        if not isinstance(af, dict) or "path" not in af or "section" not in af:
            raise RulesError("alias_file needs 'path' and 'section'", *awhere)
        _only(af, ("path", "section"), awhere)
        g["alias_file"] = {
            "path": _path_alternatives(af["path"]),
            "section": str(af["section"]).lower(),
        }
    if raw.get("plugins_no_flags"):
        g["plugins_no_flags"] = True
    if raw.get("early_globals"):
        g["early_globals"] = True
    if raw.get("normalize_underscores"):
        g["normalize_underscores"] = True
    g["url_path_flags"] = tuple(str(f) for f in raw.get("url_path_flags") or ())
    ctx = raw.get("context") or {"resolver": "none"}
    cwhere = (path, _line(ctx, where[1]))
    _only(ctx, ("resolver", "flags", "env", "defaults"), cwhere)
    if ctx.get("resolver", "none") not in RESOLVERS:
        raise RulesError(
            f"unknown context resolver {ctx.get('resolver')!r} (one of {', '.join(RESOLVERS)})",
            *cwhere,
        )
    g["context"] = {
        "resolver": str(ctx.get("resolver", "none")),
        "flags": {str(k): str(v) for k, v in (ctx.get("flags") or {}).items()},
        "env": {
            str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in (ctx.get("env") or {}).items()
        },
        "defaults": {str(k): str(v) for k, v in (ctx.get("defaults") or {}).items()},
    }
    return g


# --------------------------------------------------------------------------- rules

_MATCH_KEYS = (
    "kind",
    "verb",
    "dry_run",
    "flags",
    "args",
    "nargs",
    "any_arg",
    "no_arg",
    "ignore_case",
    "context",
    "agent",
    "env",
    "risk",
)
_RULE_KEYS = (
    "id",
    "decision",
    "reason",
    "hint",
    "timeout",
    "match",
    "examples",
    "preview",
    "risk",
    "require_reason",
)
RISK_LEVELS = ("low", "medium", "high", "critical")  # shim.risk.LEVELS


def _is_star_literal_star(g: str) -> bool:
    mid = g[1:-1]
    return len(g) > 2 and g[0] == "*" and g[-1] == "*" and "*" not in mid and "?" not in mid


def _is_star_literal(g: str) -> bool:
    tail = g[1:]
    return len(g) > 1 and g[0] == "*" and "*" not in tail and "?" not in tail


def _globs(value: Any, where: tuple[str, int], what: str) -> tuple[str, ...]:
    if isinstance(value, (str, int, float, bool)) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise RulesError(f"{what}: expected a string or a list of strings", *where)


def _condition(
    value: Any, where: tuple[str, int], what: str, allow_presence: bool
) -> tuple[str, tuple[str, ...]]:
    if allow_presence and value in ("present", "absent"):
        return str(value), ()
    if isinstance(value, dict):
        _only(value, ("not", "any", "except", "present"), where)
        if "except" in value and "any" not in value:
            raise RulesError(f"{what}: 'except' goes with 'any'", *where)
        if "not" in value:
            op = "present_not" if value.get("present") else "not"
            return op, _globs(value["not"], where, what)
        if "any" in value:
            if "except" in value:
                # some value matches `any` and none of `except`: kept as (any..., NUL,
                # except...); argv strings cannot hold a NUL, so no pattern is one
                keep = _globs(value["any"], where, what)
                skip = _globs(value["except"], where, what)
                return "any_except", keep + ("\x00",) + skip
            return "any", _globs(value["any"], where, what)
        if allow_presence and isinstance(value.get("present"), bool):
            return ("present" if value["present"] else "absent"), ()
        raise RulesError(f"{what}: a mapping condition needs 'not', 'any' or 'present'", *where)
    return "last" if allow_presence else "glob", _globs(value, where, what)


def _nargs(value: Any, where: tuple[str, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    text = str(value).replace(" ", "")
    try:
        if text.startswith(">="):
            return int(text[2:]), -1
        if text.startswith("<="):
            return 0, int(text[2:])
        if "-" in text:
            lo, hi = text.split("-", 1)
            return int(lo), int(hi)
        return int(text), int(text)
    except ValueError as exc:
        raise RulesError(
            f"nargs: expected N, 'N-M', '>=N' or '<=N', got {value!r}", *where
        ) from exc


def compile_rule(raw: Any, tool: str, path: str, index: int) -> dict:
    line = _line(raw)
    where = (path, line)
    if not isinstance(raw, dict):
        raise RulesError(f"rule #{index + 1} must be a mapping", *where)
    _only(raw, _RULE_KEYS, where)
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RulesError("every rule needs an 'id' (for example kubectl/read)", *where)
    decision = raw.get("decision")
    if decision not in DECISIONS:
        where = (path, _key_line(raw, "decision", line))
        raise RulesError(
            f"rule {rid}: decision must be one of allow, ask, deny (got {decision!r})", *where
        )
    if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
        raise RulesError(
            f"rule {rid}: a 'reason' is required (the agent and the approver read it)", *where
        )
    rule: dict[str, Any] = {
        "id": rid,
        "decision": decision,
        "reason": raw["reason"].strip(),
        "hint": str(raw.get("hint") or "").strip(),
        "source": f"{path}:{line}",
        "tool": tool,
    }
    if raw.get("timeout") is not None:
        try:
            rule["timeout"] = int(raw["timeout"])
        except (TypeError, ValueError) as exc:
            raise RulesError(f"rule {rid}: timeout must be whole seconds", *where) from exc
    if raw.get("preview") is not None:
        rule["preview"] = _preview_spec(
            raw["preview"], rid, (path, _key_line(raw, "preview", line))
        )
    if raw.get("risk") is not None:
        if raw["risk"] not in RISK_LEVELS:
            raise RulesError(
                f"rule {rid}: risk must be one of {', '.join(RISK_LEVELS)} (got {raw['risk']!r})",
                path,
                _key_line(raw, "risk", line),
            )
        rule["risk"] = raw["risk"]
    if raw.get("require_reason") is not None:
        if not isinstance(raw["require_reason"], bool):
            raise RulesError(f"rule {rid}: require_reason must be true or false", *where)
        rule["require_reason"] = raw["require_reason"]
    m = raw.get("match") or {}
    alts = m if isinstance(m, list) else [m]
    if not alts:
        raise RulesError(f"rule {rid}: match must not be an empty list", *where)
    rule["alts"] = tuple(_compile_match(a, rid, path, line) for a in alts)
    ex = raw.get("examples")
    rule["_examples"] = ex
    return rule


def _preview_spec(raw: Any, rid: str, where: tuple[str, int]) -> dict:
    """`preview: {kind: NAME, timeout: SECONDS}` (kinds: shim.preview.kinds())."""
    from shim.preview import MAX_TIMEOUT_S, kinds

    if not isinstance(raw, dict):
        raise RulesError(f"rule {rid}: preview must be a mapping {{kind, timeout}}", *where)
    _only(raw, ("kind", "timeout"), where)
    kind = raw.get("kind")
    if kind not in kinds():
        raise RulesError(
            f"rule {rid}: preview kind must be one of {', '.join(kinds())} (got {kind!r})", *where
        )
    spec: dict[str, Any] = {"kind": kind}
    if raw.get("timeout") is not None:
        timeout = raw["timeout"]
        if (
            not isinstance(timeout, int)
            or isinstance(timeout, bool)
            or not 1 <= timeout <= MAX_TIMEOUT_S
        ):
            raise RulesError(
                f"rule {rid}: preview timeout must be whole seconds, 1 to {MAX_TIMEOUT_S}", *where
            )
        spec["timeout"] = timeout
    return spec


def _risk_levels(value: Any, rid: str, where: tuple[str, int]) -> tuple[str, ...]:
    """`risk: ">=high"`, `risk: critical` or `risk: [high, critical]` -> the levels that match.

    Risk exists only for held calls, once their preview ran: a rule with a risk condition is
    decided again then (shim/ask.py) and never matches before."""
    levels = RISK_LEVELS
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        text = str(item).replace(" ", "")
        if text.startswith(">="):
            name = text[2:]
            if name not in levels:
                break
            out.extend(levels[levels.index(name) :])
        elif text in levels:
            out.append(text)
        else:
            break
    else:
        return tuple(dict.fromkeys(out))
    raise RulesError(
        f"rule {rid}: risk must be a level ({', '.join(levels)}), '>=LEVEL', or a list of levels",
        *where,
    )


def _compile_match(m: Any, rid: str, path: str, line: int) -> dict:
    """One alternative of a rule's `match`: every condition in it must hold."""
    rule: dict[str, Any] = {}
    mwhere = (path, _line(m, line))
    if not isinstance(m, dict):
        raise RulesError(f"rule {rid}: match must be a mapping", *mwhere)
    _only(m, _MATCH_KEYS, mwhere)
    if "risk" in m:
        rule["risk_in"] = _risk_levels(m["risk"], rid, mwhere)
    kinds = _globs(m.get("kind", "ok"), mwhere, "kind")
    for k in kinds:
        if k not in KINDS:
            raise RulesError(
                f"rule {rid}: kind must be among {', '.join(KINDS)} (got {k!r})", *mwhere
            )
    rule["kind"] = kinds
    if "verb" in m:
        verbs = _globs(m["verb"], mwhere, "verb")
        rule["verb"] = verbs
        # the same, split for speed: plain verb paths are a set lookup (decide uses these
        # when present and falls back to "verb" for rules compiled before they existed)
        rule["verb_set"] = frozenset(v for v in verbs if "*" not in v and "?" not in v)
        rule["verb_globs"] = tuple(v for v in verbs if "*" in v or "?" in v)
        # and the globs whose first word is literal, by that word: `sts assume-role*` is only
        # tried on sts calls
        first: dict[str, list[str]] = {}
        anywhere: list[str] = []
        for g in rule["verb_globs"]:
            head, sep, _ = g.partition(" ")
            if sep and "*" not in head and "?" not in head:
                first.setdefault(head, []).append(g)
            else:
                anywhere.append(g)
        rule["verb_globs_first"] = {k: tuple(v) for k, v in first.items()}
        # `*MID*` is "MID occurs", `*TAIL` is "ends with TAIL" (aws: `* create-*`)
        contains = [g[1:-1] for g in anywhere if _is_star_literal_star(g)]
        suffixes = [g[1:] for g in anywhere if _is_star_literal(g)]
        rule["verb_contains"] = tuple(contains)
        rule["verb_suffixes"] = tuple(suffixes)
        rule["verb_globs_any"] = tuple(
            g for g in anywhere if not _is_star_literal_star(g) and not _is_star_literal(g)
        )
    if "dry_run" in m:
        if not isinstance(m["dry_run"], bool):
            raise RulesError(f"rule {rid}: dry_run must be true or false", *mwhere)
        rule["dry_run"] = m["dry_run"]
    ic = bool(m.get("ignore_case", False))
    rule["ignore_case"] = ic
    flags = []
    for name, cond in (m.get("flags") or {}).items():
        op, pats = _condition(cond, mwhere, f"flag {name}", True)
        flags.append((str(name), op, tuple(p.lower() for p in pats) if ic else pats))
    rule["flags"] = tuple(flags)
    args = []
    for idx, cond in (m.get("args") or {}).items():
        try:
            i = int(idx)
        except ValueError as exc:
            raise RulesError(f"rule {rid}: args keys are positions (0, 1, -1)", *mwhere) from exc
        op, pats = _condition(cond, mwhere, f"arg {idx}", False)
        if op == "any_except":
            raise RulesError(f"rule {rid}: 'except' works on flags and any_arg", *mwhere)
        if op == "any":
            op = "glob"
        args.append((i, op, tuple(p.lower() for p in pats) if ic else pats))
    rule["args"] = tuple(args)
    if "nargs" in m:
        rule["nargs"] = _nargs(m["nargs"], mwhere)
    for key in ("any_arg", "no_arg"):
        if key in m:
            raw = m[key]
            if key == "any_arg" and isinstance(raw, dict):
                # {any: [..], except: [..]}: some word matches `any` and none of `except`
                _only(raw, ("any", "except"), mwhere)
                if "any" not in raw:
                    raise RulesError(f"rule {rid}: any_arg as a mapping needs 'any'", *mwhere)
                skip = _globs(raw.get("except", []), mwhere, "any_arg except")
                rule["any_arg_except"] = tuple(p.lower() for p in skip) if ic else skip
                raw = raw["any"]
            pats = _globs(raw, mwhere, key)
            rule[key] = tuple(p.lower() for p in pats) if ic else pats
    ctx = []
    for key, cond in (m.get("context") or {}).items():
        op, pats = _condition(cond, mwhere, f"context {key}", False)
        if op == "any_except":
            raise RulesError(f"rule {rid}: 'except' works on flags and any_arg", *mwhere)
        if op == "any":
            op = "glob"
        ctx.append((str(key), op, pats))
    rule["context"] = tuple(ctx)
    if "agent" in m:
        rule["agent"] = _globs(m["agent"], mwhere, "agent")
    env: list[tuple[str, str, tuple[str, ...]]] = []
    for var, cond in (m.get("env") or {}).items():
        if cond in ("present", "absent"):
            env.append((str(var), str(cond), ()))
        else:
            env.append((str(var), "glob", _globs(cond, mwhere, f"env {var}")))
    rule["env"] = tuple(env)
    return rule


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- examples


class Example:
    """One example call of a rule: argv plus the world it is checked in."""

    def __init__(self, raw: Any, where: tuple[str, int]) -> None:
        if isinstance(raw, str):
            raw = {"argv": raw}
        if not isinstance(raw, dict) or "argv" not in raw:
            raise RulesError(
                "an example is a command line string or {argv:, context:, env:, agent:}", *where
            )
        _only(raw, ("argv", "context", "env", "agent", "risk"), where)
        argv = raw["argv"]
        try:
            self.argv = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
        except ValueError as exc:
            raise RulesError(f"example does not split like a shell line: {argv!r}", *where) from exc
        self.context = {str(k): str(v) for k, v in (raw.get("context") or {}).items()}
        self.env = {str(k): str(v) for k, v in (raw.get("env") or {}).items()}
        self.agent = str(raw.get("agent", "agent"))
        self.risk = str(raw["risk"]) if raw.get("risk") is not None else None
        self.line = _line(raw, where[1])


def _examples_of(ex: dict, key: str, path: str, line: int) -> list[Example]:
    items = ex.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RulesError(f"examples: {key} must be a list", path, _key_line(ex, key, line))
    lines = getattr(items, "item_lines", None) or []
    out = []
    for k, item in enumerate(items):
        at = lines[k] if k < len(lines) else _key_line(ex, key, line)
        out.append(Example(item, (path, at)))
    return out


def rule_examples(rule: dict, path: str) -> tuple[list[Example], list[Example]]:
    ex = rule.get("_examples")
    line = int(rule["source"].rsplit(":", 1)[1])
    if ex is None:
        raise RulesError(
            f"rule {rule['id']}: 'examples' with 'match' (and ideally 'no_match') are required",
            path,
            line,
        )
    if not isinstance(ex, dict):
        raise RulesError(
            f"rule {rule['id']}: examples must be a mapping with match/no_match", path, line
        )
    _only(ex, ("match", "no_match"), (path, _line(ex, line)))
    pos = _examples_of(ex, "match", path, line)
    neg = _examples_of(ex, "no_match", path, line)
    if not pos:
        raise RulesError(
            f"rule {rule['id']}: at least one 'match' example is required", path, _line(ex, line)
        )
    return pos, neg


def check_examples(tool: str, grammar: dict, rules: list[dict]) -> None:
    """Every example must (not) match its rule, or the layer is refused with file:line."""
    for rule in rules:
        path = rule["source"].rsplit(":", 1)[0]
        pos, neg = rule_examples(rule, path)
        for want, examples in ((True, pos), (False, neg)):
            for ex in examples:
                inv = parse_argv(grammar, ex.argv, ex.env)
                got = rule_matches(rule, inv, ex.context, ex.agent, ex.env, ex.risk)
                if got != want:
                    how = "should match but does not" if want else "should not match but does"
                    raise RulesError(
                        f"rule {rule['id']}: example {' '.join(ex.argv)!r} {how} "
                        f"(parsed as verb {' '.join(inv.verb) or '-'}, kind {inv.kind}"
                        f"{', ' + inv.note if inv.note else ''})",
                        path,
                        ex.line,
                    )


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
        _only(raw, ("tool", "grammar", "rules", "version"), (path, 1))
        stem = name.rsplit(".", 1)[0]
        tool = str(raw.get("tool") or stem)
        if "grammar" in raw and tool != stem:
            raise RulesError(f"a grammar for {tool!r} must live in {tool}.yaml", path, _line(raw))
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
                _line(raw),
            )
        entry["files"].append(path)
        rules_raw = raw.get("rules") or []
        if not isinstance(rules_raw, list):
            raise RulesError("'rules' must be a list", path, _line(rules_raw, _line(raw)))
        for i, r in enumerate(rules_raw):
            rule = compile_rule(r, tool, path, i)
            if rule["id"] in seen:
                raise RulesError(
                    f"rule id {rule['id']!r} is already defined at {seen[rule['id']]}",
                    path,
                    _line(r),
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
