"""How log entries read for a human (cold, pure): what happened to each call in words, the
cells of `shield log`'s table, its filters, and a held call's rows folded into one.

Entries in, strings out; `shim.commands.log` reads the file and prints. Everything an agent
can write (argv, context, reasons, details) passes through `printable`, so a newline or an
escape sequence in a log entry can neither break a row in two nor repaint the terminal.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from shim.approval.show import printable
from shim.commands.table import Column

EVENTS = (
    "call",
    "held",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "executed",
    "error",
    "security",
    "granted",
    "grant",
    "grant-revoked",
    "grant-expired",
    "notify-failed",
    "approval",
    "note",
    "relay-unreachable",
    "relay-error",
    "relay-reached",
    "torn",
)
DETAILED = ("error", "security", "notify-failed", "note", "relay-unreachable", "relay-error")
DECISIONS = ("allow", "ask", "deny")
SIGNALS = {1: "SIGHUP", 2: "Ctrl-C", 3: "SIGQUIT", 15: "SIGTERM"}

# Narrow terminals drop `context` first, then `reason` (each shown only when the columns
# before it have room), then `seq` and `request`: a line at 80 columns keeps when, who, what
# and what happened. When cells must be cut, the command gives up width before the outcome.
COLUMNS = [
    Column("seq", min=8, max=8, keep=4, right=True),
    Column("time", min=16, max=16, keep=8),
    Column("request", min=6, max=8, keep=5),
    Column("agent", min=10, max=16, keep=7, flex=True),
    Column("command", min=28, want=40, max=80, keep=9, flex=True),
    Column("outcome", min=24, want=26, max=120, keep=10, flex=True),
    Column("reason", min=20, want=30, max=60, keep=3, flex=True, optional=True),
    Column("context", min=24, want=30, max=48, keep=2, flex=True, optional=True),
]
# --by-request: the outcome is a chain (held -> approved by alice "why" -> exit 0), so it
# takes the width before the command does
FOLDED_COLUMNS = [replace(c, want=32) if c.name in ("command", "outcome") else c for c in COLUMNS]


@dataclass(frozen=True)
class Row:
    """One line of the table: its cells (in COLUMNS order) and its tone (`allow`, `ask`,
    `deny`, `done` or `alert`), which the terminal shows as a colour."""

    cells: list[str]
    tone: str


def is_torn(e: dict[str, Any]) -> bool:
    """A torn-line marker from `read_entries` (not a log entry)."""
    return e.get("event") == "torn" and "seq" not in e


def _text(value: Any) -> str:
    return "" if value is None else printable(str(value))


def _signal(number: Any) -> str:
    return SIGNALS.get(number, f"signal {number}") if isinstance(number, int) else "a signal"


def security_what(e: dict[str, Any]) -> str:
    """What a `security` entry says happened, in a few words."""
    detail = e.get("detail")
    if isinstance(detail, dict):
        kind = detail.get("kind")
        if kind == "torn-tail":
            n = len(detail.get("lines") or ())
            return f"{n} torn line{'s' if n != 1 else ''} recorded"
        if kind == "key-behind":
            return f"log key was {detail.get('entries')} entries behind (healed)"
        return _text(kind or e.get("reason") or "see --json")
    return _text(detail or e.get("reason") or "see --json")


def brief(text: str) -> str:
    """The first clause of a detail (`decision signed by an untrusted key (fp ...)` loses its
    parenthesis), for a folded request's one line."""
    for stop in (" (", "; ", ": "):
        text = text.split(stop, 1)[0]
    return text


