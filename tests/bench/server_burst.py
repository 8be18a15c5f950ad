"""Bench: the relay alone under a burst of submits (no shim processes competing for the CPU).

One asyncio client opens N connections and sends N held requests to `shield serve` in the
same instant; prints submit latency p50/p99/max. This is the server's own share of
tests/bench/server_load.py's burst figure (there, 50 Python processes also compete for the
machine's two cores).

    .venv/bin/python tests/bench/server_burst.py [--requests 200] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from relay import Servers


async def submit(port: int, token: str, body: dict) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode()
    head = (
        f"POST /api/v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    began = time.perf_counter()
    writer.write(head.encode() + data)
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in answer.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    took = time.perf_counter() - began
    writer.close()
    if b" 201 " not in answer.split(b"\r\n")[0]:
        raise SystemExit(f"submit failed: {answer[:80]!r}")
    return took


async def burst(port: int, token: str, n: int) -> list[float]:
    from shim.approval.request import new_request, to_dict

    bodies = [
        to_dict(
            new_request(
                agent="load", tool="kubectl", argv=["delete", "pod", f"web-{i}"], cwd="/",
                context={"namespace": "prod"}, rule="kubectl/mutate", reason="bench",
                timeout_s=120,
            )
        )
        for i in range(n)
    ]  # fmt: skip
    return sorted(await asyncio.gather(*(submit(port, token, b) for b in bodies)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    servers = Servers(Path(tempfile.mkdtemp(prefix="shield-relay-burst-")), postgres=args.postgres)
    try:
        token = servers.token("agent", "load").read_text().strip()
        port = int(servers.urls[0].rsplit(":", 1)[1])
        lat = asyncio.run(burst(port, token, args.requests))
    finally:
        servers.stop()
    n = len(lat)
    label = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{n} submits in one instant from one asyncio client ({label})")
    print(
        f"submit_p50_ms: {statistics.median(lat) * 1000:.1f}  "
        f"submit_p99_ms: {lat[int(0.99 * (n - 1))] * 1000:.1f}  (target <= 50)  "
        f"submit_max_ms: {lat[-1] * 1000:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
