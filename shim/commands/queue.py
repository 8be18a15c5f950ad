"""The approver's queue: which held requests, in which order, one line each (pure, cold).

`shield pending` shows it, `shield approve --all` and `shield deny --all` act on it. Requests
come as `shield pending --json` prints them (the agent's words, rebuilt from their content);
everything shown passes through `printable`, and each line is cut to the terminal's width by
`shim.commands.table` (never wrapped). The most dangerous requests come first: by risk
(critical first), then oldest first.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from shim.approval.show import command_line, printable
from shim.clock import parse_iso
from shim.commands.table import GAP, Column, cut, layout, render
from shim.errors import UsageError
from shim.preview.risk import LEVELS, RANK

# what the terminal shows first: risk order, critical on top
UNKNOWN_RISK = "-"

# Narrow terminals drop the preview first (it is in the notes when it failed), then the agent,
# then expiry and age; id, risk, tool and the command stay (the command is cut instead).
COLUMNS = [
    Column("id", min=6, max=6, keep=10),
    Column("risk", min=8, max=8, keep=9),
    Column("age", min=3, max=6, keep=5, right=True),
    Column("expires", min=3, max=7, keep=6, right=True),
    Column("agent", min=5, max=12, keep=3),
    Column("tool", min=4, max=10, keep=7),
    Column("command", min=12, max=160, keep=8, flex=True),
    Column("preview", min=16, max=70, keep=1, flex=True, optional=True),
]
RISK_COLUMN = 1


@dataclass(frozen=True)
class Filters:
    """`--agent` (globs), `--tool`, `--risk` (a level, or LEVEL+ for that level and above);
    each repeatable, a request matches when it matches one value of every filter given."""

    agents: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    risks: tuple[str, ...] = ()
    levels: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def parse(
        cls, agents: list[str] | None, tools: list[str] | None, risks: list[str] | None
    ) -> Filters:
        levels: set[str] = set()
        for text in risks or ():
            word = text.strip().lower()
            at_least = word.endswith("+")
            word = word.rstrip("+")
            if word not in RANK:
                raise UsageError(
                    f"--risk takes one of {', '.join(LEVELS)} (or LEVEL+ for that and above), "
                    f"not {printable(text)!r}"
                )
            levels |= {lv for lv in LEVELS if RANK[lv] >= RANK[word]} if at_least else {word}
        return cls(
            tuple(agents or ()),
            tuple(t.lower() for t in tools or ()),
            tuple(risks or ()),
            frozenset(levels),
        )

    @property
    def given(self) -> bool:
        return bool(self.agents or self.tools or self.risks)

    def describe(self) -> str:
        parts = [f"agent {' or '.join(self.agents)}"] if self.agents else []
        parts += [f"tool {' or '.join(self.tools)}"] if self.tools else []
        parts += [f"risk {' or '.join(self.risks)}"] if self.risks else []
        return printable(", ".join(parts))

    def matches(self, item: dict[str, Any]) -> bool:
        agent = str(item.get("agent", ""))
        if self.agents and not any(fnmatch.fnmatchcase(agent, a) for a in self.agents):
            return False
        if self.tools and str(item.get("tool", "")).lower() not in self.tools:
            return False
        return not self.levels or risk_of(item) in self.levels


def risk_of(item: dict[str, Any]) -> str:
    """The request's risk level, or UNKNOWN_RISK (no preview, or not a level we know)."""
    risk = item.get("risk")
    return risk if isinstance(risk, str) and risk in RANK else UNKNOWN_RISK


def rank(item: dict[str, Any]) -> int:
    """Sort key for risk: critical 0 ... low 3; an unknown risk sorts with medium."""
    risk = risk_of(item)
    return len(LEVELS) - 1 - RANK.get(risk, RANK["medium"])


