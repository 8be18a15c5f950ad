"""The aws CLI's grammar style: argparse in three stages (HOT, pure).

Global options anywhere and by unique prefix; service, operation, then parameters (a parameter
takes every value up to the next option).
"""

from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN, State


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
    if i + 1 < len(argv):
        st.add(canon, argv[i + 1])
        return i + 2
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


def parse_aws(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, State]:
    """argparse, three stages. The main parser takes the global options from anywhere and the
    first free word (the service); unknown options go on, in order, without taking the words
    after them. The service takes the next free word (the operation). The operation's parser
    then reads every token that is left, in order (so `aws ec2 --dry-run terminate-instances`
    is a dry run)."""
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
