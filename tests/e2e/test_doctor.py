"""`shield doctor`: finds what is wrong with a setup, and says so."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tests.conftest import World, shield


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
