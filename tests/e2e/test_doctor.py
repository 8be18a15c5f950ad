"""`shield doctor`: finds what is wrong with a setup, and says so."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import World, shield, write_standin


def doctor(world: World, path: str) -> tuple[int, dict[str, dict]]:
    proc = shield(
        "doctor",
        "--dir",
        str(world.bin),
        "--json",
        home=world.home,
        env={"PATH": path},
        check=False,
    )
    data = json.loads(proc.stdout)
    return proc.returncode, {c["check"]: c for c in data["checks"]}


def test_doctor_on_a_sound_install_passes_with_honest_warnings(world: World) -> None:
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 0, checks
    assert checks["rules"]["status"] == "ok"
    assert checks["PATH kubectl"]["status"] == "ok"
    assert checks["real kubectl"]["detail"] == str(world.real / "kubectl")
    assert checks["locking"]["status"] == "ok"
    assert checks["trust"]["status"] == "warn"  # nobody trusted yet
    assert checks["log anchor"]["status"] == "warn"  # K0 still on the agent side


def test_doctor_checks_the_approval_servers_token_is_readable(world: World) -> None:
    """`shield install --server` run as root leaves the token 0640 in root's group; the agent's
    user then cannot read it. Doctor, run as that user, says so (here: the token is gone)."""
    token = world.root / "bot.token"
    token.write_text("shield_" + "a" * 40 + "\n")
    world.install("--server", "https://shield.example:8421", "--token-file", str(token))
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert checks["server"]["status"] == "ok", checks
    assert "https://shield.example:8421" in checks["server"]["detail"]
    (world.home / "server-token").unlink()
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 1
    assert checks["server token"]["status"] == "fail"
    assert "not readable by this user" in checks["server token"]["detail"]
    assert "chgrp" in checks["server token"]["detail"]


def test_doctor_fails_when_the_real_binary_comes_first(world: World) -> None:
    code, checks = doctor(world, f"{world.real}:{world.bin}:/usr/bin:/bin")
    assert code == 1
    assert checks["PATH kubectl"]["status"] == "fail"


def test_doctor_warns_about_an_approver_key_in_the_agent_home(world: World) -> None:
    shield("approver", "init", "--name", "oops", home=world.home)
    _, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert checks["approver key here"]["status"] == "warn"


def test_doctor_fails_on_broken_rules(world: World) -> None:
    (world.home / "commands.d" / "x.yaml").write_text("tool: kubectl\nrules: [{id: a}]\n")
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 1
    assert "x.yaml" in checks["rules"]["detail"]


def test_doctor_reports_a_missing_real_binary(world: World, tmp_path: Path) -> None:
    (world.real / "helm").unlink()
    _, checks = doctor(world, f"{world.bin}:{world.real}")
    assert checks["real helm"]["status"] == "warn"


def test_doctor_names_an_interpreter_other_users_cannot_start() -> None:
    # If the agent's user cannot exec a shim's baked Python, the shell skips the shim and runs
    # the real tool: doctor must say so (missing: fail; locked away from others: warn).
    from shim.commands.doctor import interpreter_problem

    tmp_path = Path(tempfile.mkdtemp())  # pytest's own tmp dirs are 0700 themselves
    tmp_path.chmod(0o755)
    try:
        _check_interpreters(tmp_path, interpreter_problem)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _check_interpreters(tmp_path: Path, interpreter_problem) -> None:
    shim = tmp_path / "kubectl"
    shim.write_text("#!/nonexistent/python3 -IS\n# agent-shield shim\n")
    assert "does not exist" in (interpreter_problem(str(shim)) or "")
    private = tmp_path / "private"
    private.mkdir()
    python = private / "python3"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    private.chmod(0o700)
    shim.write_text(f"#!{python} -IS\n")
    assert "not searchable by other users" in (interpreter_problem(str(shim)) or "")
    private.chmod(0o755)
    assert interpreter_problem(str(shim)) is None


def test_doctor_reports_the_pinned_real_binary_not_paths(world: World, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned"
    write_standin(pinned, "aws")
    world.install("--real", f"aws={pinned / 'aws'}")
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 0, checks
    assert checks["real aws"] == {
        "status": "ok",
        "check": "real aws",
        "detail": f"{pinned / 'aws'} (pinned at install)",
    }
    # the aws on PATH is not what the shim runs, but anything that skips the shim runs it
    assert checks["real aws on PATH"]["status"] == "warn"
    assert str(world.real / "aws") in checks["real aws on PATH"]["detail"]
    # pinned and off PATH: nothing to warn about
    (world.real / "aws").unlink()
    _, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert (
        "real aws on PATH" not in checks or "/usr/bin/aws" in checks["real aws on PATH"]["detail"]
    )
    assert checks["real aws"]["detail"].endswith("(pinned at install)")


def test_doctor_says_when_a_pinned_binary_is_gone(world: World, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned"
    write_standin(pinned, "helm")
    world.install("--real", f"helm={pinned / 'helm'}")
    (pinned / "helm").unlink()
    _, checks = doctor(world, f"{world.bin}:{world.real}")
    assert checks["real helm"]["status"] == "warn"
    assert f"falls back to {world.real / 'helm'}" in checks["real helm"]["detail"]


def test_doctor_warns_that_a_real_binary_is_still_on_the_agents_path(world: World) -> None:
    _, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    warning = checks["real kubectl on PATH"]
    assert warning["status"] == "warn"
    assert str(world.real / "kubectl") in warning["detail"] and "--real" in warning["detail"]


def test_doctor_fails_a_shared_spool_the_other_side_cannot_write(world: World) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing the spool to another group needs root (CI runs as root)")
    spool = world.home / "state" / "spool"
    os.chown(spool, -1, 4242)
    spool.chmod(0o2770)
    for sub in spool.iterdir():
        os.chown(sub, -1, 4242)
        sub.chmod(0o2770)
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 0 and checks["spool"]["status"] == "ok", checks
    assert "shared: group 4242" in checks["spool"]["detail"]
    (spool / "decisions").chmod(0o2755)  # what the shim made before issue 14
    code, checks = doctor(world, f"{world.bin}:{world.real}:/usr/bin:/bin")
    assert code == 1
    assert checks["spool shared"]["status"] == "fail"
    assert "decisions is drwxr-sr-x: not writable by the group" in checks["spool shared"]["detail"]


def approver_doctor(home: Path, *args: str) -> tuple[int, dict[str, dict]]:
    proc = shield("doctor", "--json", *args, home=home, env={"PATH": "/usr/bin:/bin"}, check=False)
    data = json.loads(proc.stdout)
    return proc.returncode, {c["check"]: c for c in data["checks"]}


def test_doctor_in_an_approver_home_checks_the_approver_side(world: World, tmp_path: Path) -> None:
    home = tmp_path / "approver"
    shield("approver", "init", "--name", "alice", home=home)
    home.chmod(0o700)
    assert world.run("kubectl", "get", "pods").returncode == 0  # the log has an entry
    log = world.home / "log" / "shield.log"
    spool = world.home / "state" / "spool"
    code, checks = approver_doctor(home, "--log", str(log), "--spool", str(spool))
    assert code == 0, checks
    assert checks["home"]["detail"].startswith(f"approver home {home}")
    assert checks["approver key"]["status"] == "ok" and "alice" in checks["approver key"]["detail"]
    assert checks["anchors"]["status"] == "warn"  # nothing imported yet
    assert checks["agent log"]["status"] == "warn" and "no anchor" in checks["agent log"]["detail"]
    assert checks["spool"]["status"] == "ok"
    for agent_only in ("approver key here", "trust", "rules", "log", "PATH kubectl"):
        assert agent_only not in checks  # no warning that contradicts being the approver
    shield("log", "anchor", "import", str(world.home / "log" / "anchor.json"), home=home)
    code, checks = approver_doctor(home, "--approver", "--log", str(log), "--spool", str(spool))
    assert code == 0
    assert checks["anchors"]["status"] == "ok" and checks["agent log"]["status"] == "ok"
    assert all(c["status"] in ("ok", "note") for c in checks.values()), checks


def test_doctor_fails_an_approver_key_others_can_read(tmp_path: Path) -> None:
    home = tmp_path / "approver"
    shield("approver", "init", "--name", "alice", home=home)
    (home / "keys" / "approver.key").chmod(0o644)
    code, checks = approver_doctor(home, "--approver")
    assert code == 1
    assert checks["approver key"]["status"] == "fail"
    assert "chmod 600" in checks["approver key"]["detail"]
    assert checks["agent log"]["status"] == "note"
    code, checks = approver_doctor(tmp_path / "empty", "--approver")
    assert code == 1 and "shield approver init" in checks["approver key"]["detail"]
