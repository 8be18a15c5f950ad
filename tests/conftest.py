"""Shared fixtures: temporary homes, stand-in binaries, installed shims."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

STANDIN = """#!{python} -I
# A stand-in for a real CLI: records argv (as hex bytes), stdin and env, exits as told.
import json, os, signal, sys
rec = {{
    "tool": {tool!r},
    "argv": [os.fsencode(a).hex() for a in sys.argv[1:]],
    "stdin": sys.stdin.buffer.read().hex() if os.environ.get("STANDIN_STDIN") else None,
    "isatty": [os.isatty(0), os.isatty(1)],
    "env": {{k: v for k, v in os.environ.items() if k.startswith(("SHIELD", "_SHIELD", "STANDIN"))}},
    "pid": os.getpid(),
}}
path = os.environ.get("STANDIN_RECORD")
if path:
    with open(path, "a") as fh:
        fh.write(json.dumps(rec) + "\\n")
print("standin {tool}:", *sys.argv[1:], flush=True)
if os.environ.get("STANDIN_CAT"):  # what a real tool would read through each sealed path
    for a in sys.argv[1:]:
        p = a.split("=", 1)[-1]
        if p.startswith("/proc/self/fd/"):
            with open(p, "rb") as fh:
                sys.stdout.buffer.write(fh.read())
    sys.stdout.flush()
sig = os.environ.get("STANDIN_SIGNAL")
if sig:
    os.kill(os.getpid(), int(sig))
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
"""


def write_standin(directory: Path, tool: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / tool
    path.write_text(STANDIN.format(python=PY, tool=tool))
    path.chmod(0o755)
    return path


def shield(
    *args: str, home: Path, env: dict[str, str] | None = None, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """Run the `shield` CLI as a user would (a subprocess), with SHIELD_HOME=home."""
    e = dict(os.environ)
    e["SHIELD_HOME"] = str(home)
    e.pop("SHIELD_SPOOL", None)
    e.pop("AWS_DATA_PATH", None)  # set in os.environ by the in-process awscli of the aws tables
    if env:
        e.update(env)
    proc = subprocess.run(
        [PY, "-m", "shim", *args], env=e, capture_output=True, text=True, timeout=120, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"shield {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class World:
    """An installed agent side: home, shim dir, stand-in binaries, and how to call a shim."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "agent-home"
        self.bin = root / "shims"
        self.real = root / "real"
        self.record = root / "record.jsonl"

    def install(self, *extra: str, agent: str = "test-bot") -> subprocess.CompletedProcess:
        return shield("install", "--dir", str(self.bin), "--agent", agent, *extra, home=self.home)

    def env(self, path: str | None = None, **extra: str) -> dict[str, str]:
        e = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SHIELD", "_SHIELD", "STANDIN", "AWS_DATA_PATH"))
        }
        e["PATH"] = path if path is not None else f"{self.bin}:{self.real}:/usr/bin:/bin"
        e["STANDIN_RECORD"] = str(self.record)
        e["HOME"] = str(self.root / "user-home")
        e.update(extra)
        return e

    def run(
        self, tool: str, *args: str | bytes, env: dict[str, str] | None = None, **kw
    ) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 60)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run([tool, *args], env=env or self.env(), **kw)

    def records(self, previews: bool = False) -> list[dict]:
        """What the stand-ins ran; without `previews`, not the read-only preview calls that a
        held call makes (they run with _SHIELD_PREVIEW=1)."""
        if not self.record.exists():
            return []
        recs = [json.loads(line) for line in self.record.read_text().splitlines() if line]
        return [r for r in recs if previews or "_SHIELD_PREVIEW" not in r["env"]]

    def argvs(self, previews: bool = False) -> list[list[bytes]]:
        return [[bytes.fromhex(a) for a in r["argv"]] for r in self.records(previews)]

    def log(self) -> list[dict]:
        path = self.home / "log" / "shield.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    for tool in ("kubectl", "aws", "terraform", "helm"):
        write_standin(w.real, tool)
    (tmp_path / "user-home").mkdir()
    w.install()
    return w


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory):
    """One local moto server (loopback only) for the whole run; tests use their own buckets."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    with open(tmp_path_factory.mktemp("moto") / "moto.log", "wb") as log:
        proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            proc.kill()
            pytest.fail("moto server did not start")
        yield f"http://127.0.0.1:{port}"
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def tf_project(world: World, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A terraform directory with one built-in `terraform_data` resource (local state, no
    provider download), and the agent's environment with the real terraform behind the shims."""
    tf = shutil.which("terraform")
    if tf is None:
        pytest.skip("terraform is not installed")
    work = tmp_path / "tf"
    work.mkdir()
    (work / "main.tf").write_text('resource "terraform_data" "web" {\n  input = "v1"\n}\n')
    env = world.env(
        path=f"{world.bin}:{Path(tf).parent}:/usr/bin:/bin",
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
    )
    return work, env
