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
        "memo",
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
        self.memo: dict = {}  # what decide() derives once per call (words, path)
        self.dry_run = dry_run
        self.unknown_flags = unknown_flags

    def as_unknown(self, note: str) -> "Invocation":
        """The same call, read as one shield cannot understand (so no rule matches it)."""
        return Invocation(
            self.tool,
            self.argv,
            self.verb,
            UNKNOWN,
            note,
            self.flags,
            self.args,
            self.words,
            self.rest,
            False,
            self.unknown_flags,
        )

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


def _store(
    st: _State,
    canon: str,
    name: str,
    eq: str,
    value: str,
    takes: bool,
    argv: tuple[str, ...],
    i: int,
) -> int:
    """Record a flag: `--x=v`, or `--x v` for a value flag, or `true` for a bool; next index."""
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
        toks = _word_sep(argv) if grammar.get("normalize_underscores") else argv
        verb, kind, note, st = _parse_cobra(grammar, toks)
    for name in grammar.get("url_path_flags") or ():
        if name in st.flags:
            # a path (kubectl get --raw /api/...); the same name may be a bool elsewhere
            st.flags[name] = [_url_path(v) if "/" in v else v for v in st.flags[name]]
    if kind == OK and st.error:
        kind, note = ERROR, st.error
    if kind == OK and st.unknown and style != "aws":
        # the grammar lists every flag of the CLI version it describes: a flag it does not know
        # is a typo the real tool rejects, or a newer flag whose value shield cannot place (it
        # could swallow a `--dry-run` or `--help` that shield would then believe)
        kind, note = UNKNOWN, f"unknown flag: {st.unknown[0]}"
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


def _word_sep(argv: tuple[str, ...]) -> tuple[str, ...]:
    """kubectl's flag sets normalise `_` to `-` in long flag names (`--dry_run` is
    `--dry-run`, `--cache_dir` is `--cache-dir`); values and what follows `--` are left."""
    out = list(argv)
    for i, tok in enumerate(out):
        if tok == "--":
            break
        if tok.startswith("--") and "_" in tok:
            name, eq, value = tok.partition("=")
            out[i] = name.replace("_", "-") + eq + value
    return tuple(out)


def _url_path(raw: str) -> str:
    """The path a raw URL reaches, as kubectl sends it: query and fragment dropped, `%XX`
    decoded once (Go's url.Parse), then cleaned like path.Join (`//`, `.`, `..`)."""
    cut = min((i for i in (raw.find("?"), raw.find("#")) if i >= 0), default=len(raw))
    path = raw[:cut]
    out = bytearray()
    i = 0
    data = path.encode("utf-8", "surrogateescape")
    while i < len(data):
        b = data[i]
        hexed = data[i + 1 : i + 3]
        if b == 0x25 and len(hexed) == 2 and all(c in b"0123456789abcdefABCDEF" for c in hexed):
            out.append(int(hexed, 16))
            i += 3
            continue
        out.append(b)
        i += 1
    parts: list[str] = []
    for seg in out.decode("utf-8", "replace").split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def _is_dry_run(
    grammar: dict, verb: list[str] | tuple[str, ...], flags: dict[str, list[str]]
) -> bool:
    path = " ".join(verb)
    for spec in grammar.get("dry_run") or ():
        vals = flags.get(spec["flag"])
        if not vals:
            continue
        if any(flags.get(name) for name in spec.get("unless") or ()):
            continue  # e.g. kubectl --raw: the request goes out as it is, --dry-run ignored
        if not _any_glob(spec.get("verbs") or ("*",), path):
            continue
        if vals[-1] in spec["values"]:
            return True
    return False


def _any_glob(patterns: tuple[str, ...] | list[str], text: str) -> bool:
    from shim.glob import match

    for pat in patterns:  # noqa: SIM110 - hot path: a plain loop beats any() over a generator
        if match(pat, text):
            return True
    return False


# --------------------------------------------------------------------------- cobra

