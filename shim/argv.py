"""argv + compiled grammar -> Invocation (HOT, pure: no IO, stdlib only).

Three parsing styles cover the four CLIs (reference/cli-grammars.md):
- "cobra" (kubectl, helm): pflag spellings, global flags before or after the verb, nested
  verbs, `stripFlags` rules for flags before the verb, `--` ends options.
- "aws": argparse in three stages; global options anywhere and by unique prefix; service,
  operation, then parameters (a parameter takes every value up to the next option).
- "terraform": Go `flag`: `-flag` == `--flag`, `-chdir=` before the subcommand, parsing stops
  at the first positional, `TF_CLI_ARGS[_cmd]` inserted after the subcommand.

A grammar is a plain dict (see shim/rules.py for the schema it is compiled from). Flag tables
map every spelling to `(canonical name, takes_value)`.
"""

from __future__ import annotations

OK = "ok"
HELP = "help"
UNKNOWN = "unknown"
ERROR = "error"


class Invocation:
    """One call as the real CLI would read it. Treat as immutable."""

    __slots__ = (
        "tool",
        "argv",
        "verb",
        "kind",
        "note",
        "flags",
        "args",
        "words",
        "rest",
        "dry_run",
        "unknown_flags",
    )

    def __init__(
        self,
        tool: str,
        argv: tuple[str, ...],
        verb: tuple[str, ...],
        kind: str,
        note: str,
        flags: dict[str, list[str]],
        args: tuple[str, ...],
        words: tuple[str, ...],
        rest: tuple[str, ...],
        dry_run: bool,
        unknown_flags: tuple[str, ...],
    ) -> None:
        self.tool = tool
        self.argv = argv
        self.verb = verb  # canonical verb path, e.g. ("config", "view") or ("ec2", "describe-vpcs")
        self.kind = kind  # ok | help | unknown | error
        self.note = note  # why it is unknown / an error
        self.flags = flags  # canonical flag -> every value in order ("true"/"false" for bools)
        self.args = args  # positionals before `--`
        self.words = words  # every bare word after the verb (positionals + values of unknown flags)
        self.rest = rest  # after `--`, unparsed
        self.dry_run = dry_run
        self.unknown_flags = unknown_flags

    def flag(self, name: str) -> str | None:
        """The last value given for a canonical flag (last one wins), or None."""
        vals = self.flags.get(name)
        return vals[-1] if vals else None

    def as_dict(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "verb": list(self.verb),
            "kind": self.kind,
            "note": self.note,
            "flags": {k: list(v) for k, v in self.flags.items()},
            "args": list(self.args),
            "rest": list(self.rest),
            "dry_run": self.dry_run,
        }


class _State:
    __slots__ = ("flags", "args", "words", "rest", "unknown", "error", "help")

    def __init__(self) -> None:
        self.flags: dict[str, list[str]] = {}
        self.args: list[str] = []
        self.words: list[str] = []
        self.rest: list[str] = []
        self.unknown: list[str] = []
        self.error = ""
        self.help = False

    def add(self, name: str, value: str) -> None:
        vals = self.flags.get(name)
        if vals is None:
            self.flags[name] = [value]
        else:
            vals.append(value)


def parse_argv(
    grammar: dict, argv: list[str] | tuple[str, ...], env: dict[str, str] | None = None
) -> Invocation:
    """Parse `argv` (without the program name) the way the tool described by `grammar` would."""
    style = grammar.get("style", "cobra")
    argv = tuple(argv)
    if style == "aws":
        verb, kind, note, st = _parse_aws(grammar, argv)
    elif style == "terraform":
        verb, kind, note, st = _parse_terraform(grammar, argv, env or {})
    else:
        verb, kind, note, st = _parse_cobra(grammar, argv)
    if kind == OK and st.error:
        kind, note = ERROR, st.error
    if kind == OK and st.help:
        kind = HELP
    dry = kind == OK and _is_dry_run(grammar, verb, st.flags)
    return Invocation(
        grammar.get("tool", ""),
        argv,
        tuple(verb),
        kind,
        note,
        st.flags,
        tuple(st.args),
        tuple(st.words),
        tuple(st.rest),
        dry,
        tuple(st.unknown),
    )


