"""The aws CLI's grammar style: argparse in three stages (HOT, pure).

Global options anywhere and by unique prefix; service, operation, then parameters (a parameter
takes every value up to the next option).
"""

from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN, State

MISSING = "missing"  # shim.classify.optables.MISSING: the CLI has no such operation


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
    st: State, gflags: dict, help_flags: frozenset[str] | set[str], argv: tuple[str, ...], i: int
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
    if i + 1 < len(argv) and _optional({}, argv[i + 1]) is None:
        st.add(canon, argv[i + 1])
        return i + 2
    # argparse: a word that looks like an option is never a value (`--region --debug`)
    st.error = f"option needs a value: {name}"
    return i + 1


class _Command:
    """What the main parser and the service's parser found: the verb path and the tokens
    they took."""

    __slots__ = ("verb", "kind", "note", "stop", "end", "taken", "service", "op_node", "custom")

    def __init__(self, n: int) -> None:
        self.verb: list[str] = []
        self.kind = OK
        self.note = ""
        self.stop = n  # the index of `--`, or n
        self.end = n  # where the walk stopped (an unknown word)
        self.taken: set[int] = set()
        self.service: dict | None = None
        self.op_node: dict | None = None
        self.custom = (
            False  # a hand-written command (s3, configure): argparse over a complete table
        )


def parse_aws(
    grammar: dict, argv: tuple[str, ...], tables=None
) -> tuple[list[str], str, str, State]:
    """argparse, three stages. The main parser takes the global options from anywhere and the
    first free word (the service); unknown options go on, in order, without taking the words
    after them. The service takes the next free word (the operation). The operation's parser
    then reads every token that is left, in order (so `aws ec2 --dry-run terminate-instances`
    is a dry run).

    `tables(service, operation)` gives the installed CLI's own table of the operation's
    options (shim.classify.optables): with it the operation's tokens are read exactly as
    argparse reads them; without it (None), conservatively."""
    st = State()
    n = len(argv)
    cmd = _find_command(grammar, argv, st)
    verb = cmd.verb
    if cmd.kind != OK:
        st.words.extend(t for t in argv[cmd.end + 1 :] if not t.startswith("-"))
        return verb, cmd.kind, cmd.note, st
    if cmd.stop < n:
        st.rest.extend(argv[cmd.stop + 1 :])
    left = tuple(argv[k] for k in range(cmd.stop) if k not in cmd.taken)
    if not verb:
        if st.help or not argv:
            return ["help"], HELP, "", st
        return verb, ERROR, "no command given", st
    if st.help:
        return verb, OK, "", st
    service, op_node = cmd.service, cmd.op_node
    if service is not None and op_node is None and service.get("commands") is not None:
        cmd.custom = True  # `aws s3` / `aws configure` alone: the command itself
    if tables is not None and cmd.stop == n and service is not None and not cmd.custom:
        table = tables(verb[0], verb[1]) if len(verb) == 2 else None
        if table == MISSING:
            return verb, ERROR, f"the aws CLI has no operation {verb[1]!r} in {verb[0]}", st
        if isinstance(table, dict):
            return verb, *_exact_operation(table, left, st), st
    if left == ("help",) and cmd.stop == n:
        # `help` is help for certain only as the one word after the operation: with more
        # words it may be a value, or the `outfile` of a streaming operation (`lambda invoke
        # --function-name f help` invokes the function). Stricter than the CLI, which also
        # reads `--dry-run help` as help.
        st.help = True
        return verb, OK, "", st
    _aws_operation(grammar, op_node or service or {}, left, st)
    if cmd.custom:
        min_args = (op_node or {}).get("min_args", 0)
        if len(st.args) < min_args and not st.error:
            st.error = f"aws {' '.join(verb)} needs {min_args} argument(s)"
    return verb, OK, "", st


