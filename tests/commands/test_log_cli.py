"""`shield log`, `shield log verify`, `shield log checkpoint`, `shield log anchor import`."""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime

import pexpect
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from shim.commands import log as logcmd
from shim.commands.log import app, parse_since
from shim.commands.table import text_width
from shim.errors import LogDamage, LogError
from shim.keys import add_trusted, init_approver, public_key_path
from shim.log.anchors import first_log_id
from shim.log.append import append_entry, init_log
from shim.log.verify import read_entries, torn_marker
from tests.conftest import REPO

ROOT = str(REPO)
runner = CliRunner()


def entry(agent: str, tool: str, decision: str, event: str = "call", **extra: object) -> dict:
    return {
        "event": event,
        "agent": agent,
        "tool": tool,
        "argv": [tool, "get", "pods", "-n", "prod"],
        "cwd": "/srv",
        "context": {"namespace": "prod", "kube_context": "eu-1"},
        "decision": decision,
        "rule": f"{tool}/read",
        "request": None,
        "approver": None,
        **extra,
    }


class Homes:
    def __init__(self, tmp_path) -> None:
        self.agent = str(tmp_path / "agent")
        self.alice = str(tmp_path / "alice")
        self.dir = os.path.join(self.agent, "log")
        self.path = os.path.join(self.dir, "shield.log")
        self.anchor_file = os.path.join(self.dir, "anchor.json")
        init_approver(self.alice, "alice")
        add_trusted(self.agent, public_key_path(self.alice))
        init_log(self.dir)
        append_entry(self.dir, entry("deploy-bot", "kubectl", "allow"))
        append_entry(self.dir, entry("deploy-bot", "kubectl", "deny", reason="no"))
        append_entry(self.dir, entry("ci-bot", "terraform", "ask", "held", request="ab12"))
        append_entry(
            self.dir,
            entry("ci-bot", "terraform", "ask", "approved", request="ab12", approver="alice"),
        )
        append_entry(
            self.dir,
            entry("ci-bot", "terraform", "ask", "executed", request="ab12", exit=0, duration_ms=5),
        )

    def run(self, home: str, *args: str):
        return runner.invoke(app, list(args), env={"SHIELD_HOME": home})


@pytest.fixture
def homes(tmp_path) -> Homes:
    return Homes(tmp_path)


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line]


def test_log_prints_json_lines_only_with_json(homes: Homes) -> None:
    res = homes.run(homes.agent, "--json")
    assert res.exit_code == 0, res.output
    rows = json_lines(res.stdout)
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
    for key in ("seq", "time", "event", "agent", "tool", "argv", "decision", "rule", "mac"):
        assert key in rows[0]
    with open(homes.path) as fh:  # the lines are the log's own bytes (re-verifiable)
        assert res.stdout == fh.read()
    table = homes.run(homes.agent).stdout.splitlines()  # not a terminal: the same table
    assert {"time", "agent", "command", "outcome"} <= set(table[0].split()) and len(table) == 6


@pytest.mark.parametrize(
    ("args", "seqs"),
    [
        (("--agent", "ci-bot"), [2, 3, 4]),
        (("--tool", "kubectl"), [0, 1]),
        (("--decision", "deny"), [1]),
        (("--request", "ab12"), [2, 3, 4]),
        (("--agent", "ci-bot", "--since", "10m"), [2, 3, 4]),
        (("--since", "2999-01-01T00:00:00Z"), []),
        (("--since", "2000-01-01"), [0, 1, 2, 3, 4]),
        (("--agent", "nobody"), []),
    ],
)
def test_log_filters(homes: Homes, args: tuple[str, ...], seqs: list[int]) -> None:
    res = homes.run(homes.agent, "--json", *args)
    assert res.exit_code == 0, res.output
    assert [r["seq"] for r in json_lines(res.stdout)] == seqs


def test_log_rejects_a_bad_since_or_decision(homes: Homes) -> None:
    assert homes.run(homes.agent, "--since", "yesterday").exit_code == 2
    assert homes.run(homes.agent, "--decision", "maybe").exit_code == 2


def test_log_in_a_home_without_a_log_points_at_the_agents_log(tmp_path) -> None:
    """An approver's home has no log: `shield log` and `shield log verify` say so in one
    line and say where an agent's log is, instead of an OS error."""
    from tests.conftest import shield

    for args in (("log",), ("log", "--by-request"), ("log", "verify")):
        proc = shield(*args, home=tmp_path, check=False)
        assert proc.returncode == 1, proc.stderr
        first, hint = proc.stderr.splitlines()[:2]
        assert f"no log at {tmp_path / 'log' / 'shield.log'}" in first
        assert hint.startswith("hint: pass --path (an agent's log: <its home>/log/shield.log)")


