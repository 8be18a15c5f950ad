"""argv + compiled grammar -> Invocation (HOT, pure: no IO, stdlib only).

Three parsing styles cover the four CLIs (reference/cli-grammars.md):
- "cobra" (kubectl, helm): pflag spellings, global flags before or after the verb, nested
  verbs, `stripFlags` rules for flags before the verb, `--` ends options.
- "aws": argparse in three stages; global options anywhere and by unique prefix; service,
  operation, then parameters (a parameter takes every value up to the next option).
- "terraform": Go `flag`: `-flag` == `--flag`, `-chdir=` before the subcommand, parsing stops
  at the first positional, `TF_CLI_ARGS[_cmd]` inserted after the subcommand.

A grammar is a plain dict (see shim/rules/compile.py for the schema it is compiled from). Flag tables
map every spelling to `(canonical name, takes_value)`.
"""

from shim.classify.aws import parse_aws
from shim.classify.cobra import parse_cobra, word_sep
from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN, Invocation
from shim.classify.terraform import parse_terraform


def parse_argv(
    grammar: dict,
    argv: list[str] | tuple[str, ...],
    env: dict[str, str] | None = None,
    tables=None,
) -> Invocation:
    """Parse `argv` (without the program name) the way the tool described by `grammar` would.

    `tables(service, operation)`: the aws CLI's own option tables (see parse_aws), if any."""
    style = grammar.get("style", "cobra")
    argv = tuple(argv)
    if style == "aws":
        verb, kind, note, st = parse_aws(grammar, argv, tables)
    elif style == "terraform":
        verb, kind, note, st = parse_terraform(grammar, argv, env or {})
    else:
        toks = word_sep(argv) if grammar.get("normalize_underscores") else argv
        verb, kind, note, st = parse_cobra(grammar, toks)
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
    inv = Invocation(
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
    files = grammar.get("file_objects")
    if files and (st.flags.get(files["filename"]) or st.flags.get(files["kustomize"])):
        inv.kinds = ("?",)  # not read yet: shim.classify.classify reads the files
    return inv


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
    from shim.classify.glob import match

    for pat in patterns:  # noqa: SIM110 - hot path: a plain loop beats any() over a generator
        if match(pat, text):
            return True
    return False
