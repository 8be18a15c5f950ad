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


def parse_aws(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, State]:
    """argparse, three stages. The main parser takes the global options from anywhere and the
    first free word (the service); unknown options go on, in order, without taking the words
    after them. The service takes the next free word (the operation). The operation's parser
    then reads every token that is left, in order (so `aws ec2 --dry-run terminate-instances`
    is a dry run)."""
    st = State()
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
