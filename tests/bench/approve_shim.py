"""Bench: `shield approve` returning -> the held command starting, through a real shim.

An installed shim holds `kubectl delete pod web-N` (its preview runs first, against a stand-in
kubectl); the approver runs `shield approve ID` as its own process. The stand-in records when it
starts (preview calls are not counted). Prints the median over the rounds; SPEC target <= 0.2 s.
A negative figure means the command started before the approve process had finished exiting.

    .venv/bin/python tests/bench/approve_shim.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STANDIN = """#!{python} -I
import os, sys, time
if not os.environ.get("_SHIELD_PREVIEW"):
    with open({out!r}, "a") as fh:
        fh.write(repr(time.time()) + "\\n")
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-approve-bench-"))
    starts = root / "starts"
    real = root / "real"
    real.mkdir()
    (real / "kubectl").write_text(STANDIN.format(python=sys.executable, out=str(starts)))
    (real / "kubectl").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}

    def shield(home: Path, *a: str) -> subprocess.CompletedProcess:
        env = dict(base, SHIELD_HOME=str(home))
        return subprocess.run(
            [sys.executable, "-m", "shim", *a], env=env, capture_output=True, text=True, check=True
        )

    agent, approver = root / "agent", root / "approver"
    shield(approver, "approver", "init", "--name", "bench")
    shield(agent, "install", "--dir", str(root / "bin"), "--agent", "bench", "kubectl")
    shield(agent, "trust", "add", str(approver / "keys" / "approver.pub"))
    spool = agent / "state" / "spool"
    env = dict(base, PATH=f"{root / 'bin'}:{real}:/usr/bin:/bin", HOME=str(root))
    delays = []
    for i in range(args.rounds):
        proc = subprocess.Popen(
            ["kubectl", "delete", "pod", f"web-{i}"], env=env, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        rid = None
        while rid is None and time.monotonic() < deadline:
            pending = json.loads(
                shield(approver, "pending", "--json", "--spool", str(spool)).stdout
            )
            rid = pending[0]["id"] if pending else None
        if rid is None:
            raise SystemExit("no held request appeared")
        before = len(starts.read_text().splitlines()) if starts.exists() else 0
        shield(approver, "approve", rid, "--spool", str(spool))
        returned = time.time()
        proc.wait(timeout=30)
        lines = starts.read_text().splitlines()
        if len(lines) != before + 1:
            raise SystemExit("the approved command did not run exactly once")
        delays.append(float(lines[-1]) - returned)
    print(f"rounds: {args.rounds}")
    print(
        f"approve_return_to_command_start_median_s: {statistics.median(delays):.3f}  (target <= 0.2)"
    )
    print(f"approve_return_to_command_start_max_s: {max(delays):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
