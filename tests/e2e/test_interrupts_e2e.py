"""Interrupted on a terminal, or with the output closed: a held call says it withdrew its
request, and `shield demo` ends the agent calls it started instead of leaving one waiting
(issue 15). Real pseudo-terminals (pexpect), real pipes, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect

from tests.conftest import World
from tests.e2e.conftest import Approver

ROOT = str(Path(__file__).resolve().parents[2])


def survivors(marker: Path) -> list[str]:
    """Command lines of live processes that mention `marker` (a test's temporary directory)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if str(marker).encode() in cmd:
            found.append(cmd.replace(b"\0", b" ").decode(errors="replace"))
    return found


def wait_for(check, deadline_s: float = 60.0, what: str = "") -> object:  # noqa: ANN001
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_ctrl_c_on_a_held_call_at_a_terminal_says_the_request_was_withdrawn(
    world: World, approver: Approver
) -> None:
    child = pexpect.spawn(
        str(world.bin / "kubectl"),
        ["delete", "pod", "web"],
        env=world.env(),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(r"held for a human to approve \(request (\w+)\)")
    rid = child.match.group(1)
    child.sendintr()
    child.expect_exact(
        f"shield: kubectl: interrupted (Ctrl-C) while held: request {rid} withdrawn; "
        "the call did not run"
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert approver.pending() == [] and world.records() == []


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
    env["TMPDIR"] = str(tmp_path)  # the demo's world, and every process it starts, live here
    env["HOME"] = str(tmp_path)
    return env


def demo_root(tmp_path: Path) -> Path:
    (root,) = tmp_path.glob("shield-demo-*")
    return root


def held_request(tmp_path: Path) -> str | None:
    """The id of a request held in the demo's spool, once there is one."""
    roots = list(tmp_path.glob("shield-demo-*/spool/requests/*.json"))
    return roots[0].name[: -len(".json")] if roots else None


def log_of(root: Path) -> list[dict]:
    lines = (root / "agent-home" / "log" / "shield.log").read_bytes().splitlines()
    return [json.loads(line) for line in lines]


def assert_withdrawn_by_the_demo(root: Path, rid: str) -> None:
    events = [(e["event"], e.get("signal")) for e in log_of(root) if e.get("request") == rid]
    assert ("cancelled", 15) in events, events  # ended by the demo (SIGTERM), while held
    assert not any(ev in ("approved", "executed") for ev, _ in events)
    assert not list((root / "spool" / "requests").glob("*.json"))


def test_demo_interrupted_with_ctrl_c_ends_its_held_agent_call(tmp_path: Path) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "shim", "demo", "--keep"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        encoding="utf-8",
        timeout=120,
        dimensions=(50, 120),
    )
    rid = wait_for(lambda: held_request(tmp_path), what="a held request in the demo's spool")
    child.sendintr()  # the agent runs in its own session: only the demo hears this Ctrl-C
    child.expect(pexpect.EOF)
    child.close()
    out = child.before
    assert child.exitstatus == 130, out
    assert "shield: demo: interrupted; ending its agent calls" in out and "kept:" in out
    root = demo_root(tmp_path)
    assert survivors(tmp_path) == []
    assert_withdrawn_by_the_demo(root, str(rid))


def test_demo_whose_output_is_closed_ends_its_held_agent_call(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shim", "demo", "--keep"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the reader goes away as the first held call starts (`| head`)
        if b"agent$ kubectl -n web rollout restart deploy/api" in line:
            break
    proc.stdout.close()  # the demo's next line comes once the call is held: it cannot print it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err
    assert survivors(tmp_path) == []
    root = demo_root(tmp_path)
    (rid,) = {e["request"] for e in log_of(root) if e["event"] == "held"}
    assert_withdrawn_by_the_demo(root, rid)


def test_demo_terminated_ends_its_held_agent_call(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shim", "demo", "--keep"],
        env=demo_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    rid = wait_for(lambda: held_request(tmp_path), what="a held request in the demo's spool")
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert survivors(tmp_path) == []
    assert_withdrawn_by_the_demo(demo_root(tmp_path), str(rid))
