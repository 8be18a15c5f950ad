"""One line per row, at any terminal width: cells cut with an ellipsis, never wrapped, and the
least important columns dropped first when the terminal is too narrow (as `kubectl get`
does). Used by the commands that list things (`shield grants`, `shield pending`, `shield
log`). Pure: rows and a width in, lines out.

Widths are terminal cells, not characters: a CJK character or an emoji takes two, a combining
accent none. Cells must be printable already (`shim.approval.show.printable`): a newline or
an escape sequence in a cell would break the one-line promise.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GAP = 2
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """`optional`: dropped when the line does not fit with every column at its `want` width
    (before any cell is cut below it); `keep`: the higher, the later a column is dropped
    (optional ones first, then the others once even their `min` widths do not fit) and the
    later it gives up width; `flex`: gives up width before the others; `want`: the width a
    column keeps until every other has given up what it had beyond its own `want` (default:
    `max`); `min`: never narrower (nor narrower than its name); `right`: numbers."""

    name: str
    min: int = 4
    max: int = 40
    keep: int = 1
    flex: bool = False
    right: bool = False
    optional: bool = False
    want: int | None = None


def char_width(ch: str) -> int:
    """Terminal cells one character takes: 2 for wide East Asian characters, 0 for combining
    marks, else 1."""
    if ch.isascii():
        return 1
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    """Terminal cells `text` takes."""
    if text.isascii():
        return len(text)
    return sum(char_width(ch) for ch in text)


def cut(text: str, width: int) -> str:
    """`text` in at most `width` cells, with an ellipsis when it was longer."""
    if text_width(text) <= width:
        return text
    if width <= 0:
        return ""
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded with spaces to `width` cells (on the left for `right`)."""
    fill = " " * max(0, width - text_width(text))
    return fill + text if right else text + fill


def layout(columns: list[Column], rows: list[list[str]], width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown, left to right.

    Columns start at their natural width (the longest cell, at most `max`). Optional ones
    are dropped, least kept first, while the line does not fit at the `want` widths; then
    any column, least kept first, while it does not fit at the `min` widths. Then cells are
    cut: each column gives up width down to its `want`, then down to its `min`, flex columns
    before the others, the least kept first."""
    shown = list(range(len(columns)))

    def natural(i: int) -> int:
        longest = max((text_width(r[i]) for r in rows), default=0)
        return min(columns[i].max, max(len(columns[i].name), longest, 1))

    def need(idx: list[int], widths: dict[int, int]) -> int:
        return sum(widths[i] for i in idx) + GAP * (len(idx) - 1)

    widths = {i: natural(i) for i in shown}
    wants = {i: min(columns[i].want or columns[i].max, widths[i]) for i in shown}
    mins = {i: min(max(columns[i].min, len(columns[i].name)), wants[i]) for i in shown}
    while need(shown, wants) > width:
        optional = [i for i in shown if columns[i].optional]
        if not optional:
            break
        shown.remove(min(optional, key=lambda i: (columns[i].keep, -i)))
    while len(shown) > 1 and need(shown, mins) > width:
        shown.remove(min(shown, key=lambda i: (columns[i].keep, -i)))
    excess = need(shown, widths) - width
    order = sorted(shown, key=lambda i: (not columns[i].flex, columns[i].keep, -widths[i]))
    for floor in (wants, mins):
        for i in order:
            if excess <= 0:
                break
            give = max(0, min(excess, widths[i] - floor[i]))
            widths[i] -= give
            excess -= give
    if excess > 0 and shown:  # one column left, wider than the terminal even at its minimum
        widths[shown[0]] = max(1, widths[shown[0]] - excess)
    return [(i, widths[i]) for i in shown]


def format_row(columns: list[Column], cols: list[tuple[int, int]], cells: list[str]) -> str:
    """One row laid out by `layout` (or a header: the column names as cells)."""
    parts = [pad(cut(cells[i], w), w, columns[i].right) for i, w in cols]
    return (" " * GAP).join(parts).rstrip()


def render(columns: list[Column], rows: list[list[str]], width: int) -> list[str]:
    """The header line and one line per row, each at most `width` cells."""
    cols = layout(columns, rows, width)
    return [format_row(columns, cols, [c.name for c in columns])] + [
        format_row(columns, cols, r) for r in rows
    ]