def _find_command(grammar: dict, argv: tuple[str, ...], st: State) -> _Command:
    """Pass 1: the global options (from anywhere), the service and the operation."""
    gflags: dict = grammar.get("flags") or {}
    gnames = tuple(gflags)
    no_help = tuple(g for g in gnames if g != "--help")
    help_flags = grammar.get("help_flags") or frozenset()
    root_cmds: dict = grammar.get("commands") or {}
    n = len(argv)
    cmd = _Command(n)
    i = 0
    while i < n:
        tok = argv[i]
        if tok == "--":
            cmd.stop = i
            break
        if tok.startswith("--") and len(tok) > 2:
            name = tok.partition("=")[0]
            # aws v1's main parser has no --help: only the whole word is the usage error;
            # `--h`/`--he`/`--hel` go to the operation, which expands them to its own options
            gname, ambiguous = _expand_long(name, gnames if name == "--help" else no_help)
            if ambiguous:
                st.error = f"ambiguous option: {name}"
                cmd.taken.add(i)
                i += 1
            elif gname is not None:
                j = _aws_global(st, gflags, help_flags, argv, i)
                cmd.taken.update(range(i, j))
                i = j
            else:
                i += 1  # not the main parser's: left for the operation, takes nothing here
            continue
        if not cmd.verb:
            _service_word(cmd, root_cmds, tok, i, st)
        elif cmd.service is not None and cmd.op_node is None:
            _operation_word(cmd, tok, i, st)
        if cmd.kind != OK:
            cmd.end = i
            break
        i += 1
    return cmd


def _service_word(cmd: _Command, root_cmds: dict, tok: str, i: int, st: State) -> None:
    cmd.verb.append(tok)
    cmd.taken.add(i)
    svc = root_cmds.get(tok)
    if svc is None:
        if tok == "help":
            st.help = True
        else:
            cmd.kind = UNKNOWN
            cmd.note = f"unknown aws service or alias: {tok!r}"
        return
    cmd.service = svc
    if svc.get("help_verb"):
        st.help = True


def _operation_word(cmd: _Command, tok: str, i: int, st: State) -> None:
    service = cmd.service or {}
    cmd.verb.append(tok)
    cmd.taken.add(i)
    cmds = service.get("commands")
    if tok == "help":
        st.help = True
        cmd.op_node = {}
        return
    if cmds is None:
        cmd.op_node = {}
        return
    found = cmds.get(tok)
    if found is None:
        if not service.get("any_operation"):
            cmd.kind = UNKNOWN
            cmd.note = f"unknown aws subcommand: {cmd.verb[0]} {tok!r}"
            return
        cmd.op_node = {}
        return
    cmd.op_node = found
    cmd.custom = True
    cmd.verb[-1] = found["name"]


def _aws_operation(grammar: dict, node: dict, toks: tuple[str, ...], st: State) -> bool:
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


# --------------------------------------------------------------------------- exact reading


class _ArgparseError(Exception):
    """argparse would stop with a usage error: nothing is sent."""


def _optional(options: dict, tok: str) -> tuple | None:
    """argparse `_parse_optional` (Python 3.11): None for a positional; else (entry or None
    for an unknown option, the option string, the explicit `=` value or None)."""
    if not tok or tok[0] != "-":
        return None
    if tok in options:
        return options[tok], tok, None
    if len(tok) == 1:
        return None
    name, eq, value = tok.partition("=")
    if eq and name in options:
        return options[name], name, value
    if tok[1] == "-":
        hits = [o for o in options if o.startswith(name)]
        explicit = value if eq else None
    else:
        hits = [o for o in options if o == tok[:2] or o.startswith(tok)]
        explicit = None
    if len(hits) > 1:
        raise _ArgparseError(f"ambiguous option: {tok} could match {', '.join(hits)}")
    if len(hits) == 1:
        return options[hits[0]], hits[0], explicit
    if _is_negative_number(tok) or " " in tok:
        return None
    return None, tok, None


def _is_negative_number(tok: str) -> bool:
    """argparse's `^-\\d+$|^-\\d*\\.\\d+$`."""
    body = tok[1:]
    if body.isdecimal():
        return True
    whole, dot, frac = body.partition(".")
    return bool(dot) and (not whole or whole.isdecimal()) and frac.isdecimal()


