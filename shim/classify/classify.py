"""One call, classified: (compiled rules, argv, env, cwd, agent) -> Decision (HOT).

The one entry point of the package: parse the argv with the tool's grammar (argv), read the
files that override it (overrides), resolve the target (context), match the rules (decide).
Used by the shims (shim.run), by previews (is this preview command read-only?) and by
`shield check`.
"""

from shim import fs
from shim.classify.argv import parse_argv
from shim.classify.context import resolve_context
from shim.classify.decide import Decision, decide
from shim.classify.invocation import UNKNOWN
from shim.classify.optables import MISSING, op_table, service_table
from shim.classify.overrides import alias_note, override_note


def aws_major(real: str | None) -> int:
    """1 for the Python aws CLI (a script), 2 for the bundled v2 binary."""
    if not real:
        return 1
    try:
        head = fs.read_file(real, 2)
    except (OSError, ValueError):
        return 1
    return 1 if head == b"#!" else 2


def table_loader(compiled: dict, real: str | None, make=None):
    """`tables(service, operation)` for the aws parser: the installed CLI's own option table
    of the operation, from the files `shim.rules.awstables` made for `real`; None where there
    is none (and `make(service)`, the cold side, cannot make one)."""
    root = compiled.get("tables")
    if not root or not compiled["grammar"].get("option_tables"):
        return None
    services: dict[str, str | None] = {}

    def tables(service: str, op: str) -> object:
        if service not in services:
            found = service_table(root, real, service)
            if found == MISSING and make is not None and make(service):
                found = service_table(root, real, service)
            services[service] = found if found != MISSING else None
        found = services[service]
        return op_table(found, op) if found else None

    return tables


def classify(
    compiled: dict,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    agent: str,
    real: str | None = None,
    make=None,
) -> Decision:
    """Parse and decide one call with the world passed in (used by shims and `shield check`).

    aws calls read their operation's options from the installed CLI's own tables where there
    are some for `real`; `make(service)` (cold) may make a service's tables first."""
    grammar = compiled["grammar"]
    tables = None
    if grammar.get("style") == "aws" and aws_major(real) == 1:
        tables = table_loader(compiled, real, make)
    inv = parse_argv(grammar, argv, env, tables)
    note = override_note(grammar, env) or (
        alias_note(grammar, env, inv.verb[0]) if inv.verb else ""
    )
    if note and inv.kind != UNKNOWN:
        inv = inv.as_unknown(note)
    if inv.kinds:
        # only calls that read objects from files (describe/get/wait -f): off the bundle
        from shim.classify.manifests import file_kinds

        inv.kinds = file_kinds(grammar["file_objects"], inv.flags, " ".join(inv.verb), cwd)
    major = aws_major(real) if grammar.get("style") == "aws" else 1
    context = resolve_context(grammar, inv, env, cwd, aws_major=major)
    return decide(inv, compiled["rules"], context, agent, env)
