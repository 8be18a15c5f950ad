"""`shield log` on a real log: every event kind written by real shims and the real CLI (two
homes, one spool), read back at 80, 120 and 200 columns (issue 15).

The log is built once for the module: allowed, observed and warned calls, a rule's denial, a
missing binary, held calls approved (and run), denied after a forged approval, expired and
interrupted, a grant issued, used, revoked and expired, a failing notify hook, and a torn line.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shim.approval import grant as statement
from shim.approval.spool import write_statement
from shim.commands.logview import EVENTS
from shim.commands.table import text_width
from tests.conftest import World, shield, write_standin
from tests.e2e.conftest import Approver, finish, start

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kind-dev
contexts:
- name: kind-dev
  context:
    cluster: dev
    namespace: web
"""

TEAM = """tool: kubectl
rules:
  - id: team/no-drain
    decision: deny
    reason: nodes are drained by the platform team
    match: {verb: drain}
    examples: {match: [drain node-1]}
  - id: team/configmaps-moving
    decision: deny
    reason: configmaps are moving to the vault
    mode: observe
    match: {verb: get, any_arg: [configmaps]}
    examples: {match: [get configmaps]}
  - id: team/events-by-hand
    decision: ask
    reason: events are read by hand this week
    mode: warn
    match: {verb: get, any_arg: [events]}
    examples: {match: [get events]}
"""


class Built:
    """The agent's world after the session, and what the session saw."""

    def __init__(self, world: World, approver: Approver) -> None:
        self.world = world
        self.approver = approver
        self.path = world.home / "log" / "shield.log"
        self.ids: dict[str, str] = {}
        self.stderr: dict[str, bytes] = {}

    def entries(self) -> list[dict]:
        """The log's entries (not the torn line)."""
        return [json.loads(line) for line in self.path.read_bytes().splitlines() if is_entry(line)]

    def log(self, *args: str, columns: int = 200) -> subprocess.CompletedProcess:
        return shield(
            "log",
            "--path",
            str(self.path),
            *args,
            home=self.world.home,
            env={"COLUMNS": str(columns)},
        )


def is_entry(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def wait_for_event(world: World, kind: str, request: str, deadline_s: float = 30.0) -> None:
    path = world.home / "log" / "shield.log"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for line in path.read_bytes().splitlines():
            e = json.loads(line) if is_entry(line) else {}
            if e.get("event") == kind and e.get("request") == request:
                return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} entry for {request}")


def build(root: Path) -> Built:
    world = World(root)
    for tool in ("kubectl", "aws", "terraform", "helm"):
        write_standin(world.real, tool)
    (root / "user-home" / ".kube").mkdir(parents=True)
    (root / "user-home" / ".kube" / "config").write_text(KUBECONFIG)
    world.install()
    (world.home / "commands.d" / "team.yaml").write_text(TEAM)
    (world.home / "config.json").write_text(json.dumps({"notify": ["false"]}))
    approver = Approver(root / "alice", world.home / "state" / "spool")
    shield("approver", "init", "--name", "alice", home=approver.home)
    shield("trust", "add", str(approver.home / "keys" / "approver.pub"), home=world.home)
    mallory = Approver(root / "mallory", approver.spool)  # a key the agent side never trusted
    shield("approver", "init", "--name", "mallory", home=mallory.home)
    b = Built(world, approver)
    quick = world.env(SHIELD_HOLD_TIMEOUT="1")
    for argv in (["get", "pods"], ["get", "configmaps"], ["get", "events"]):
        assert world.run("kubectl", *argv).returncode == 0
    assert world.run("kubectl", "drain", "node-1").returncode == 126
    assert world.run("kubectl", "get", "pods", env=world.env(path=str(world.bin))).returncode == 127
    b.ids["approved"] = held(b, ["kubectl", "delete", "pod", "web"], "approve", "routine restart")
    proc = start(world, "helm", "uninstall", "web")
    item = approver.wait_for_request()
    signed = mallory.cli("approve", item["id"], "--reason", "trust me", check=False)
    assert signed.returncode == 1 and "does not trust this home's key" in signed.stderr
    wait_for_event(world, "security", item["id"])
    approver.cli("deny", item["id"], "--reason", "still serving")
    assert finish(proc)[0] == 126
    b.ids["forged"] = item["id"]
    assert world.run("terraform", "destroy", env=quick).returncode == 124
    proc = start(world, "kubectl", "delete", "pod", "api")
    item = approver.wait_for_request()
    proc.send_signal(signal.SIGINT)
    code, _, b.stderr["cancelled"] = finish(proc)
    assert code == 130
    b.ids["cancelled"] = item["id"]
    grant_session(b, quick)
    with open(b.path, "ab") as fh:  # a writer that died mid-append
        fh.write(b'{"agent":"test-bot","argv":["get",')
    assert world.run("kubectl", "get", "pods").returncode == 0
    return b