# strconv.ParseBool, which pflag uses for bool flags (`--help=false` is not a help request)
TRUE_WORDS = frozenset(("1", "t", "T", "TRUE", "true", "True"))
FALSE_WORDS = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def _set_help(st: _State, name: str, value: str | None) -> None:
    """A help flag was given; with `=value` it only asks for help when the value is true."""
    if value is None or value in TRUE_WORDS:
        st.help = True
    elif value not in FALSE_WORDS:
        st.error = f"invalid argument {value!r} for {name}"


def _cobra_flag(
    st: _State,
    tok: str,
    argv: tuple[str, ...],
    i: int,
    tables: tuple[dict, ...],
    help_flags: frozenset[str] | set[str],
) -> int:
    """Parse the flag token at argv[i] (pflag rules); return the next index."""
    if tok.startswith("--"):
        name, eq, value = tok.partition("=")
        hit = _lookup(tables, name)
        if hit is None:
            st.unknown.append(name)
            st.add(name, value if eq else "true")
            return i + 1
        canon, takes = hit
        if canon in help_flags:
            _set_help(st, name, value if eq else None)
        return _store(st, canon, name, eq, value, takes, argv, i)
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
            if canon in help_flags:
                _set_help(st, short, tok[j + 2 :])
            st.add(canon, tok[j + 2 :])
            return i + 1
        if canon in help_flags:
            st.help = True
        st.add(canon, "true")
        j += 1
    return i + 1


def _strip_bool(level: tuple[dict, ...], name: str, help_flags: frozenset[str] | set[str]) -> bool:
    """cobra stripFlags: is `name` a flag that takes no value at this command level?

    The help flag is added to a command only once it runs, so while cobra looks for the
    command it is unknown, and an unknown flag is assumed to take a value."""
    hit = _lookup(level, name)
    return hit is not None and not hit[1] and hit[0] not in help_flags


def _find_command(
    grammar: dict, argv: tuple[str, ...]
) -> tuple[list[str], list[int], dict, str, str, int]:
    """cobra `Find`: walk the command tree, skipping flags the way `stripFlags` does.

    Returns (verb path, argv positions of the verb words, node, kind, note, stop index)."""
    help_flags = grammar.get("help_flags") or frozenset()
    gflags = grammar.get("flags") or {}
    node: dict = grammar
    level: tuple[dict, ...] = (gflags,)
    verb: list[str] = []
    where: list[int] = []
    n = len(argv)
    i = 0
    flags_before = False
    while i < n:
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("-"):
            if len(tok) == 1:
                i += 1  # a lone "-" is neither a flag nor a command to cobra
                continue
            if not verb:
                flags_before = True
            one_token = "=" in tok or (not tok.startswith("--") and len(tok) > 2)
            if one_token or _strip_bool(level, tok, help_flags):
                i += 1
            else:
                i += 2  # `--name value` / `-x value`: the next token is the value
            continue
        child = _child(node, tok)
        if child is None:
            if not verb:
                note = f"unknown command or plugin: {tok!r}"
                if flags_before and grammar.get("plugins_no_flags"):
                    note += " (flags cannot be placed before a plugin name)"
                return [tok], [i], node, UNKNOWN, note, i + 1
            if node.get("subcommand_required") or node.get("plugin_subcommands"):
                note = f"unknown subcommand: {' '.join(verb)} {tok!r}"
                return verb + [tok], where + [i], node, UNKNOWN, note, i + 1
            break
        verb.append(child["name"])
        where.append(i)
        node = child
        i += 1
        if not node.get("commands"):
            break
        level = (node.get("flags") or {}, gflags)
    return verb, where, node, OK, "", i


