"""`shield doctor`: is this setup sound? (cold)"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import textwrap

import typer

from shim.approval.spool import AGENT_READS, SUBDIRS, group_name, sharing_problems
from shim.baked import CliHome, cli_home, read_shim_config, shim_dir_of
from shim.commands.common import SpoolOpt, current_layers
from shim.errors import KeyError_, ShieldError
from shim.home import compiled_dir, keys_dir, layer_dir, load_config, log_dir, spool_dir, trust_dir
from shim.keys import approver_identity, private_key_path
from shim.log import anchors, storage
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


def run_checks(
    home: str,
    shim_dir: str | None,
    env: dict[str, str],
    spool: str | None = None,
    where: CliHome | None = None,
) -> Report:
    """The agent side: the home, rules, shims and real binaries, keys, config, log, spool."""
    rep = Report()
    check_home(rep, where or CliHome(home, "SHIELD_HOME"), env)
    tools = check_rules(rep, home)
    check_shims(rep, tools, shim_dir, env.get("PATH", ""))
    check_modes(rep, home, tools, shim_dir)
    check_keys(rep, home)
    check_config(rep, home)
    check_server(rep, home)
    check_log_and_spool(rep, home, env, spool)
    return rep


def check_home(rep: Report, where: CliHome, env: dict[str, str]) -> None:
    """Which home this is and why; a warning when the shims on PATH work on another one (then
    `shield check` and `shield log` here say other things than the shims do)."""
    rep.add("ok", "home", where.describe())
    if where.source == "shim":
        return
    first = cli_home({"PATH": env.get("PATH", "")})
    if first.source == "shim" and first.home != where.home:
        rep.add(
            "warn",
            "home of the shims",
            f"the first shim on PATH ({first.shim}) works on {first.home}, not on {where.home}: "
            "`shield` and the shims disagree (unset SHIELD_HOME to use the shims' home)",
        )


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
        cfg = read_shim_config(shim_path) if shim_path else None
        check_real(rep, tool, cfg, path, [shim_dir] if shim_dir else [])
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
        cfg = read_shim_config(os.path.join(shim_dir, tool)) if shim_dir else None
        if cfg and cfg.get("mode", "enforce") != "enforce":
            rep.add(
                "warn",
                "modes",
                f"the {tool} shim is installed in {cfg['mode']} mode: every call runs "
                "(reinstall with --mode enforce)",
            )


def check_real(rep: Report, tool: str, cfg: dict | None, path: str, shim_dirs: list[str]) -> None:
    """The real binary the shim runs: the one pinned at install (`--real`), as the shim reads
    it, else the next on PATH. And a warning for a real one still on the agent's PATH: an
    absolute path, or a shell that cannot start the shim's Python, runs it unchecked."""
    shim_dirs = list((cfg or {}).get("shim_dirs") or shim_dirs)
    on_path = find_real(tool, path, shim_dirs)
    pinned = (cfg or {}).get("real")
    if pinned and os.path.isfile(pinned) and os.access(pinned, os.X_OK):
        rep.add("ok", f"real {tool}", f"{pinned} (pinned at install)")
    elif pinned:
        rep.add(
            "warn",
            f"real {tool}",
            f"the pinned {pinned} is missing or not executable: the shim falls back to "
            f"{on_path or 'PATH, where there is none (exit 127)'}",
        )
    elif on_path:
        rep.add("ok", f"real {tool}", on_path)
    else:
        detail = f"no real {tool} on PATH after the shim dir (calls would exit 127)"
        rep.add("warn", f"real {tool}", detail)
    if on_path:
        rep.add(
            "warn",
            f"real {tool} on PATH",
            f"{on_path} is on the agent's PATH after the shim dir: a call by absolute path, or "
            "from a shell that cannot start the shim, runs it unchecked. Move it off the "
            f"agent's PATH and pin it (install.sh --real {tool}=PATH)",
        )


def check_keys(rep: Report, home: str) -> None:
    """Trusted approver keys here; no approver private key and no writable policy in reach."""
    trust = trust_dir(home)
    names = os.listdir(trust) if os.path.isdir(trust) else []
    trusted = [f for f in names if f.endswith(".pub")]
    passkeys = [f for f in names if f.endswith(".passkey")]
    if trusted or passkeys:
        rep.add(
            "ok",
            "trust",
            f"{len(trusted)} trusted approver key(s) and {len(passkeys)} passkey(s) in {trust}",
        )
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


