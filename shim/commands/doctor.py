"""`shield doctor`: is this setup sound? (cold)"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import typer

from shim.commands.common import current_home, current_layers
from shim.errors import ShieldError
from shim.home import compiled_dir, keys_dir, layer_dir, load_config, log_dir, spool_dir, trust_dir
from shim.install import baked_config
from shim.log import storage
from shim.real import find_real, is_shim


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


class Report:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, status: str, check: str, detail: str) -> None:
        self.items.append({"status": status, "check": check, "detail": detail})

    @property
    def failed(self) -> bool:
        return any(i["status"] == "fail" for i in self.items)


def interpreter_problem(shim_path: str) -> str | None:
    """Why another user (the agent's) may be unable to start the shim's baked interpreter, or
    None. If it cannot, execve fails and the shell quietly runs the next `kubectl` on PATH:
    the real one, unchecked and unlogged."""
    try:
        with open(shim_path, "rb") as fh:
            first = fh.readline(4096).decode("utf-8", "replace")
    except OSError as exc:
        return f"cannot read {shim_path}: {exc.strerror}"
    if not first.startswith("#!"):
        return f"{shim_path} has no #! line"
    python = first[2:].split()[0] if first[2:].split() else ""
    if not python or not os.path.isfile(python) or not os.access(python, os.X_OK):
        return (
            f"{python or '(none)'} does not exist or cannot be run: the shell would skip the shim "
            "and run the real tool unchecked (run: shield install again)"
        )
    real = os.path.realpath(python)
    for path in (real, python):
        parts = path.split(os.sep)
        for i in range(1, len(parts)):
            d = os.sep.join(parts[:i]) or os.sep
            try:
                mode = os.stat(d).st_mode
            except OSError:
                continue
            if not mode & 0o001:
                return (
                    f"{d} is not searchable by other users (mode {oct(mode & 0o777)}), so an agent "
                    f"running as another user cannot start {python}: the shell would skip the shim "
                    "and run the real tool unchecked. Install with a Python every user can run "
                    "(install.sh --python /usr/bin/python3), and keep the real binaries off the "
                    "agent's PATH (shield install --real TOOL=PATH)"
                )
        if not os.stat(real).st_mode & 0o001:
            return f"{real} is not executable by other users"
    return None


def run_checks(home: str, shim_dir: str | None, env: dict[str, str]) -> Report:
    rep = Report()
    tools = check_rules(rep, home)
    check_shims(rep, tools, shim_dir, env.get("PATH", ""))
    check_modes(rep, home, tools, shim_dir)
    check_keys(rep, home)
    check_config(rep, home)
    check_log_and_spool(rep, home, env)
    return rep


def check_rules(rep: Report, home: str) -> list[str]:
    """The rule layers compile; the tools they have rules for."""
    try:
        from shim.rules.compile import compile_layers

        compiled = compile_layers(current_layers(home))
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        rep.add("fail", "rules", getattr(exc, "message", str(exc)))
        return []
    count = sum(len(c["rules"]) for c in compiled.values())
    rep.add("ok", "rules", f"{count} rules for {', '.join(sorted(compiled))}")
    return sorted(compiled)


def check_shims(rep: Report, tools: list[str], shim_dir: str | None, path: str) -> None:
    """Each tool's shim: there, first on PATH, a real binary behind it, an interpreter every
    user can start, not writable by this user."""
    seen_problems: set[str] = set()
    for tool in tools:
        shim_path = os.path.join(shim_dir, tool) if shim_dir else None
        if shim_path and not is_shim(shim_path):
            rep.add("warn", f"shim {tool}", f"no shim at {shim_path} (run: shield install)")
        first = shutil.which(tool, path=path)
        if shim_path and first and os.path.exists(shim_path):
            if os.path.samefile(first, shim_path):
                rep.add("ok", f"PATH {tool}", f"`{tool}` resolves to the shim")
            else:
                rep.add(
                    "fail",
                    f"PATH {tool}",
                    f"`{tool}` resolves to {first}, not the shim: put {shim_dir} first on PATH",
                )
        elif shim_path and first:
            rep.add("ok", f"PATH {tool}", f"`{tool}` resolves to the shim")
        real = find_real(tool, path, [shim_dir] if shim_dir else [])
        if real:
            rep.add("ok", f"real {tool}", real)
        else:
            detail = f"no real {tool} on PATH after the shim dir (calls would exit 127)"
            rep.add("warn", f"real {tool}", detail)
        if shim_path and is_shim(shim_path):
            problem = interpreter_problem(shim_path)
            if problem and problem not in seen_problems:
                seen_problems.add(problem)
                # a fail for a missing interpreter; a warning when only other users are locked
                # out (fine while the agent runs as this user)
                status = "warn" if "other users" in problem else "fail"
                rep.add(status, "shim interpreter", problem)
        if shim_path and os.path.exists(shim_path) and os.access(shim_path, os.W_OK):
            rep.add(
                "warn",
                f"shim {tool} writable",
                f"this user can rewrite {shim_path}; install as another user for a real boundary",
            )


def check_modes(rep: Report, home: str, tools: list[str], shim_dir: str | None) -> None:
    """A warning while any rule, or the install, is not enforcing (warn or observe mode)."""
    from shim.rules.compile import compile_layers

    try:
        compiled = compile_layers(current_layers(home))
    except ShieldError:
        return
    lenient = [
        f"{r['id']} ({r['mode']})" for c in compiled.values() for r in c["rules"] if r.get("mode")
    ]
    if lenient:
        rep.add(
            "warn",
            "modes",
            f"rules not enforcing: {', '.join(lenient)}; calls they would hold or deny run",
        )
    for tool in tools:
        cfg = baked_config(os.path.join(shim_dir, tool)) if shim_dir else None
        if cfg and cfg.get("mode", "enforce") != "enforce":
            rep.add(
                "warn",
                "modes",
                f"the {tool} shim is installed in {cfg['mode']} mode: every call runs "
                "(reinstall with --mode enforce)",
            )


def check_keys(rep: Report, home: str) -> None:
    """Trusted approver keys here; no approver private key and no writable policy in reach."""
    trust = trust_dir(home)
    trusted = [f for f in (os.listdir(trust) if os.path.isdir(trust) else []) if f.endswith(".pub")]
    if trusted:
        rep.add("ok", "trust", f"{len(trusted)} trusted approver key(s) in {trust}")
    else:
        rep.add(
            "warn",
            "trust",
            "no trusted approver: held calls can only be approved at a TTY prompt (shield trust add PUBKEY)",
        )
    if os.path.exists(os.path.join(keys_dir(home), "approver.key")):
        rep.add(
            "warn",
            "approver key here",
            "the approver's private key is in this home: an agent running as this user could sign "
            "its own approvals. Keep the approver key in another home (another user or the host).",
        )
    for label, p in (
        ("rule layer", layer_dir(home)),
        ("trust store", trust),
        ("compiled rules", compiled_dir(home)),
    ):
        if os.path.exists(p) and os.access(p, os.W_OK):
            rep.add(
                "warn",
                f"{label} writable",
                f"this user can write {p}: an agent running as this user could relax the policy",
            )


def check_config(rep: Report, home: str) -> None:
    try:
        cfg = load_config(home)
    except ShieldError as exc:
        rep.add("fail", "config", exc.message)
        return
    if cfg.get("tty_prompt") is True:
        rep.add(
            "warn",
            "tty prompt",
            "tty_prompt is on: an agent that starts the held call in a pseudo-terminal of its own "
            "can type the code itself; keep it on only where the terminal is a human's",
        )


def check_log_and_spool(rep: Report, home: str, env: dict[str, str]) -> None:
    """The log and the spool are writable, on a filesystem where flock works."""
    ld = log_dir(home)
    if os.path.isdir(ld) and os.access(ld, os.W_OK):
        rep.add("ok", "log", f"{ld} is writable")
    else:
        rep.add(
            "fail",
            "log",
            f"{ld} is missing or not writable: shims would exit 125 (run: shield install)",
        )
    if os.path.exists(os.path.join(ld, "anchor.json")):
        rep.add(
            "warn",
            "log anchor",
            f"{ld}/anchor.json holds the first log key: move it to the approver (shield log anchor import) and delete it",
        )
    spool = spool_dir(home, env)
    if os.path.isdir(spool) and os.access(spool, os.W_OK):
        rep.add("ok", "spool", spool)
    else:
        rep.add("fail", "spool", f"{spool} is missing or not writable")
    for label, p in (("log", ld), ("spool", spool)):
        kind = storage.filesystem_type(p) if os.path.isdir(p) else None
        if kind in storage.NETWORK_FILESYSTEMS:
            rep.add(
                "warn", f"{label} filesystem", f"{p} is on {kind}: flock may not be reliable there"
            )
    check_locking(rep, ld)


def check_locking(rep: Report, ld: str) -> None:
    try:
        if os.path.isdir(ld):
            target, works = ld, storage.lock_works(ld)
        else:  # no log yet: test the filesystem the temporary directory is on
            with tempfile.TemporaryDirectory() as scratch:
                target, works = scratch, storage.lock_works(scratch)
    except OSError as exc:
        rep.add("fail", "locking", f"cannot test flock on {ld}: {exc.strerror}")
        return
    if works:
        rep.add("ok", "locking", f"flock excludes a second process on {target}")
    else:
        rep.add(
            "fail",
            "locking",
            f"flock on {target} does not exclude another process: concurrent appends would interleave",
        )


def doctor(
    shim_dir: str = typer.Option(None, "--dir", help="the shim dir (default: <home>/bin)"),
    as_json: bool = typer.Option(False, "--json"),
) -> int:
    """Check the setup: PATH order, real binaries, rules, keys and trust, log, spool, locking.

    Warns about weak setups (an approver key or writable rules in the agent's reach).
    Exit 1 when a check fails.

    Example:

        shield doctor --dir /opt/shield/bin
    """
    home = current_home()
    shim_dir = os.path.abspath(shim_dir or os.path.join(home, "bin"))
    rep = run_checks(home, shim_dir, dict(os.environ))
    if as_json:
        typer.echo(json.dumps({"ok": not rep.failed, "checks": rep.items}))
    else:
        from rich.console import Console

        console = Console()
        mark = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
        for item in rep.items:
            console.print(
                f"{mark[item['status']]} {item['check']}: {item['detail']}", highlight=False
            )
    return 1 if rep.failed else 0