def _parse_cobra(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, _State]:
    """Two passes, as cobra does: find the command, then let pflag parse every other token
    (flags before, between and after the verb words) with that command's flag set."""
    st = _State()
    help_flags = grammar.get("help_flags") or frozenset()
    verb, where, node, kind, note, stop = _find_command(grammar, argv)
    if kind != OK:
        st.words.extend(t for t in argv[stop:] if not t.startswith("-"))
        return verb, kind, note, st
    skip = frozenset(where)
    toks = tuple(t for k, t in enumerate(argv) if k not in skip)
    before = where[0] if where else 0  # tokens of `toks` that stood before the verb
    tables = _node_tables(grammar, node) if verb else (grammar.get("flags") or {},)
    passthrough = node.get("passthrough", False) if verb else False
    n = len(toks)
    i = 0
    while i < n:
        tok = toks[i]
        if tok == "--":
            # cobra hands what follows `--` to the command as arguments: a container command
            # for exec/run/debug/attach, but resource names for get, delete, ... So they are
            # words too (`kubectl get -o yaml -- secret db` reads a Secret).
            st.rest.extend(toks[i + 1 :])
            st.words.extend(toks[i + 1 :])
            break
        if tok.startswith("-") and tok != "-":
            known = len(st.unknown)
            at = i
            i = _cobra_flag(st, tok, toks, i, tables, help_flags)
            if at < before and len(st.unknown) > known and verb:
                return verb, ERROR, f"unknown flag before the command: {st.unknown[-1]}", st
            continue
        st.args.append(tok)
        st.words.append(tok)
        i += 1
        if passthrough:
            # plugins and similar: the rest belongs to someone else
            st.words.extend(toks[i:])
            break
    if not verb:
        if st.help or not argv:
            return ["help"] if not argv else verb, HELP, "", st
        return verb, ERROR, "no command given", st
    if node.get("help_verb"):
        st.help = True
    st.words.extend(_values_of(st, st.unknown))
    if grammar.get("early_globals"):
        for name, vals in _early_globals(grammar, argv).items():
            st.flags.setdefault(name, vals)
    return verb, OK, "", st


def _early_globals(grammar: dict, argv: tuple[str, ...]) -> dict[str, list[str]]:
    """helm parses the root's global flags over the whole argv before cobra runs, with unknown
    flags allowed (pflag then skips an unknown flag's next word unless it starts with `-`).
    What that pass sets stays set unless cobra's own pass sets it again, so
    `helm uninstall web --description -nprod` runs in namespace prod."""
    helps = grammar.get("help_flags") or frozenset()
    table = {k: v for k, v in (grammar.get("flags") or {}).items() if v[0] not in helps}
    st = _State()
    n = len(argv)
    i = 0
    while i < n:
        tok = argv[i]
        if tok == "--":
            break
        if not tok.startswith("-") or tok == "-":
            i += 1
            continue
        if tok.startswith("--") and tok[2:3] in ("-", "="):
            break  # pflag: "bad flag syntax" (`---x`, `--=x`) ends that pass
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
            if name == "--help":
                break  # pflag stops at the help flag it does not define (ErrHelp)
            hit = table.get(name)
            if hit is None:
                i += 1 if eq or i + 1 >= n or argv[i + 1].startswith("-") else 2
                continue
            i = _store(st, hit[0], name, eq, value, hit[1], argv, i)
            continue
        j = 1
        nxt = i + 1
        while j < len(tok):
            hit = table.get("-" + tok[j])
            rest = tok[j + 1 :]
            if hit is None and tok[j] == "h":
                return st.flags  # ErrHelp: the pass ends here
            if hit is None:
                if rest.startswith("="):
                    break
                if nxt < n and not argv[nxt].startswith("-"):
                    nxt += 1  # pflag drops the word after an unknown shorthand
                j += 1
                continue
            canon, takes = hit
            if rest.startswith("="):
                st.add(canon, rest[1:])
                break
            if not takes:
                st.add(canon, "true")
                j += 1
                continue
            if rest:
                st.add(canon, rest)
            elif nxt < n:
                st.add(canon, argv[nxt])
                nxt += 1
            break
        i = nxt
    return st.flags


def _values_of(st: _State, names: list[str]) -> list[str]:
    out: list[str] = []
    for name in dict.fromkeys(names):  # once per name: a flag given 25,000 times is one name
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


def _aws_global(
    st: _State, gflags: dict, help_flags: frozenset[str] | set[str], argv: tuple[str, ...], i: int
) -> int:
    """The main parser's option at argv[i] (already known to be global); the next index."""
    tok = argv[i]
    name, eq, value = tok.partition("=")
    gname, _ = _expand_long(name, tuple(gflags))
    canon, takes = gflags[gname]
    if canon in help_flags:
        st.help = True
    if not takes:
        st.add(canon, "true")
        return i + 1
    if eq:
        st.add(canon, value)
        return i + 1
    if i + 1 < len(argv):
        st.add(canon, argv[i + 1])
        return i + 2
    st.error = f"option needs a value: {name}"
    return i + 1


