"""Bench: what pinning costs a held call, this checkout against another, side by side.

Two figures per tool, through real installed shims, each checkout with its own venv:
- hold: the agent starts the call -> the held request is in the spool (classify, pin, preview,
  request, publish);
- start: the signed decision lands in the spool -> the approved command starts (the shim's
  poll, verify, re-check the sealed files and snapshots, resolve the target again, start the
  child).

kubectl: a stand-in kubectl (preview `get` answered instantly) with a real kubeconfig in
~/.kube/config, so the kubeconfig is merged and sealed. terraform: the real terraform on a
`terraform_data` project (plan in the snapshot, `terraform show` of the sealed plan).
Rounds alternate between the checkouts; medians and after/before ratios are printed
(issue 16's budget: <= 1.10).

    .venv/bin/python tests/bench/pinning.py --before /tmp/before [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]

STANDIN = """#!{python} -I
import os, sys, time
if os.environ.get("_SHIELD_PREVIEW"):
    print("pod/" + sys.argv[-3] if len(sys.argv) > 3 else "")
else:
    with open({out!r}, "a") as fh:
        fh.write(repr(time.time()) + "\\n")
"""
TF_WRAPPER = """#!/bin/sh
[ -z "$_SHIELD_PREVIEW" ] && python3 -c 'import time; print(repr(time.time()))' >> {out}
exec {tf} "$@"
"""
KUBECONFIG = """apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: dev
  context: {cluster: dev, user: u, namespace: shop}
users:
- name: u
  user: {token: t0ken}
"""


class Side:
    """One checkout: its python, an agent home with shims, an approver home."""

    def __init__(self, name: str, repo: Path, root: Path, tool: str) -> None:
        self.name = name
        self.python = str(repo / ".venv" / "bin" / "python")
        self.root = root / name
        self.root.mkdir(parents=True)
        self.real = self.root / "real"
        self.real.mkdir()
        self.starts = self.root / "starts"
        self.base = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}
        self.agent, self.approver = self.root / "agent", self.root / "approver"
        self.home = self.root / "home"
        (self.home / ".kube").mkdir(parents=True)
        (self.home / ".kube" / "config").write_text(KUBECONFIG)
        self.shield(self.approver, "approver", "init", "--name", "bench")
        self.shield(self.agent, "install", "--dir", str(self.root / "bin"), "--agent", "b", tool)
        self.shield(self.agent, "trust", "add", str(self.approver / "keys" / "approver.pub"))
        self.spool = self.agent / "state" / "spool"
        self.env = dict(
            self.base,
            PATH=f"{self.root / 'bin'}:{self.real}:/usr/bin:/bin",
            HOME=str(self.home),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_CLI_CONFIG_FILE="/dev/null",
        )

    def shield(self, home: Path, *a: str) -> subprocess.CompletedProcess:
        env = dict(self.base, SHIELD_HOME=str(home))
        return subprocess.run(
            [self.python, "-m", "shim", *a], env=env, capture_output=True, text=True, check=True
        )

    def one(self, argv: list[str], cwd: Path | None = None) -> tuple[float, float]:
        """(agent start -> request in the spool, approve returned -> command started)."""
        requests = self.spool / "requests"
        t0 = time.time()
        proc = subprocess.Popen(
            argv, env=self.env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        rid = None
        while rid is None and time.monotonic() < deadline:
            names = os.listdir(requests) if requests.is_dir() else []
            rid = names[0][: -len(".json")] if names else None
            if rid is None:
                time.sleep(0.001)
        if rid is None:
            raise SystemExit(f"{self.name}: no held request appeared")
        held = time.time() - t0
        request = json.loads((requests / f"{rid}.json").read_text())
        self.summary = (request.get("preview") or {}).get("summary")
        before = len(self.starts.read_text().splitlines()) if self.starts.exists() else 0
        seen: list[float] = []
        watch = threading.Thread(target=self._watch_decision, args=(rid, seen))
        watch.start()
        self.shield(self.approver, "approve", rid, "--spool", str(self.spool))
        watch.join(timeout=60)
        if proc.wait(timeout=120) != 0:
            raise SystemExit(f"{self.name}: the approved command failed")
        lines = self.starts.read_text().splitlines()
        if len(lines) != before + 1:
            raise SystemExit(f"{self.name}: the approved command did not run exactly once")
        return held, float(lines[-1]) - seen[0]

    def _watch_decision(self, rid: str, seen: list[float]) -> None:
        """When the signed decision lands in the spool (polled every millisecond)."""
        decisions = self.spool / "decisions"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if decisions.is_dir() and any(n.startswith(rid + ".") for n in os.listdir(decisions)):
                seen.append(time.time())
                return
            time.sleep(0.001)


def kubectl_side(name: str, repo: Path, root: Path) -> Side:
    side = Side(name, repo, root, "kubectl")
    stand = side.real / "kubectl"
    stand.write_text(STANDIN.format(python=sys.executable, out=str(side.starts)))
    stand.chmod(0o755)
    return side


def terraform_side(name: str, repo: Path, root: Path, tf: str) -> tuple[Side, Path]:
    side = Side(name, repo, root, "terraform")
    wrapper = side.real / "terraform"
    wrapper.write_text(TF_WRAPPER.format(out=str(side.starts), tf=tf))
    wrapper.chmod(0o755)
    work = side.root / "infra"
    work.mkdir()
    (work / "main.tf").write_text('resource "terraform_data" "web" {\n  input = "v0"\n}\n')
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        subprocess.run([tf, f"-chdir={work}", *args], env=side.env, check=True, capture_output=True)
    return side, work


def report(label: str, figures: dict[str, list[tuple[float, float]]], sides: dict) -> None:
    med = {
        k: (statistics.median(h for h, _ in v), statistics.median(s for _, s in v))
        for k, v in figures.items()
    }
    b, a = med["before"], med["after"]
    if os.environ.get("BENCH_VERBOSE"):
        for k, v in figures.items():
            print(f"{label}_{k}_hold_s:", " ".join(f"{h:.3f}" for h, _ in v))
    for k, side in sides.items():
        print(f"{label}_{k}_preview: {side.summary}")
    print(f"{label}_hold_median_s: before {b[0]:.3f}  after {a[0]:.3f}  ratio {a[0] / b[0]:.2f}")
    print(f"{label}_start_median_s: before {b[1]:.3f}  after {a[1]:.3f}  ratio {a[1] / b[1]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the other checkout (with its .venv)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tools", default="kubectl,terraform")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-pinning-bench-"))
    repos = {"before": Path(args.before).resolve(), "after": HERE}
    print(f"rounds: {args.rounds}")
    try:
        if "kubectl" in args.tools:
            sides = {k: kubectl_side(k, r, root / "kubectl") for k, r in repos.items()}
            figs: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
            for i in range(args.rounds):
                for k, side in sides.items():
                    figs[k].append(side.one(["kubectl", "delete", "pod", f"web-{i}"]))
            report("kubectl", figs, sides)
        tf = shutil.which("terraform")
        if "terraform" in args.tools and tf:
            tsides = {k: terraform_side(k, r, root / "terraform", tf) for k, r in repos.items()}
            figs = {k: [] for k in tsides}
            for i in range(args.rounds):
                for k, (side, work) in tsides.items():
                    (work / "main.tf").write_text(
                        f'resource "terraform_data" "web" {{\n  input = "v{i + 1}"\n}}\n'
                    )
                    figs[k].append(
                        side.one(["terraform", f"-chdir={work}", "apply", "-auto-approve"])
                    )
            report("terraform", figs, {k: v[0] for k, v in tsides.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"root": str(root)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
