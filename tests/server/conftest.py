"""Fixtures for the approval relay: a real `shield serve` process on loopback (SQLite, or a
throwaway PostgreSQL cluster), an agent installed with --server, approvers with tokens."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PY, World, free_port, shield
from tests.server.pgcluster import Cluster, pg_bin


@pytest.fixture(scope="session")
def pg_cluster():
    bindir = pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed here; .ci/run installs it (apt-get)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = Cluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    return pg_cluster.new_database()


class Relay:
    """One `shield serve` process with its own home (and database unless `db` is given)."""

    def __init__(
        self, home: Path, db: str | None = None, *extra: str, cacert: Path | None = None
    ) -> None:
        self.home = home
        self.db = db
        self.extra = list(extra)
        self.cacert = cacert
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = home / "serve.log"
        home.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.cacert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def public(self) -> str:
        """The server's public URL (links, the page): loopback is called localhost."""
        scheme = "https" if self.cacert else "http"
        return f"{scheme}://localhost:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        db = ["--db", self.db] if self.db else []
        return shield("serve", *args, *db, home=self.home, check=check)

    def start(self) -> Relay:
        db = ["--db", self.db] if self.db else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}
        env["SHIELD_HOME"] = str(self.home)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PY, "-m", "shim", "serve", "--listen", f"127.0.0.1:{self.port}", *db, *self.extra],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.wait_up()
        return self

    def wait_up(self, deadline_s: float = 30.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"shield serve exited: {self.log.read_text()}")
            ctx = ssl.create_default_context(cafile=str(self.cacert)) if self.cacert else None
            try:
                with urllib.request.urlopen(
                    self.url + "/api/v1/health", timeout=1, context=ctx
                ) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("shield serve did not come up: " + self.log.read_text())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def token(self, role: str, name: str) -> Path:
        """Add `name` in `role`; the token's file (0600)."""
        out = json.loads(self.cli(role, "add", name, "--json").stdout)
        path = self.home.parent / f"{role}-{name}-{self.port}.token"
        path.write_text(out["token"] + "\n")
        path.chmod(0o600)
        return path


class Approver:
    """An approver's home (its own Ed25519 key) and token, using the relay."""

    def __init__(self, home: Path, relay: Relay, name: str) -> None:
        self.home = home
        self.name = name
        self.relay = relay
        shield("approver", "init", "--name", name, home=home)
        self.token = relay.token("approver", name)

    @property
    def pub(self) -> str:
        return str(self.home / "keys" / "approver.pub")

    def cli(self, *args: str, url: str | None = None, check: bool = True):
        where = ["--server", url or self.relay.url, "--token-file", str(self.token)]
        return shield(*args, *where, home=self.home, check=check)

    def pending(self, url: str | None = None) -> list[dict]:
        return json.loads(self.cli("pending", "--json", url=url).stdout or "[]")

    def wait_for_request(self, deadline_s: float = 30.0, url: str | None = None) -> dict:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            items = self.pending(url)
            if items:
                return items[0]
            time.sleep(0.05)
        raise AssertionError("no held request reached the server in time")


def install_with_relay(world: World, relay: Relay, agent: str = "test-bot") -> Path:
    token = relay.token("agent", agent)
    world.install("--server", relay.url, "--token-file", str(token), agent=agent)
    return token


@pytest.fixture
def relay(tmp_path: Path):
    r = Relay(tmp_path / "server-home").start()
    yield r
    r.stop()


@pytest.fixture
def alice(tmp_path: Path, relay: Relay, world: World) -> Approver:
    a = Approver(tmp_path / "alice-home", relay, "alice")
    shield("trust", "add", a.pub, home=world.home)
    install_with_relay(world, relay)
    return a


def start(world: World, *argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        list(argv), env=env or world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw
    )


def finish(proc: subprocess.Popen, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def events(world: World, name: str) -> list[dict]:
    return [e for e in world.log() if e["event"] == name]


def wait_until(check: Callable[[], object], deadline_s: float = 30.0, what: str = "") -> None:
    """Poll `check` every 50 ms until it is true; fail after the deadline."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)
