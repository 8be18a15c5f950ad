"""Bench: `shield approve --server` returning -> the held command starting (SPEC: p50 <= 0.3 s).

A real `shield serve` on loopback and a shim installed with --server hold `kubectl delete pod
web-N` (its preview runs first, against a stand-in kubectl that records when the real call
starts). The approver lists with `shield pending --server` and runs `shield approve ID --server`
as its own process; the figure is the stand-in's start time minus the moment approve returned.
A negative figure means the command started before the approve process finished exiting.
With --postgres, two servers share one PostgreSQL database: the shim talks to the first, the
approver to the second.

    .venv/bin/python tests/bench/server_approve.py [--rounds 20] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relay import BASE_ENV, Servers, shield

STANDIN = """#!{python} -I
import os, sys, time
if not os.environ.get("_SHIELD_PREVIEW"):
    with open({out!r}, "a") as fh:
        fh.write(repr(time.time()) + "\\n")
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-relay-approve-"))
    servers = Servers(root, 2 if args.postgres else 1, postgres=args.postgres)
    try:
        starts = root / "starts"
        real = root / "real"
        real.mkdir()
        (real / "kubectl").write_text(STANDIN.format(python=sys.executable, out=str(starts)))
        (real / "kubectl").chmod(0o755)
        agent, approver = root / "agent", root / "approver"
        shield(approver, "approver", "init", "--name", "bench")
        agent_token = servers.token("agent", "bench")
        approver_token = servers.token("approver", "bench")
        shield(
            agent, "install", "--dir", str(root / "bin"), "--agent", "bench", "kubectl",
            "--server", servers.urls[0], "--token-file", str(agent_token),
        )  # fmt: skip
        shield(agent, "trust", "add", str(approver / "keys" / "approver.pub"))
        where = ["--server", servers.urls[-1], "--token-file", str(approver_token)]
        env = dict(BASE_ENV, PATH=f"{root / 'bin'}:{real}:/usr/bin:/bin", HOME=str(root))
        delays = []
        for i in range(args.rounds):
            proc = subprocess.Popen(
                ["kubectl", "delete", "pod", f"web-{i}"], env=env, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 30
            rid = None
            while rid is None and time.monotonic() < deadline:
                pending = json.loads(shield(approver, "pending", "--json", *where))
                rid = pending[0]["id"] if pending else None
            if rid is None:
                raise SystemExit("no held request appeared on the server")
            before = len(starts.read_text().splitlines()) if starts.exists() else 0
            shield(approver, "approve", rid, *where)
            returned = time.time()
            proc.wait(timeout=30)
            lines = starts.read_text().splitlines()
            if len(lines) != before + 1:
                raise SystemExit("the approved command did not run exactly once")
            delays.append(float(lines[-1]) - returned)
    finally:
        servers.stop()
    label = "two servers, PostgreSQL" if args.postgres else "one server, SQLite"
    print(f"rounds: {args.rounds} ({label})")
    print(
        f"approve_server_return_to_command_start_p50_s: {statistics.median(delays):.3f}  (target <= 0.3)"
    )
    print(f"approve_server_return_to_command_start_max_s: {max(delays):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
