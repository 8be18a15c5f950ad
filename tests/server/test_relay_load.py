"""Many real shims holding calls at once against the relay: none lost, every one decided, each
approved call run exactly once; with PostgreSQL, two servers share the queue (issue 11; the
full-size figures are in tests/bench/server_load.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.approval.client import Client
from shim.approval.decision import sign_decision
from tests.conftest import World, shield
from tests.server.conftest import Approver, Relay, finish, install_with_relay, start, wait_until

SHIMS = 16


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_many_shims_at_once_none_lost_every_one_decided(
    world: World, tmp_path: Path, db: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if db == "postgresql" else None
    servers = [Relay(tmp_path / "server-1", url).start()]
    if url:
        servers.append(Relay(tmp_path / "server-2", url).start())
    try:
        alice = Approver(tmp_path / "alice", servers[0], "alice")
        shield("trust", "add", alice.pub, home=world.home)
        install_with_relay(world, servers[0])
        procs = [start(world, "kubectl", "delete", "pod", f"web-{i}") for i in range(SHIMS)]
        other = servers[-1]  # with PostgreSQL: listed and approved through the other server
        client = Client(other.url, alice.token.read_text().strip())

        def listed() -> list[dict]:
            return [i["request"] for i in client.expect("GET", "/api/v1/requests")["requests"]]

        wait_until(lambda: len(listed()) == SHIMS, deadline_s=120, what="every request held")
        for item in listed():
            decision = sign_decision(str(alice.home), item, "approve", "")
            client.expect("POST", f"/api/v1/requests/{item['id']}/decisions", decision)
        results = [finish(p, timeout=120) for p in procs]
        assert [r[0] for r in results] == [0] * SHIMS, [r[2] for r in results if r[0]]
        ran = sorted(argv[-1] for argv in world.argvs())
        assert ran == sorted(f"web-{i}".encode() for i in range(SHIMS))  # each exactly once
        assert listed() == []
    finally:
        for server in servers:
            server.stop()