def outcome(e: dict[str, Any]) -> str:
    """What happened, in words: `allowed`, `denied by rule`, `held`, `approved by alice`,
    `ran: exit 0`, `granted g7k2mqxa by alice`, `observed: would deny`, `security: ...`."""
    ev = e.get("event")
    who = _text(e.get("approver")) or "a human"
    grant = _text(e.get("grant"))
    if ev == "call":
        return _call_outcome(e)
    if ev == "held":
        risk = e.get("risk")
        return f"held (risk {_text(risk)})" if risk else "held"
    simple: dict[Any, Callable[[], str]] = {
        "approved": lambda: f"approved by {who}",
        "denied": lambda: f"denied by {who}",
        "expired": lambda: "expired",
        "cancelled": lambda: f"withdrawn ({_signal(e.get('signal'))})",
        "executed": lambda: f"ran: exit {_text(e.get('exit'))}",
        "error": lambda: f"error: {brief(_text(e.get('detail')))}",
        "security": lambda: f"security: {brief(security_what(e))}",
        "granted": lambda: f"granted {grant} by {who}",
        "grant": lambda: f"grant {grant} issued by {who}",
        "grant-revoked": lambda: f"grant {grant} revoked by {who}",
        "grant-expired": lambda: f"grant {grant} expired",
        "notify-failed": lambda: f"notify failed: {brief(_text(e.get('detail')))}",
        "approval": lambda: f"approval {_text(e.get('detail'))} by {who}",
        "note": lambda: f"note: {brief(_text(e.get('detail')))}",
        "relay-unreachable": lambda: f"server unreachable: {brief(_text(e.get('detail')))}",
        "relay-error": lambda: f"server error: {brief(_text(e.get('detail')))}",
        "relay-reached": lambda: "server reached again",
        "torn": lambda: f"torn: line {e.get('line')}, {e.get('bytes')} bytes, incomplete",
    }
    if ev in simple:
        return simple[ev]()
    detail = e.get("detail")  # a kind this version does not know: its name and detail
    return _text(ev) + (f": {brief(_text(detail))}" if isinstance(detail, str) and detail else "")


def _call_outcome(e: dict[str, Any]) -> str:
    decision, policy, mode = e.get("decision"), e.get("policy"), e.get("mode")
    if decision == "allow" and policy in ("ask", "deny") and mode in ("observe", "warn"):
        would = "would deny" if policy == "deny" else "would hold"
        return f"{'observed' if mode == 'observe' else 'warned'}: {would}"
    if decision == "allow":
        return "allowed"
    if decision == "deny":
        risk = e.get("risk")
        return f"denied by rule (risk {_text(risk)})" if risk else "denied by rule"
    if decision == "ask":
        return "needs approval"
    return _text(decision)


def tone(e: dict[str, Any]) -> str:
    """How alarming a row is: `allow` (ran), `ask` (waits for a human), `deny` (did not run),
    `done` (a held call that ran) or `alert` (security, error, torn)."""
    ev = e.get("event")
    if ev in ("security", "error", "torn"):
        return "alert"
    if ev in ("denied", "expired", "cancelled", "grant-revoked"):
        return "deny"
    if ev in ("approved", "executed", "granted", "grant"):
        return "done"
    if ev in ("held", "notify-failed", "approval", "relay-unreachable", "relay-error"):
        return "ask"
    if ev == "call" and e.get("decision") in DECISIONS:
        return str(e["decision"]) if e.get("mode") not in ("observe", "warn") else "ask"
    return ""


def command(e: dict[str, Any]) -> str:
    """The call as the agent typed it (the tool, then its arguments), shell-quoted and
    printable; for a grant, the tool and what the grant covers."""
    tool = e.get("tool")
    if e.get("event") in ("grant", "grant-revoked", "grant-expired"):
        return _grant_scope(e)
    argv = e.get("argv")
    if not isinstance(argv, list):
        return _text(tool)
    words = ([str(tool)] if tool else []) + [str(a) for a in argv]
    return printable(shlex.join(words))


def _grant_scope(e: dict[str, Any]) -> str:
    """What a grant covers (its rules and verbs): the argv of a grant entry is only the call
    during which the shim read the grant."""
    d = e.get("detail")
    if not isinstance(d, dict):
        return _text(e.get("tool"))
    covers = [str(r) for r in d.get("rules") or ()] + [str(v) for v in d.get("verbs") or ()]
    covers += [shlex.join(str(a) for a in d.get("argv") or ())] if d.get("argv") else []
    return printable(f"{d.get('tool', e.get('tool'))}: {', '.join(covers)}")


def context(e: dict[str, Any]) -> str:
    """The resolved target, `key=value` sorted by key; never the working directory."""
    ctx = e.get("context")
    d = e.get("detail")
    if e.get("event") in ("grant", "grant-revoked", "grant-expired") and isinstance(d, dict):
        ctx = d.get("target")
    if not isinstance(ctx, dict):
        return ""
    cwd = ctx.get("cwd")
    items = sorted(
        (str(k), str(v))
        for k, v in ctx.items()
        if k != "cwd" and v not in (None, "") and not (k == "dir" and v == cwd)
    )
    return printable(" ".join(f"{k}={v}" for k, v in items))


def when(e: dict[str, Any], today: str) -> str:
    """`18:17:44` for an entry of `today` (a UTC `YYYY-MM-DD`), `12-06 18:17` earlier this
    year, `2025-12-06` before. The log's times are UTC."""
    t = e.get("time")
    if not isinstance(t, str) or len(t) < 19:
        return _text(t)
    if t[:10] == today:
        return t[11:19]
    if t[:4] == today[:4]:
        return f"{t[5:10]} {t[11:16]}"
    return t[:10]


