"""Attacks from the agent's side on the approver's terminal queue through the spool (review 2).

Everything under the spool is the agent's to write: request files and the refusal notes in
`<spool>/refused/`. Whatever it leaves there, `shield pending`, `shield show` and `shield
approve` keep working for the other requests, show the notes escaped and bounded, and a note
decides nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shim import keys
from shim.approval.request import HeldRequest
from shim.approval.spool import write_refusal
from tests.approval.support import write_held

TIMEOUT_S = 60


class Desk:
    def __init__(self, root: Path) -> None:
        self.home = root / "approver"
        self.spool = root / "spool"
        keys.init_approver(str(self.home), "alice")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "PAGER"))}
        env.update(SHIELD_HOME=str(self.home), SHIELD_SPOOL=str(self.spool), COLUMNS="200")
        return subprocess.run(
            [sys.executable, "-m", "shim", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def plant_junk(desk: Desk, req: HeldRequest) -> None:
    """What an agent can leave in the spool besides the real request: a request file and a
    note nested too deep for a JSON parser's recursion, bad JSON, an oversized note, a FIFO."""
    requests, refused = desk.spool / "requests", desk.spool / "refused"
    (requests / "zzzzzz.json").write_text(nested(100_000))
    (refused / f"{req.id}.1.aaaaaa.json").write_text(nested(15_000))
    (refused / f"{req.id}.2.bbbbbb.json").write_text("{not json")
    big = {"id": req.id, "why": "x" * (64 << 10)}
    (refused / f"{req.id}.3.cccccc.json").write_text(json.dumps(big))
    os.mkfifo(refused / f"{req.id}.4.dddddd.json")


def test_junk_and_deep_nesting_in_the_spool_leave_the_queue_working(desk: Desk) -> None:
    req = write_held(str(desk.spool), 600)
    write_refusal(
        str(desk.spool), req.id, {"why": "untrusted key\x1b[2J\u202e", "approver": "bob\x07"}
    )
    plant_junk(desk, req)
    pending = desk.run("pending")
    assert pending.returncode == 0, pending.stderr
    assert req.id in pending.stdout and "zzzzzz" not in pending.stdout
    assert "untrusted key\\x1b[2J\\u202e" in pending.stdout and "by bob\\x07" in pending.stdout
    assert "\x1b" not in pending.stdout and "\u202e" not in pending.stdout
    shown = desk.run("show", req.id, "--no-pager")
    assert shown.returncode == 0, shown.stderr
    assert "untrusted key\\x1b[2J" in shown.stdout and "\x1b[2J" not in shown.stdout
    assert "x" * 600 not in shown.stdout  # an oversized note is not read at all
    listed = desk.run("pending", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["id"] for i in json.loads(listed.stdout)] == [req.id]
    # a note decides nothing: the request is signed only by an approver, as usual
    approved = desk.run("approve", req.id)
    assert approved.returncode == 0, approved.stderr


def test_a_request_file_nested_too_deep_is_refused_by_approve_with_one_line(desk: Desk) -> None:
    write_held(str(desk.spool), 600)
    (desk.spool / "requests" / "zzzzzz.json").write_text(nested(100_000))
    out = desk.run("approve", "zzzzzz")
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("shield: ") and "Traceback" not in out.stderr


def test_show_drops_no_character_of_an_input_line_breaks_included(desk: Desk) -> None:
    # what the approver reads of a sealed input is every character of it: a line break other
    # than \n (which YAML readers honour and JSON readers do not) is shown escaped at the end
    # of its line, never silently swallowed
    text = "a: 1\r\nb: 2\rc: 3\u2028d: 4\x85e: 5\x0bf: 6\x1cg: 7\n"
    inputs = [{"source": "stdin", "sha256": "0" * 64, "bytes": len(text.encode()), "text": text}]
    req = write_held(str(desk.spool), 600, extra={"inputs": inputs})
    shown = desk.run("show", req.id, "--no-pager")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for expected in ("a: 1", "b: 2\\x0d", "c: 3\\u2028", "d: 4\\x85", "e: 5\\x0b", "f: 6\\x1c"):
        assert expected in lines, (expected, lines)
    assert "g: 7" in lines
