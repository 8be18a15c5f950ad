"""Hot path benchmark: an allowed call through the shim (log entry included) vs the Python floor.

Runs `kubectl get pods` through an installed shim (the real binary is a copy of /bin/true, so
the figure is shield's own cost) and `python -I -S -c pass`, alternately, many times, and
prints the ratio of the medians. Target (SPEC): at most 1.3.

    .venv/bin/python tests/bench/hotpath.py [--rounds N] [--against CHECKOUT] [--tool aws]

With `--tool aws` the call is `aws ec2 describe-instances --max-results 5`: an aws call reads
its service's option tables (made here from the aws CLI in this venv, then keyed to the
stand-in real binary, a `#!/bin/true` script) and is timed beside the same call without
tables (the conservative reading).

With `--against`, a second shim installed from another checkout of the project (another
commit, e.g. `git worktree add /tmp/before HEAD~5`) is timed in the same rounds, so that a
change to the hot path is judged by two figures measured side by side.
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


ARGV = {"kubectl": ["get", "pods"], "aws": ["ec2", "describe-instances", "--max-results", "5"]}


def install(checkout: Path, root: Path, env: dict[str, str], tool: str = "kubectl") -> list[str]:
    """Shims for `tool` from `checkout` (its own `shim` package) into root/bin; the argv."""
    subprocess.run(
        [sys.executable, "-m", "shim", "install", "--dir", str(root / "bin")]
        + ["--agent", "bench", tool],
        env={**env, "SHIELD_HOME": str(root / "home")},
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=checkout,
    )
    return [str(root / "bin" / tool), *ARGV[tool]]


def aws_tables(home: Path, real: Path) -> None:
    """ec2's option tables from the aws CLI in this venv, keyed to the stand-in `real`."""
    import marshal

    from shim.rules.awstables import make_tables

    root = home / "state" / "compiled" / "aws-tables"
    aws = str(Path(sys.executable).with_name("aws"))
    if not make_tables(str(root), aws, ["ec2"]):
        raise SystemExit("the aws CLI in this venv gave no tables")
    index = marshal.loads((root / "index.marshal").read_bytes())
    st = real.stat()
    index[str(real)] = {**index[aws], "stamp": [(str(real), st.st_mtime_ns, st.st_size)]}
    (root / "index.marshal").write_bytes(marshal.dumps(index))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--against", type=Path, help="another checkout, timed in the same rounds")
    ap.add_argument("--tool", choices=sorted(ARGV), default="kubectl")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-bench-"))
    try:
        real = root / "real"
        real.mkdir()
        if args.tool == "aws":
            (real / "aws").write_text("#!/bin/true\n")  # a script, as aws v1 is
            (real / "aws").chmod(0o755)
        else:
            shutil.copy("/bin/true", real / "kubectl")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "PYTHON"))}
        env["PATH"] = f"{real}:/usr/bin:/bin"
        env["HOME"] = str(root)
        cases = {"shim": install(REPO, root / "this", env, args.tool)}
        if args.tool == "aws":
            aws_tables(root / "this" / "home", real / "aws")
            cases["no_tables"] = install(REPO, root / "bare", env, args.tool)
        if args.against:
            cases["against"] = install(args.against.resolve(), root / "against", env, args.tool)
        cases["floor"] = [sys.executable, "-I", "-S", "-c", "pass"]
        cases["real"] = [str(real / args.tool)]
        for _ in range(20):  # warm caches (compiled rules, page cache)
            for argv in cases.values():
                timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv, env))
        med = {name: statistics.median(ts) for name, ts in times.items()}
        lines = len((root / "this" / "home" / "log" / "shield.log").read_bytes().splitlines())
        print(f"rounds: {args.rounds}")
        print(f"shim_allowed_call_median_ms: {med['shim'] * 1000:.2f}")
        print(f"python_floor_median_ms: {med['floor'] * 1000:.2f}")
        print(f"real_binary_median_ms: {med['real'] * 1000:.2f}")
        print(f"log_entries_written: {lines}")
        print(f"ratio_shim_to_floor: {med['shim'] / med['floor']:.2f}  (target <= 1.3)")
        if "no_tables" in med:
            print(f"aws_without_tables_median_ms: {med['no_tables'] * 1000:.2f}")
            print(f"ratio_without_tables_to_floor: {med['no_tables'] / med['floor']:.2f}")
        if args.against:
            print(f"against: {args.against}")
            print(f"against_allowed_call_median_ms: {med['against'] * 1000:.2f}")
            print(f"ratio_against_to_floor: {med['against'] / med['floor']:.2f}")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
