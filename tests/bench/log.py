"""Benchmark the log: append latency with 1 and 16 writer processes, and verify speed.

Run: .venv/bin/python tests/bench/log.py [--dir DIR] [--rounds N]

Prints `name: value` lines. Targets (SPEC "How fast"): append p99 <= 2 ms with 16 concurrent
writers; `shield log verify` >= 50,000 entries/s.

Every append is durable before it returns (`fdatasync`), so its latency is bounded below by what
this disk takes to flush one line while 15 other processes flush theirs. The bench therefore
runs, side by side in the same rounds, a **floor**: the bare durable append the SPEC prescribes
(open, `flock`, one `O_APPEND` write of a line of the same size, unlock, `fdatasync`, close) with
no chain, MAC or key file, and prints `ratio_*` = shield / floor. Scenarios:

- `1_writer`: one process appending back to back;
- `16_writers`: 16 processes appending back to back (a stress case: 2 cores, 16 processes);
- `16_writers_paced_10ms`: 16 processes that pause 10 ms between appends (about what a shim
  costs to start);
- `16_shims`: 16 concurrent streams of fresh processes (`python -I -S`, as a shim starts), each
  appending one entry and exiting, as shims do.
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

from shim import fs  # noqa: E402
from shim.log.append import ANCHOR_NAME, LOG_NAME, append_entry, init_log  # noqa: E402
from shim.log.verify import verify_log  # noqa: E402

TARGET_P99_MS_16 = 2.0
TARGET_VERIFY = 50_000

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

# One fresh process, one append, as a shim does it (the interpreter flags of a shim).
ONE_SHOT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
kind, target = sys.argv[2], sys.argv[3]
pc = time.perf_counter
if kind == "shield":
    import json
    from shim.log.append import append_entry
    entry = json.loads(sys.argv[4])
    t = pc(); append_entry(target, entry); dt = pc() - t
else:
    import fcntl, posix
    line = b"x" * (int(sys.argv[4]) - 1) + b"\n"
    t = pc()
    fd = posix.open(target, posix.O_RDWR | posix.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX); posix.write(fd, line); fcntl.flock(fd, fcntl.LOCK_UN)
    posix.fdatasync(fd); posix.close(fd)
    dt = pc() - t
print(dt)
"""


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def line_size() -> int:
    """The size of one log line for ENTRY (the floor writes lines of this size)."""
    d = tempfile.mkdtemp(prefix="shield-bench-size-")
    try:
        init_log(d)
        append_entry(d, {**ENTRY, "request": "0"})
        return os.path.getsize(os.path.join(d, LOG_NAME))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def shield_appends(log_dir: str, count: int, think_s: float) -> dict[str, list[float]]:
    """Append `count` entries; per-append latency, lock wait and fdatasync times (seconds)."""
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
        if op & fcntl.LOCK_EX:
            waits.append(time.perf_counter() - t)

    fs.fdatasync = sync  # type: ignore[assignment]
    fcntl.flock = flock  # type: ignore[assignment]
    lat: list[float] = []
    try:
        for i in range(count):
            if think_s:
                time.sleep(think_s)
            t = time.perf_counter()
            append_entry(log_dir, {**ENTRY, "request": str(i)})
            lat.append(time.perf_counter() - t)
    finally:
        fs.fdatasync, fcntl.flock = real_sync, real_flock  # type: ignore[assignment]
    return {"lat": lat, "sync": syncs, "wait": waits}


def floor_appends(path: str, count: int, think_s: float, size: int) -> dict[str, list[float]]:
    """The bare durable append: open, flock, one O_APPEND write, unlock, fdatasync, close."""
    line = b"x" * (size - 1) + b"\n"
    lat: list[float] = []
    for _ in range(count):
        if think_s:
            time.sleep(think_s)
        t = time.perf_counter()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.fdatasync(fd)
        os.close(fd)
        lat.append(time.perf_counter() - t)
    return {"lat": lat}


def child(kind: str, target: str, count: int, go: str, out: str, think_s: float, size: int) -> None:
    while not os.path.exists(go):  # start together
        time.sleep(0.0005)
    if kind == "shield":
        res = shield_appends(target, count, think_s)
    else:
        res = floor_appends(target, count, think_s, size)
    with open(out, "w") as fh:
        json.dump(res, fh)


def new_target(base: str, kind: str, tag: str) -> str:
    """A fresh log directory (shield) or empty file (floor) on the same filesystem."""
    path = tempfile.mkdtemp(prefix=f"{kind}-{tag}-", dir=base)
    if kind == "shield":
        init_log(path)
        return path
    path = os.path.join(path, "floor.log")
    open(path, "wb").close()
    return path


def check(kind: str, target: str, entries: int) -> None:
    if kind == "shield":
        with open(os.path.join(target, ANCHOR_NAME)) as fh:
            rep = verify_log(os.path.join(target, LOG_NAME), anchor=json.load(fh))
        assert rep.ok and rep.entries == entries, rep.message


def writers(
    base: str, kind: str, n: int, count: int, think_s: float, size: int
) -> dict[str, list[float]]:
    """`n` processes of `kind` appending `count` each, started together; merged timings."""
    target = new_target(base, kind, f"w{n}-{think_s}")
    go = target.rstrip("/") + ".go"
    outs = [f"{target.rstrip('/')}.out{i}.json" for i in range(n)]
    argv = [sys.executable, __file__, "--child", kind, target, str(count), go]
    procs = [subprocess.Popen([*argv, out, str(think_s), str(size)]) for out in outs]
    time.sleep(0.5)  # let every child import and reach the start line
    open(go, "w").close()
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("a writer failed")
    merged: dict[str, list[float]] = {}
    for out in outs:
        with open(out) as fh:
            for k, v in json.load(fh).items():
                merged.setdefault(k, []).extend(v)
    check(kind, target, n * count)
    return merged


