"""Benchmark the log: append latency with 1 and 16 writer processes, and verify speed.

Run: .venv/bin/python tests/bench/log.py [--dir DIR]

Prints `name: value` lines. Targets (SPEC "How fast"): append p99 <= 2 ms with 16 concurrent
writers; `shield log verify` >= 50,000 entries/s. Every append is durable (two fdatasyncs under
the lock: the log line, then the key advance), so the 16-writer figures are dominated by waiting
for the lock while the writers ahead of you sync; the breakdown lines show it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from shim import audit, fs  # noqa: E402

ENTRY = {
    "event": "call",
    "agent": "deploy-bot",
    "tool": "kubectl",
    "argv": ["kubectl", "-n", "prod", "get", "pods", "-o", "wide"],
    "cwd": "/home/agent/src",
    "context": {"kube_context": "prod-eu", "namespace": "prod"},
    "decision": "allow",
    "rule": "kubectl/read",
    "request": None,
    "approver": None,
}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def timed_appends(log_dir: str, count: int, think_s: float = 0.0) -> dict[str, list[float]]:
    """Append `count` entries; per-append latency, lock wait, and fdatasync times (seconds)."""
    real_sync, real_flock = fs.fdatasync, fcntl.flock
    syncs: list[float] = []
    waits: list[float] = []

    def sync(fd: int) -> None:
        t = time.perf_counter()
        real_sync(fd)
        syncs.append(time.perf_counter() - t)

    def flock(fd: int, op: int) -> None:
        t = time.perf_counter()
        real_flock(fd, op)
        waits.append(time.perf_counter() - t)

    fs.fdatasync = sync  # type: ignore[assignment]
    fcntl.flock = flock  # type: ignore[assignment]
    lat: list[float] = []
    try:
        for i in range(count):
            if think_s:
                time.sleep(think_s)
            t = time.perf_counter()
            audit.append_entry(log_dir, {**ENTRY, "request": str(i)})
            lat.append(time.perf_counter() - t)
    finally:
        fs.fdatasync, fcntl.flock = real_sync, real_flock  # type: ignore[assignment]
    return {"lat": lat, "sync": syncs, "wait": waits}


def child(log_dir: str, count: int, go: str, out: str, think_s: float) -> None:
    while not os.path.exists(go):  # start together
        time.sleep(0.0005)
    with open(out, "w") as fh:
        json.dump(timed_appends(log_dir, count, think_s), fh)


def writers(base: str, n: int, count: int, think_s: float = 0.0) -> dict[str, list[float]]:
    log_dir = os.path.join(base, f"w{n}-{think_s}")
    audit.init_log(log_dir)
    go = os.path.join(base, f"go-{n}-{think_s}")
    outs = [os.path.join(base, f"out-{n}-{think_s}-{i}.json") for i in range(n)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", log_dir, str(count), go, out, str(think_s)]
        )
        for out in outs
    ]
    time.sleep(0.5)  # let every child import and reach the start line
    open(go, "w").close()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("a writer failed")
    merged: dict[str, list[float]] = {"lat": [], "sync": [], "wait": []}
    for out in outs:
        with open(out) as fh:
            for k, v in json.load(fh).items():
                merged[k] += v
    with open(os.path.join(log_dir, "anchor.json")) as fh:
        rep = audit.verify_log(os.path.join(log_dir, "shield.log"), anchor=json.load(fh))
    assert rep.ok and rep.entries == n * count, rep.message
    return merged


def build_log(log_dir: str, count: int) -> None:
    """A log of `count` entries (fdatasync skipped: only the bytes matter for verify)."""
    audit.init_log(log_dir)
    real = os.fdatasync
    os.fdatasync = lambda fd: None  # type: ignore[assignment]
    try:
        for i in range(count):
            audit.append_entry(log_dir, {**ENTRY, "request": str(i)})
    finally:
        os.fdatasync = real  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="where to write the logs (default: a temp dir)")
    ap.add_argument("--verify-entries", type=int, default=100_000)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="shield-bench-", dir=args.dir)
    ms = 1000.0
    try:
        one_dir = os.path.join(base, "one")
        audit.init_log(one_dir)
        timed_appends(one_dir, 100)  # warm up
        one = timed_appends(one_dir, 2000)
        print(f"append_p50_ms_1_writer: {pct(one['lat'], 50) * ms:.3f}")
        print(f"append_p99_ms_1_writer: {pct(one['lat'], 99) * ms:.3f}")
        print(f"fdatasync_p50_ms_1_writer: {pct(one['sync'], 50) * ms:.3f}  # two per append")
        print(f"fdatasync_p99_ms_1_writer: {pct(one['sync'], 99) * ms:.3f}")

        many = writers(base, 16, 500)
        print(f"append_p50_ms_16_writers: {pct(many['lat'], 50) * ms:.3f}")
        print(f"append_p99_ms_16_writers: {pct(many['lat'], 99) * ms:.3f}")
        print(f"lock_wait_p50_ms_16_writers: {pct(many['wait'], 50) * ms:.3f}")
        print(f"lock_wait_p99_ms_16_writers: {pct(many['wait'], 99) * ms:.3f}")
        print(f"fdatasync_p99_ms_16_writers: {pct(many['sync'], 99) * ms:.3f}")

        # 16 writers that each pause 10 ms between calls (a shim call costs ~20 ms to start),
        # instead of all hammering the log back to back.
        paced = writers(base, 16, 200, think_s=0.010)
        print(f"append_p50_ms_16_writers_paced_10ms: {pct(paced['lat'], 50) * ms:.3f}")
        print(f"append_p99_ms_16_writers_paced_10ms: {pct(paced['lat'], 99) * ms:.3f}")

        vdir = os.path.join(base, "verify")
        build_log(vdir, args.verify_entries)
        path = os.path.join(vdir, "shield.log")
        with open(os.path.join(vdir, "anchor.json")) as fh:
            anchor = json.load(fh)
        for label, a in (
            ("verify_entries_per_s", anchor),
            ("verify_entries_per_s_no_anchor", None),
        ):
            best = 0.0
            for _ in range(3):
                t = time.perf_counter()
                rep = audit.verify_log(path, anchor=a)
                dt = time.perf_counter() - t
                assert rep.ok and rep.entries == args.verify_entries, rep.message
                best = max(best, rep.entries / dt)
            print(f"{label}: {best:.0f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6]))
    else:
        main()
