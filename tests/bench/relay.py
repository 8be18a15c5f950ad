"""Shared by the relay benchmarks: start `shield serve` processes (SQLite, or a throwaway
PostgreSQL cluster shared by several), add tokens, stop them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.server.pgcluster import Cluster, free_port, pg_bin  # noqa: E402

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}


def shield(home: Path, *args: str) -> str:
    env = dict(BASE_ENV, SHIELD_HOME=str(home))
    proc = subprocess.run(
        [sys.executable, "-m", "shim", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"shield {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


class Servers:
    """`count` relay processes on one database: SQLite (count 1) or PostgreSQL."""

    def __init__(self, root: Path, count: int = 1, postgres: bool = False) -> None:
        self.root = root
        self.cluster: Cluster | None = None
        self.db: list[str] = []
        if postgres:
            bindir = pg_bin()
            if bindir is None:
                raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
            self.cluster = Cluster(bindir).start()
            self.db = ["--db", self.cluster.new_database()]
        self.home = root / "server-home"
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        for i in range(count):
            port = free_port()
            log = open(root / f"serve-{i}.log", "wb")  # noqa: SIM115 - lives as long as the server
            env = dict(BASE_ENV, SHIELD_HOME=str(self.home))
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "shim",
                        "serve",
                        "--listen",
                        f"127.0.0.1:{port}",
                        *self.db,
                    ],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")
            self._wait_up(self.urls[-1])

    def _wait_up(self, url: str) -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{url} did not come up")

    def token(self, role: str, name: str) -> Path:
        out = json.loads(shield(self.home, "serve", role, "add", name, "--json", *self.db))
        path = self.root / f"{role}-{name}.token"
        path.write_text(out["token"] + "\n")
        return path

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.cluster is not None:
            self.cluster.stop()
