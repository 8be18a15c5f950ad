"""One shim call: parse -> decide -> exec | hold | refuse (HOT).

Imports only the standard library and the small runtime modules; the hold path (ask) imports
shim.hold lazily. Nothing here reads stdin. Every configuration value that could relax the
policy (home, rule layers, trust store, log) comes from the shim file itself (`cfg`), never from
the environment; the environment may only shorten the wait (`SHIELD_HOLD_TIMEOUT`).
"""

from __future__ import annotations

import sys

from shim import audit, fs
from shim.argv import UNKNOWN, Invocation, parse_argv
from shim.compiled import load_tool
from shim.context import resolve_context
from shim.decide import ALLOW, DENY, Decision, decide
from shim.errors import (
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_SHIELD_FAILED,
    EXIT_TIMEOUT,
    ShieldError,
    format_error,
)
from shim.home import ETC_LAYER, compiled_dir, layer_dir, log_dir
from shim.resolve import find_real

DEPTH_VAR = "_SHIELD_DEPTH_"
MAX_DEPTH = 4
DEFAULT_HOLD_S = 600


def layers_for(home: str, defaults: str) -> list[str]:
    return [defaults, ETC_LAYER, layer_dir(home)]


def aws_aliases(env: dict[str, str]) -> set[str]:
    """Top-level words defined in the aws CLI alias file (they shadow built-in commands)."""
    home = env.get("HOME") or "/"
    try:
        text = fs.read_file(fs.join(home, ".aws", "cli", "alias")).decode("utf-8", "replace")
    except (OSError, ValueError):
        return set()
    words: set[str] = set()
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section == "toplevel" and "=" in line and not raw[:1].isspace():
            words.add(line.split("=", 1)[0].strip())
    return words


def aws_major(real: str | None) -> int:
    """1 for the Python aws CLI (a script), 2 for the bundled v2 binary."""
    if not real:
        return 1
    try:
        head = fs.read_file(real, 2)
    except (OSError, ValueError):
        return 1
    return 1 if head == b"#!" else 2


def classify(
    compiled: dict,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    agent: str,
    real: str | None = None,
) -> Decision:
    """Parse and decide one call with the world passed in (used by shims and `shield check`)."""
    grammar = compiled["grammar"]
    inv = parse_argv(grammar, argv, env)
    aws = grammar.get("style") == "aws"
    if aws and inv.verb and inv.kind != UNKNOWN and inv.verb[0] in aws_aliases(env):
        inv = Invocation(
            inv.tool,
            inv.argv,
            inv.verb,
            UNKNOWN,
            f"{inv.verb[0]!r} is defined in the aws CLI alias file (~/.aws/cli/alias)",
            inv.flags,
            inv.args,
            inv.words,
            inv.rest,
            False,
            inv.unknown_flags,
        )
    major = aws_major(real) if grammar.get("style") == "aws" else 1
    context = resolve_context(grammar, inv, env, cwd, aws_major=major)
    return decide(inv, compiled["rules"], context, agent, env)