def ordered(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Critical first, then high, medium, low; oldest first within a level."""
    return sorted(items, key=lambda i: (rank(i), parse_iso(str(i["created"])), str(i["id"])))


def short_duration(seconds: float) -> str:
    """`45s`, `9m`, `1h02m`, `3d04h`: short enough for a table cell."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def preview_cell(item: dict[str, Any]) -> str:
    pv = item.get("preview")
    if not isinstance(pv, dict):
        return ""
    if not pv.get("ok"):
        return printable(f"FAILED: {pv.get('error') or 'unknown error'}")
    return printable(" ".join(str(pv.get("summary") or "").split()))


def row(item: dict[str, Any], now: float) -> list[str]:
    """The table's cells for one request."""
    created, expires = parse_iso(str(item["created"])), parse_iso(str(item["expires"]))
    return [
        str(item["id"]),
        risk_of(item),
        short_duration(now - created),
        short_duration(expires - now),
        printable(str(item.get("agent", ""))),
        printable(str(item.get("tool", ""))),
        command_line([str(a) for a in item.get("argv") or ()]),
        preview_cell(item),
    ]


def refusal_line(notes: list[dict[str, str]]) -> str:
    """One line on the shims' refusal notes for a request (the agent's words)."""
    last = notes[-1]
    who = f" by {last['approver']}" if last.get("approver") else ""
    more = f" ({len(notes)} refused)" if len(notes) > 1 else ""
    return printable(f"a decision{who} was refused{more}: {' '.join(last['why'].split())}")


def flags(item: dict[str, Any], notes: list[dict[str, str]]) -> list[str]:
    """What the approver must know about a request beyond its row, one line each."""
    out = []
    if item.get("status") == "modified":
        out.append("edited after it was held (its digest does not match): approve refuses it")
    pv = item.get("preview")
    if isinstance(pv, dict) and not pv.get("ok"):
        out.append(printable(f"preview failed: {pv.get('error') or 'unknown error'}"))
    if notes:
        out.append(refusal_line(notes))
    return out


def count_line(shown: list[dict[str, Any]], total: int, filters: Filters) -> str:
    """`13 held requests: 2 critical, 3 high, 8 medium` (or `4 of 13 held requests (tool
    aws): 4 high`)."""
    labels = [(level, level) for level in reversed(LEVELS)] + [(UNKNOWN_RISK, "unrated")]
    by_level = [
        f"{n} {label}"
        for level, label in labels
        if (n := sum(1 for i in shown if risk_of(i) == level))
    ]
    noun = "held request" if total == 1 else "held requests"
    head = f"{len(shown)} {noun}" if len(shown) == total else f"{len(shown)} of {total} {noun}"
    if filters.given:
        head += f" ({filters.describe()})"
    return f"{head}: {', '.join(by_level)}" if by_level else head


@dataclass(frozen=True)
class Screen:
    """The queue as lines: `lines[0]` the header, then one per request, the count line, and
    the notes; `risk_at` is (start, width) of the risk cell in each request line, or None
    when the column was dropped."""

    lines: list[str]
    rows: list[dict[str, Any]]
    risk_at: tuple[int, int] | None


def queue_screen(
    items: list[dict[str, Any]],
    notes: dict[str, list[dict[str, str]]],
    now: float,
    width: int,
    filters: Filters | None = None,
) -> Screen:
    """The whole queue for a terminal `width` cells wide."""
    filters = filters or Filters()
    shown = ordered([i for i in items if filters.matches(i)])
    cells = [row(i, now) for i in shown]
    if not shown:
        if not filters.given or not items:
            return Screen(["no held requests"], [], None)
        held = f"{len(items)} held request{'s' if len(items) != 1 else ''}"
        return Screen([f"no held requests match ({filters.describe()}) of {held}"], [], None)
    columns = COLUMNS if any(c[-1] for c in cells) else COLUMNS[:-1]  # no previews: no column
    table = render(columns, cells, width)
    cols = layout(columns, cells, width)
    risk_at = None
    start = 0
    for index, w in cols:
        if index == RISK_COLUMN:
            risk_at = (start, w)
        start += w + GAP
    lines = table + [cut(count_line(shown, len(items), filters), width)]
    for item in shown:
        for text in flags(item, notes.get(str(item["id"]), [])):
            lines.append(cut(f"! {item['id']}  {text}", width))
    return Screen(lines, shown, risk_at)