def _parse_aws(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, _State]:
    """argparse, three stages. The main parser takes the global options from anywhere and the
    first free word (the service); unknown options go on, in order, without taking the words
    after them. The service takes the next free word (the operation). The operation's parser
    then reads every token that is left, in order (so `aws ec2 --dry-run terminate-instances`
    is a dry run)."""
    st = _State()
    gflags: dict = grammar.get("flags") or {}
    gnames = tuple(gflags)
    no_help = tuple(g for g in gnames if g != "--help")
    help_flags = grammar.get("help_flags") or frozenset()
    root_cmds: dict = grammar.get("commands") or {}
    n = len(argv)
    # Pass 1: global options, the service and the operation.
    taken: set[int] = set()
    service: dict | None = None
    op_node: dict | None = None
    custom = False  # a hand-written command (s3, configure): argparse over a complete table
    verb: list[str] = []
    kind = OK
    note = ""
    stop = n
    i = 0
    while i < n:
        tok = argv[i]
        if tok == "--":
            stop = i
            break
        if tok.startswith("--") and len(tok) > 2:
            name = tok.partition("=")[0]
            # aws v1's main parser has no --help: only the whole word is the usage error;
            # `--h`/`--he`/`--hel` go to the operation, which expands them to its own options
            gname, ambiguous = _expand_long(name, gnames if name == "--help" else no_help)
            if ambiguous:
                st.error = f"ambiguous option: {name}"
                taken.add(i)
                i += 1
            elif gname is not None:
                j = _aws_global(st, gflags, help_flags, argv, i)
                taken.update(range(i, j))
                i = j
            else:
                i += 1  # not the main parser's: left for the operation, takes nothing here
            continue
        if not verb:
            verb.append(tok)
            taken.add(i)
            svc = root_cmds.get(tok)
            if svc is None:
                if tok == "help":
                    st.help = True
                else:
                    kind = UNKNOWN
                    note = f"unknown aws service or alias: {tok!r}"
                    break
            else:
                service = svc
                if svc.get("help_verb"):
                    st.help = True
            i += 1
            continue
        if service is not None and op_node is None:
            verb.append(tok)
            taken.add(i)
            cmds = service.get("commands")
            if tok == "help":
                st.help = True
                op_node = {}
            elif cmds is not None:
                child = cmds.get(tok)
                if child is None:
                    if not service.get("any_operation"):
                        kind = UNKNOWN
                        note = f"unknown aws subcommand: {verb[0]} {tok!r}"
                        break
                    op_node = {}
                else:
                    op_node = child
                    custom = True
                    verb[-1] = child["name"]
            else:
                op_node = {}
        i += 1
    if kind != OK:
        st.words.extend(t for t in argv[i + 1 :] if not t.startswith("-"))
        return verb, kind, note, st
    if stop < n:
        st.rest.extend(argv[stop + 1 :])
    left = tuple(argv[k] for k in range(stop) if k not in taken)
    if not verb:
        if st.help or not argv:
            return ["help"], HELP, "", st
        return verb, ERROR, "no command given", st
    if st.help:
        return verb, OK, "", st
    if service is not None and op_node is None and service.get("commands") is not None:
        custom = True  # `aws s3` / `aws configure` alone: the command itself
    if left == ("help",) and stop == n:
        # `help` is help for certain only as the one word after the operation: with more
        # words it may be a value, or the `outfile` of a streaming operation (`lambda invoke
        # --function-name f help` invokes the function). Stricter than the CLI, which also
        # reads `--dry-run help` as help.
        st.help = True
        return verb, OK, "", st
    _aws_operation(grammar, op_node or service or {}, left, st)
    if custom:
        min_args = (op_node or {}).get("min_args", 0)
        if len(st.args) < min_args and not st.error:
            st.error = f"aws {' '.join(verb)} needs {min_args} argument(s)"
    return verb, OK, "", st


