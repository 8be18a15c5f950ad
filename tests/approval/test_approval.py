"""Held requests, the spool, decision verification and waiting (in process)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim import keys
from shim.approval.decision import sign_decision, verify_decision
from shim.approval.request import (
    ID_ALPHABET,
    HeldRequest,
    compute_digest,
    content_of,
    new_request,
    request_from_dict,
    to_dict,
)
from shim.approval.spool import list_pending, lookup, request_path, write_decision, write_request
from shim.approval.transport import Verdict
from shim.approval.used import commit_used, load_used
from shim.clock import now_iso, parse_iso
from shim.errors import SpoolError
from tests.approval.support import wait_held, write_held

DEADLINE_S = 10.0


@dataclasses.dataclass
class World:
    """Two homes (approver, agent) and one shared spool, as in production."""

    approver: str
    agent: str
    spool: str
    events: list[dict[str, Any]]

    @property
    def trusted(self) -> dict[str, keys.PublicKey]:
        return keys.load_trusted(self.agent)

    @property
    def used_path(self) -> str:
        return os.path.join(self.agent, "state", "used-decisions")

    def log(self, fields: dict[str, Any]) -> None:
        self.events.append(fields)

    def held_call(self, timeout_s: float = 5.0, **kw: Any) -> HeldRequest:
        return write_held(self.spool, timeout_s, **kw)

    def decide(self, req_id: str, verdict: str = "approve", **kw: Any) -> dict[str, Any]:
        """What `shield approve` does: sign the spool copy, drop the decision in the spool."""
        status, data = lookup(self.spool, req_id)
        assert status == "pending" and data is not None
        decision = sign_decision(self.approver, data, verdict, "ok", **kw)
        write_decision(self.spool, decision)
        return decision

    def wait(self, req: HeldRequest, **kw: Any) -> Verdict:
        return wait_held(
            req,
            self.spool,
            trusted=self.trusted,
            used_path=self.used_path,
            log=self.log,
            **kw,
        )

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


@pytest.fixture
def world(tmp_path: Path) -> World:
    approver, agent = str(tmp_path / "approver"), str(tmp_path / "agent")
    keys.init_approver(approver, "alice")
    keys.add_trusted(agent, keys.public_key_path(approver))
    return World(approver, agent, str(tmp_path / "spool"), [])


def poll_until(check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.005)


# --- requests ---------------------------------------------------------------------------------


def test_new_request_ids_are_six_typeable_characters(world: World) -> None:
    ids = {new_request(**base_fields()).id for _ in range(200)}
    assert len(ids) == 200
    for rid in ids:
        assert len(rid) == 6 and set(rid) <= set(ID_ALPHABET)
    assert not set("01ilo") & set(ID_ALPHABET)


def base_fields(**kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "agent": "a",
        "tool": "kubectl",
        "argv": ["kubectl", "delete", "pod", "x"],
        "cwd": "/",
        "context": {"namespace": "prod"},
        "rule": "r",
        "reason": "why",
        "timeout_s": 60,
        "now": 1_700_000_000.0,
    }
    fields.update(kw)
    return fields


def test_new_request_sets_created_and_expires_in_utc() -> None:
    req = new_request(**base_fields(now=1_700_000_000.25, timeout_s=600))
    assert req.created == "2023-11-14T22:13:20.250Z"
    assert req.expires == "2023-11-14T22:23:20.250Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "zzzzzz"),
        ("agent", "other-bot"),
        ("tool", "helm"),
        ("argv", ("kubectl", "delete", "pod", "y")),
        ("cwd", "/elsewhere"),
        ("context", {"namespace": "staging"}),
        ("rule", None),
        ("reason", "another reason"),
        ("created", "2023-11-14T22:13:21.000Z"),
        ("expires", "2023-11-14T23:13:20.000Z"),
        ("extra", {"preview": "- 3 pods"}),
    ],
)
def test_the_digest_covers_every_field(field: str, value: object) -> None:
    req = new_request(**base_fields())
    changed = dataclasses.replace(req, **{field: value})  # type: ignore[arg-type]
    assert compute_digest(content_of(changed)) != req.digest
    assert compute_digest(content_of(req)) == req.digest


def test_to_dict_flattens_extra_and_round_trips() -> None:
    req = new_request(**base_fields(extra={"preview": "- pod x", "risk": "high"}))
    data = to_dict(req)
    for key in ("id", "agent", "tool", "argv", "cwd", "context", "rule", "reason", "created"):
        assert key in data
    assert data["preview"] == "- pod x" and data["risk"] == "high" and "extra" not in data
    assert data["argv"] == ["kubectl", "delete", "pod", "x"]
    assert request_from_dict(json.loads(json.dumps(data))) == req


def test_request_from_dict_recomputes_the_digest_and_ignores_the_digest_field() -> None:
    req = new_request(**base_fields())
    data = to_dict(req)
    data["digest"] = "0" * 64
    assert request_from_dict(data).digest == req.digest
    data["argv"] = ["kubectl", "get", "pods"]
    assert request_from_dict(data).digest != req.digest


def test_non_utf8_argv_survives_the_spool_round_trip(world: World) -> None:
    argv = ["kubectl", "delete", "pod", b"caf\xe9".decode("utf-8", "surrogateescape")]
    req = world.held_call(argv=argv)
    status, data = lookup(world.spool, req.id)
    assert request_from_dict(data).digest == req.digest


@pytest.mark.parametrize(
    "extra",
    [{"id": "x"}, {"digest": "x"}, {"argv": []}, {"status": "approved"}, {"score": 0.5}],
)
def test_new_request_refuses_extra_keys_that_shadow_fields_or_are_not_canonical(
    extra: dict[str, Any],
) -> None:
    with pytest.raises(ValueError):
        new_request(**base_fields(extra=extra))


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"id": "abc"},
        {**to_dict(new_request(**base_fields())), "argv": "kubectl delete"},
        {**to_dict(new_request(**base_fields())), "id": "../../x"},
        {**to_dict(new_request(**base_fields())), "expires": "tomorrow"},
        {**to_dict(new_request(**base_fields())), "context": {"ns": 1}},
    ],
)
def test_request_from_dict_refuses_malformed_requests(data: object) -> None:
    with pytest.raises(SpoolError):
        request_from_dict(data)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_iso_round_trips_to_the_millisecond(ms: int) -> None:
    assert parse_iso(now_iso(ms / 1000)) == pytest.approx(ms / 1000, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    ["", "2025-01-01", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z", "2025-01-01T00:00:00.xZ"],
)
def test_parse_iso_refuses_malformed_times(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso(text)


# --- the spool --------------------------------------------------------------------------------


def test_write_request_leaves_no_temp_file_and_refuses_a_duplicate_id(world: World) -> None:
    req = world.held_call()
    assert os.listdir(os.path.join(world.spool, "tmp")) == []
    with open(request_path(world.spool, req.id)) as fh:
        assert json.load(fh) == to_dict(req)
    with pytest.raises(SpoolError):
        write_request(world.spool, req)


def test_list_pending_is_oldest_first_and_skips_expired_and_malformed(world: World) -> None:
    now = time.time()
    newer = world.held_call(now=now - 1, timeout_s=60)
    older = world.held_call(now=now - 5, timeout_s=60)
    world.held_call(now=now - 100, timeout_s=10)  # expired
    rdir = os.path.join(world.spool, "requests")
    Path(rdir, "2345ab.json").write_text("{not json")
    Path(rdir, "3456ab.json").write_text(json.dumps(to_dict(older)))  # id != file name
    Path(rdir, "README").write_text("x")
    assert [d["id"] for d in list_pending(world.spool)] == [older.id, newer.id]


def test_list_pending_of_a_missing_spool_is_empty(tmp_path: Path) -> None:
    assert list_pending(str(tmp_path / "nowhere")) == []


def test_commit_used_records_each_decision_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "used")
    assert commit_used(path, "a" * 64)
    assert not commit_used(path, "a" * 64)
    assert commit_used(path, "b" * 64)
    assert load_used(path) == {"a" * 64, "b" * 64}


# --- verification ------------------------------------------------------------------------------


def test_verify_decision_accepts_a_valid_decision(world: World) -> None:
    req = world.held_call()
    decision = world.decide(req.id)
    assert verify_decision(decision, req, world.trusted, time.time(), 30, set()) == (
        True,
        "ok",
    )


@pytest.mark.parametrize(
    ("approver_ahead_s", "accepted"),
    [(0, True), (20, True), (-20, True), (29, True), (40, False)],
)
def test_a_decision_made_by_a_clock_ahead_is_accepted_within_the_tolerance(
    world: World, approver_ahead_s: float, accepted: bool
) -> None:
    req = world.held_call()
    now = time.time()
    decision = world.decide(req.id, now=now + approver_ahead_s)
    ok, why = verify_decision(decision, req, world.trusted, now, 30, set())
    assert ok is accepted, why
    if not accepted:
        assert "in the future" in why


@pytest.mark.parametrize(("expired_ago_s", "accepted"), [(-1, True), (20, True), (40, False)])
def test_an_expired_decision_is_accepted_only_within_the_tolerance(
    world: World, expired_ago_s: float, accepted: bool
) -> None:
    req = world.held_call()
    now = time.time()
    ttl = 60.0
    decision = world.decide(req.id, now=now - ttl - expired_ago_s, ttl_s=ttl)
    ok, why = verify_decision(decision, req, world.trusted, now, 30, set())
    assert ok is accepted, why
    if not accepted:
        assert "expired" in why


# --- waiting ----------------------------------------------------------------------------------


def test_wait_returns_approved_for_a_decision_in_the_spool(world: World) -> None:
    req = world.held_call()
    world.decide(req.id)
    verdict = world.wait(req)
    assert verdict == Verdict("approved", "alice", "ok", None, "spool")
    assert world.events == [
        {
            "event": "approved",
            "request": req.id,
            "approver": "alice",
            "reason": "ok",
            "channel": "spool",
            "key": keys.approver_identity(world.approver).fingerprint,
        }
    ]
    assert lookup(world.spool, req.id)[0] == "approved"
    assert list_pending(world.spool) == []
    assert os.listdir(os.path.join(world.spool, "decisions")) == []


def test_wait_returns_denied_for_a_signed_denial(world: World) -> None:
    req = world.held_call()
    world.decide(req.id, "deny")
    assert world.wait(req).outcome == "denied"
    assert world.kinds() == ["denied"]
    assert lookup(world.spool, req.id)[0] == "denied"


def test_wait_notices_a_decision_written_while_it_waits(world: World) -> None:
    req = world.held_call()

    def approver() -> None:
        poll_until(lambda: signal.getsignal(signal.SIGINT) is not signal.default_int_handler)
        world.decide(req.id)

    thread = threading.Thread(target=approver)
    thread.start()
    try:
        assert world.wait(req).outcome == "approved"
    finally:
        thread.join()


def test_wait_expires_at_the_deadline_and_closes_the_request(world: World) -> None:
    req = world.held_call(timeout_s=0.3)
    started = time.monotonic()
    verdict = world.wait(req)
    assert verdict.outcome == "expired" and verdict.approver is None
    assert 0.2 < time.monotonic() - started < 5
    assert world.kinds() == ["expired"]
    assert lookup(world.spool, req.id)[0] == "expired"


def test_a_decision_waiting_in_the_spool_after_the_deadline_is_not_read(world: World) -> None:
    req = world.held_call(timeout_s=0.0)
    world.decide(req.id)
    assert world.wait(req).outcome == "expired"
    assert world.kinds() == ["expired"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_waiting_interrupts_and_withdraws_the_request(
    world: World, signum: int
) -> None:
    req = world.held_call(timeout_s=30)

    def interrupt() -> None:
        poll_until(
            lambda: signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler)
        )
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=interrupt)
    before = signal.getsignal(signum)
    thread.start()
    try:
        verdict = world.wait(req)
    finally:
        thread.join()
    assert verdict.outcome == "interrupted" and verdict.signal == signum
    assert signal.getsignal(signum) is before
    assert world.kinds() == ["cancelled"] and world.events[0]["signal"] == signum
    assert list_pending(world.spool) == []
    assert lookup(world.spool, req.id)[0] == "cancelled"


def test_a_failing_log_is_fatal_and_the_request_is_withdrawn(world: World) -> None:
    req = world.held_call()
    world.decide(req.id)

    def broken(fields: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        wait_held(req, world.spool, trusted=world.trusted, used_path=world.used_path, log=broken)
    assert lookup(world.spool, req.id)[0] == "cancelled"


def test_the_notify_hook_gets_the_request_as_json_on_stdin(world: World, tmp_path: Path) -> None:
    out = tmp_path / "notified.json"
    hook = [
        sys.executable,
        "-c",
        "import os, sys; open(sys.argv[1] + '.tmp', 'w').write(os.environ['SHIELD_REQUEST_ID'] "
        "+ '\\n' + sys.stdin.read()); os.replace(sys.argv[1] + '.tmp', sys.argv[1])",
        str(out),
    ]
    req = world.held_call(timeout_s=0.5)
    world.wait(req, notify=hook)
    poll_until(out.exists)
    rid, payload = out.read_text().split("\n", 1)
    assert rid == req.id
    assert json.loads(payload) == to_dict(req)


def test_the_notify_hook_may_be_one_command_line(world: World, tmp_path: Path) -> None:
    out = tmp_path / "notified.json"
    req = world.held_call(timeout_s=0.3)
    world.wait(req, notify=f"sh -c 'cat > {out}.tmp && mv {out}.tmp {out}'")
    poll_until(out.exists)
    assert json.loads(out.read_text())["id"] == req.id


@pytest.mark.parametrize(
    "hook",
    [["/nonexistent/notify-hook"], [sys.executable, "-c", "import sys; sys.exit(3)"]],
)
def test_a_failing_notify_hook_is_logged_and_the_hold_goes_on(
    world: World, hook: list[str]
) -> None:
    req = world.held_call(timeout_s=0.5)
    verdict = world.wait(req, notify=hook)
    assert verdict.outcome == "expired"
    assert "notify-failed" in world.kinds()


def test_a_slow_notify_hook_does_not_delay_the_decision(world: World) -> None:
    req = world.held_call(timeout_s=20)
    world.decide(req.id)
    started = time.monotonic()
    verdict = world.wait(req, notify=[sys.executable, "-c", "import time; time.sleep(30)"])
    assert verdict.outcome == "approved"
    assert time.monotonic() - started < 5


def test_wait_accepts_a_decision_from_an_approver_clock_ahead_within_tolerance(
    world: World,
) -> None:
    req = world.held_call()
    world.decide(req.id, now=time.time() + 20)
    assert world.wait(req, clock_skew_s=30).outcome == "approved"