def test_parse_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_since("10m", now) == "2024-05-01T11:50:00.000Z"
    assert parse_since("2h", now) == "2024-05-01T10:00:00.000Z"
    assert parse_since("1d", now) == "2024-04-30T12:00:00.000Z"
    assert parse_since("90s", now) == "2024-05-01T11:58:30.000Z"
    assert parse_since("2024-05-01T12:00:00.5Z") == "2024-05-01T12:00:00.500Z"
    assert parse_since("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00.000Z"
    assert parse_since("2024-05-01 12:00") == "2024-05-01T12:00:00.000Z"  # no zone: UTC
    with pytest.raises(typer.BadParameter):
        parse_since("soon")


def test_log_reports_a_torn_line(homes: Homes) -> None:
    with open(homes.path, "ab") as fh:
        fh.write(b'{"agent":"deploy-b')
    res = homes.run(homes.agent, "--json")
    assert res.exit_code == 0
    assert len(json_lines(res.stdout)) == 5
    assert "line 6 is torn (18 bytes, incomplete)" in res.stderr


def test_the_table_shows_every_column_coloured_by_outcome(homes: Homes) -> None:
    console = Console(
        record=True, force_terminal=True, width=250, color_system="truecolor", file=io.StringIO()
    )
    entries = list(read_entries(homes.path)) + [torn_marker(6, b"xx")]
    logcmd.render_table(entries, console)
    text = console.export_text(clear=False)
    header = text.splitlines()[0].split()
    assert header == ["seq", "time", "request", "agent", "command", "outcome", "reason", "context"]
    assert "kubectl kubectl get pods -n prod" in text and "kube_context=eu-1 namespace=prod" in text
    for outcome in ("allowed", "denied by rule", "held", "approved by alice", "ran: exit 0"):
        assert outcome in text
    assert "torn: line 6, 2 bytes, incomplete" in text and "/srv" not in text
    styled = console.export_text(styles=True)
    assert "\x1b[32m" in styled and "\x1b[31m" in styled  # green: ran, red: denied


def test_log_on_a_tty_prints_the_80_column_table_in_colour(homes: Homes) -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); from shim.commands.log import app; app(sys.argv[2:])"
    child = pexpect.spawn(
        sys.executable,
        ["-I", "-c", code, ROOT, "--path", homes.path],
        env={"TERM": "xterm-256color", "SHIELD_HOME": homes.agent},
        dimensions=(40, 80),
        encoding="utf-8",
        timeout=20,
    )
    child.expect(pexpect.EOF)
    out = child.before
    child.close()
    assert child.exitstatus == 0
    assert "\x1b[" in out  # coloured
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in out.split("\r\n") if line]
    header = lines[0].split()  # at 80 columns: when, who, what, what happened
    assert {"time", "agent", "command", "outcome"} <= set(header)
    assert "reason" not in header and "context" not in header
    assert len(lines) == 6 and all(text_width(line) <= 80 for line in lines)
    assert "approved by alice" in out and "ran: exit 0" in out


def test_follow_prints_the_table_then_each_new_entry_in_its_columns(homes: Homes) -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); from shim.commands.log import app; app(sys.argv[2:])"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", code, ROOT, "-f", "--agent", "late-bot", "--path", homes.path],
        stdout=subprocess.PIPE,
        env={"SHIELD_HOME": homes.agent, "COLUMNS": "100"},
    )
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        append_entry(homes.dir, entry("other-bot", "helm", "allow"))
        append_entry(homes.dir, entry("late-bot", "helm", "deny", reason="no helm today"))
        got = b""
        deadline = time.monotonic() + 20
        while got.count(b"\n") < 2:
            left = deadline - time.monotonic()
            assert left > 0, "no entry followed"
            if select.select([fd], [], [], left)[0]:
                got += os.read(fd, 65536)
        header, row = got.decode().splitlines()
        assert header.split() == ["seq", "time", "request", "agent", "command", "outcome"]
        assert row.split()[0] == "6" and "late-bot" in row and "denied by rule" in row
        assert row.index("helm helm get") == header.index("command")  # the header's columns
        assert len(row) <= 100 and proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait()


def test_follow_with_json_prints_entries_as_they_are_appended(homes: Homes) -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); from shim.commands.log import app; app(sys.argv[2:])"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", code, ROOT, "--follow", "--json", "--agent", "late-bot"]
        + ["--path", homes.path],
        stdout=subprocess.PIPE,
        env={"SHIELD_HOME": homes.agent},
    )
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        append_entry(homes.dir, entry("other-bot", "helm", "allow"))
        append_entry(homes.dir, entry("late-bot", "helm", "deny"))
        got = b""
        deadline = time.monotonic() + 20
        while b"\n" not in got:
            left = deadline - time.monotonic()
            assert left > 0, "no entry followed"
            if select.select([fd], [], [], left)[0]:
                got += os.read(fd, 65536)
        (row,) = json_lines(got.decode())
        assert row["agent"] == "late-bot" and row["seq"] == 6
        assert proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait()