def _aws_operation(grammar: dict, node: dict, toks: tuple[str, ...], st: _State) -> bool:
    """The operation's own parser over the tokens left; True when the last token went to an
    option that takes a list (so a trailing `help` is a value, not a help request)."""
    tighten = tuple(grammar.get("prefix_expand") or ())
    negations: dict = grammar.get("negations") or {}
    node_flags: dict = node.get("flags") or {}
    last_option_takes_list = False
    n = len(toks)
    i = 0
    while i < n:
        tok = toks[i]
        if not (tok.startswith("--") and len(tok) > 2):
            st.args.append(tok)
            st.words.append(tok)
            i += 1
            last_option_takes_list = False
            continue
        name, eq, value = tok.partition("=")
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
        last_option_takes_list = False
        neg = negations.get(canon)
        if neg is not None:
            st.add(neg[0], neg[1])
            i += 1
            continue
        if eq:
            st.add(canon, value)
            i += 1
            continue
        if takes is False:
            st.add(canon, "true")
            i += 1
            continue
        if takes is True:
            if i + 1 < n and not toks[i + 1].startswith("--"):
                st.add(canon, toks[i + 1])
                i += 2
            else:
                st.error = f"option needs a value: {name}"
                i += 1
            continue
        # unknown shape (API parameter): every following non-option token is its value
        j = i + 1
        vals: list[str] = []
        while j < n and not (toks[j].startswith("--") and len(toks[j]) > 2):
            vals.append(toks[j])
            j += 1
        if not vals:
            st.add(canon, "true")
        for v in vals:
            st.add(canon, v)
            st.words.append(v)
        last_option_takes_list = bool(vals)
        i = j
    return last_option_takes_list


# --------------------------------------------------------------------------- terraform


_TF_HELP = frozenset(("-h", "-help", "--help"))


def _tf_flag(
    st: _State,
    tok: str,
    argv: tuple[str, ...],
    i: int,
    table: dict,
    help_flags: frozenset[str] | set[str],
) -> int:
    name, eq, value = tok.partition("=")
    if name.startswith("--"):
        name = name[1:]
    hit = table.get(name)
    if hit is None:
        if not eq and tok in _TF_HELP:
            return i + 1  # help (the scan in _parse_terraform), whether or not the table lists it
        st.unknown.append(name)
        st.add(name, value if eq else "true")
        return i + 1
    canon, takes = hit
    if canon in help_flags:
        # `-help` is only help as a whole word (the scan in _parse_terraform); `-help=x`
        # fails to parse
        if eq:
            st.error = f"flag provided but not defined: {name}"
        return i + 1
    return _store(st, canon, name, eq, value, takes, argv, i)


def _parse_terraform(
    grammar: dict, argv: tuple[str, ...], env: dict[str, str]
) -> tuple[list[str], str, str, _State]:
    """terraform's main: find the subcommand in argv, insert `TF_CLI_ARGS_<cmd>` and then
    `TF_CLI_ARGS` right after it (both keyed on that first subcommand), and read the result as
    the command line. The inserted words can still pick a nested subcommand (`terraform state`
    with `TF_CLI_ARGS="rm x"` runs `state rm x`), so the merged argv is parsed from the start."""
    verb, kind, note, st, at = _parse_tf_argv(grammar, argv)
    suffix = "_".join(verb).replace("-", "_") if at is not None else ""
    injected: list[str] = []
    for var in ("TF_CLI_ARGS_" + suffix, "TF_CLI_ARGS"):
        val = env.get(var)
        if not val:
            continue
        words = _tf_split(val)
        if words is None:
            return verb, UNKNOWN, f"{var} holds shell characters that shield does not split", st
        injected.extend(words)
    if not injected:
        return verb, kind, note, st
    if at is None:
        # no subcommand: terraform puts the words first, so they become the command
        return ["?"], UNKNOWN, "TF_CLI_ARGS is set and the command line names no subcommand", st
    verb, kind, note, st, _ = _parse_tf_argv(grammar, argv[:at] + tuple(injected) + argv[at:])
    return verb, kind, note, st


