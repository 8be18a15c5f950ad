"""The parsed call: `Invocation`, its kinds, and the state the parsers share (HOT, pure).

Three parsers fill it: `shim.classify.cobra` (kubectl, helm), `shim.classify.aws` and
`shim.classify.terraform`; `shim.classify.argv.parse_argv` picks one by the grammar's style.
A grammar is a plain dict (compiled by shim.rules.compile); flag tables map every spelling to
`(canonical name, takes_value)`.
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
        "kinds",
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
        # the kinds of the objects it takes from files (`-f`): () when it names none; "?" for
        # each source not read (yet): shim.classify.manifests reads them in classify()
        self.kinds: tuple[str, ...] = ()

    def as_unknown(self, note: str) -> "Invocation":
        """The same call, read as one shield cannot understand (so no rule matches it)."""
        inv = Invocation(
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
        inv.kinds = self.kinds
        return inv

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
            "kinds": list(self.kinds),
        }


class State:
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


def store(
    st: State,
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


def lookup(tables: tuple[dict, ...], name: str) -> tuple[str, bool] | None:
    for table in tables:
        hit = table.get(name)
        if hit is not None:
            return hit
    return None


def child_node(node: dict, word: str) -> dict | None:
    cmds = node.get("commands")
    if not cmds:
        return None
    return cmds.get(word)


def node_tables(grammar: dict, node: dict) -> tuple[dict, ...]:
    """Flag tables in force at `node`: its own, the tool-wide local table, the globals."""
    own = node.get("flags") or {}
    return (own, grammar.get("flags") or {}, grammar.get("local") or {})


def values_of(st: State, names: list[str]) -> list[str]:
    out: list[str] = []
    for name in dict.fromkeys(names):  # once per name: a flag given 25,000 times is one name
        for v in st.flags.get(name, ()):
            if v != "true":
                out.append(v)
    return out
