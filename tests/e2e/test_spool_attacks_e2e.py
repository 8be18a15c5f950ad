"""The approver signs exactly what was reviewed: attacks on the spool between `pending` and
`approve`, written from the agent's side (issue 14).

Two real shims hold two calls: A (`kubectl scale deploy web --replicas=3`, what the approver
means to approve) and B (`kubectl delete namespace prod`, what the agent would like run). The
approver looks with `shield pending`; then the agent, which can write the whole spool, swaps,
renames, deletes or rewrites request files; then the approver runs the real `shield approve A`
as another process. Whatever the agent does, B never runs, A runs only as A, and what ran is
read from the stand-in kubectl's own record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shim.approval.request import request_from_dict
from tests.conftest import World
from tests.e2e.conftest import Approver, finish, start

A_ARGV = ["scale", "deploy", "web", "--replicas=3"]
B_ARGV = ["delete", "namespace", "prod"]


class Held:
    """Two held calls, A and B, and the agent's hands on the spool."""

    def __init__(self, world: World, approver: Approver) -> None:
        self.world = world
        self.approver = approver
        self.a = start(world, "kubectl", *A_ARGV, env=world.env(SHIELD_HOLD_TIMEOUT="60"))
        self.b = start(world, "kubectl", *B_ARGV, env=world.env(SHIELD_HOLD_TIMEOUT="60"))
        # what the approver reviewed: both panels, digests included
        self.reviewed = {tuple(i["argv"]): i for i in self.wait_for(2)}
        self.a_id = self.reviewed[tuple(A_ARGV)]["id"]
        self.b_id = self.reviewed[tuple(B_ARGV)]["id"]
        self.a_digest = self.reviewed[tuple(A_ARGV)]["digest"]

    def wait_for(self, n: int, deadline_s: float = 30.0) -> list[dict]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            items = self.approver.pending()
            if len(items) == n:
                return items
            time.sleep(0.05)
        raise AssertionError(f"{n} held requests did not reach the spool in time")

    def path(self, rid: str, sub: str = "requests") -> Path:
        return Path(self.approver.spool, sub, f"{rid}.json")

    def content(self, rid: str) -> dict:
        return json.loads(self.path(rid).read_text())

    def approve(self, rid: str, *extra: str) -> subprocess.CompletedProcess:
        return self.approver.cli("approve", rid, *extra, check=False)

    def decisions(self) -> list[str]:
        return os.listdir(Path(self.approver.spool, "decisions"))

    def ran(self) -> list[list[bytes]]:
        return self.world.argvs()

    def stop(self) -> dict[str, int]:
        """End both holds (SIGTERM withdraws a request); their exit codes."""
        codes = {}
        for name, proc in (("a", self.a), ("b", self.b)):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            codes[name] = finish(proc)[0]
        return codes


@pytest.fixture
def held(world: World, approver: Approver):
    h = Held(world, approver)
    yield h
    h.stop()


def refused(result: subprocess.CompletedProcess, why: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert why in result.stderr, result.stderr
    assert result.stderr.startswith("shield: ") and "nothing was signed" in result.stderr


def test_swapping_two_request_files_cannot_get_b_approved_as_a(held: Held) -> None:
    a, b = held.path(held.a_id), held.path(held.b_id)
    tmp = a.with_name("swap.tmp")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)
    refused(held.approve(held.a_id), f"holds request {held.b_id}")
    refused(held.approver.cli("deny", held.b_id, check=False), f"holds request {held.a_id}")
    assert held.decisions() == []
    assert held.a.poll() is None and held.b.poll() is None  # both still held
    assert held.stop() == {"a": 143, "b": 143}
    assert held.ran() == []


def test_renaming_b_over_a_cannot_get_b_approved(held: Held) -> None:
    os.replace(held.path(held.b_id), held.path(held.a_id))
    for pinned in ([], ["--digest", held.a_digest[:12]]):
        refused(held.approve(held.a_id, *pinned), f"holds request {held.b_id}")
    assert held.decisions() == []
    held.stop()
    assert held.ran() == []


def test_deleting_a_and_planting_b_in_closed_cannot_get_b_approved(held: Held) -> None:
    b = held.content(held.b_id)
    held.path(held.a_id).unlink()
    gone = held.approve(held.a_id)
    assert gone.returncode == 1 and f"no pending request {held.a_id}" in gone.stderr
    held.path(held.a_id, "closed").parent.mkdir(exist_ok=True)
    held.path(held.a_id, "closed").write_text(json.dumps({**b, "status": "pending"}))
    refused(held.approve(held.a_id), f"holds request {held.b_id}")
    # A's own, untouched content in closed/ claiming to be pending is closed all the same
    a = dict(held.reviewed[tuple(A_ARGV)])
    held.path(held.a_id, "closed").write_text(json.dumps({**a, "status": "pending"}))
    refused(held.approve(held.a_id), f"request {held.a_id} is already closed")
    assert held.decisions() == []
    held.stop()
    assert held.ran() == []


def rewrite_as_b(held: Held) -> None:
    """The agent rewrites A's file to B's command under A's id, digest field fixed up."""
    data = held.content(held.a_id)
    data["argv"] = B_ARGV
    data["digest"] = request_from_dict(data).digest
    held.path(held.a_id).write_text(json.dumps(data))


def test_a_request_rewritten_after_review_is_refused_when_the_digest_is_pinned(
    held: Held,
) -> None:
    rewrite_as_b(held)
    refused(
        held.approve(held.a_id, "--digest", held.a_digest[:12]),
        f"request {held.a_id} is not the one you reviewed",
    )
    assert held.decisions() == []
    held.stop()
    assert held.ran() == []


def test_a_request_rewritten_after_review_runs_nothing_when_signed_unpinned(
    held: Held, world: World
) -> None:
    real_a = held.content(held.a_id)
    rewrite_as_b(held)
    signed = held.approve(held.a_id)
    # approve signs what it shows, and shows what it signs: the rewritten command
    assert signed.returncode == 0, signed.stderr
    assert f"approved {held.a_id} (risk medium): kubectl delete namespace prod" in signed.stdout
    end = time.monotonic() + 30
    while not any(e["event"] == "security" and e.get("request") == held.a_id for e in world.log()):
        assert time.monotonic() < end, "the shim did not refuse the decision"
        time.sleep(0.05)
    assert held.a.poll() is None  # the shim refused it and still waits
    # the real A, approved as reviewed, runs exactly A
    held.path(held.a_id).write_text(json.dumps(real_a))
    ok = held.approve(held.a_id, "--digest", held.a_digest[:12])
    assert ok.returncode == 0, ok.stderr
    assert f"digest {held.a_digest[:12]} (as pinned)" in ok.stdout
    assert finish(held.a)[0] == 0
    assert held.stop()["b"] == 143
    assert held.ran() == [[a.encode() for a in A_ARGV]]
    security = [e for e in world.log() if e["event"] == "security"]
    assert [e["request"] for e in security] == [held.a_id]
    assert "digest does not match" in security[0]["detail"]
