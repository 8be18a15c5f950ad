"""If the log cannot record a call, the call does not run (fail closed), in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim import run
from shim.errors import LogError
from shim.log import append
from shim.log.append import append_entry
from shim.run import main
from tests.conftest import World


def cfg_of(world: World, tool: str) -> dict:
    """The configuration `shield install` baked into the world's shim for `tool`."""
    from shim.install import shim_config

    return shim_config(tool, home=str(world.home), agent="test-bot", shim_dir=str(world.bin))


@pytest.mark.parametrize(
    "argv", [["get", "pods"], ["delete", "pod", "web"]], ids=["allowed", "held"]
)
@pytest.mark.parametrize("err", ["ENOSPC", "EIO"])
def test_a_call_whose_entry_cannot_be_written_does_not_run(
    world: World, monkeypatch: pytest.MonkeyPatch, argv: list[str], err: str
) -> None:
    import errno

    def broken(log_dir: str, fields: dict) -> dict:
        raise LogError(f"cannot append to the log: {errno.errorcode[getattr(errno, err)]}")

    ran: list[object] = []
    monkeypatch.setattr(append, "append_entry", broken)
    monkeypatch.setattr(run.fs, "execve", lambda *a: ran.append(a))
    monkeypatch.setenv("PATH", f"{world.bin}:{world.real}")
    assert main(cfg_of(world, "kubectl"), argv) == 125
    assert ran == []
    assert world.records() == []


def test_held_call_whose_held_entry_fails_is_not_left_waiting(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_append = append_entry

    def flaky(log_dir: str, fields: dict) -> dict:
        if fields.get("event") == "held":
            raise LogError("disk full")
        return real_append(log_dir, fields)

    monkeypatch.setattr(append, "append_entry", flaky)
    monkeypatch.setenv("PATH", f"{world.bin}:{world.real}")
    assert main(cfg_of(world, "kubectl"), ["delete", "pod", "web"]) == 125
    assert world.records() == []
    assert not list(Path(world.home / "state" / "spool").glob("requests/*.json"))