def test_verify_says_intact_and_exits_0(homes: Homes) -> None:
    res = homes.run(homes.agent, "verify")
    assert res.exit_code == 0, res.output
    assert "intact: 5 entries; MACs not checked" in res.stdout
    assert "anchor.json is still on the agent side" in res.stderr
    res = homes.run(homes.agent, "verify", "--anchor", homes.anchor_file)
    assert res.exit_code == 0 and "MACs checked" in res.stdout


def test_verify_names_the_first_bad_line_and_the_kind(homes: Homes) -> None:
    with open(homes.path, "rb") as fh:
        lines = fh.read().split(b"\n")
    lines[2] = lines[2].replace(b'"ask"', b'"allow"', 1)
    with open(homes.path, "wb") as fh:
        fh.write(b"\n".join(lines))
    res = homes.run(homes.agent, "verify", "--anchor", homes.anchor_file)
    assert res.exit_code == 1
    assert isinstance(res.exception, LogDamage)
    assert res.exception.message.startswith("line 3: mac:")
    res = homes.run(homes.agent, "verify", "--anchor", homes.anchor_file, "--json")
    report = json.loads(res.stdout)
    assert res.exit_code == 1 and report["kind"] == "mac" and report["first_bad"] == 3


def test_verify_of_a_torn_tail_exits_1_with_a_calm_hint(homes: Homes) -> None:
    with open(homes.path, "ab") as fh:
        fh.write(b'{"agent"')
    res = homes.run(homes.agent, "verify")
    assert res.exit_code == 1 and isinstance(res.exception, LogDamage)
    assert res.exception.message.startswith("line 6: torn:")
    assert "next append records" in res.exception.hint


def test_verify_of_a_missing_log_is_an_error(homes: Homes, tmp_path) -> None:
    res = homes.run(homes.agent, "verify", "--path", str(tmp_path / "nope.log"))
    assert res.exit_code == 1 and isinstance(res.exception, LogError)


def test_the_approver_imports_the_anchor_checkpoints_and_catches_a_cut(homes: Homes) -> None:
    res = homes.run(homes.alice, "anchor", "import", homes.anchor_file)
    assert res.exit_code == 0, res.output
    assert not os.path.exists(homes.anchor_file)  # K0 left the agent side
    res = homes.run(homes.alice, "checkpoint", "--path", homes.path)
    assert res.exit_code == 0, res.output
    assert "5 lines" in res.stdout and "signed by alice" in res.stdout
    assert "copied:" in res.stdout
    res = homes.run(homes.alice, "verify", "--path", homes.path)
    assert res.exit_code == 0 and "MACs checked; 1 checkpoint" in res.stdout
    res = homes.run(homes.agent, "verify")  # the agent side sees the copy and the trust store
    assert res.exit_code == 0 and "MACs not checked" in res.stdout and "1 checkpoint" in res.stdout
    with open(homes.path, "rb") as fh:
        lines = fh.read().split(b"\n")
    with open(homes.path, "wb") as fh:
        fh.write(b"\n".join(lines[:3]) + b"\n")
    for home, args in ((homes.alice, ("--path", homes.path)), (homes.agent, ())):
        res = homes.run(home, "verify", *args)
        assert res.exit_code == 1 and res.exception.message.startswith("line 4: truncated:")


def _bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_attack_a_symlink_planted_for_the_checkpoint_copy_cannot_clobber_the_approver(
    homes: Homes,
) -> None:
    # The agent owns its log dir: it moves `checkpoints` aside and plants the name the next
    # copy will be written under (and its tmp name) as links to the approver's private key.
    assert homes.run(homes.alice, "anchor", "import", homes.anchor_file).exit_code == 0
    assert homes.run(homes.alice, "checkpoint", "--path", homes.path).exit_code == 0
    key = os.path.join(homes.alice, "keys", "approver.key")
    before = (_bytes(key), os.stat(key).st_mode)
    cps = os.path.join(homes.dir, "checkpoints")
    os.rename(cps, cps + ".old")
    os.mkdir(cps)
    os.symlink(key, os.path.join(cps, "002.json.tmp"))  # the old staging name
    append_entry(homes.dir, entry("deploy-bot", "kubectl", "allow"))
    res = homes.run(homes.alice, "checkpoint", "--path", homes.path)
    assert res.exit_code == 0, res.output
    assert (_bytes(key), os.stat(key).st_mode) == before
    assert json.loads(_bytes(os.path.join(cps, "002.json")))["size"] == 6
    # a link under a checkpoint's own name is not read (nor written): verify reports it
    os.unlink(os.path.join(cps, "002.json"))
    os.symlink(key, os.path.join(cps, "002.json"))
    res = homes.run(homes.alice, "verify", "--path", homes.path)
    assert res.exit_code == 1 and "checkpoint" in res.exception.message
    assert (_bytes(key), os.stat(key).st_mode) == before
    os.unlink(os.path.join(cps, "002.json"))
    # and a symlinked checkpoints dir is not written through at all
    os.rename(cps, cps + ".2")
    os.symlink(os.path.join(homes.alice, "keys"), cps)
    append_entry(homes.dir, entry("deploy-bot", "kubectl", "allow"))
    res = homes.run(homes.alice, "checkpoint", "--path", homes.path)
    assert res.exit_code == 1 and "checkpoint" in res.exception.message  # reported, not followed
    assert sorted(os.listdir(os.path.join(homes.alice, "keys"))) == ["approver.key", "approver.pub"]
    assert (_bytes(key), os.stat(key).st_mode) == before


