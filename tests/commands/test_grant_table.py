"""`shield grants`' table: one line per grant, and a uses column that reads without a legend."""

from __future__ import annotations

import time

from shim.clock import now_iso
from shim.commands.grant import grant_lines


def grant(used: int, max_uses: int | None) -> dict:
    return {
        "id": "g7k2mqxa",
        "agent": "deploy-bot",
        "rules": ["kubectl/mutate"],
        "verbs": [],
        "target": {"context": "kind-dev"},
        "expires": now_iso(time.time() + 900),
        "used": used,
        "max_uses": max_uses,
        "status": "live",
    }


def test_the_used_column_counts_and_shows_a_limit_only_where_there_is_one() -> None:
    lines = grant_lines([grant(2, None), grant(1, 3)], time.time(), 80)
    assert lines[0].split()[-2:] == ["used", "status"]
    assert lines[1].split()[-2:] == ["2", "live"]
    assert lines[2].split()[-2:] == ["1/3", "live"]
    assert all(len(line) <= 80 for line in lines)
