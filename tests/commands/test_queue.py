"""The approver's queue (`shield pending`) as lines at a terminal width: pure render tests.

Thirteen held requests, as a burst leaves them: the two critical ones must come first, each
request must take exactly one line at 80, 120 and 200 columns (cells cut with an ellipsis,
never wrapped), and what needs a second look (a failed preview, a refused decision, an edited
request) follows the count line.
"""

from __future__ import annotations

from typing import Any

import pytest

from shim.approval.request import new_request, to_dict
from shim.clock import now_iso
from shim.commands.queue import Filters, ordered, queue_screen, short_duration
from shim.commands.table import ELLIPSIS
from shim.errors import UsageError

NOW = 1_800_000_000.0


def item(
    agent: str,
    tool: str,
    argv: list[str],
    risk: str | None,
    age_s: float,
    preview: dict[str, Any] | None = None,
    status: str = "pending",
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if risk:
        extra["risk"] = risk
    if preview:
        extra["preview"] = preview
    req = new_request(
        agent=agent,
        tool=tool,
        argv=argv,
        cwd="/work",
        context={"context": "prod-eu"},
        rule=f"{tool}/mutate",
        reason="this changes things",
        timeout_s=600,
        extra=extra,
        now=NOW - age_s,
    )
    return {**to_dict(req), "status": status}


def ok_preview(summary: str) -> dict[str, Any]:
    return {"kind": "x", "ok": True, "summary": summary, "lines": [], "error": None}


def burst() -> list[dict[str, Any]]:
    """Thirteen requests in arrival order (oldest first), as the spool lists them."""
    items = []
    for n in range(6):
        items.append(
            item(
                "deploy-bot",
                "aws",
                ["ec2", "terminate-instances", "--instance-ids", f"i-0{n}abcdef0123456789"],
                "high",
                age_s=300 - n,
                preview=ok_preview(f"terminate 1 instance(s): web-{n} (running)"),
            )
        )
    items.append(
        item(
            "deploy-bot",
            "kubectl",
            ["--context", "prod-eu", "-n", "shop", "delete", "deployment", "web", "--wait=false"],
            "critical",
            age_s=200,
            preview={
                "kind": "kubectl-delete",
                "ok": False,
                "summary": "preview failed: cluster unreachable (127.0.0.1:6443)",
                "error": "cluster unreachable (127.0.0.1:6443)",
                "lines": [],
            },
        )
    )
    for n in range(3):
        items.append(
            item(
                "batch-bot-with-a-long-name",
                "kubectl",
                ["-n", "jobs", "rollout", "restart", f"deployment/worker-{n}"],
                "medium",
                age_s=150 - n,
            )
        )
    items.append(item("deploy-bot", "terraform", ["destroy", "-auto-approve"], "critical", 90))
    items.append(item("ops-bot", "helm", ["upgrade", "shop", "./chart"], "low", 60))
    items.append(item("ops-bot", "kubectl", ["get", "secret", "db"], None, 30, status="modified"))
    return items


REFUSED = {"why": "decision signed by an untrusted key (fp 'abcd', approver 'bob')"}


@pytest.mark.parametrize("width", [80, 120, 200])
def test_every_request_takes_one_line_at_any_width_critical_first(width: int) -> None:
    items = burst()
    notes = {items[1]["id"]: [{**REFUSED, "approver": "bob"}]}
    screen = queue_screen(items, notes, NOW, width)
    lines = screen.lines
    assert all(len(line) <= width for line in lines), [len(x) for x in lines]
    header, rows = lines[0], lines[1:14]
    assert header.split()[:7] == ["id", "risk", "age", "expires", "agent", "tool", "command"]
    # one line per request, in queue order: ids in the first column, nothing wrapped over
    by_id = {i["id"]: i for i in items}
    assert [r.split()[0] for r in rows] == [i["id"] for i in screen.rows]
    assert sorted(screen.rows, key=lambda i: i["id"]) == sorted(items, key=lambda i: i["id"])
    # critical first (the kubectl delete held earlier, then terraform), then high ... low; an
    # unrated request sorts with medium (the default level), never below low
    assert [r.split()[1] for r in rows] == ["critical"] * 2 + ["high"] * 6 + ["medium"] * 3 + [
        "-",
        "low",
    ]
    assert by_id[rows[0].split()[0]]["tool"] == "kubectl"
    assert by_id[rows[1].split()[0]]["tool"] == "terraform"
    assert lines[14] == "13 held requests: 2 critical, 6 high, 3 medium, 1 low, 1 unrated"
    flagged = lines[15:]
    assert len(flagged) == 3
    assert flagged[0].startswith(f"! {rows[0].split()[0]}  preview failed: cluster unreachable")
    assert flagged[1].startswith(f"! {items[1]['id']}  a decision by bob was refused: decision")
    assert "edited after it was held" in flagged[2]


def test_at_80_columns_the_command_is_cut_and_the_preview_dropped() -> None:
    lines = queue_screen(burst(), {}, NOW, 80).lines
    assert "preview" not in lines[0]
    deletes = [line for line in lines if "delete deployment" in line or "--context" in line]
    assert deletes and deletes[0].endswith(ELLIPSIS)
    assert all(len(line) <= 80 for line in lines)


def test_at_200_columns_commands_are_whole_and_previews_shown() -> None:
    lines = queue_screen(burst(), {}, NOW, 200).lines
    assert lines[0].split()[-1] == "preview"
    assert any(
        "--context prod-eu -n shop delete deployment web --wait=false" in line for line in lines
    )
    assert any("terminate 1 instance(s): web-0 (running)" in line for line in lines)
    assert any("FAILED: cluster unreachable (127.0.0.1:6443)" in line for line in lines)


def test_golden_queue_at_80_columns() -> None:
    items = burst()[6:10]  # the critical delete and three restarts
    lines = queue_screen(items, {}, NOW, 80).lines
    rid = [i["id"] for i in ordered(items)]
    assert lines == [
        "id      risk      age  expires  agent         tool     command",
        f"{rid[0]}  critical   3m       6m  deploy-bot    kubectl  --context prod-eu -n sho…",
        f"{rid[1]}  medium     2m       7m  batch-bot-w…  kubectl  -n jobs rollout restart …",
        f"{rid[2]}  medium     2m       7m  batch-bot-w…  kubectl  -n jobs rollout restart …",
        f"{rid[3]}  medium     2m       7m  batch-bot-w…  kubectl  -n jobs rollout restart …",
        "4 held requests: 1 critical, 3 medium",
        f"! {rid[0]}  preview failed: cluster unreachable (127.0.0.1:6443)",
    ]


def test_filters_choose_by_agent_glob_tool_and_risk_level_or_above() -> None:
    items = burst()
    tools = Filters.parse(None, ["AWS"], None)
    assert {i["tool"] for i in items if tools.matches(i)} == {"aws"}
    agents = Filters.parse(["batch-*"], None, None)
    assert sum(agents.matches(i) for i in items) == 3
    high_up = Filters.parse(None, None, ["high+"])
    assert {i.get("risk") for i in items if high_up.matches(i)} == {"high", "critical"}
    both = Filters.parse(["deploy-bot"], ["kubectl", "terraform"], ["critical"])
    assert sum(both.matches(i) for i in items) == 2
    screen = queue_screen(items, {}, NOW, 120, tools)
    assert screen.lines[-1] == "6 of 13 held requests (tool aws): 6 high"
    none = queue_screen(items, {}, NOW, 120, Filters.parse(None, ["helm"], ["critical"]))
    assert none.lines == ["no held requests match (tool helm, risk critical) of 13 held requests"]


@pytest.mark.parametrize("bad", ["severe", "", "+"])
def test_an_unknown_risk_filter_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="--risk takes one of low, medium, high, critical"):
        Filters.parse(None, None, [bad])


def test_an_empty_queue_says_so() -> None:
    assert queue_screen([], {}, NOW, 80).lines == ["no held requests"]


def test_agent_text_in_cells_is_escaped_and_never_breaks_the_line() -> None:
    bad = item("bot\n\x1b[31mred", "kubectl", ["delete", "pod", "a\nb\x1b[2J"], "high", 10)
    lines = queue_screen([bad], {bad["id"]: [{"why": "x\ny\x1b[0m"}]}, NOW, 120).lines
    assert len(lines) == 4
    assert not any("\x1b" in line or "\n" in line for line in lines)
    assert "\\x1b[2J" in lines[1] and "\\x1b[0m" in lines[3]


def test_short_durations_fit_a_cell() -> None:
    assert [short_duration(s) for s in (-5, 45, 60, 599, 3600, 3725, 90000)] == [
        "0s",
        "45s",
        "1m",
        "9m",
        "1h00m",
        "1h02m",
        "1d01h",
    ]
    assert now_iso(NOW)  # the fixture's clock is a plain float
