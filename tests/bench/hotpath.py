"""Hot path benchmark: an allowed call through the shim (log entry included) vs the Python floor.

Runs `kubectl get pods` through an installed shim (the real binary is a copy of /bin/true, so
the figure is shield's own cost) and `python -I -S -c pass`, alternately, many times, and
prints the ratio of the medians. Target (SPEC): at most 1.3.

    .venv/bin/python tests/bench/hotpath.py [--rounds N]
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


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-bench-"))
    try:
        real = root / "real"
        real.mkdir()
        shutil.copy("/bin/true", real / "kubectl")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}
        env["SHIELD_HOME"] = str(root / "home")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "shim",
                "install",
                "--dir",
                str(root / "bin"),
                "--agent",
                "bench",
                "kubectl",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=REPO,
        )
        del env["SHIELD_HOME"]
        env["PATH"] = f"{root / 'bin'}:{real}:/usr/bin:/bin"
        env["HOME"] = str(root)
        shim_argv = [str(root / "bin" / "kubectl"), "get", "pods"]
        floor_argv = [sys.executable, "-I", "-S", "-c", "pass"]
        for _ in range(20):  # warm caches (compiled rules, page cache)
            timed(shim_argv, env)
            timed(floor_argv, env)
        shim_t, floor_t, true_t = [], [], []
        for _ in range(args.rounds):
            shim_t.append(timed(shim_argv, env))
            floor_t.append(timed(floor_argv, env))
            true_t.append(timed([str(real / "kubectl")], env))
        s, f, t = statistics.median(shim_t), statistics.median(floor_t), statistics.median(true_t)
        lines = len((root / "home" / "log" / "shield.log").read_bytes().splitlines())
        print(f"rounds: {args.rounds}")
        print(f"shim_allowed_call_median_ms: {s * 1000:.2f}")
        print(f"python_floor_median_ms: {f * 1000:.2f}")
        print(f"real_binary_median_ms: {t * 1000:.2f}")
        print(f"log_entries_written: {lines}")
        print(f"ratio_shim_to_floor: {s / f:.2f}  (target <= 1.3)")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