def _take(nargs: object, avail: int, opt: str) -> int:
    """How many of the `avail` words after an option argparse gives it."""
    if nargs in (0, -1):
        return 0
    if nargs == "?":
        return min(1, avail)
    if nargs == "*":
        return avail
    if nargs == "+" or nargs == 1:
        if avail < 1:
            raise _ArgparseError(
                f"argument {opt}: expected {'at least ' if nargs == '+' else ''}one argument"
            )
        return avail if nargs == "+" else 1
    if isinstance(nargs, int):
        if avail < nargs:
            raise _ArgparseError(f"argument {opt}: expected {nargs} arguments")
        return nargs
    raise _ArgparseError(f"argument {opt}: not read")


def _record(st: State, entry: tuple, opt: str, values: list[str], bare: bool) -> None:
    canon, nargs, const, choices = entry
    if nargs == 0:
        st.add(canon, "true")
        return
    if nargs == -1:
        st.add(canon, "false")
        return
    if bare and nargs == "?":
        values = [const if const is not None else "true"]
    for v in values:
        if choices is not None and v not in choices:
            raise _ArgparseError(f"argument {opt}: invalid choice: {v!r}")
    if not values:
        st.add(canon, "")
    for v in values:
        st.add(canon, v)
        st.words.append(v)


def _exact_operation(table: dict, toks: tuple[str, ...], st: State) -> tuple[str, str]:
    """The operation's parser (awscli ServiceOperation over argparse, Python 3.11) reading
    `toks`: the options by exact name or unique prefix, each taking the words its nargs
    takes, the `help` positional (the first free word; `help` asks for help, any other word
    is an unknown option), required options, and "Unknown options" for the rest."""
    options = table.get("options") or {}
    if toks == ("help",):
        st.help = True  # ArgTableArgParser: ['help'] alone is help before anything is parsed
        return OK, ""
    required = set(table.get("required") or ())
    for name, unless_next in table.get("overrides") or ():
        if name in toks:
            at = toks.index(name)
            if unless_next is None or toks[at + 1 : at + 2] != (unless_next,):
                required = set()  # --cli-input-json / --generate-cli-skeleton in the argv
    try:
        help_value, extras, seen = _consume(options, toks, st)
    except _ArgparseError as exc:
        st.error = str(exc)
        return ERROR, st.error
    missing = sorted(required - seen)
    if missing:
        st.error = f"the following arguments are required: {', '.join(missing)}"
        return ERROR, st.error
    if help_value == "help":
        st.help = True
        return OK, ""
    if help_value is not None:
        extras.insert(0, help_value)
    if extras:
        st.error = f"Unknown options: {', '.join(extras)}"
        return ERROR, st.error
    return OK, ""


def _consume(options: dict, toks: tuple[str, ...], st: State) -> tuple[str | None, list, set]:
    """argparse's `_parse_known_args` loop: (the `help` positional's word, the extras, the
    canonical names of the options seen)."""
    parsed = [_optional(options, t) for t in toks]
    opt_at = [k for k, p in enumerate(parsed) if p is not None]
    n = len(toks)
    help_open = True
    help_value: str | None = None
    extras: list[str] = []
    seen: set[str] = set()
    start = 0
    for nxt in opt_at:
        if nxt < start:
            continue  # a word an option took
        if start != nxt and help_open:
            help_value, help_open = toks[start], False
            start += 1
        extras.extend(toks[start:nxt])
        hit = parsed[nxt]
        if hit is None:
            continue  # not reached: opt_at holds options only
        entry, opt, explicit = hit
        if entry is None:
            extras.append(toks[nxt])
            start = nxt + 1
            continue
        if explicit is not None:
            if entry[1] in (0, -1):
                raise _ArgparseError(f"argument {opt}: ignored explicit argument {explicit!r}")
            _record(st, entry, opt, [explicit], False)
            start = nxt + 1
        else:
            j = nxt + 1
            while j < n and parsed[j] is None:
                j += 1
            take = _take(entry[1], j - nxt - 1, opt)
            _record(st, entry, opt, list(toks[nxt + 1 : nxt + 1 + take]), take == 0)
            start = nxt + 1 + take
        seen.add(entry[0] if entry[1] != -1 else entry[0] + "\x00no")
    if start < n and help_open:
        help_value = toks[start]
        start += 1
    extras.extend(toks[start:])
    return help_value, extras, seen