def held(b: Built, argv: list[str], verdict: str, reason: str) -> str:
    proc = start(b.world, *argv)
    item = b.approver.wait_for_request()
    b.approver.cli(verdict, item["id"], "--reason", reason)
    assert finish(proc)[0] == (0 if verdict == "approve" else 126)
    return item["id"]


def grant_session(b: Built, quick: dict[str, str]) -> None:
    world, approver = b.world, b.approver
    approver.cli(
        "grant",
        *("--agent", "test-bot", "--rule", "kubectl/mutate", "--context", "kind-dev"),
        *("--namespace", "web", "--reason", "deploy window"),
    )
    assert world.run("kubectl", "rollout", "restart", "deploy/api").returncode == 0
    approver.cli("revoke", "--agent", "test-bot", "--reason", "window closed")
    assert world.run("kubectl", "rollout", "restart", "deploy/api", env=quick).returncode == 124
    old = statement.make_grant(
        str(approver.home),
        agent="test-bot",
        tool="kubectl",
        rules=["kubectl/mutate"],
        verbs=[],
        target={"context": "kind-dev", "namespace": "web"},
        argv=[],
        span_s=600,
        reason="last week's window",
        now=time.time() - 3600,
    )
    write_statement(str(approver.spool), "grants", old)
    assert world.run("kubectl", "scale", "deploy/api", "--replicas=2", env=quick).returncode == 124


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("logview"))


def test_the_session_wrote_every_event_kind(built: Built) -> None:
    kinds = {e["event"] for e in built.entries()}
    # a quorum rule writes `approval` and `note`, the approval server `relay-*`: their words
    # are in tests/commands/test_logview.py; a torn line is not an entry
    elsewhere = {"torn", "approval", "note", "relay-unreachable", "relay-error", "relay-reached"}
    assert kinds == set(EVENTS) - elsewhere
    lines = built.path.read_bytes().splitlines()
    assert any(line.startswith(b'{"agent":"test-bot","argv":["get",') for line in lines)


def test_a_held_call_interrupted_says_the_request_was_withdrawn(built: Built) -> None:
    err = built.stderr["cancelled"].decode()
    assert (
        f"shield: kubectl: interrupted (Ctrl-C) while held: request {built.ids['cancelled']} "
        "withdrawn; the call did not run"
    ) in err


HEADERS = {  # context goes first, then reason, then seq and request
    80: ["time", "agent", "command", "outcome"],
    120: ["seq", "time", "request", "agent", "command", "outcome"],
    200: ["seq", "time", "request", "agent", "command", "outcome", "reason", "context"],
}


@pytest.mark.parametrize("columns", [80, 120, 200])
def test_log_is_one_line_per_entry_cut_to_the_width(built: Built, columns: int) -> None:
    out = built.log(columns=columns).stdout
    lines = out.splitlines()
    entries = built.entries()
    assert len(lines) == 1 + len(entries) + 1  # the header, each entry, the torn line
    assert all(text_width(line) <= columns for line in lines)
    assert re.split(r"\s{2,}", lines[0].strip()) == HEADERS[columns]
    when = r"\s*(\d+\s+)?(\d\d-\d\d \d\d:\d\d|\d\d:\d\d:\d\d)\s"
    times = [line for line in lines[1:] if re.match(when, line)]
    assert len(times) == len(entries)  # every entry's line starts with its time: none wrapped
    assert "cwd" not in lines[0] and str(built.world.root / "user-home") not in out
    assert columns > 80 or "…" in out  # long cells are cut, not wrapped


def test_the_table_is_the_same_whether_or_not_stdout_is_a_terminal(built: Built) -> None:
    out = built.log(columns=120).stdout
    assert not out.lstrip().startswith("{")
    raw = built.log("--json").stdout
    assert raw.encode() == b"".join(
        line + b"\n" for line in built.path.read_bytes().splitlines() if is_entry(line)
    )


def rows_by_seq(built: Built, *args: str) -> dict[int, str]:
    out = built.log(*args, columns=250).stdout.splitlines()[1:]
    return {int(line.split()[0]): line for line in out if line.split()[0].isdigit()}