def test_a_replaced_log_fails_verify_on_an_approver_home_with_several_anchors(
    homes: Homes, tmp_path
) -> None:
    other = str(tmp_path / "other-agent" / "log")
    init_log(other)
    for anchor in (homes.anchor_file, os.path.join(other, "anchor.json")):
        assert homes.run(homes.alice, "anchor", "import", anchor).exit_code == 0
    # the agent swaps in a brand-new log (new id, new K0) of its own making
    os.rename(homes.dir, homes.dir + ".real")
    init_log(homes.dir)
    append_entry(homes.dir, entry("deploy-bot", "kubectl", "allow"))
    res = homes.run(homes.alice, "verify", "--path", homes.path)
    assert res.exit_code == 1 and isinstance(res.exception, LogDamage)
    assert "replaced" in res.exception.message


def test_an_approver_home_that_lost_the_anchor_of_a_log_it_signed_fails_verify(
    homes: Homes,
) -> None:
    assert homes.run(homes.alice, "anchor", "import", homes.anchor_file).exit_code == 0
    assert homes.run(homes.alice, "checkpoint", "--path", homes.path).exit_code == 0
    log_id = first_log_id(homes.path)
    os.unlink(os.path.join(homes.alice, "anchors", f"{log_id}.json"))
    res = homes.run(homes.alice, "verify", "--path", homes.path)
    assert res.exit_code == 1 and "no anchor" in res.exception.message
    # the agent side (no anchors at all) still checks what it can, and passes
    assert homes.run(homes.agent, "verify").exit_code == 0


def test_an_anchored_log_with_no_entries_yet_verifies(homes: Homes, tmp_path) -> None:
    fresh = str(tmp_path / "fresh" / "log")
    init_log(fresh)
    assert (
        homes.run(homes.alice, "anchor", "import", os.path.join(fresh, "anchor.json")).exit_code
        == 0
    )
    res = homes.run(homes.alice, "verify", "--path", os.path.join(fresh, "shield.log"))
    assert res.exit_code == 0, res.output


def test_anchor_import_keep_leaves_the_file_and_warns(homes: Homes) -> None:
    res = homes.run(homes.alice, "anchor", "import", "--keep", homes.anchor_file)
    assert res.exit_code == 0 and os.path.exists(homes.anchor_file)
    assert "delete it from the agent side" in res.stderr
    stored = os.path.join(homes.alice, "anchors", f"{first_log_id(homes.path)}.json")
    assert os.path.exists(stored)


def test_checkpoint_without_an_approver_key_or_anchor_fails(homes: Homes) -> None:
    res = homes.run(homes.agent, "checkpoint")
    assert res.exit_code == 1 and isinstance(res.exception, LogError)
    assert "anchor import" in res.exception.hint


def test_every_command_docstring_ends_with_an_example() -> None:
    callbacks = [c.callback for c in app.registered_commands]
    callbacks += [c.callback for c in logcmd.anchor_app.registered_commands]
    callbacks.append(logcmd.show)
    assert len(callbacks) == 4
    for cb in callbacks:
        assert cb is not None and cb.__doc__ is not None
        last = cb.__doc__.strip().splitlines()[-1].strip()
        assert last.startswith("Example: shield log"), cb.__name__


def test_event_accepts_a_kind_the_log_has_and_refuses_a_typo(homes: Homes) -> None:
    append_entry(homes.dir, entry("deploy-bot", "kubectl", "ask", "note", detail="newer shim"))
    res = homes.run(homes.agent, "--json", "--event", "note")
    assert res.exit_code == 0 and [r["event"] for r in json_lines(res.stdout)] == ["note"]
    assert homes.run(homes.agent, "--event", "nope").exit_code == 2
