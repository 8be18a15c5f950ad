"""The cobra/pflag grammar style: kubectl and helm (HOT, pure).

pflag spellings, global flags before or after the verb, nested verbs, `stripFlags` rules for
flags before the verb, `--` ends options (reference/cli-grammars.md).
"""

from shim.classify.invocation import (
    ERROR,
    HELP,
    OK,
    UNKNOWN,
    State,
    child_node,
    lookup,
    node_tables,
    store,
    values_of,
)


def word_sep(argv: tuple[str, ...]) -> tuple[str, ...]:
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


TRUE_WORDS = frozenset(("1", "t", "T", "TRUE", "true", "True"))
FALSE_WORDS = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def _set_help(st: State, name: str, value: str | None) -> None:
    """A help flag was given; with `=value` it only asks for help when the value is true."""
    if value is None or value in TRUE_WORDS:
        st.help = True
    elif value not in FALSE_WORDS:
        st.error = f"invalid argument {value!r} for {name}"


def _cobra_flag(
    st: State,
    tok: str,
    argv: tuple[str, ...],
    i: int,
    tables: tuple[dict, ...],
    help_flags: frozenset[str] | set[str],
) -> int:
    """Parse the flag token at argv[i] (pflag rules); return the next index."""
    if tok.startswith("--"):
        name, eq, value = tok.partition("=")
        hit = lookup(tables, name)
        if hit is None:
            st.unknown.append(name)
            st.add(name, value if eq else "true")
            return i + 1
        canon, takes = hit
        if canon in help_flags:
            _set_help(st, name, value if eq else None)
        return store(st, canon, name, eq, value, takes, argv, i)
    # short form: -x, -xVALUE, -x=VALUE, -abc (combined bools)
    j = 1
    while j < len(tok):
        short = "-" + tok[j]
        hit = lookup(tables, short)
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
    hit = lookup(level, name)
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
        child = child_node(node, tok)
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


def parse_cobra(grammar: dict, argv: tuple[str, ...]) -> tuple[list[str], str, str, State]:
    """Two passes, as cobra does: find the command, then let pflag parse every other token
    (flags before, between and after the verb words) with that command's flag set."""
    st = State()
    help_flags = grammar.get("help_flags") or frozenset()
    verb, where, node, kind, note, stop = _find_command(grammar, argv)
    if kind != OK:
        st.words.extend(t for t in argv[stop:] if not t.startswith("-"))
        return verb, kind, note, st
    skip = frozenset(where)
    toks = tuple(t for k, t in enumerate(argv) if k not in skip)
    before = where[0] if where else 0  # tokens of `toks` that stood before the verb
    tables = node_tables(grammar, node) if verb else (grammar.get("flags") or {},)
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
    st.words.extend(values_of(st, st.unknown))
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
    st = State()
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
            i = store(st, hit[0], name, eq, value, hit[1], argv, i)
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