def shims(base: str, kind: str, streams: int, per_stream: int, size: int) -> dict[str, list[float]]:
    """`streams` concurrent loops, each starting `per_stream` fresh processes one after another;
    each process appends one entry and exits. Latency is timed inside each process."""
    target = new_target(base, kind, f"shims{streams}")
    args = [str(size)]
    if kind == "shield":
        args = [json.dumps({**ENTRY, "request": "0"})]
    cmd = [sys.executable, "-I", "-S", "-c", ONE_SHOT, ROOT, kind, target, *args]
    lat: list[float] = []
    left = [per_stream - 1] * streams
    running = [
        (i, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)) for i in range(streams)
    ]
    while running:
        still = []
        for i, proc in running:
            if proc.poll() is None:
                still.append((i, proc))
                continue
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit("a one-shot writer failed")
            lat.append(float(out))
            if left[i]:
                left[i] -= 1
                still.append((i, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
        running = still
        time.sleep(0.001)
    check(kind, target, streams * per_stream)
    return {"lat": lat}


def build_log(log_dir: str, count: int) -> None:
    """A log of `count` entries (fdatasync skipped: only the bytes matter for verify)."""
    init_log(log_dir)
    real = fs.fdatasync
    fs.fdatasync = lambda fd: None  # type: ignore[assignment]
    try:
        for i in range(count):
            append_entry(log_dir, {**ENTRY, "request": str(i)})
    finally:
        fs.fdatasync = real  # type: ignore[assignment]


def report(name: str, ours: dict[str, list[float]], floor: dict[str, list[float]]) -> float:
    ms = 1000.0
    p50, p99 = pct(ours["lat"], 50) * ms, pct(ours["lat"], 99) * ms
    f50, f99 = pct(floor["lat"], 50) * ms, pct(floor["lat"], 99) * ms
    print(f"append_p50_ms_{name}: {p50:.3f}")
    print(f"append_p99_ms_{name}: {p99:.3f}")
    print(f"floor_p50_ms_{name}: {f50:.3f}")
    print(f"floor_p99_ms_{name}: {f99:.3f}")
    print(f"ratio_p99_{name}: {p99 / f99:.2f}")
    if "wait" in ours:
        print(f"lock_wait_p99_ms_{name}: {pct(ours['wait'], 99) * ms:.3f}")
        print(f"fdatasync_p99_ms_{name}: {pct(ours['sync'], 99) * ms:.3f}")
    return p99


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", help="where to write the logs (default: a temp dir)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each scenario (pooled)")
    ap.add_argument("--verify-entries", type=int, default=100_000)
    ap.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="shield-bench-", dir=args.dir)
    size = line_size()
    print(f"line_bytes: {size}")
    scenarios = [
        ("1_writer", lambda kind: writers(base, kind, 1, 1000, 0.0, size)),
        ("16_writers", lambda kind: writers(base, kind, 16, 300, 0.0, size)),
        ("16_writers_paced_10ms", lambda kind: writers(base, kind, 16, 100, 0.010, size)),
        ("16_shims", lambda kind: shims(base, kind, 16, 10, size)),
    ]
    p99s: dict[str, float] = {}
    try:
        for name, run in scenarios:
            if args.only and name not in args.only:
                continue
            pooled: dict[str, dict[str, list[float]]] = {"shield": {}, "floor": {}}
            for r in range(args.rounds):
                order = ("shield", "floor") if r % 2 == 0 else ("floor", "shield")
                for kind in order:  # alternate, so drift on the machine hits both alike
                    for k, v in run(kind).items():
                        pooled[kind].setdefault(k, []).extend(v)
            p99s[name] = report(name, pooled["shield"], pooled["floor"])

        vdir = os.path.join(base, "verify")
        build_log(vdir, args.verify_entries)
        path = os.path.join(vdir, LOG_NAME)
        with open(os.path.join(vdir, ANCHOR_NAME)) as fh:
            anchor = json.load(fh)
        rates = {}
        for label, a in (
            ("verify_entries_per_s", anchor),
            ("verify_entries_per_s_no_anchor", None),
        ):
            best = 0.0
            for _ in range(3):
                t = time.perf_counter()
                rep = verify_log(path, anchor=a)
                dt = time.perf_counter() - t
                assert rep.ok and rep.entries == args.verify_entries, rep.message
                best = max(best, rep.entries / dt)
            rates[label] = best
            print(f"{label}: {best:.0f}")
        for name in ("16_writers", "16_writers_paced_10ms", "16_shims"):
            if name not in p99s:
                continue
            verdict = "met" if p99s[name] <= TARGET_P99_MS_16 else "missed"
            print(f"target_append_p99_ms_{name}: {TARGET_P99_MS_16} ({verdict})")
        verdict = "met" if rates["verify_entries_per_s"] >= TARGET_VERIFY else "missed"
        print(f"target_verify_entries_per_s: {TARGET_VERIFY} ({verdict})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        child(a[0], a[1], int(a[2]), a[3], a[4], float(a[5]), int(a[6]))
    else:
        main()
