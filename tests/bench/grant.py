"""Bench: a call that a grant covers vs an allowed call, through real shims (SPEC: <= 1.5x).

Installs a kubectl shim (the real binary is a copy of /bin/true, so the figures are shield's
own cost), an approver key trusted by the agent's home, and a grant for `kubectl/mutate` on
the kubeconfig's context and namespace. Then times, alternately, `kubectl get pods` (allowed),
`kubectl rollout restart deploy/web` (held by the rules, covered by the grant) and
`python -I -S -c pass`, and prints the medians and the ratios.

    .venv/bin/python tests/bench/grant.py [--rounds N] [--server | --passkey]

With --server, the agent is installed with a local `shield serve` and the grant is posted
there: a covered call then also asks the server for grants and revocations. With --passkey,
the grant is one the web page makes (a passkey's assertion, here from a software
authenticator), checked with py_webauthn.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBECONFIG = """apiVersion: v1
kind: Config
current-context: kind-dev
contexts:
- name: kind-dev
  context:
    cluster: dev
    namespace: web
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.decode()}")
    return took


def shield(*args: str, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}
    env["SHIELD_HOME"] = str(home)
    subprocess.run(
        [sys.executable, "-m", "shim", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


SERVERS: list[subprocess.Popen] = []


def start_server(root: Path) -> tuple[list[str], list[str]]:
    """A `shield serve` on loopback; (the approver's options, the agent's install options)."""
    import json
    import socket
    import urllib.request

    home = root / "server"
    tokens = {}
    for role, name in (("agent", "bench"), ("approver", "alice")):
        env = {**os.environ, "SHIELD_HOME": str(home)}
        out = subprocess.run(
            [sys.executable, "-m", "shim", "serve", role, "add", name, "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        tokens[role] = root / f"{role}.token"
        tokens[role].write_text(json.loads(out)["token"] + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    SERVERS.append(
        subprocess.Popen(
            [sys.executable, "-m", "shim", "serve", "--listen", f"127.0.0.1:{port}"],
            env={**os.environ, "SHIELD_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url + "/api/v1/health", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    approver = ["--server", url, "--token-file", str(tokens["approver"])]
    return approver, ["--server", url, "--token-file", str(tokens["agent"])]


def passkey_grant(root: Path, agent: Path, spool: Path) -> None:
    """A grant as the web page makes it, from a software passkey the agent's home trusts."""
    import hashlib

    sys.path.insert(0, str(REPO))
    from shim import canon
    from shim.approval import grant as statement
    from shim.approval.spool import prepare, write_statement
    from shim.clock import now_iso
    from tests.approval.softauthn import SoftPasskey

    pk = SoftPasskey("alice")
    (root / "alice.passkey").write_text(pk.passkey.to_line())
    shield("trust", "add", str(root / "alice.passkey"), home=agent)
    now = time.time()
    body = {
        "type": statement.GRANT_TYPE, "id": "gbench01", "agent": "bench", "tool": "kubectl",
        "rules": ["kubectl/mutate"], "verbs": [],
        "target": {"context": "kind-dev", "namespace": "web"}, "argv": [],
        "not_before": now_iso(now), "expires": now_iso(now + 8 * 3600), "max_uses": None,
        "reason": "bench", "approver": "alice", "time": now_iso(now), "nonce": "n",
    }  # fmt: skip
    challenge = hashlib.sha256(canon.encode(body).encode("ascii")).digest()
    prepare(str(spool))
    write_statement(str(spool), "grants", {**body, **pk.assertion(challenge)})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--server", action="store_true", help="grants through a local shield serve")
    ap.add_argument("--passkey", action="store_true", help="a grant signed by a passkey")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-bench-grant-"))
    try:
        real = root / "real"
        real.mkdir()
        shutil.copy("/bin/true", real / "kubectl")
        (root / ".kube").mkdir()
        (root / ".kube" / "config").write_text(KUBECONFIG)
        agent, approver, spool = root / "agent", root / "approver", root / "spool"
        shield("approver", "init", "--name", "alice", home=approver)
        where = ["--spool", str(spool)]
        install = ["install", "--dir", str(root / "bin"), "--agent", "bench", "kubectl"]
        if args.server:
            where, extra = start_server(root)
            install += extra
        shield(*install, home=agent)
        shield("trust", "add", str(approver / "keys" / "approver.pub"), home=agent)
        if args.passkey:
            passkey_grant(root, agent, spool)
        else:
            shield(
                *("grant", "--agent", "bench", "--rule", "kubectl/mutate", "--context", "kind-dev"),
                *("--namespace", "web", "--for", "8h", *where),
                home=approver,
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "PYTHON"))}
        env.update(PATH=f"{root / 'bin'}:{real}:/usr/bin:/bin", HOME=str(root))
        env["SHIELD_SPOOL"] = str(spool)
        cases = {
            "allowed": [str(root / "bin" / "kubectl"), "get", "pods"],
            "granted": [str(root / "bin" / "kubectl"), "rollout", "restart", "deploy/web"],
            "floor": [sys.executable, "-I", "-S", "-c", "pass"],
        }
        for _ in range(10):
            for argv in cases.values():
                timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv, env))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        log = (agent / "log" / "shield.log").read_text()
        print(f"rounds: {args.rounds}")
        for name in cases:
            print(f"{name}_median_ms: {med[name] * 1000:.2f}")
        uses = log.count('"event":"granted"')
        print(f"granted_uses_logged: {uses}")
        print(f"ratio_granted_to_allowed: {med['granted'] / med['allowed']:.2f}  (target <= 1.5)")
        print(f"ratio_allowed_to_floor: {med['allowed'] / med['floor']:.2f}")
        return 0
    finally:
        for proc in SERVERS:
            proc.terminate()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
