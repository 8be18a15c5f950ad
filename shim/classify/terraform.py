"""terraform's grammar style: Go `flag` (HOT, pure).

`-flag` == `--flag`, `-chdir=` before the subcommand, parsing stops at the first positional,
`TF_CLI_ARGS[_cmd]` inserted after the subcommand.
"""

from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN, State, child_node, store
from shim.classify.words import split_words

_TF_HELP = frozenset(("-h", "-help", "--help"))


def _tf_flag(
    st: State,
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
            return i + 1  # help (the scan in parse_terraform), whether or not the table lists it
        st.unknown.append(name)
        st.add(name, value if eq else "true")
        return i + 1
    canon, takes = hit
    if canon in help_flags:
        # `-help` is only help as a whole word (the scan in parse_terraform); `-help=x`
        # fails to parse
        if eq:
            st.error = f"flag provided but not defined: {name}"
        return i + 1
    return store(st, canon, name, eq, value, takes, argv, i)


def parse_terraform(
    grammar: dict, argv: tuple[str, ...], env: dict[str, str]
) -> tuple[list[str], str, str, State]:
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


_TF_AUTOCOMPLETE = frozenset(
    ("-install-autocomplete", "--install-autocomplete")
    + ("-uninstall-autocomplete", "--uninstall-autocomplete")
)


def _parse_tf_argv(
    grammar: dict, argv: tuple[str, ...]
) -> tuple[list[str], str, str, State, int | None]:
    """Parse a terraform command line (environment already merged). Returns (verb, kind, note,
    state, the index just after the subcommand words, or None when there is no subcommand)."""
    # mitchellh/cli: -install-autocomplete anywhere before `--` edits shell rc files instead
    for tok in argv:
        if tok == "--":
            break
        if tok in _TF_AUTOCOMPLETE:
            return [tok], UNKNOWN, f"terraform {tok} edits shell files", State(), None
    st = State()
    n = len(argv)
    i, problem = _tf_globals(grammar, argv, st)
    if problem:
        return [], ERROR, problem, st, None
    if i >= n or argv[i] == "--":
        verb, kind, note = _tf_no_subcommand(st, argv)
        return verb, kind, note, st, None
    if "--version" in st.flags:
        # terraform -v ANYTHING runs `version`
        return ["version"], OK, "", st, None
    word = argv[i]
    node = child_node(grammar, word)
    if node is None:
        st.words.extend(argv[i + 1 :])
        return [word], UNKNOWN, f"terraform has no command named {word!r}", st, i + 1
    verb = [node["name"]]
    i += 1
    if node.get("commands") and i < n and not argv[i].startswith("-"):
        sub = child_node(node, argv[i])
        if sub is None:
            st.words.extend(argv[i:])
            return verb + [argv[i]], UNKNOWN, f"unknown subcommand: {word} {argv[i]!r}", st, i + 1
        verb.append(sub["name"])
        node = sub
        i += 1
    _tf_options(grammar, node, argv[i:], st)
    return verb, OK, "", st, i


def _tf_globals(grammar: dict, argv: tuple[str, ...], st: State) -> tuple[int, str]:
    """The global options before the subcommand: (index of the first other word, problem)."""
    help_flags = grammar.get("help_flags") or frozenset()
    pre: dict = grammar.get("flags") or {}
    n = len(argv)
    i = 0
    while i < n and argv[i].startswith("-"):
        tok = argv[i]
        if tok == "--":
            break
        name, eq, value = tok.partition("=")
        hit = pre.get(name)
        if hit is None:
            return i, f"invalid flag before the subcommand: {name}"
        canon, takes = hit
        if canon in help_flags:
            if eq:
                return i, f"invalid flag before the subcommand: {tok}"
            st.help = True
        elif takes:
            if not eq:
                return i, f"{name} must include an equals sign"
            st.add(canon, value)
        else:
            st.add(canon, "true")
        i += 1
    return i, ""


def _tf_no_subcommand(st: State, argv: tuple[str, ...]) -> tuple[list[str], str, str]:
    """Global options only: help, version, or an option that acts on its own."""
    if st.help or not argv:
        return ["help"], HELP, ""
    if "--version" in st.flags:
        return ["version"], OK, ""
    others = [f for f in st.flags if f != "-chdir"]
    if others:
        # -install-autocomplete and friends edit files: not something to wave through
        return [others[0]], UNKNOWN, f"terraform {others[0]} is not a subcommand shield knows"
    return ["help"], HELP, ""


def _tf_options(grammar: dict, node: dict, targv: tuple[str, ...], st: State) -> None:
    """The subcommand's own options and arguments (Go flag: parsing stops at the first
    positional)."""
    # mitchellh/cli: -h, -help or --help anywhere before `--`, even as a flag's value or after
    # the first positional, prints the command's help
    for tok in targv:
        if tok == "--":
            break
        if tok in _TF_HELP:
            st.help = True
    help_flags = grammar.get("help_flags") or frozenset()
    table = dict(grammar.get("local") or {})
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