def check_server(rep: Report, home: str) -> None:
    """With an approval server (`shield install --server`): the shims' token file is readable
    by this user. Run as the agent's user, this catches a token `shield install` wrote as root
    (0640, root's group), which the shims cannot read: held calls would reach the spool only."""
    from shim.install import SERVER_FILE

    path = os.path.join(home, SERVER_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            settings = json.load(fh)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        rep.add("fail", "server", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return
    url = str(settings.get("url") or "?") if isinstance(settings, dict) else "?"
    token = str(settings.get("token_file") or "") if isinstance(settings, dict) else ""
    if not token or not os.access(token, os.R_OK):
        rep.add(
            "fail",
            "server token",
            f"{token or 'no token file'} is not readable by this user (uid {os.getuid()}): held "
            f"calls cannot reach {url}, only the spool; give it the agent's group "
            f"(chgrp GROUP {token or 'FILE'}; it stays 0640)",
        )
        return
    rep.add("ok", "server", f"held calls also go to {url} (token {token} readable)")


def check_log_and_spool(
    rep: Report, home: str, env: dict[str, str], spool_flag: str | None = None
) -> None:
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
    spool = spool_dir(home, env, spool_flag)
    check_spool(rep, spool)
    for label, p in (("log", ld), ("spool", spool)):
        kind = storage.filesystem_type(p) if os.path.isdir(p) else None
        if kind in storage.NETWORK_FILESYSTEMS:
            rep.add(
                "warn", f"{label} filesystem", f"{p} is on {kind}: flock may not be reliable there"
            )
    check_locking(rep, ld)


def check_spool(rep: Report, spool: str) -> None:
    """This user can write the spool and what is in it; when it is shared through its group,
    the other side can too (group and mode of every subdirectory, not only os.access)."""
    rwx = os.W_OK | os.X_OK | os.R_OK
    subs = [os.path.join(spool, n) for n in SUBDIRS if os.path.isdir(os.path.join(spool, n))]
    if not os.path.isdir(spool):
        rep.add("fail", "spool", f"{spool} is missing (run: shield install, or check --spool)")
        return
    reads = [os.path.join(spool, n) for n in AGENT_READS]  # the agent only reads these
    unread = [p for p in reads if p in subs and not os.access(p, os.R_OK | os.X_OK)]
    blocked = [p for p in [spool, *subs] if p not in reads and not os.access(p, rwx)]
    if unread:
        rep.add(
            "fail",
            "spool",
            f"this user cannot read {', '.join(unread)}: grants and revocations there would "
            "be ignored (give the agent read access: chmod o+rx, or chown it to the agent)",
        )
    if blocked:
        rep.add(
            "fail",
            "spool",
            f"this user cannot write {', '.join(blocked)}: held calls or decisions would fail "
            "(make the spool group-writable for both users: install.sh --approver-group G)",
        )
    if unread or blocked:
        return
    st = os.stat(spool)
    problems = sharing_problems(spool)
    for problem in problems:
        rep.add("fail", "spool shared", problem + " (chmod 2770 and chgrp it like the spool)")
    if not st.st_mode & 0o020:
        rep.add(
            "ok",
            "spool",
            f"{spool} (writable by its owner only: for an approver who is another user, make "
            "it group-writable: install.sh --approver-group G)",
        )
        return
    if not problems:
        rep.add(
            "ok",
            "spool",
            f"{spool} (shared: group {group_name(st.st_gid)}, {stat.filemode(st.st_mode)})",
        )
    if not st.st_mode & stat.S_ISGID:
        rep.add(
            "warn",
            "spool setgid",
            f"{spool} has no setgid bit: files the other side makes get its own group "
            f"(chmod g+s {spool})",
        )


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


def run_approver_checks(
    where: CliHome, log: str | None, env: dict[str, str], spool: str | None = None
) -> Report:
    """The approver side: this home's key (there, private), the anchors imported, and that
    this user can read the agent's log and write the spool."""
    rep = Report()
    home = where.home
    rep.add("ok", "home", f"approver home {where.describe()}")
    check_approver_key(rep, home)
    ids = anchors.known_log_ids(home)
    anchored = [
        i for i in ids if os.path.exists(os.path.join(anchors.anchors_dir(home), i + ".json"))
    ]
    if anchored:
        rep.add("ok", "anchors", f"{len(anchored)} log anchor(s): {', '.join(anchored)}")
    else:
        rep.add(
            "warn",
            "anchors",
            "no log anchor imported: log verify cannot check MACs (shield log anchor import "
            "<agent home>/log/anchor.json)",
        )
    check_agent_log(rep, home, log, anchored)
    check_spool(rep, spool_dir(home, env, spool))
    return rep


def check_approver_key(rep: Report, home: str) -> None:
    key = private_key_path(home)
    try:
        ident = approver_identity(home)
        st = os.stat(key)
    except (KeyError_, OSError) as exc:
        detail = exc.message if isinstance(exc, KeyError_) else f"{key}: {exc.strerror}"
        rep.add("fail", "approver key", f"{detail} (shield approver init --name NAME)")
        return
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        rep.add(
            "fail",
            "approver key",
            f"{key} is {stat.filemode(st.st_mode)}, owner uid {st.st_uid}: only you may read it "
            f"(chmod 600 {key})",
        )
    else:
        rep.add("ok", "approver key", f"{ident.name} (fingerprint {ident.fingerprint}), private")
    mode = os.stat(home).st_mode
    if mode & 0o022:
        rep.add(
            "warn",
            "approver home",
            f"{home} is {stat.filemode(mode)}: others could replace files in it (chmod 700 {home})",
        )


def check_agent_log(rep: Report, home: str, log: str | None, anchored: list[str]) -> None:
    """The agent's log is readable by this user, and this home holds its anchor."""
    if not log:
        rep.add(
            "note",
            "agent log",
            "not checked: pass --log <agent home>/log/shield.log to check that you can read it",
        )
        return
    try:
        with open(log, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        rep.add(
            "fail",
            "agent log",
            f"cannot read {log} ({exc.strerror}): the approver needs group read on the log's "
            "directory and file (install.sh --approver-group G)",
        )
        return
    log_id = anchors.first_log_id(log)
    if log_id is None or log_id in anchored:
        rep.add("ok", "agent log", f"{log} is readable" + (f" (log {log_id})" if log_id else ""))
    else:
        rep.add(
            "warn",
            "agent log",
            f"{log} is readable, but this home holds no anchor for its log {log_id}: import it "
            f"(shield log anchor import {os.path.join(os.path.dirname(log), 'anchor.json')})",
        )


def is_approver_home(home: str) -> bool:
    """A home with an approver key and no log of its own: the approver's, not an agent's."""
    return os.path.exists(private_key_path(home)) and not os.path.exists(log_dir(home))


def doctor(
    shim_dir: str = typer.Option(
        None, "--dir", metavar="DIR", help="the shim dir (default: the shims' own)"
    ),
    as_json: bool = typer.Option(
        False, "--json", help='print JSON: {"ok": ..., "checks": [{"check", "status", "detail"}]}'
    ),
    approver: bool = typer.Option(
        False, "--approver", help="check an approver's home (default when it has a key, no log)"
    ),
    log: str = typer.Option(
        None, "--log", metavar="PATH", help="with --approver: the agent's log to read"
    ),
    spool: SpoolOpt = None,
) -> int:
    """Check the setup: PATH order, real binaries, rules, keys and trust, log, spool, locking.

    Warns about weak setups (an approver key or writable rules in the agent's reach, a real
    binary still on the agent's PATH). With --approver (the default in a home that holds an
    approver key and no log), checks the approver's side instead: the key is there and
    private, anchors are imported, the agent's log (--log) is readable, the spool is writable.
    Exit 1 when a check fails.

    Example:

        shield doctor --dir /opt/shield/bin

        shield doctor --approver --log /opt/shield/home/log/shield.log
    """
    where = cli_home()
    env = dict(os.environ)
    if approver or is_approver_home(where.home):
        rep = run_approver_checks(where, log, env, spool)
    else:
        shim_dir = os.path.abspath(shim_dir or shim_dir_of(where.home))
        rep = run_checks(where.home, shim_dir, env, spool, where)
    if as_json:
        typer.echo(json.dumps({"ok": not rep.failed, "checks": rep.items}))
    else:
        from rich.console import Console
        from rich.markup import escape

        mark = {
            "ok": "[green]ok  [/]",
            "note": "[blue]note[/]",
            "warn": "[yellow]warn[/]",
            "fail": "[red]FAIL[/]",
        }
        console = Console(highlight=False)
        width = max(console.width - 5, 30)
        for item in rep.items:
            # a long line wraps under its text, not under the mark
            text = textwrap.wrap(
                f"{item['check']}: {item['detail']}", width, break_on_hyphens=False
            )
            lines = [escape(line) for line in text] or [""]
            console.print(f"{mark[item['status']]} " + "\n     ".join(lines), soft_wrap=True)
    return 1 if rep.failed else 0
