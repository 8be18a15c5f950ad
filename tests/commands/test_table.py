"""One line per row at any width: cut with an ellipsis, low-priority columns dropped first."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.commands.table import Column, cut, format_row, layout, render, text_width

COLUMNS = [
    Column("id", min=6, max=6, keep=9),
    Column("agent", max=16, keep=3),
    Column("command", min=10, max=80, keep=8, flex=True),
    Column("cwd", max=40, keep=1, optional=True),
    Column("age", max=6, keep=7, right=True),
]
ROWS = [
    [
        "k7m2qx",
        "deploy-bot",
        "kubectl -n prod delete pod web-5f6b7-kk9sd --grace-period=0",
        "/srv/agents/deploy-bot/work",
        "3m",
    ],
    ["p9aa2w", "ci-bot", "terraform apply", "/w", "12s"],
]


@pytest.mark.parametrize("width", [40, 60, 80, 120, 200])
def test_every_line_fits_and_each_row_is_one_line(width: int) -> None:
    lines = render(COLUMNS, ROWS, width)
    assert len(lines) == 1 + len(ROWS)
    assert all(len(line) <= width for line in lines)
    assert all(line.split()[0] in ("id", "k7m2qx", "p9aa2w") for line in lines)


def test_narrow_terminals_drop_the_least_important_columns_first() -> None:
    wide, mid, narrow = (render(COLUMNS, ROWS, w)[0].split() for w in (200, 80, 26))
    assert wide == ["id", "agent", "command", "cwd", "age"]
    assert mid == ["id", "agent", "command", "age"]  # an optional column goes before any cut
    assert narrow == ["id", "command", "age"]  # then the least important, once even minimums fail


def test_long_cells_are_cut_with_an_ellipsis() -> None:
    line = render(COLUMNS, ROWS, 80)[1]
    assert "…" in line and "web-5f6b7-kk9sd --grace-period=0" not in line
    assert cut("abcdef", 4) == "abc…" and cut("abc", 4) == "abc" and cut("abc", 0) == ""


@settings(max_examples=200)
@given(
    st.lists(st.lists(st.text(max_size=60), min_size=5, max_size=5), max_size=6),
    st.integers(20, 250),
)
def test_no_line_is_ever_wider_than_the_terminal(rows: list[list[str]], width: int) -> None:
    assert all(text_width(line) <= width for line in render(COLUMNS, rows, width))


def test_wide_characters_take_two_cells_and_are_cut_whole() -> None:
    assert text_width("設定") == 4 and text_width("e\u0301") == 1
    assert cut("設定設定", 5) == "設定…" and text_width(cut("設定設定", 5)) == 5
    cols = [Column("name", max=10), Column("n", right=True)]
    line = render(cols, [["設定設定設定", "1"]], 14)[1]
    assert text_width(line) <= 14 and line.endswith("1")


def test_the_least_important_flex_column_gives_up_width_first() -> None:
    cols = [
        Column("what", min=10, max=60, keep=9, flex=True),
        Column("why", min=10, max=60, keep=2, flex=True),
    ]
    row = ["w" * 40, "y" * 40]
    (_, line) = render(cols, [row], 62)
    what, why = line.split()
    assert what == "w" * 40 and why == "y" * 19 + "…"


def test_format_row_keeps_a_layout_for_rows_that_come_later() -> None:
    cols = layout(COLUMNS, ROWS, 80)
    late = ["zz9zz9", "a-much-longer-agent-name-than-before", "helm uninstall web", "/w", "1h"]
    line = format_row(COLUMNS, cols, late)
    assert len(line) <= 80 and line.split()[0] == "zz9zz9" and "…" in line


def test_an_optional_column_shows_only_when_the_others_have_their_wanted_width() -> None:
    cols = [
        Column("command", min=20, want=40, max=80, keep=9, flex=True),
        Column("reason", min=10, want=20, max=60, keep=2, flex=True, optional=True),
    ]
    row = ["c" * 70, "r" * 50]
    assert render(cols, [row], 61)[0].split() == ["command"]  # 40 + 2 + 20 > 61
    wide = render(cols, [row], 62)
    assert wide[0].split() == ["command", "reason"]
    command, reason = wide[1].split()
    assert (len(command), len(reason)) == (40, 20)  # both cut to what they want
    assert render(cols, [row], 200)[1].split() == [row[0], row[1]]
