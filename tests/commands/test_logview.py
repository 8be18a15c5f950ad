"""How log entries read in `shield log`: outcomes in words, the folded view, the filters, and
the one-line-per-entry promise whatever an agent put in an entry (pure: no files)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.commands import logview as view
from shim.commands.log import table_lines, table_rows
from shim.commands.table import text_width

TODAY = "2026-12-06"


def e(event: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 7,
        "time": f"{TODAY}T18:17:44.403Z",
        "event": event,
        "agent": "deploy-bot",
        "tool": "kubectl",
        "argv": ["-n", "web", "rollout", "restart", "deploy/api"],
        "cwd": "/srv/work",
        "context": {"context": "kind-dev", "namespace": "web", "cwd": "/srv/work"},
        "decision": "ask",
        "rule": "kubectl/mutate",
        "request": None,
        "approver": None,
    }
    return {**base, **fields}


GRANT = {"agent": "deploy-bot", "tool": "kubectl", "rules": ["kubectl/mutate"], "verbs": []}
GRANT_DETAIL = {**GRANT, "argv": [], "target": {"context": "kind-dev", "namespace": "web"}}


OUTCOMES = [
    (e("call", decision="allow"), "allowed"),
    (e("call", decision="deny", reason="no"), "denied by rule"),
    (e("call", decision="deny", risk="critical"), "denied by rule (risk critical)"),
    (e("call", decision="ask", request="k7m2qx"), "needs approval"),
    (e("call", decision="allow", policy="deny", mode="observe"), "observed: would deny"),
    (e("call", decision="allow", policy="ask", mode="warn"), "warned: would hold"),
    (e("held", request="k7m2qx", risk="high"), "held (risk high)"),
    (e("held", request="k7m2qx"), "held"),
    (e("approved", request="k7m2qx", approver="alice"), "approved by alice"),
    (e("denied", request="k7m2qx", approver="bob"), "denied by bob"),
    (e("expired", request="k7m2qx"), "expired"),
    (e("cancelled", request="k7m2qx", signal=2), "withdrawn (Ctrl-C)"),
    (e("cancelled", request="k7m2qx", signal=15), "withdrawn (SIGTERM)"),
    (e("executed", request="k7m2qx", exit=0), "ran: exit 0"),
    (e("executed", request="k7m2qx", exit=137), "ran: exit 137"),
    (
        e("error", detail="real kubectl not found on PATH"),
        "error: real kubectl not found on PATH",
    ),
    (
        e("security", detail="decision signed by an untrusted key (fp '2109', approver 'm')"),
        "security: decision signed by an untrusted key",
    ),
    (
        e("security", detail={"kind": "key-behind", "entries": 3}),
        "security: log key was 3 entries behind",
    ),
    (
        e("security", detail={"kind": "torn-tail", "lines": [{}, {}]}),
        "security: 2 torn lines recorded",
    ),
    (e("granted", grant="g7k2mqxa", approver="alice", use=2), "granted g7k2mqxa by alice"),
    (
        e("grant", grant="g7k2mqxa", approver="alice", detail=GRANT_DETAIL),
        "grant g7k2mqxa issued by alice",
    ),
    (
        e("grant-revoked", grant="g7k2mqxa", approver="bob", detail=GRANT_DETAIL),
        "grant g7k2mqxa revoked by bob",
    ),
    (
        e("grant-expired", grant="g7k2mqxa", approver="alice", detail=GRANT_DETAIL),
        "grant g7k2mqxa expired",
    ),
    (
        e("notify-failed", detail="notify hook exited with status 1"),
        "notify failed: notify hook exited with status 1",
    ),
    (
        e("approval", request="k7m2qx", approver="alice", detail="1 of 2"),
        "approval 1 of 2 by alice",
    ),
    (e("note", request="k7m2qx", detail="alice approved already"), "note: alice approved already"),
    (
        e("relay-unreachable", request="k7m2qx", detail="connection refused (127.0.0.1:8443)"),
        "server unreachable: connection refused",
    ),
    (e("relay-error", request="k7m2qx", detail="401: bad token"), "server error: 401"),
    (e("relay-reached", request="k7m2qx", detail="reached https://s"), "server reached again"),
    ({"event": "torn", "line": 9, "bytes": 34}, "torn: line 9, 34 bytes, incomplete"),
]


@pytest.mark.parametrize(("entry", "said"), OUTCOMES)
def test_the_outcome_says_what_happened(entry: dict[str, Any], said: str) -> None:
    assert view.outcome(entry) == said


def test_every_event_kind_is_in_the_outcome_table() -> None:
    assert {entry["event"] for entry, _ in OUTCOMES} == set(view.EVENTS)


def test_a_grant_row_shows_what_the_grant_covers_not_the_call_that_read_it() -> None:
    cells = view.cells(e("grant", grant="g1", approver="alice", detail=GRANT_DETAIL), TODAY)
    assert cells[4] == "kubectl: kubectl/mutate"
    assert cells[-1] == "context=kind-dev namespace=web"


def test_the_command_is_the_call_as_typed_and_the_context_never_shows_the_cwd() -> None:
    cells = view.cells(e("call", decision="allow"), TODAY)
    assert cells[4] == "kubectl -n web rollout restart deploy/api"
    assert cells[-1] == "context=kind-dev namespace=web"
    tf = e(
        "call",
        tool="terraform",
        argv=["plan"],
        context={"dir": "/w", "cwd": "/w", "workspace": "default"},
    )
    assert view.context(tf) == "workspace=default"  # a dir that is the cwd says nothing new


def test_times_are_utc_with_the_date_only_when_it_is_not_today() -> None:
    assert view.when({"time": f"{TODAY}T18:17:44.403Z"}, TODAY) == "18:17:44"
    assert view.when({"time": "2026-01-02T03:04:05.000Z"}, TODAY) == "01-02 03:04"
    assert view.when({"time": "2025-12-31T23:59:59.000Z"}, TODAY) == "2025-12-31"


def test_decision_deny_includes_a_persons_denial_and_allow_an_approval() -> None:
    denied = e("denied", request="k7m2qx", approver="bob")
    approved = e("approved", request="k7m2qx", approver="alice")
    assert view.has_decision(denied, "deny") and view.has_decision(denied, "ask")
    assert view.has_decision(approved, "allow") and not view.has_decision(approved, "deny")
    keep = view.make_filter(decision="deny")
    assert keep(e("call", decision="deny")) and not keep(e("call", decision="allow"))


def test_a_torn_line_is_kept_unless_a_filter_asks_what_it_cannot_show() -> None:
    torn = {"event": "torn", "line": 3, "bytes": 10}
    assert view.make_filter()(torn) and view.make_filter(since="2026-01-01")(torn)
    assert view.make_filter(events=["torn"])(torn)
    assert not view.make_filter(agent="deploy-bot")(torn)
    assert not view.make_filter(events=["held"])(torn)


STORY = [
    e("call", seq=3, request="k7m2qx", reason="this changes the cluster"),
    e("held", seq=4, request="k7m2qx", risk="medium"),
    e("call", seq=5, decision="allow", argv=["get", "pods"]),
    e("approved", seq=6, request="k7m2qx", approver="alice", reason="routine restart"),
    e("executed", seq=7, request="k7m2qx", exit=0, approver="alice"),
]


def test_by_request_folds_a_held_call_into_one_row_where_it_began() -> None:
    rows = table_rows(STORY, by_request=True, today=TODAY)
    assert [r.cells[0] for r in rows] == ["3", "5"]
    held = rows[0]
    assert held.cells[2] == "k7m2qx"
    assert held.cells[5] == 'held -> approved by alice "routine restart" -> exit 0'
    assert held.cells[6] == "this changes the cluster"  # the rule's reason; alice's is quoted
    assert held.tone == "done"


def test_a_denied_or_refused_request_folds_with_its_tone() -> None:
    denied = [
        e("call", seq=1, request="p9aa2w"),
        e("held", seq=2, request="p9aa2w"),
        e("security", seq=3, request="p9aa2w", detail="decision was used before (replay)"),
        e("denied", seq=4, request="p9aa2w", approver="bob", reason="use staging"),
    ]
    (row,) = table_rows(denied, by_request=True, today=TODAY)
    assert (
        row.cells[5] == 'held -> security: decision was used before -> denied by bob "use staging"'
    )
    assert row.tone == "alert"


AGENT_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(AGENT_TEXT, AGENT_TEXT, AGENT_TEXT, st.sampled_from(view.EVENTS)),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([80, 120, 200]),
    st.booleans(),
)
def test_whatever_an_agent_writes_each_entry_is_one_line_within_the_width(
    items: list[tuple[str, str, str, str]], width: int, fold: bool
) -> None:
    entries = [
        e(kind, seq=i, argv=["get", word], reason=why, agent=agent, request="r1" if i % 2 else None)
        for i, (word, why, agent, kind) in enumerate(items)
    ]
    rows = table_rows(entries, by_request=fold, today=TODAY)
    lines = table_lines(rows, width, by_request=fold)
    assert len(lines) == 1 + len(rows)
    for line in lines:
        assert text_width(line) <= width
        assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line


def test_at_80_columns_an_agents_name_of_ten_is_whole_and_the_folded_chain_gets_room() -> None:
    # with several agents, `deploy-…` could be any of them
    call = e("call", decision="allow", argv=["get", "pods", "x" * 60], agent="deploy-bot")
    (line,) = table_lines(table_rows([call], today=TODAY), 80)[1:]
    assert " deploy-bot " in line
    held = [
        e("call", seq=1, decision="ask", request="r1", argv=["delete", "pod", "y" * 40]),
        e("held", seq=2, request="r1"),
        e("denied", seq=3, request="r1", approver="alice", reason="no"),
    ]
    (line,) = table_lines(table_rows(held, by_request=True, today=TODAY), 80, True)[1:]
    assert line.endswith('held -> denied by alice "no"'), line


def test_wide_characters_count_as_two_cells() -> None:
    entry = e("call", decision="allow", argv=["get", "configmap", "設定" * 30])
    lines = table_lines(table_rows([entry], today=TODAY), 80)
    assert all(text_width(line) <= 80 for line in lines) and "…" in lines[1]


def test_the_readme_shows_the_log_as_it_reads_at_80_columns() -> None:
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    blocks = [b for b in readme.split("```") if b.startswith("\n$ shield log")]
    assert len(blocks) >= 3  # the log, --by-request, --decision deny
    outcomes = ("allowed", "held (risk", "approved by alice", "ran: exit 0", "denied by rule")
    for block in blocks:
        header, *rows = block.strip("\n").splitlines()[1:]
        assert {"time", "command", "outcome"} <= set(header.split())
        assert rows and all(text_width(line) <= 80 for line in [header, *rows])
    assert all(any(o in b for b in blocks) for o in outcomes)
    assert "--by-request" in readme and "--event" in readme
    assert "shield trust list" in readme and "shield trust remove" in readme


def test_a_kind_of_entry_this_version_does_not_know_reads_as_its_name_and_detail() -> None:
    assert view.outcome(e("rekeyed", detail="1 of 2; needs bob")) == "rekeyed: 1 of 2"
    assert view.outcome(e("rotated")) == "rotated"