# --------------------------------------------------------------------------- helpers


def _lookup(tables: tuple[dict, ...], name: str) -> tuple[str, bool] | None:
    for table in tables:
        hit = table.get(name)
        if hit is not None:
            return hit
    return None


def _child(node: dict, word: str) -> dict | None:
    cmds = node.get("commands")
    if not cmds:
        return None
    return cmds.get(word)


def _node_tables(grammar: dict, node: dict) -> tuple[dict, ...]:
    """Flag tables in force at `node`: its own, the tool-wide local table, the globals."""
    own = node.get("flags") or {}
    return (own, grammar.get("flags") or {}, grammar.get("local") or {})


def _is_dry_run(grammar: dict, verb: list[str] | tuple[str, ...], flags: dict[str, list[str]]) -> bool:
    path = " ".join(verb)
    for spec in grammar.get("dry_run") or ():
        vals = flags.get(spec["flag"])
        if not vals:
            continue
        if not _any_glob(spec.get("verbs") or ("*",), path):
            continue
        if vals[-1] in spec["values"]:
            return True
    return False


def _any_glob(patterns: tuple[str, ...] | list[str], text: str) -> bool:
    from shim.glob import match

    for pat in patterns:
        if match(pat, text):
            return True
    return False


# --------------------------------------------------------------------------- cobra


def _cobra_flag(
    st: _State,
    tok: str,
    argv: tuple[str, ...],
    i: int,
    tables: tuple[dict, ...],
    help_flags: frozenset[str] | set[str],
) -> int:
    """Parse the flag token at argv[i] after the verb; return the next index."""
    if tok.startswith("--"):
        name, eq, value = tok.partition("=")
        hit = _lookup(tables, name)
        if hit is None:
            st.unknown.append(name)
            st.add(name, value if eq else "true")
            return i + 1
        canon, takes = hit
        if canon in help_flags:
            st.help = True
        if eq:
            st.add(canon, value)
            return i + 1
        if takes:
            if i + 1 >= len(argv):
                st.error = f"flag needs an argument: {name}"
                return i + 1
            st.add(canon, argv[i + 1])
            return i + 2
        st.add(canon, "true")
        return i + 1
    # short form: -x, -xVALUE, -x=VALUE, -abc (combined bools)
    j = 1
    while j < len(tok):
        short = "-" + tok[j]
        hit = _lookup(tables, short)
        if hit is None:
            st.unknown.append(short)
            rest = tok[j + 1 :]
            st.add(short, rest[1:] if rest.startswith("=") else (rest or "true"))
            return i + 1
        canon, takes = hit
        if canon in help_flags:
            st.help = True
        if takes:
            rest = tok[j + 1 :]
            if rest:
                st.add(canon, rest[1:] if rest.startswith("=") else rest)
                return i + 1
            if i + 1 >= len(argv):
                st.error = f"flag needs an argument: {short}"
                return i + 1
            st.add(canon, argv[i + 1])
            return i + 2
        if j + 1 < len(tok) and tok[j + 1] == "=":
            st.add(canon, tok[j + 2 :])
            return i + 1
        st.add(canon, "true")
        j += 1
    return i + 1