def _say(tool: str, message: str, hint: str = "") -> None:
    try:
        sys.stderr.write(format_error(tool, message, hint) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _fmt_wait(seconds: float) -> str:
    s = int(seconds)
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def hold_timeout(rule_timeout: int | None, config: dict, env: dict[str, str]) -> float:
    """The rule's (or config's) deadline, shortened, never lengthened, by SHIELD_HOLD_TIMEOUT."""
    timeout = float(
        rule_timeout if rule_timeout is not None else config.get("hold_timeout", DEFAULT_HOLD_S)
    )
    raw = env.get("SHIELD_HOLD_TIMEOUT")
    if raw:
        try:
            timeout = min(timeout, max(0.0, float(raw)))
        except ValueError:
            pass
    return timeout


def load_config(home: str) -> dict:
    path = fs.join(home, "config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {}
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ShieldError(f"{path} is not valid JSON: {exc}", "fix or remove the file") from exc
    return data if isinstance(data, dict) else {}


class Call:
    """The state of one shim call, for logging."""

    def __init__(self, cfg: dict, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.tool = cfg["tool"]
        self.agent = cfg.get("agent") or "agent"
        self.home = cfg["home"]
        self.cfg = cfg
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.context: dict[str, str] = {"cwd": cwd}

    def log(self, fields: dict) -> dict:
        entry = {
            "agent": self.agent,
            "tool": self.tool,
            "argv": self.argv,
            "cwd": self.cwd,
            "context": self.context,
            "decision": None,
            "rule": None,
            "request": None,
            "approver": None,
        }
        entry.update(fields)
        return audit.append_entry(log_dir(self.home), entry)


def main(cfg: dict, argv: list[str] | None = None) -> int:
    """Run one call of the tool described by the baked `cfg`; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = fs.environ()
    try:
        cwd = fs.getcwd()
    except OSError:
        cwd = env.get("PWD", "?")
    call = Call(cfg, argv, env, cwd)
    tool = call.tool
    try:
        return _main(call)
    except ShieldError as exc:
        _say(tool, exc.message, exc.hint)
        return exc.shim_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _main(call: Call) -> int:
    cfg, tool, env = call.cfg, call.tool, call.env
    depth_var = DEPTH_VAR + tool.upper().replace("-", "_")
    try:
        depth = int(env.get(depth_var, "0"))
    except ValueError:
        depth = MAX_DEPTH
    if depth >= MAX_DEPTH:
        _say(
            tool,
            f"loop: the {tool} that shield found calls {tool} again ({depth} times); refusing",
            f"pin the real binary: shield install --real {tool}=/path/to/{tool}",
        )
        try:
            call.log({"event": "error", "detail": "shim loop detected"})
        except ShieldError:
            pass
        return EXIT_SHIELD_FAILED
    if not fs.isdir(call.home):
        raise ShieldError(
            f"the shield home {call.home} is missing; the call did not run",
            "re-run the installer: shield install (or install.sh)",
        )
    compiled = load_tool(tool, layers_for(call.home, cfg["defaults"]), compiled_dir(call.home))
    real = cfg.get("real") or None
    if real and not fs.isfile(real):
        real = None
    if real is None:
        real = find_real(tool, env.get("PATH", ""), list(cfg.get("shim_dirs") or ()), cwd=call.cwd)
    d = classify(compiled, call.argv, env, call.cwd, call.agent, real)
    call.context = d.context
    if d.decision == ALLOW:
        call.log({"event": "call", "decision": ALLOW, "rule": d.rule})
        if real is None:
            return _not_found(call)
        env[depth_var] = str(depth + 1)
        try:
            fs.execve(real, [real] + call.argv, env)
        except OSError as exc:
            _say(tool, f"cannot run {real}: {exc.strerror}", "check the file's permissions")
            return EXIT_NOT_FOUND
    if d.decision == DENY:
        call.log({"event": "call", "decision": DENY, "rule": d.rule, "reason": d.reason})
        _say(
            tool,
            f"denied by rule {d.rule}: {d.reason}",
            d.hint or "this call is not allowed for this agent; do not retry it in another form",
        )
        return EXIT_DENIED
    return _hold(call, d, real, depth_var, depth)


def _not_found(call: Call) -> int:
    try:
        call.log({"event": "error", "detail": f"real {call.tool} not found on PATH"})
    except ShieldError:
        pass
    _say(
        call.tool,
        f"the real {call.tool} was not found on PATH (after the shim dirs)",
        f"install {call.tool}, or pin it: shield install --real {call.tool}=/path/to/{call.tool}",
    )
    return EXIT_NOT_FOUND


def _hold(call: Call, d: Decision, real: str | None, depth_var: str, depth: int) -> int:
    from shim import hold, keys

    tool = call.tool
    config = load_config(call.home)
    timeout = hold_timeout(d.timeout, config, call.env)
    req = hold.new_request(
        agent=call.agent,
        tool=tool,
        argv=call.argv,
        cwd=call.cwd,
        context=d.context,
        rule=d.rule,
        reason=d.reason,
        timeout_s=timeout,
    )
    call.log(
        {
            "event": "call",
            "decision": "ask",
            "rule": d.rule,
            "request": req.id,
            "reason": d.reason,
        }
    )
    spool = call.env.get("SHIELD_SPOOL") or cfg_spool(call)
    if timeout <= 0:
        call.log({"event": "expired", "decision": "ask", "rule": d.rule, "request": req.id})
        _say(
            tool,
            f"held for human approval, but SHIELD_HOLD_TIMEOUT=0: not run (request {req.id})",
            "unset SHIELD_HOLD_TIMEOUT to wait for a human decision",
        )
        return EXIT_TIMEOUT
    # log first, publish second: a request nobody logged must never be approvable
    call.log(
        {
            "event": "held",
            "decision": "ask",
            "rule": d.rule,
            "request": req.id,
            "expires": req.expires,
        }
    )
    try:
        hold.write_request(spool, req)
    except (OSError, ShieldError) as exc:
        reason = exc.message if isinstance(exc, ShieldError) else str(exc)
        call.log(
            {
                "event": "error",
                "decision": "ask",
                "rule": d.rule,
                "request": req.id,
                "detail": reason,
            }
        )
        raise ShieldError(
            f"cannot write the held request to the spool {spool}: {reason}; the call did not run",
            "check that the spool exists and is writable (shield doctor)",
        ) from exc
    _say(
        tool,
        f"this call is held for a human to approve (request {req.id})\n"
        f"  rule: {d.rule or '(no rule matched)'}: {d.reason}\n"
        f"  waiting up to {_fmt_wait(timeout)}; the approver runs: shield approve {req.id}",
        "wait for the decision; do not retry with another spelling. "
        "If it is denied or times out, report that to your operator.",
    )
    verdict = hold.wait_for_decision(
        req,
        spool=spool,
        trusted=keys.load_trusted(call.home),
        used_path=fs.join(call.home, "state", "used-decisions"),
        log=lambda fields: call.log(_with_rule(fields, d)),
        tty=bool(config.get("tty_prompt", True)),
        clock_skew_s=float(config.get("clock_skew", 30)),
        notify=config.get("notify"),
    )
    if verdict.outcome == "approved":
        if real is None:
            return _not_found(call)
        call.env[depth_var] = str(depth + 1)
        return _run_approved(call, d, req.id, verdict.approver, real)
    if verdict.outcome == "denied":
        _say(
            tool,
            f"denied by {verdict.approver or 'a human'} (request {req.id})"
            + (f": {verdict.reason}" if verdict.reason else ""),
            "do not retry this call in another form; ask your operator what to do instead",
        )
        return EXIT_DENIED
    if verdict.outcome == "expired":
        _say(
            tool,
            f"no decision within {_fmt_wait(timeout)}; request {req.id} expired and the call did not run",
            "tell your operator the call needs approval; do not retry it in another form",
        )
        return EXIT_TIMEOUT
    sig = verdict.signal or 2
    return 128 + sig if sig != 2 else EXIT_INTERRUPTED


def _with_rule(fields: dict, d: Decision) -> dict:
    out = {"rule": d.rule, "decision": "ask"}
    out.update(fields)
    return out


def cfg_spool(call: Call) -> str:
    from shim.home import default_spool

    return call.cfg.get("spool") or default_spool(call.home)


FORWARD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH")
TTY_SIGNALS = ("SIGINT", "SIGQUIT", "SIGWINCH")


def _terminal_delivers(sig_name: str) -> bool:
    """True when the terminal already sends this signal to the child (same foreground group)."""
    import os

    if sig_name not in TTY_SIGNALS:
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _run_approved(call: Call, d: Decision, request: str, approver: str | None, real: str) -> int:
    """Run the approved command as a child: same stdio and TTY, signals forwarded, status logged."""
    import signal
    import subprocess
    import time

    start = time.monotonic()
    proc = subprocess.Popen([real] + call.argv, env=call.env, executable=real)
    handlers = {}

    def forward(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if _terminal_delivers(name):
            return
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for name in FORWARD:
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                handlers[sig] = signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        for sig, old in handlers.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError):
                pass
    status = 128 - rc if rc < 0 else rc
    duration_ms = int((time.monotonic() - start) * 1000)
    try:
        call.log(
            {
                "event": "executed",
                "decision": "ask",
                "rule": d.rule,
                "request": request,
                "approver": approver,
                "exit": status,
                "duration_ms": duration_ms,
            }
        )
    except ShieldError as exc:
        _say(call.tool, f"the command ran, but its exit status could not be logged: {exc.message}")
    return status
