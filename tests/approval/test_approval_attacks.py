"""Attacks on approvals, written as the agent would try them from its own side.

The agent can read and write everything in the spool and in its own home (but not the trust
store, ideally; not the approver's home). Each attack must leave the call held (it expires as a
denial unless a real approval arrives), log a `security` event, and move the bad file aside.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from shim import keys
from shim.approval.decision import sign_decision
from shim.approval.prompt import judge, render_panel
from shim.approval.request import HeldRequest, request_from_dict
from shim.approval.show import command_line
from shim.approval.spool import list_pending, lookup, request_path, write_decision
from shim.approval.transport import Verdict
from shim.clock import now_iso
from shim.errors import SpoolError
from tests.approval.support import wait_held, write_held

SHORT_S = 0.4  # how long a hold lasts when we expect it to expire


@dataclasses.dataclass
class World:
    approver: str
    agent: str
    spool: str
    events: list[dict[str, Any]]

    @property
    def used_path(self) -> str:
        return os.path.join(self.agent, "state", "used-decisions")

    def held_call(self, timeout_s: float = SHORT_S, **kw: Any) -> HeldRequest:
        return write_held(self.spool, timeout_s, **kw)

    def spool_copy(self, rid: str) -> dict[str, Any]:
        status, data = lookup(self.spool, rid)
        assert status == "pending" and data is not None
        return data

    def sign(self, home: str, rid: str, verdict: str = "approve", **kw: Any) -> dict[str, Any]:
        return sign_decision(home, self.spool_copy(rid), verdict, "ok", **kw)

    def drop(self, rid: str, decision: object, name: str = "x") -> str:
        """Put any content where the shim looks for decisions on `rid`."""
        path = os.path.join(self.spool, "decisions", f"{rid}.{name}.json")
        Path(path).write_text(json.dumps(decision))
        return path

    def wait(self, req: HeldRequest, **kw: Any) -> Verdict:
        return wait_held(
            req,
            self.spool,
            trusted=keys.load_trusted(self.agent),
            used_path=self.used_path,
            log=self.events.append,
            **kw,
        )

    def security(self) -> list[str]:
        return [e["detail"] for e in self.events if e["event"] == "security"]

    def rejected(self) -> list[str]:
        path = os.path.join(self.spool, "rejected")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.fixture
def world(tmp_path: Path) -> World:
    approver, agent = str(tmp_path / "approver"), str(tmp_path / "agent")
    keys.init_approver(approver, "alice")
    keys.add_trusted(agent, keys.public_key_path(approver))
    return World(approver, agent, str(tmp_path / "spool"), [])


def assert_refused(world: World, verdict: Verdict, why: str) -> None:
    assert verdict.outcome == "expired", verdict
    details = world.security()
    assert details and all(why in d for d in details), details
    assert "approved" not in [e["event"] for e in world.events]


# --- forged keys ------------------------------------------------------------------------------


def test_approver_init_in_the_agents_own_home_does_not_make_it_an_approver(world: World) -> None:
    keys.init_approver(world.agent, "alice")  # same name as the real approver, its own key
    req = world.held_call()
    world.drop(req.id, world.sign(world.agent, req.id))
    assert_refused(world, world.wait(req), "untrusted key")
    assert len(world.rejected()) == 1


def test_a_forged_decision_claiming_the_trusted_fingerprint_fails_the_signature(
    world: World,
) -> None:
    keys.init_approver(world.agent, "alice")
    req = world.held_call()
    forged = world.sign(world.agent, req.id)
    real_fp = keys.approver_identity(world.approver).fingerprint
    forged["key"] = real_fp
    world.drop(req.id, forged)
    assert_refused(world, world.wait(req), "does not verify")


# --- moved, replayed, expired ------------------------------------------------------------------


def test_a_valid_decision_copied_to_another_request_is_refused(world: World) -> None:
    mine = world.held_call(timeout_s=30)
    other = world.held_call()
    decision = world.sign(world.approver, mine.id)
    world.drop(other.id, decision)  # the agent copies it under the other request's name
    assert_refused(world, world.wait(other), f"is for request '{mine.id}', not {other.id}")
    write_decision(world.spool, decision)
    assert world.wait(mine).outcome == "approved"


def test_a_decision_with_the_id_rewritten_for_another_request_fails_the_signature(
    world: World,
) -> None:
    mine = world.held_call(timeout_s=30)
    other = world.held_call()
    decision = world.sign(world.approver, mine.id)
    decision.update(id=other.id, digest=other.digest)
    world.drop(other.id, decision)
    assert_refused(world, world.wait(other), "does not verify")


def test_the_same_decision_used_twice_is_refused_the_second_time(world: World) -> None:
    req = world.held_call(timeout_s=30)
    decision = world.sign(world.approver, req.id)
    write_decision(world.spool, decision)
    assert world.wait(req).outcome == "approved"
    # The agent kept a copy and replays it to the same request, waited on again (same id and
    # digest; only the shim's own deadline is shortened so the test ends quickly).
    replay = dataclasses.replace(req, expires=now_iso(time.time() + SHORT_S))
    world.events.clear()
    world.drop(req.id, decision)
    assert_refused(world, world.wait(replay), "used before")


def test_an_expired_decision_is_refused(world: World) -> None:
    req = world.held_call()
    world.drop(req.id, world.sign(world.approver, req.id, now=time.time() - 400, ttl_s=300))
    assert_refused(world, world.wait(req), "expired at")


def test_a_decision_dated_far_in_the_future_is_refused(world: World) -> None:
    req = world.held_call()
    world.drop(req.id, world.sign(world.approver, req.id, now=time.time() + 3600))
    assert_refused(world, world.wait(req), "in the future")


# --- digests ----------------------------------------------------------------------------------


def test_editing_the_spool_request_before_the_approver_signs_is_refused(world: World) -> None:
    req = world.held_call()
    # The agent rewrites what the approver will see, and even fixes up the digest field.
    path = request_path(world.spool, req.id)
    shown = world.spool_copy(req.id)
    shown["argv"] = ["kubectl", "get", "namespace", "prod"]
    shown["reason"] = "read-only"
    shown["digest"] = request_from_dict(shown).digest
    Path(path).write_text(json.dumps(shown))
    decision = world.sign(world.approver, req.id)  # the approver approves what they were shown
    write_decision(world.spool, decision)
    assert_refused(world, world.wait(req), "digest does not match")


def test_a_digest_field_in_the_request_is_never_trusted_by_the_signer(world: World) -> None:
    req = world.held_call()
    shown = world.spool_copy(req.id)
    shown["argv"] = ["kubectl", "get", "pods"]
    shown["digest"] = req.digest  # claims to be the real request
    decision = sign_decision(world.approver, shown, "approve", "ok")
    assert decision["digest"] != req.digest
    world.drop(req.id, decision)
    assert_refused(world, world.wait(req), "digest does not match")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("verdict", "approve"),  # a signed denial turned into an approval
        ("reason", "approved by the on-call lead"),
        ("approver", "root"),
        ("expires", "2099-01-01T00:00:00.000Z"),
        ("time", "2000-01-01T00:00:00.000Z"),
        ("nonce", "00" * 16),
    ],
)
def test_a_decision_edited_after_signing_is_refused(world: World, field: str, value: str) -> None:
    req = world.held_call()
    decision = world.sign(world.approver, req.id, "deny")
    decision[field] = value
    if field == "verdict":
        assert decision["verdict"] == "approve"
    world.drop(req.id, decision)
    assert_refused(world, world.wait(req), "does not verify")


# --- junk and tricks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        [],
        {"verdict": "approve"},
        {"id": "x", "verdict": "approve", "sig": ""},
    ],
)
def test_malformed_decisions_are_refused(world: World, content: object) -> None:
    req = world.held_call()
    path = os.path.join(world.spool, "decisions", f"{req.id}.junk.json")
    Path(path).write_text(content if isinstance(content, str) else json.dumps(content))
    assert_refused(world, world.wait(req), "decision")
    assert not os.path.exists(path)


def test_a_decision_with_an_extra_field_is_refused(world: World) -> None:
    req = world.held_call()
    decision = world.sign(world.approver, req.id)
    decision["run_as"] = "root"
    world.drop(req.id, decision)
    assert_refused(world, world.wait(req), "unknown fields ['run_as']")


def test_a_fifo_or_symlink_in_place_of_a_decision_does_not_hang_the_shim(world: World) -> None:
    req = world.held_call()
    os.mkfifo(os.path.join(world.spool, "decisions", f"{req.id}.fifo.json"))
    target = world.drop(req.id, world.sign(world.approver, req.id), "real")
    os.rename(target, os.path.join(world.spool, "target"))
    os.symlink(
        os.path.join(world.spool, "target"),
        os.path.join(world.spool, "decisions", f"{req.id}.link.json"),
    )
    assert_refused(world, world.wait(req), "unreadable")
    assert len(world.security()) == 2


def test_a_refused_decision_is_logged_once_even_when_it_cannot_be_moved_aside(
    world: World,
) -> None:
    req = world.held_call(timeout_s=0.5)
    Path(world.spool, "rejected").write_text("the agent made this a file")
    world.drop(req.id, {"junk": True})
    assert_refused(world, world.wait(req, poll_s=0.01), "decision")
    assert len(world.security()) == 1


def test_a_forged_decision_does_not_stop_the_wait_for_a_real_one(world: World) -> None:
    keys.init_approver(world.agent, "mallory")
    req = world.held_call(timeout_s=30)
    world.drop(req.id, world.sign(world.agent, req.id), "--forged")  # sorts first
    write_decision(world.spool, world.sign(world.approver, req.id))
    verdict = world.wait(req)
    assert verdict.outcome == "approved" and verdict.approver == "alice"
    assert [e["event"] for e in world.events] == ["security", "approved"]


def test_a_decision_for_a_request_id_that_is_not_ours_is_ignored(world: World) -> None:
    mine = world.held_call()
    other = world.held_call(timeout_s=30)
    write_decision(world.spool, world.sign(world.approver, other.id))
    assert world.wait(mine).outcome == "expired"
    assert world.security() == []  # another shim's business; it stays for that shim
    assert world.wait(other).outcome == "approved"


def test_the_agent_cannot_empty_the_used_store_to_replay_for_a_new_request(
    world: World,
) -> None:
    first = world.held_call(timeout_s=30)
    decision = world.sign(world.approver, first.id)
    write_decision(world.spool, decision)
    assert world.wait(first).outcome == "approved"
    os.unlink(world.used_path)
    world.events.clear()
    second = world.held_call()
    world.drop(second.id, decision)
    assert_refused(world, world.wait(second), "is for request")


# --- what the human sees ----------------------------------------------------------------------


def test_a_blind_y_or_enter_is_not_the_code() -> None:
    for typed in ("y", "yes", "Y", "ok", "approve", "k7m"):
        assert judge(typed, "k7mp") == "wrong"
    assert judge("", "k7mp") == "empty"
    assert judge(" K7MP ", "k7mp") == "approve"
    assert judge("deny not today", "k7mp") == "deny"


def test_escape_sequences_in_argv_cannot_disguise_the_command(world: World) -> None:
    argv = ["kubectl", "delete", "ns", "prod\x1b[2K\rkubectl get pods", "\u202etxt.exe"]
    req = world.held_call(argv=argv, context={"namespace": "prod\x1b[8m"})
    shown = command_line(req.argv)
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
    assert "\\x1b[2K\\x0d" in shown and "\\u202e" in shown
    panel = render_panel(req, "k7mp", time.time())
    assert "\x1b" not in panel and "\u202e" not in panel


def test_the_agent_deleting_its_spool_copy_still_expires_as_a_denial(world: World) -> None:
    req = world.held_call()
    os.unlink(request_path(world.spool, req.id))
    shutil.rmtree(os.path.join(world.spool, "decisions"))
    assert world.wait(req).outcome == "expired"


# --- the spool as a weapon against the approver -------------------------------------------------


@pytest.mark.parametrize("sub", ["tmp", "closed", "rejected"])
def test_a_spool_dir_symlinked_at_the_approvers_files_prunes_nothing_there(
    world: World, tmp_path: Path, sub: str
) -> None:
    # The agent owns the spool: it points tmp/closed/rejected at a directory of the approver's
    # (anchors, checkpoints, keys) and waits for the approver's `shield pending` to prune it.
    victim = tmp_path / "approver-files"
    victim.mkdir()
    old = victim / "anchor.json"
    old.write_text("{}")
    os.utime(old, (0, 0))  # older than any keep time
    world.held_call(timeout_s=30)
    target = os.path.join(world.spool, sub)
    shutil.rmtree(target, ignore_errors=True)
    os.symlink(victim, target)
    assert len(list_pending(world.spool)) == 1  # the approver's routine look
    assert old.exists()


def test_a_decisions_dir_symlinked_elsewhere_is_refused_not_written_through(
    world: World, tmp_path: Path
) -> None:
    req = world.held_call(timeout_s=30)
    elsewhere = tmp_path / "host-dir"
    elsewhere.mkdir()
    decisions = os.path.join(world.spool, "decisions")
    shutil.rmtree(decisions)
    os.symlink(elsewhere, decisions)
    decision = world.sign(world.approver, req.id)
    with pytest.raises(SpoolError, match="not a plain directory"):
        write_decision(world.spool, decision)
    assert list(elsewhere.iterdir()) == []


def test_a_requests_dir_symlinked_elsewhere_is_an_error_for_the_approver(
    world: World, tmp_path: Path
) -> None:
    world.held_call(timeout_s=30)
    requests = os.path.join(world.spool, "requests")
    shutil.move(requests, str(tmp_path / "moved"))
    os.symlink(tmp_path / "moved", requests)
    with pytest.raises(SpoolError, match="not a plain directory"):
        list_pending(world.spool)


# --- the approver sees what was refused ---------------------------------------------------------


@pytest.mark.parametrize("attack", ["other digest", "copied", "untrusted key"])
def test_every_refusal_leaves_a_note_the_approver_reads(world: World, attack: str) -> None:
    from shim.approval.spool import list_refusals

    req = world.held_call()
    if attack == "other digest":
        data = world.spool_copy(req.id)
        data["argv"] = ["get", "pods"]  # what the agent wanted the approver to sign
        world.drop(req.id, sign_decision(world.approver, data, "approve", "ok"))
        why = "digest does not match"
    elif attack == "copied":
        first = world.held_call(timeout_s=30)
        world.drop(req.id, world.sign(world.approver, first.id), name="copied")
        why = f"is for request '{first.id}', not {req.id}"
    else:
        keys.init_approver(world.agent, "mallory")
        world.drop(req.id, world.sign(world.agent, req.id))
        why = "untrusted key"
    assert world.wait(req).outcome == "expired"
    notes = list_refusals(world.spool)[req.id]
    assert [n["why"] for n in notes] == world.security() and len(notes) == 1
    assert why in notes[0]["why"]
    assert notes[0]["channel"] == "spool"
    assert notes[0]["approver"] == ("mallory" if attack == "untrusted key" else "alice")