def _parse_cobra(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, _State]:
    st = _State()
    help_flags = grammar.get("help_flags") or frozenset()
    gflags = grammar.get("flags") or {}
    local = grammar.get("local") or {}
    node: dict = grammar
    verb: list[str] = []
    n = len(argv)
    i = 0
    kind = OK
    note = ""
    # Phase 1: find the verb path (cobra stripFlags).
    while i < n:
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("-") and tok != "-":
            if not verb:
                name = tok.partition("=")[0] if tok.startswith("--") else tok[:2]
                hit = gflags.get(name)
                if hit is None:
                    # Not a root flag: cobra assumes it takes a value. The command may still
                    # define it (`kubectl -o yaml get secret x`); otherwise the call fails.
                    lhit = local.get(name)
                    if lhit is None:
                        return (
                            [],
                            ERROR,
                            f"unknown flag before the command: {name}",
                            st,
                        )
                    if name in help_flags or lhit[0] in help_flags:
                        st.help = True
                    if "=" in tok or (not tok.startswith("--") and len(tok) > 2):
                        value = tok.partition("=")[2] if "=" in tok else tok[2:]
                        st.add(lhit[0], value)
                        i += 1
                    else:
                        if i + 1 >= n:
                            return [], ERROR, f"flag needs an argument: {name}", st
                        st.add(lhit[0], argv[i + 1] if lhit[1] else "true")
                        i += 2
                    continue
                i = _cobra_flag(st, tok, argv, i, (gflags,), help_flags)
                continue
            i = _cobra_flag(st, tok, argv, i, _node_tables(grammar, node), help_flags)
            continue
        child = _child(node, tok)
        if child is None:
            if not verb:
                kind = UNKNOWN
                note = f"unknown command or plugin: {tok!r}"
                if st.flags and grammar.get("plugins_no_flags"):
                    note += " (flags cannot be placed before a plugin name)"
                verb = [tok]
                i += 1
                break
            if node.get("subcommand_required") or node.get("plugin_subcommands"):
                kind = UNKNOWN
                note = f"unknown subcommand: {' '.join(verb)} {tok!r}"
                verb.append(tok)
                i += 1
            break
        verb.append(child["name"])
        node = child
        i += 1
        if not node.get("commands"):
            break
    if kind != OK:
        # keep walking for help flags and the words; nothing of it changes the verdict
        st.words.extend(t for t in argv[i:] if not t.startswith("-"))
        return verb, kind, note, st
    if not verb:
        if i < n and argv[i] == "--":
            st.rest.extend(argv[i + 1 :])
        if st.help or not argv:
            return ["help"] if not argv else verb, HELP, "", st
        return verb, ERROR, "no command given", st
    if node.get("help_verb"):
        st.help = True
    # Phase 2: everything after the verb path.
    tables = _node_tables(grammar, node)
    passthrough = node.get("passthrough", False)
    while i < n:
        tok = argv[i]
        if tok == "--":
            st.rest.extend(argv[i + 1 :])
            break
        if tok.startswith("-") and tok != "-":
            i = _cobra_flag(st, tok, argv, i, tables, help_flags)
            continue
        st.args.append(tok)
        st.words.append(tok)
        i += 1
        if passthrough:
            # plugins and similar: the rest belongs to someone else
            st.words.extend(argv[i:])
            break
    st.words.extend(_values_of(st, st.unknown))
    return verb, OK, "", st


