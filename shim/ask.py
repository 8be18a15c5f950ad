"""The ask path of a shim call: hold the request, wait for a decision, run what was approved.

Cold for allowed calls: shim.run imports this module only when a call is held.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from shim import fs
from shim.decide import Decision
from shim.errors import EXIT_DENIED, EXIT_INTERRUPTED, EXIT_TIMEOUT, ShieldError
from shim.run import Call, not_found, say

if TYPE_CHECKING:
    from shim.preview import Bound

DEFAULT_HOLD_S = 600


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


def _rule_of(compiled: dict | None, rule_id: str | None) -> dict | None:
    for rule in (compiled or {}).get("rules") or ():
        if rule_id is not None and rule.get("id") == rule_id:
            return rule
    return None


def hold_and_run(
    call: Call,
    d: Decision,
    real: str | None,
    depth_var: str,
    depth: int,
    compiled: dict | None = None,
) -> int:
    """Preview (shim/preview.py), hold, wait, run what was approved; the preview's snapshots
    are removed however the hold ends."""
    from shim import preview
    from shim.run import classify

    config = load_config(call.home)
    timeout = hold_timeout(d.timeout, config, call.env)

    def is_read_only(argv: list[str]) -> bool:
        # a preview command runs only if this agent could run it without asking
        if compiled is None:
            return False
        return classify(compiled, argv, call.env, call.cwd, call.agent, real).decision == "allow"

    bound = preview.hold_preview(
        _rule_of(compiled, d.rule),
        d.invocation,
        d.context,
        real=real,
        env={**call.env, depth_var: str(depth + 1)},
        cwd=call.cwd,
        home=call.home,
        is_read_only=is_read_only,
        run=timeout > 0,
        limit_s=timeout,
    )
    try:
        refused = _decide_again(call, d, compiled, bound)
        if refused is not None:
            return refused
        return _hold(call, d, real, depth_var, depth, config, timeout, bound)
    finally:
        bound.cleanup()


def _decide_again(call: Call, d: Decision, compiled: dict | None, bound: Bound) -> int | None:
    """With the preview's risk known, decide again: rules on `risk` may deny the call now, or
    require a reason with the approval (then part of the signed request). None: go on holding."""
    from shim.decide import decide

    risk = bound.extra.get("risk")
    again = d
    if compiled is not None and isinstance(risk, str):
        again = decide(d.invocation, compiled["rules"], d.context, call.agent, call.env, risk)
    if again.decision == "deny":
        call.log(
            {
                "event": "call",
                "decision": "deny",
                "rule": again.rule,
                "reason": again.reason,
                **bound.held_fields(),
            }
        )
        say(
            call.tool,
            f"denied by rule {again.rule} (risk {risk}): {again.reason}",
            again.hint
            or "this call is not allowed for this agent; do not retry it in another form",
        )
        return EXIT_DENIED
    if d.require_reason or again.require_reason:
        bound.extra["require_reason"] = True
    return None


def _hold(
    call: Call,
    d: Decision,
    real: str | None,
    depth_var: str,
    depth: int,
    config: dict,
    timeout: float,
    bound: Bound,
) -> int:
    from shim import hold, keys

    tool = call.tool
    req = hold.new_request(
        agent=call.agent,
        tool=tool,
        argv=call.argv,
        cwd=call.cwd,
        context=d.context,
        rule=d.rule,
        reason=d.reason,
        timeout_s=timeout,
        extra=bound.extra,
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
        say(
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
            **bound.held_fields(),
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
    say(
        tool,
        f"this call is held for a human to approve (request {req.id})\n"
        f"  rule: {d.rule or '(no rule matched)'}: {d.reason}\n"
        f"{bound.agent_lines()}"
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
        # off unless the operator turns it on: an agent can make its own pseudo-terminal
        # and answer a prompt there, so only a signed decision is safe by default
        tty=config.get("tty_prompt") is True,
        clock_skew_s=float(config.get("clock_skew", 30)),
        notify=config.get("notify"),
    )
    if verdict.outcome == "approved":
        if real is None:
            return not_found(call)
        call.env[depth_var] = str(depth + 1)
        return _run_approved(call, d, req.id, verdict.approver, real, bound)
    if verdict.outcome == "denied":
        say(
            tool,
            f"denied by {verdict.approver or 'a human'} (request {req.id})"
            + (f": {verdict.reason}" if verdict.reason else ""),
            "do not retry this call in another form; ask your operator what to do instead",
        )
        return EXIT_DENIED
    if verdict.outcome == "expired":
        say(
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


def _run_approved(
    call: Call, d: Decision, request: str, approver: str | None, real: str, bound: Bound
) -> int:
    """Run the approved command as a child: same stdio and TTY, signals forwarded, status logged.

    What runs is what the approver signed: the preview's `run_argv` on its snapshots (stdin
    from the stdin snapshot) when it bound any; a snapshot whose hash changed runs nothing."""
    import signal
    import subprocess
    import time

    argv, stdin_file, changed, ran = bound.command(call.argv)
    if changed:
        detail = f"a file bound to the approval changed after the preview: {', '.join(changed)}"
        call.log(
            {
                "event": "security",
                "decision": "ask",
                "rule": d.rule,
                "request": request,
                "approver": approver,
                "detail": detail + "; not run",
            }
        )
        say(
            call.tool,
            f"request {request} was approved, but {detail}; the call did not run",
            "tell your operator; do not retry this call in another form",
        )
        return EXIT_DENIED
    stdin = open(stdin_file, "rb") if stdin_file else None  # noqa: SIM115 - closed below
    start = time.monotonic()
    try:
        proc = subprocess.Popen([real] + argv, env=call.env, executable=real, stdin=stdin)
    finally:
        if stdin is not None:
            stdin.close()
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
                **ran,
            }
        )
    except ShieldError as exc:
        say(call.tool, f"the command ran, but its exit status could not be logged: {exc.message}")
    return status