def reason(e: dict[str, Any]) -> str:
    """Why: the rule's reason, the person's, a grant's; for an error, a security event, a
    failed notify hook, a note or the approval server's trouble, the whole detail (the
    outcome has its first clause)."""
    why = e.get("reason")
    detail = e.get("detail")
    if not why and isinstance(detail, str) and e.get("event") in DETAILED:
        why = detail
    return _text(why)


def cells(e: dict[str, Any], today: str, what: str | None = None) -> list[str]:
    """The row of one entry, in COLUMNS order (`what` replaces its outcome)."""
    if is_torn(e):
        return ["", "", "", "", "", outcome(e), "", ""]
    agent = e.get("agent")
    d = e.get("detail")
    if e.get("event") in ("grant", "grant-revoked", "grant-expired") and isinstance(d, dict):
        agent = d.get("agent", agent)
    return [
        _text(e.get("seq")),
        when(e, today),
        _text(e.get("request")),
        _text(agent),
        command(e),
        outcome(e) if what is None else what,
        reason(e),
        context(e),
    ]


def row(e: dict[str, Any], today: str) -> Row:
    return Row(cells(e, today), tone(e))


# ---------------------------------------------------------------- filters


def has_decision(e: dict[str, Any], decision: str) -> bool:
    """`--decision`: the entry's decision, where a person's decision counts as theirs (an
    `approved` entry is an allow, a `denied` one a deny, though both record `decision: ask`)."""
    if e.get("decision") == decision:
        return True
    return (decision, e.get("event")) in (("deny", "denied"), ("allow", "approved"))


def make_filter(
    agent: str | None = None,
    tool: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    request: str | None = None,
    events: Iterable[str] = (),
) -> Callable[[dict[str, Any]], bool]:
    """A predicate over entries for the `shield log` filters. A torn line, whose fields
    cannot be read, is kept unless a filter asks for something it cannot be shown to be (an
    agent, a tool, a decision, a request, other events)."""
    wanted = set(events)
    specific = any(f is not None for f in (agent, tool, decision, request))

    def keep(e: dict[str, Any]) -> bool:
        if is_torn(e):
            return not specific and (not wanted or "torn" in wanted)
        if agent is not None and e.get("agent") != agent:
            return False
        if tool is not None and e.get("tool") != tool:
            return False
        if decision is not None and not has_decision(e, decision):
            return False
        if request is not None and e.get("request") != request:
            return False
        if wanted and e.get("event") not in wanted:
            return False
        t = e.get("time")
        return not (since is not None and (not isinstance(t, str) or t < since))

    return keep


# ---------------------------------------------------------------- --by-request


def fold(entries: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Entries grouped by held request, each group where its first entry was; entries of no
    request are groups of one."""
    groups: list[list[dict[str, Any]]] = []
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        rid = e.get("request")
        if isinstance(rid, str) and rid and not is_torn(e):
            if rid in by_id:
                by_id[rid].append(e)
                continue
            by_id[rid] = [e]
            groups.append(by_id[rid])
        else:
            groups.append([e])
    return groups


def step(e: dict[str, Any]) -> str:
    """One entry's part of a folded request's story (`approved by alice "why"`); '' for the
    call itself, which the held entry repeats."""
    ev = e.get("event")
    if ev == "call":
        return "" if e.get("decision") == "ask" else outcome(e)
    if ev == "executed":
        return f"exit {_text(e.get('exit'))}"
    if ev == "expired":
        return "expired"
    if ev == "held":
        return "held"
    if ev == "notify-failed":
        return "notify failed"
    if ev in ("approved", "denied"):
        why = _text(e.get("reason"))
        return outcome(e) + (f' "{why}"' if why else "")
    return outcome(e)


def folded_row(group: list[dict[str, Any]], today: str) -> Row:
    """One row for a held call: its first entry's cells, the reason the rule gave, and what
    happened as a chain: `held -> approved by alice "routine restart" -> exit 0`."""
    if len(group) == 1:
        return row(group[0], today)
    steps = [s for s in (step(e) for e in group) if s] or [outcome(group[0])]
    first = next((e for e in group if e.get("event") == "call"), group[0])
    out = cells(first, today, " -> ".join(steps))
    out[0], out[1] = _text(group[0].get("seq")), when(group[0], today)
    last = next((e for e in reversed(group) if tone(e) != "alert"), group[-1])
    alert = any(tone(e) == "alert" for e in group)
    return Row(out, "alert" if alert else tone(last))
