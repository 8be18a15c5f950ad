"""A Ctrl-C between the moment a held request is published and the moment the wait takes over
still withdraws it (the shim records signals from before it publishes; issue 15)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shim.approval.spool import list_pending, lookup
from shim.approval.wait import recording_signals
from tests.approval.support import wait_held, write_held


def test_a_signal_caught_before_the_wait_withdraws_the_request_at_once(tmp_path: Path) -> None:
    spool = str(tmp_path / "spool")
    req = write_held(spool, 30.0)  # published: an approver could see it now
    events: list[dict] = []
    started = time.monotonic()
    verdict = wait_held(
        req,
        spool,
        trusted={},
        used_path=str(tmp_path / "used"),
        log=events.append,
        caught=[signal.SIGINT],  # the Ctrl-C came while the shim announced the hold
    )
    assert verdict.outcome == "interrupted" and verdict.signal == signal.SIGINT
    assert time.monotonic() - started < 10  # not the 30 s deadline
    assert [e["event"] for e in events] == ["cancelled"]
    assert list_pending(spool) == [] and lookup(spool, req.id)[0] == "cancelled"


def test_recording_signals_keeps_them_and_restores_the_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    caught: list[int] = []
    with recording_signals(caught):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        end = time.monotonic() + 10
        while len(caught) < 2 and time.monotonic() < end:
            time.sleep(0.01)
    assert caught == [signal.SIGINT, signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before
