"""One line per row, at any terminal width: cells cut with an ellipsis, never wrapped, and the
least important columns dropped first when the terminal is too narrow (as `kubectl get`
does). Used by the commands that list things (`shield grants`, `shield pending`, `shield
log`). Pure: rows and a width in, lines out.
"""

from __future__ import annotations

from dataclasses import dataclass

GAP = 2
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """`optional`: dropped (before any cell is cut) when the line does not fit; `keep`: the
    higher, the later a column is dropped (optional ones first, then the others once even
    their minimum widths do not fit); `flex`: gives up width first when cells must be cut;
    `right`: numbers."""

    name: str
    min: int = 4
    max: int = 40
    keep: int = 1
    flex: bool = False
    right: bool = False
    optional: bool = False


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, with an ellipsis when it was longer."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def layout(columns: list[Column], rows: list[list[str]], width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown, left to right."""
    shown = list(range(len(columns)))

    def natural(i: int) -> int:
        longest = max((len(r[i]) for r in rows), default=0)
        return min(columns[i].max, max(len(columns[i].name), longest, 1))

    def need(idx: list[int], widths: dict[int, int]) -> int:
        return sum(widths[i] for i in idx) + GAP * (len(idx) - 1)

    widths = {i: natural(i) for i in shown}
    mins = {i: min(columns[i].min, widths[i]) for i in shown}
    while need(shown, widths) > width:
        optional = [i for i in shown if columns[i].optional]
        if not optional:
            break
        shown.remove(min(optional, key=lambda i: (columns[i].keep, -i)))
    while len(shown) > 1 and need(shown, mins) > width:
        shown.remove(min(shown, key=lambda i: (columns[i].keep, -i)))
    excess = need(shown, widths) - width
    for group in ([i for i in shown if columns[i].flex], [i for i in shown if not columns[i].flex]):
        for i in sorted(group, key=lambda i: -widths[i]):
            if excess <= 0:
                break
            give = min(excess, widths[i] - mins[i])
            widths[i] -= give
            excess -= give
    return [(i, widths[i]) for i in shown]


def render(columns: list[Column], rows: list[list[str]], width: int) -> list[str]:
    """The header line and one line per row, each at most `width` characters."""
    cols = layout(columns, rows, width)

    def line(cells: list[str]) -> str:
        parts = []
        for i, w in cols:
            text = cut(cells[i], w)
            parts.append(text.rjust(w) if columns[i].right else text.ljust(w))
        return (" " * GAP).join(parts).rstrip()

    return [line([c.name for c in columns]), *(line(r) for r in rows)]
