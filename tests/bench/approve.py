"""Bench: from `shield approve` returning to the held command starting (SPEC target: <= 0.2 s).

Two temporary homes and one spool. A waiter process holds a call (`wait_for_decision`,
default poll interval), and when it is approved starts a stand-in command that prints the time
it started. Each round, this script runs `shield approve ID` as its own process (`python -m
shim.cli`), notes the time it returned, and compares. A negative figure means the command started
before the approve process finished exiting (interpreter teardown takes longer than the waiter's
poll). A thread watching the decisions directory (0.5 ms polls) also gives the time from the
signed decision landing in the spool to the command starting. Prints medians over the rounds:

    .venv/bin/python tests/bench/approve.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

WAITER = r"""
import subprocess, sys, time
from shim import keys
from shim.approval.request import new_request
from shim.approval.spool import SpoolTransport, write_request
from shim.approval.wait import wait_for_decision

spool, agent, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
trusted = keys.load_trusted(agent)
for _ in range(rounds):
    req = new_request(
        agent="bench-bot", tool="kubectl", argv=["kubectl", "delete", "pod", "web-1"],
        cwd="/", context={"namespace": "prod"}, rule="kubectl/delete", reason="bench",
        timeout_s=60,
    )
    write_request(spool, req)
    print("HELD", req.id, flush=True)
    verdict = wait_for_decision(
        req, [SpoolTransport(spool, req)], trusted=trusted, used_path=agent + "/state/used",
        log=lambda fields: None,
    )
    noticed = time.time()
    assert verdict.outcome == "approved", verdict
    # The held command: a stand-in that prints the time it started.
    started = subprocess.run(["date", "+%s.%N"], capture_output=True, text=True).stdout.strip()
    print("START", noticed, started, flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    from shim import keys

    with tempfile.TemporaryDirectory() as tmp:
        approver, agent, spool = (os.path.join(tmp, n) for n in ("approver", "agent", "spool"))
        keys.init_approver(approver, "bench")
        keys.add_trusted(agent, keys.public_key_path(approver))
        script = os.path.join(tmp, "waiter.py")
        with open(script, "w") as fh:
            fh.write(WAITER)
        waiter = subprocess.Popen(
            [sys.executable, script, spool, agent, str(args.rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert waiter.stdout is not None
        env = {**os.environ, "SHIELD_HOME": approver, "SHIELD_SPOOL": spool}
        to_start: list[float] = []
        to_notice: list[float] = []
        landed_to_start: list[float] = []
        landed: dict[str, float] = {}
        stop = threading.Event()

        def watch_decisions() -> None:
            where = os.path.join(spool, "decisions")
            while not stop.is_set():
                try:
                    names = os.listdir(where)
                except FileNotFoundError:
                    names = []
                now = time.time()
                for name in names:
                    landed.setdefault(name.split(".")[0], now)
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch_decisions, daemon=True)
        watcher.start()
        try:
            for _ in range(args.rounds):
                tag, rid = waiter.stdout.readline().split()
                assert tag == "HELD", tag
                subprocess.run(
                    [sys.executable, "-m", "shim.cli", "approve", rid],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                returned = time.time()
                tag, noticed, started = waiter.stdout.readline().split()
                assert tag == "START", tag
                to_notice.append(float(noticed) - returned)
                to_start.append(float(started) - returned)
                if rid in landed:
                    landed_to_start.append(float(started) - landed[rid])
        finally:
            stop.set()
            waiter.wait(timeout=60)
    print(f"rounds: {args.rounds}")
    print(f"approve_to_notice_median_s: {statistics.median(to_notice):.3f}")
    if landed_to_start:
        print(f"decision_landed_to_start_median_s: {statistics.median(landed_to_start):.3f}")
    print(f"approve_to_start_max_s: {max(to_start):.3f}")
    print(f"approve_to_start_median_s: {statistics.median(to_start):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
