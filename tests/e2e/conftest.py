"""Fixtures for the end-to-end tests: an approver with its own home, and held-call helpers."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import World, shield


class Approver:
    def __init__(self, home: Path, spool: Path) -> None:
        self.home = home
        self.spool = spool

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return shield(*args, "--spool", str(self.spool), home=self.home, check=check)

    def pending(self) -> list[dict]:
        return json.loads(self.cli("pending", "--json").stdout or "[]")

    def wait_for_request(self, deadline_s: float = 30.0) -> dict:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            items = self.pending()
            if items:
                return items[0]
            time.sleep(0.05)
        raise AssertionError("no held request reached the spool in time")


@pytest.fixture
def approver(world: World, tmp_path: Path) -> Approver:
    home = tmp_path / "approver-home"
    shield("approver", "init", "--name", "alice", home=home)
    shield("trust", "add", str(home / "keys" / "approver.pub"), home=world.home)
    return Approver(home, world.home / "state" / "spool")


def start(world: World, *argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        list(argv), env=env or world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw
    )


def finish(proc: subprocess.Popen) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err
