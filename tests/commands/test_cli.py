"""The `shield` command's habits, checked on every command of the real tree: `--version`, `-h`
as `--help`, help pages in plain words, every `--json` described, an example in every
command's help; `trust list/remove`; `pending --spool` that names no directory (issue 15)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from shim import cli
from shim.keys import init_approver, public_key_path
from tests.conftest import shield


def commands(
    command: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) for `shield` and everything under it."""
    command = command or cli.build()
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


PATHS = [path for path, _ in commands()]


def help_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main([*args]) == 0
    return capsys.readouterr().out


def test_the_tree_has_every_command() -> None:
    names = {" ".join(p) for p in PATHS}
    for name in ("log", "log verify", "trust list", "trust remove", "pending", "approve", "demo"):
        assert name in names


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"shield (agent-shield) {version('agent-shield')}\n"
    proc = shield("--version", home=Path("/nonexistent"))
    assert proc.stdout.startswith("shield (agent-shield) ")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "shield")
def test_h_is_help_on_every_command(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    long = help_of(capsys, *path, "--help")
    assert long.startswith("Usage: shield")
    assert help_of(capsys, *path, "-h") == long
    assert "-h, --help" in long


FRAMEWORK_NAMES = re.compile(
    r"<(str|int|float|bool|path|choice|datetime|uuid|list\[[^>]*\])>|\b(TEXT|INTEGER|FLOAT|BOOLEAN|UUID|FILENAME)\b"
)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "shield")
def test_help_pages_name_values_in_plain_words(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...]
) -> None:
    text = help_of(capsys, *path, "--help")
    assert not FRAMEWORK_NAMES.search(text), FRAMEWORK_NAMES.search(text)
    usage = text.split("\n\n", 1)[0]
    assert "{" not in usage and "}" not in usage, usage


def test_every_json_option_is_described() -> None:
    found = 0
    for path, command in commands():
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                found += 1
                assert param.help and len(param.help.split()) >= 3, " ".join(path)
    assert found >= 12


def test_every_command_says_what_it_does_by_example() -> None:
    for path, command in commands():
        if not path:
            continue
        if getattr(command, "commands", None):  # a group: its own help, or its callback's
            doc = command.help or (command.callback.__doc__ if command.callback else None)
        else:
            doc = command.callback.__doc__ if command.callback else None
        assert doc and "Example" in doc, " ".join(path)


# ---------------------------------------------------------------- trust list / remove


def test_trust_list_and_remove_by_name_or_fingerprint(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    for name in ("alice", "bob", "bob2"):
        init_approver(str(tmp_path / name), "bob" if name == "bob2" else name)
        shield("trust", "add", public_key_path(str(tmp_path / name)), home=agent)
    (agent / "trust" / "notes.pub").write_text("not a key\n")
    listed = json.loads(shield("trust", "list", "--json", home=agent).stdout)
    assert sorted(k["name"] or "?" for k in listed) == ["?", "alice", "bob", "bob"]
    assert [k["problem"] for k in listed if k["name"] is None] == ["not a shield public key"]
    table = shield("trust", "list", home=agent).stdout
    assert "alice" in table and "not a shield public key" in table
    two = shield("trust", "remove", "bob", home=agent, check=False)
    assert two.returncode == 1 and "names 2 different keys" in two.stderr
    assert len(json.loads(shield("trust", "list", "--json", home=agent).stdout)) == 4
    bob = next(k for k in listed if k["name"] == "bob")
    gone = shield("trust", "remove", bob["fingerprint"][:8], home=agent)
    assert f"removed bob (fingerprint {bob['fingerprint']})" in gone.stdout
    assert shield("trust", "remove", "alice", home=agent).returncode == 0
    left = json.loads(shield("trust", "list", "--json", home=agent).stdout)
    assert sorted(k["name"] or "?" for k in left) == ["?", "bob"]
    missing = shield("trust", "remove", "carol", home=agent, check=False)
    assert missing.returncode == 1 and "no trusted key named 'carol'" in missing.stderr


def test_a_removed_key_approves_nothing_on_that_home(tmp_path: Path) -> None:
    from shim.keys import load_trusted

    agent = tmp_path / "agent"
    init_approver(str(tmp_path / "alice"), "alice")
    shield("trust", "add", public_key_path(str(tmp_path / "alice")), home=agent)
    assert len(load_trusted(str(agent))) == 1
    shield("trust", "remove", "alice", home=agent)
    assert load_trusted(str(agent)) == {}


# ---------------------------------------------------------------- pending --spool


def test_pending_with_a_spool_that_does_not_exist_fails_in_one_line(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-such-spool"
    proc = shield("pending", "--spool", str(nowhere), home=tmp_path / "alice", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"shield: spool {nowhere} (from --spool) does not exist or is not a directory"
    ]
    (tmp_path / "a-file").write_text("")
    proc = shield("pending", "--spool", str(tmp_path / "a-file"), home=tmp_path, check=False)
    assert proc.returncode == 1
    nowhere.mkdir()
    proc = shield("pending", "--spool", str(nowhere), home=tmp_path / "alice")
    assert proc.stdout.startswith("no held requests")