def _values_of(st: _State, names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for v in st.flags.get(name, ()):
            if v != "true":
                out.append(v)
    return out


# --------------------------------------------------------------------------- aws


def _expand_long(name: str, options: tuple[str, ...] | list[str]) -> tuple[str | None, bool]:
    """argparse allow_abbrev: exact, else the unique option that `name` is a prefix of.

    Returns (option or None, ambiguous)."""
    if name in options:
        return name, False
    hits = [o for o in options if o.startswith(name)]
    if len(hits) == 1:
        return hits[0], False
    return None, len(hits) > 1


def _parse_aws(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, _State]:
    st = _State()
    gflags: dict = grammar.get("flags") or {}
    gnames = tuple(gflags)
    help_flags = grammar.get("help_flags") or frozenset()
    root_cmds: dict = grammar.get("commands") or {}
    tighten = tuple(grammar.get("prefix_expand") or ())
    negations: dict = grammar.get("negations") or {}
    service: dict | None = None
    op_node: dict | None = None
    verb: list[str] = []
    positional_pos: list[str] = []
    last_option_takes_list = False
    n = len(argv)
    i = 0
    kind = OK
    note = ""
    while i < n:
        tok = argv[i]
        if tok == "--":
            st.rest.extend(argv[i + 1 :])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok.partition("=")
            gname, ambiguous = _expand_long(name, gnames)
            if ambiguous:
                st.error = f"ambiguous option: {name}"
                i += 1
                continue
            if gname is not None:
                canon, takes = gflags[gname]
                if canon in help_flags:
                    st.help = True
                if takes:
                    if eq:
                        st.add(canon, value)
                        i += 1
                    elif i + 1 < n:
                        st.add(canon, argv[i + 1])
                        i += 2
                    else:
                        st.error = f"option needs a value: {name}"
                        i += 1
                else:
                    st.add(canon, "true")
                    i += 1
                last_option_takes_list = False
                continue
            # an operation parameter
            node_flags: dict = (op_node or service or {}).get("flags") or {}
            canon = name
            takes: bool | None = None
            if name in node_flags:
                canon, takes = node_flags[name]
            elif node_flags:
                # s3 and configure commands have complete tables: argparse expands a unique
                # prefix and rejects anything else ("Unknown options")
                full, amb = _expand_long(name, tuple(node_flags))
                if full is None:
                    st.error = f"{'ambiguous' if amb else 'unknown'} option: {name}"
                    st.unknown.append(name)
                    i += 1
                    continue
                canon, takes = node_flags[full]
            else:
                full, amb = _expand_long(name, tighten)
                if full is not None:
                    canon = full
                elif amb:
                    # a prefix of several dangerous options: read it as all of them
                    for opt in tighten:
                        if opt.startswith(name):
                            st.add(opt, "true")
                    st.unknown.append(name)
                else:
                    st.unknown.append(name)
            neg = negations.get(canon)
            if neg is not None:
                canon, forced = neg[0], neg[1]
                st.add(canon, forced)
                i += 1
                last_option_takes_list = False
                continue
            if eq:
                st.add(canon, value)
                i += 1
                last_option_takes_list = False
                continue
            if takes is False:
                st.add(canon, "true")
                i += 1
                last_option_takes_list = False
                continue
            if takes is True:
                if i + 1 < n and not argv[i + 1].startswith("--"):
                    st.add(canon, argv[i + 1])
                    i += 2
                else:
                    st.error = f"option needs a value: {name}"
                    i += 1
                last_option_takes_list = False
                continue
            # unknown shape (API parameter): every following non-option token is its value
            j = i + 1
            vals: list[str] = []
            while j < n and not (argv[j].startswith("--") and len(argv[j]) > 2):
                vals.append(argv[j])
                j += 1
            if not vals:
                st.add(canon, "true")
            for v in vals:
                st.add(canon, v)
                st.words.append(v)
            last_option_takes_list = True
            i = j
            continue
        # a word
        if not verb:
            svc = root_cmds.get(tok)
            verb.append(tok)
            if svc is None:
                if tok == "help":
                    st.help = True
                else:
                    kind = UNKNOWN
                    note = f"unknown aws service or alias: {tok!r}"
            else:
                service = svc
                if svc.get("help_verb"):
                    st.help = True
            i += 1
            continue
        if service is not None and op_node is None and len(verb) == 1:
            verb.append(tok)
            if tok == "help":
                st.help = True
                i += 1
                continue
            cmds = service.get("commands")
            if cmds is not None:
                child = cmds.get(tok)
                if child is None:
                    if not service.get("any_operation"):
                        kind = UNKNOWN
                        note = f"unknown aws subcommand: {verb[0]} {tok!r}"
                    op_node = {}
                else:
                    op_node = child
                    verb[-1] = child["name"]
            else:
                op_node = {}
            i += 1
            continue
        positional_pos.append(tok)
        st.args.append(tok)
        st.words.append(tok)
        i += 1
        last_option_takes_list = False
    if kind == OK and not verb:
        if st.help or not argv:
            return ["help"], HELP, "", st
        return verb, ERROR, "no command given", st
    if kind == OK and st.args and st.args[-1] == "help" and not last_option_takes_list:
        min_args = (op_node or {}).get("min_args", 0)
        if len(st.args) > min_args:
            st.help = True
            st.args.pop()
    return verb, kind, note, st


# --------------------------------------------------------------------------- terraform


def _tf_flag(
    st: _State, tok: str, argv: tuple[str, ...], i: int, table: dict, help_flags: frozenset[str] | set[str]
) -> int:
    name, eq, value = tok.partition("=")
    if name.startswith("--"):
        name = name[1:]
    hit = table.get(name)
    if hit is None:
        st.unknown.append(name)
        st.add(name, value if eq else "true")
        return i + 1
    canon, takes = hit
    if canon in help_flags:
        st.help = True
    if eq:
        st.add(canon, value)
        return i + 1
    if takes:
        if i + 1 >= len(argv):
            st.error = f"flag needs an argument: {name}"
            return i + 1
        st.add(canon, argv[i + 1])
        return i + 2
    st.add(canon, "true")
    return i + 1


def _parse_terraform(
    grammar: dict, argv: tuple[str, ...], env: dict[str, str]
) -> tuple[list[str], str, str, _State]:
    st = _State()
    help_flags = grammar.get("help_flags") or frozenset()
    pre: dict = grammar.get("flags") or {}
    local: dict = grammar.get("local") or {}
    n = len(argv)
    i = 0
    verb: list[str] = []
    node: dict = grammar
    # global options before the subcommand
    while i < n and argv[i].startswith("-"):
        tok = argv[i]
        name, eq, value = tok.partition("=")
        hit = pre.get(name)
        if hit is None:
            return [], ERROR, f"invalid flag before the subcommand: {name}", st
        canon, takes = hit
        if canon in help_flags:
            st.help = True
        elif takes:
            if not eq:
                return [], ERROR, f"{name} must include an equals sign", st
            st.add(canon, value)
        else:
            st.add(canon, "true")
        i += 1
    if i >= n:
        if st.help or not argv:
            return ["help"], HELP, "", st
        if "--version" in st.flags:
            return ["version"], OK, "", st
        others = [f for f in st.flags if f != "-chdir"]
        if others:
            # -install-autocomplete and friends edit files: not something to wave through
            return [others[0]], UNKNOWN, f"terraform {others[0]} is not a subcommand shield knows", st
        return ["help"], HELP, "", st
    if "--version" in st.flags:
        # terraform -v ANYTHING runs `version`
        return ["version"], OK, "", st
    word = argv[i]
    child = _child(node, word)
    if child is None:
        st.words.extend(argv[i + 1 :])
        return [word], UNKNOWN, f"terraform has no command named {word!r}", st
    verb.append(child["name"])
    node = child
    i += 1
    if node.get("commands") and i < n and not argv[i].startswith("-"):
        sub = _child(node, argv[i])
        if sub is None:
            st.words.extend(argv[i:])
            return verb + [argv[i]], UNKNOWN, f"unknown subcommand: {word} {argv[i]!r}", st
        verb.append(sub["name"])
        node = sub
        i += 1
    # TF_CLI_ARGS and TF_CLI_ARGS_<cmd> are inserted right after the subcommand
    injected: list[str] = []
    for var in ("TF_CLI_ARGS", "TF_CLI_ARGS_" + "_".join(verb).replace("-", "_")):
        val = env.get(var)
        if val:
            import shlex

            try:
                injected.extend(shlex.split(val))
            except ValueError:
                return verb, ERROR, f"{var} does not parse", st
    rest = injected + list(argv[i:])
    table = dict(local)
    table.update(node.get("flags") or {})
    targv = tuple(rest)
    j = 0
    while j < len(targv):
        tok = targv[j]
        if tok == "--":
            st.args.extend(targv[j + 1 :])
            st.words.extend(targv[j + 1 :])
            break
        if tok.startswith("-") and tok != "-":
            j = _tf_flag(st, tok, targv, j, table, help_flags)
            continue
        # Go flag parsing stops at the first positional
        st.args.extend(targv[j:])
        st.words.extend(targv[j:])
        break
    return verb, OK, "", st
