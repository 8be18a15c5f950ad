"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb and pg_ctl from Debian's
packages, run as an unprivileged uid through setpriv (PostgreSQL refuses to run as root),
listening on loopback only, with trust auth and fsync off (it lives for one test run)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

UID = 65534  # nobody: numeric, as setpriv wants it


def pg_bin() -> str | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and os.path.exists(os.path.join(os.path.dirname(found), "pg_ctl")):
        return os.path.dirname(os.path.realpath(found))
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")):
            return cand
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="shield-pg-")
        os.chmod(self.root, 0o755)  # the cluster's uid must reach its data directory
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.count = 0

    def _as_pg(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *argv]
        if os.geteuid() != 0:
            cmd = list(argv)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> Cluster:
        os.mkdir(self.data, 0o700)
        if os.geteuid() == 0:
            os.chown(self.data, UID, UID)
        init = self._as_pg(
            os.path.join(self.bindir, "initdb"),
            "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-N",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        opts = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        ctl = self._as_pg(
            os.path.join(self.bindir, "pg_ctl"),
            "-D", self.data, "-o", opts, "-l", os.path.join(self.data, "server.log"), "-w", "start",
        )  # fmt: skip
        if ctl.returncode != 0:
            log = os.path.join(self.data, "server.log")
            tail = ""
            if os.path.exists(log):
                with open(log) as fh:
                    tail = fh.read()[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {ctl.stderr}{ctl.stdout}\n{tail}")
        self._wait_ready()
        return self

    def _wait_ready(self, deadline_s: float = 30.0) -> None:
        import psycopg

        end = time.monotonic() + deadline_s
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.Error:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self.count += 1
        name = f"t{self.count}_{os.getpid()}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        self._as_pg(
            os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop",
            timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