_TF_SHELL = frozenset(";|&<>`$()\\")


def _tf_split(value: str) -> list[str] | None:
    """Split a TF_CLI_ARGS value into words, or None when it holds a character where Python's
    shlex and terraform's go-shellwords disagree (go-shellwords stops at an unquoted `;|&<>`,
    reads backslashes inside double quotes its own way, ...): such a value is not understood."""
    if _TF_SHELL.intersection(value):
        return None
    return split_words(value)  # what is left splits the same under both


def split_words(text: str) -> list[str] | None:
    """shlex.split for whitespace, quotes and backslashes (shlex would import re, os and enum
    on the hot path, about 12 ms). None on an unbalanced quote or a trailing backslash."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and text[i + 1 : i + 2] in ('"', "\\"):
                i += 1
                word.append(text[i])
            else:
                word.append(ch)
        elif ch in "\"'":
            quote = ch
            started = True
        elif ch == "\\":
            if i + 1 >= len(text):
                return None
            i += 1
            word.append(text[i])
            started = True
        elif ch.isspace():
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(ch)
            started = True
        i += 1
    if quote:
        return None
    if started:
        words.append("".join(word))
    return words


_TF_AUTOCOMPLETE = frozenset(
    ("-install-autocomplete", "--install-autocomplete")
    + ("-uninstall-autocomplete", "--uninstall-autocomplete")
)


def _parse_tf_argv(
    grammar: dict, argv: tuple[str, ...]
) -> tuple[list[str], str, str, _State, int | None]:
    """Parse a terraform command line (environment already merged). Returns (verb, kind, note,
    state, the index just after the subcommand words, or None when there is no subcommand)."""
    # mitchellh/cli: -install-autocomplete anywhere before `--` edits shell rc files instead
    for tok in argv:
        if tok == "--":
            break
        if tok in _TF_AUTOCOMPLETE:
            return [tok], UNKNOWN, f"terraform {tok} edits shell files", _State(), None
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
        if tok == "--":
            break
        name, eq, value = tok.partition("=")
        hit = pre.get(name)
        if hit is None:
            return [], ERROR, f"invalid flag before the subcommand: {name}", st, None
        canon, takes = hit
        if canon in help_flags:
            if eq:
                return [], ERROR, f"invalid flag before the subcommand: {tok}", st, None
            st.help = True
        elif takes:
            if not eq:
                return [], ERROR, f"{name} must include an equals sign", st, None
            st.add(canon, value)
        else:
            st.add(canon, "true")
        i += 1
    if i >= n or argv[i] == "--":
        if st.help or not argv:
            return ["help"], HELP, "", st, None
        if "--version" in st.flags:
            return ["version"], OK, "", st, None
        others = [f for f in st.flags if f != "-chdir"]
        if others:
            # -install-autocomplete and friends edit files: not something to wave through
            return (
                [others[0]],
                UNKNOWN,
                f"terraform {others[0]} is not a subcommand shield knows",
                st,
                None,
            )
        return ["help"], HELP, "", st, None
    if "--version" in st.flags:
        # terraform -v ANYTHING runs `version`
        return ["version"], OK, "", st, None
    word = argv[i]
    child = _child(node, word)
    if child is None:
        st.words.extend(argv[i + 1 :])
        return [word], UNKNOWN, f"terraform has no command named {word!r}", st, i + 1
    verb.append(child["name"])
    node = child
    i += 1
    if node.get("commands") and i < n and not argv[i].startswith("-"):
        sub = _child(node, argv[i])
        if sub is None:
            st.words.extend(argv[i:])
            return verb + [argv[i]], UNKNOWN, f"unknown subcommand: {word} {argv[i]!r}", st, i + 1
        verb.append(sub["name"])
        node = sub
        i += 1
    at = i
    targv = argv[i:]
    # mitchellh/cli: -h, -help or --help anywhere before `--`, even as a flag's value or after
    # the first positional, prints the command's help
    for tok in targv:
        if tok == "--":
            break
        if tok in _TF_HELP:
            st.help = True
    table = dict(local)
    table.update(node.get("flags") or {})
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
    return verb, OK, "", st, at