def test_each_outcome_says_what_happened(built: Built) -> None:
    rows = rows_by_seq(built)
    entries = built.entries()

    def row(event: str, **match: object) -> str:
        (e, *_) = [
            e
            for e in entries
            if e["event"] == event and all(e.get(k) == v for k, v in match.items())
        ]
        return rows[e["seq"]]

    assert "kubectl get pods" in row("call", decision="allow") and "allowed" in row(
        "call", decision="allow"
    )
    assert "observed: would deny" in row("call", mode="observe")
    assert "warned: would hold" in row("call", mode="warn")
    assert "denied by rule" in row("call", decision="deny")
    assert "nodes are drained by the platform team" in row("call", decision="deny")
    assert "error: real kubectl not found on PATH" in row("error")
    approved = built.ids["approved"]
    assert "held (risk" in row("held", request=approved)
    assert "approved by alice" in row("approved", request=approved)
    assert "routine restart" in row("approved", request=approved)
    assert "ran: exit 0" in row("executed", request=approved)
    assert "security: " in row("security", request=built.ids["forged"])
    assert "denied by alice" in row("denied", request=built.ids["forged"])
    assert "expired" in row("expired") and "no decision before" in row("expired")
    assert "withdrawn (Ctrl-C)" in row("cancelled")
    assert "notify failed: notify hook exited with status 1" in row("notify-failed")
    assert re.search(r"grant g\w+ issued by alice", row("grant"))
    assert re.search(r"granted g\w+ by alice", row("granted"))
    assert re.search(r"grant g\w+ revoked by alice", row("grant-revoked"))
    assert "window closed" in row("grant-revoked")
    assert re.search(r"grant g\w+ expired", row("grant-expired"))
    torn = [e for e in entries if e["event"] == "security" and isinstance(e.get("detail"), dict)]
    assert "security: 1 torn line recorded" in rows[torn[0]["seq"]]
    out = built.log(columns=250).stdout
    assert re.search(r"torn: line \d+, 34 bytes, incomplete", out)


def test_by_request_folds_a_held_call_into_one_line(built: Built) -> None:
    lines = built.log("--by-request", columns=250).stdout.splitlines()
    by_id = {rid: [line for line in lines if f"  {rid}  " in line] for rid in built.ids.values()}
    assert all(len(found) == 1 for found in by_id.values()), by_id
    (approved,) = by_id[built.ids["approved"]]
    story = r'held -> (notify failed -> )?approved by alice "routine restart" -> exit 0'
    assert re.search(story, approved), approved
    (forged,) = by_id[built.ids["forged"]]
    assert "held -> " in forged and "security: " in forged
    assert forged.index("security: ") < forged.index('denied by alice "still serving"')
    (cancelled,) = by_id[built.ids["cancelled"]]
    assert "withdrawn (Ctrl-C)" in cancelled
    unfolded = built.log(columns=250).stdout.splitlines()
    held_entries = [e for e in built.entries() if e.get("request")]
    groups = {e["request"] for e in held_entries}
    assert len(lines) == len(unfolded) - len(held_entries) + len(groups)
    assert all(
        text_width(line) <= 80 for line in built.log("--by-request", columns=80).stdout.splitlines()
    )


def test_decision_deny_counts_a_persons_denial_and_a_rules(built: Built) -> None:
    got = [
        json.loads(line) for line in built.log("--decision", "deny", "--json").stdout.splitlines()
    ]
    assert {(e["event"], e["decision"]) for e in got} == {("call", "deny"), ("denied", "ask")}
    table = built.log("--decision", "deny").stdout
    assert "denied by alice" in table and "denied by rule" in table


def test_event_filter_takes_several_kinds(built: Built) -> None:
    got = [
        json.loads(line)
        for line in built.log(
            "--event", "security,expired", "--event", "granted", "--json"
        ).stdout.splitlines()
    ]
    assert {e["event"] for e in got} == {"security", "expired", "granted"}
    bad = shield(
        "log", "--path", str(built.path), "--event", "aproved", home=built.world.home, check=False
    )
    assert bad.returncode == 2 and "unknown event 'aproved'" in bad.stderr


def test_no_entries_match_says_so(built: Built) -> None:
    out = built.log("--agent", "nobody").stdout
    assert out.startswith("no entries match (") and str(built.path) in out
    assert built.log("--agent", "nobody", "--json").stdout == ""


def test_an_agent_cannot_break_a_row_or_repaint_the_terminal(built: Built, tmp_path: Path) -> None:
    # everything in a row comes from the agent's side: argv, reasons, context
    world = built.world
    env = world.env(KUBECONFIG=str(tmp_path / "nope"))
    world.run("kubectl", "get", "pods\n999  00:00:00  fake  row", "\x1b[2J\x1b[31mred", env=env)
    out = built.log("--event", "call", columns=400).stdout
    assert "\x1b" not in out and "\\x1b[2J" in out
    assert not any(line.startswith("999") for line in out.splitlines())
    assert "pods\\x0a999" in out
