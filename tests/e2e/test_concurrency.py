"""50 shims at once: no lost or interleaved log entries, and the log verifies."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import World, shield


def test_fifty_concurrent_shims_log_every_call_once(world: World) -> None:
    procs = [
        subprocess.Popen(
            ["kubectl", "get", "pods", f"p{i}"],
            env=world.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(50)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else b""
    lines = (world.home / "log" / "shield.log").read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]
    calls = [e for e in entries if e["event"] == "call"]
    assert sorted(e["argv"][-1] for e in calls) == sorted(f"p{i}" for i in range(50))
    seqs = [e["seq"] for e in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len(world.records()) == 50
    proc = shield(
        "log",
        "verify",
        "--path",
        str(world.home / "log" / "shield.log"),
        home=world.home,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
