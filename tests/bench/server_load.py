"""Bench: many shims holding many requests at once against the relay (SPEC: 50 shims holding 200
requests lose none; submit p99 <= 50 ms on this machine).

50 worker processes each hold 4 requests at once, each in its own thread running the shim's own
code (shim.approval.remote.RemoteTransport and shim.approval.wait.wait_for_decision, with the
real trust store and used-decision store). The 200 submits arrive within --spread seconds
(default 2, each at a random moment; 0 sends them all in the same instant); none is decided
until all 200 are held at once. The approver lists them
through the relay, signs each with its Ed25519 key and posts the decisions. Prints submit
latency (publish -> the relay's answer) p50/p99/max, how many requests were lost or undecided,
and post -> verdict latency. With --postgres: two servers on one PostgreSQL database, the
workers split between them and the approver posting to the other.

    .venv/bin/python tests/bench/server_load.py [--shims 50] [--per-shim 4] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from relay import REPO, Servers


def worker(
    url: str, token: str, trust_home: str, count: int, out: str, start_at: float, spread: float
) -> None:
    import random

    from shim import keys
    from shim.approval.remote import RemoteTransport
    from shim.approval.request import new_request
    from shim.approval.wait import wait_for_decision

    trusted = keys.load_trusted(trust_home)
    # a barrier: every worker imported and ready before the first submit, whatever the load
    ready, go = Path(out + ".ready"), Path(os.path.dirname(out)) / "go"
    ready.write_text("")
    while not go.exists():
        time.sleep(0.02)
    start_at = float(go.read_text() or start_at)
    results: list[dict] = []
    lock = threading.Lock()

    def hold(n: int) -> None:
        req = new_request(
            agent="load", tool="kubectl", argv=["delete", "pod", f"web-{os.getpid()}-{n}"],
            cwd="/", context={"namespace": "prod"}, rule="kubectl/mutate", reason="bench",
            timeout_s=180,
        )  # fmt: skip
        said: list[str] = []
        transport = RemoteTransport(
            {"url": url, "token_file": token}, req, lambda m, h: said.append(m), lambda f: None
        )
        at = start_at + random.uniform(0.0, spread)
        time.sleep(max(0.0, at - time.time()))
        began = time.perf_counter()
        transport.publish()
        submit_s = time.perf_counter() - began
        verdict = wait_for_decision(
            req, [transport], trusted=trusted,
            used_path=os.path.join(os.path.dirname(out), f"used-{os.getpid()}-{n}"),
            log=lambda fields: None,
        )  # fmt: skip
        with lock:
            results.append(
                {
                    "id": req.id,
                    "submit_s": submit_s,
                    "ok": transport.submitted,
                    "outcome": verdict.outcome,
                    "decided_at": time.time(),
                    "said": said,
                }
            )

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(out, "w") as fh:
        json.dump(results, fh)


def approve_all(servers: Servers, approver_home: Path, token: Path, total: int) -> dict[str, float]:
    """List until `total` requests are pending, then sign and post a decision on each; the
    time each was posted."""
    from shim.approval.client import Client
    from shim.approval.decision import sign_decision

    client = Client(servers.urls[-1], token.read_text().strip())
    end = time.monotonic() + 120
    items: list[dict] = []
    while time.monotonic() < end:
        listed = client.expect("GET", "/api/v1/requests")["requests"]
        items = [i["request"] for i in listed]
        if len(items) >= total:
            break
        time.sleep(0.2)
    posted: dict[str, float] = {}
    lock = threading.Lock()
    chunks = [items[i::4] for i in range(4)]

    def post(chunk: list[dict]) -> None:
        mine = Client(servers.urls[-1], token.read_text().strip())
        for item in chunk:
            decision = sign_decision(str(approver_home), item, "approve", "bench")
            mine.expect("POST", f"/api/v1/requests/{item['id']}/decisions", decision)
            with lock:
                posted[item["id"]] = time.time()

    threads = [threading.Thread(target=post, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return posted


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shims", type=int, default=50)
    ap.add_argument("--per-shim", type=int, default=4)
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument(
        "--spread",
        type=float,
        default=2.0,
        help="seconds over which the submits arrive, each at a random moment (0: one burst)",
    )
    ap.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, token, trust, count, out, start_at, spread = args.worker
        worker(url, token, trust, int(count), out, float(start_at), float(spread))
        return 0
    from shim import keys

    root = Path(tempfile.mkdtemp(prefix="shield-relay-load-"))
    servers = Servers(root, 2 if args.postgres else 1, postgres=args.postgres)
    try:
        approver, agent = root / "approver", root / "agent"
        keys.init_approver(str(approver), "bench")
        keys.add_trusted(str(agent), keys.public_key_path(str(approver)))
        agent_token = servers.token("agent", "load")
        approver_token = servers.token("approver", "bench")
        total = args.shims * args.per_shim
        start_at = 0.0  # set once every worker is ready (the go file)
        procs, outs = [], []
        for i in range(args.shims):
            out = root / f"worker-{i}.json"
            outs.append(out)
            url = servers.urls[i % len(servers.urls)]
            argv = [url, str(agent_token), str(agent), str(args.per_shim), str(out), repr(start_at)]
            argv.append(repr(args.spread))
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", *argv], cwd=REPO, env=dict(os.environ)
                )
            )
        end = time.monotonic() + 120
        while sum(Path(str(o) + ".ready").exists() for o in outs) < args.shims:
            if time.monotonic() > end:
                raise SystemExit("the workers did not start")
            time.sleep(0.05)
        go = root / "go"
        go.with_suffix(".tmp").write_text(repr(time.time() + 0.5))
        go.with_suffix(".tmp").rename(go)
        posted = approve_all(servers, approver, approver_token, total)
        for proc in procs:
            proc.wait(timeout=300)
        results = [r for out in outs if out.exists() for r in json.loads(out.read_text())]
    finally:
        servers.stop()
    submits = [r["submit_s"] for r in results if r["ok"]]
    approved = [r for r in results if r["outcome"] == "approved"]
    lag = [r["decided_at"] - posted[r["id"]] for r in approved if r["id"] in posted]
    label = "two servers, PostgreSQL" if args.postgres else "one server, SQLite"
    how = f"submits spread over {args.spread:g} s" if args.spread else "submits in one burst"
    print(f"{args.shims} shims x {args.per_shim} requests = {total} held at once ({label}; {how})")
    print(
        f"submitted: {len(submits)}  listed by the approver: {len(posted)}  approved: {len(approved)}"
    )
    print(f"lost: {total - len(posted)}  undecided: {total - len(approved)}")
    print(
        f"submit_p50_ms: {statistics.median(submits) * 1000:.1f}  "
        f"submit_p99_ms: {pct(submits, 99) * 1000:.1f}  (target <= 50)  "
        f"submit_max_ms: {max(submits) * 1000:.1f}"
    )
    if lag:
        print(
            f"post_to_verdict_p50_ms: {statistics.median(lag) * 1000:.1f}  p99_ms: {pct(lag, 99) * 1000:.1f}"
        )
    return 0 if len(approved) == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
