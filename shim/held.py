"""A held call: preview it, hold it, wait for a decision, run what was approved (cold).

shim.run imports this module only when a call's decision is ask. The steps, in order:
- `hold_preview` (shim.preview.prepare): what the call would do, and the files it reads,
  snapshotted so that what runs on approval is what was shown; the preview's risk;
- decide again with the risk known (a rule on `risk` may deny now or require a reason);
- the held request (shim.approval.request), logged before it is published, then published
  through every transport this home has (the spool; the TTY prompt and a notify hook where the
  operator turned them on);
- wait for a verified decision (shim.approval.wait), then run the approved command as a child
  (shim.child) and log how it ended.
"""

from __future__ import annotations

from collections.abc import Callable

from shim import fs, keys
from shim.approval.channels import transports_for
from shim.approval.passkey import load_passkeys
from shim.approval.remote import relay_settings
from shim.approval.request import HeldRequest, new_request
from shim.approval.transport import Transport, Verdict
from shim.approval.wait import recording_signals, wait_for_decision
from shim.call import Call, not_found, say
from shim.child import run_child
from shim.classify.classify import classify
from shim.classify.decide import Decision, decide
from shim.errors import EXIT_DENIED, EXIT_INTERRUPTED, EXIT_TIMEOUT, ShieldError
from shim.home import default_spool, load_config
from shim.preview.pin import Resolve
from shim.preview.prepare import Bound, hold_preview

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


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0 for the held shim: another process of the agent's own user (without
    CAP_SYS_PTRACE) can no longer ptrace it, read its memory or open its descriptors through
    /proc/<pid>/fd, for as long as the call is held. The children it starts (preview commands,
    the approved run) are dumpable again after exec: that window stays (docs/previews.md)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


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
    """Preview, hold, wait, run what was approved; the preview's snapshots are removed
    however the hold ends."""
    import gc

    gc.enable()  # the shim starts with it off; a hold may wait for hours
    not_dumpable()
    config = load_config(call.home)
    timeout = hold_timeout(d.timeout, config, call.env)

    def is_read_only(argv: list[str]) -> bool:
        # a preview command runs only if this agent could run it without asking
        if compiled is None:
            return False
        return classify(compiled, argv, call.env, call.cwd, call.agent, real).decision == "allow"

    def resolve(argv: list[str], env: dict[str, str]) -> dict[str, str]:
        # the target as the classifier resolves it for this argv and environment
        if compiled is None:
            return dict(d.context)
        return classify(compiled, argv, env, call.cwd, call.agent, real).context

    bound = hold_preview(
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
        resolve=resolve,
    )
    try:
        if bound.conflicts:
            return _conflict(call, d, bound)
        refused = _decide_again(call, d, compiled, bound)
        if refused is not None:
            return refused
        return _hold(call, d, real, depth_var, depth, config, timeout, bound, resolve)
    finally:
        bound.cleanup()


def _conflict(call: Call, d: Decision, bound: Bound) -> int:
    """The target read again when it was pinned is not the one the call was classified with
    (its files changed in between): refuse, never hold."""
    detail = "the target changed while it was pinned: " + "; ".join(bound.conflicts)
    call.log(
        {
            "event": "security",
            "decision": "ask",
            "rule": d.rule,
            "detail": detail + "; not held",
        }
    )
    say(
        call.tool,
        f"{detail}; the call was not held",
        "do not change the target while a call is held",
    )
    return EXIT_DENIED


def _decide_again(call: Call, d: Decision, compiled: dict | None, bound: Bound) -> int | None:
    """With the preview's risk known, decide again: rules on `risk` may deny the call now, or
    require a reason with the approval (then part of the signed request). None: go on holding."""
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
    needed = _approvals(compiled, d, again)
    if needed > 1:
        bound.extra["approvals"] = needed  # in the signed request: the approver sees it
    return None


def _approvals(compiled: dict | None, *decisions: Decision) -> int:
    """The most approvers any matched rule asks for (`approvals: N`); 1 by default."""
    ids = {m["id"] for d in decisions for m in d.matched}
    rules = (compiled or {}).get("rules") or ()
    return max([1] + [int(r.get("approvals") or 1) for r in rules if r.get("id") in ids])


def _hold(
    call: Call,
    d: Decision,
    real: str | None,
    depth_var: str,
    depth: int,
    config: dict,
    timeout: float,
    bound: Bound,
    resolve: Resolve,
) -> int:
    trusted = keys.load_trusted(call.home)
    # which keys count, in the signed request: `shield approve` in a home whose key is not
    # among them says so instead of plain success (the agent's words: the check is here)
    trusted_keys = {fp: pub.name for fp, pub in sorted(trusted.items())}
    req = new_request(
        agent=call.agent,
        tool=call.tool,
        argv=call.argv,
        cwd=call.cwd,
        context=d.context,
        rule=d.rule,
        reason=d.reason,
        timeout_s=timeout,
        extra={**bound.extra, "trusted_keys": trusted_keys},
    )
    call.log(
        {
            "event": "call",
            "decision": "ask",
            "rule": d.rule,
            "request": req.id,
            "reason": d.reason,
            **d.observed(),
        }
    )
    if timeout <= 0:
        call.log({"event": "expired", "decision": "ask", "rule": d.rule, "request": req.id})
        say(
            call.tool,
            f"held for human approval, but SHIELD_HOLD_TIMEOUT=0: not run (request {req.id})",
            "unset SHIELD_HOLD_TIMEOUT to wait for a human decision",
        )
        return EXIT_TIMEOUT
    transports = _transports(call, d, req, config)
    # log first, publish second: a request nobody logged must never be approvable
    call.log(
        {
            "event": "held",
            "decision": "ask",
            "rule": d.rule,
            "request": req.id,
            "expires": req.expires,
            "channels": [t.channel for t in transports],
            **bound.held_fields(),
        }
    )
    caught: list[int] = []  # a Ctrl-C from here on withdraws the request, however early
    with recording_signals(caught):
        verdict = _wait(call, d, req, config, timeout, bound, transports, caught, trusted)
    if verdict.outcome == "approved":
        why = " ".join(verdict.reason.split())
        say(call.tool, f"approved by {verdict.approver or 'a human'}" + (f": {why}" if why else ""))
        if real is None:
            return not_found(call)
        call.env[depth_var] = str(depth + 1)
        return _run_approved(call, d, req.id, verdict.approver, real, bound, resolve)
    return _refused(call, req, verdict, timeout)


def _log_for(call: Call, d: Decision) -> Callable[[dict], None]:
    def log(fields: dict) -> None:
        call.log({"rule": d.rule, "decision": "ask", **fields})

    return log


def _spool_of(call: Call) -> str:
    return call.env.get("SHIELD_SPOOL") or call.cfg.get("spool") or default_spool(call.home)


def _transports(call: Call, d: Decision, req: HeldRequest, config: dict) -> list[Transport]:
    """This home's transports for `req` (the spool first; the relay baked in at install)."""
    return transports_for(
        req,
        _spool_of(call),
        tty=config.get("tty_prompt") is True,
        notify=config.get("notify"),
        server=relay_settings(call.cfg),
        tell=lambda message, hint: say(call.tool, message, hint),
        log=_log_for(call, d),
    )


def _wait(
    call: Call,
    d: Decision,
    req: HeldRequest,
    config: dict,
    timeout: float,
    bound: Bound,
    transports: list[Transport],
    caught: list[int],
    trusted: dict[str, keys.PublicKey],
) -> Verdict:
    """Publish the request through every transport, tell the agent, wait (the signals
    caught since before the publish are the wait's)."""
    log = _log_for(call, d)
    spool = _spool_of(call)
    try:
        transports[0].publish()
    except (OSError, ShieldError) as exc:
        reason = exc.message if isinstance(exc, ShieldError) else str(exc)
        log({"event": "error", "request": req.id, "detail": reason})
        raise ShieldError(
            f"cannot write the held request to the spool {spool}: {reason}; the call did not run",
            "check that the spool exists and is writable (shield doctor)",
        ) from exc
    say(
        call.tool,
        f"this call is held for a human to approve (request {req.id})\n"
        f"  rule: {d.rule or '(no rule matched)'}: {d.reason}\n"
        f"{bound.agent_lines()}"
        f"  waiting up to {_fmt_wait(timeout)}; the approver runs: shield approve {req.id}",
        "wait for the decision; do not retry with another spelling. "
        "If it is denied or times out, report that to your operator.",
    )
    return wait_for_decision(
        req,
        transports,
        trusted=trusted,
        passkeys=load_passkeys(call.home),
        used_path=fs.join(call.home, "state", "used-decisions"),
        log=log,
        clock_skew_s=float(config.get("clock_skew", 30)),
        publish=transports[1:],
        caught=caught,
    )


def _refused(call: Call, req: HeldRequest, verdict: Verdict, timeout: float) -> int:
    """Tell the agent why a held call did not run; its exit status."""
    if verdict.outcome == "denied":
        say(
            call.tool,
            f"denied by {verdict.approver or 'a human'} (request {req.id})"
            + (f": {verdict.reason}" if verdict.reason else ""),
            "do not retry this call in another form; ask your operator what to do instead",
        )
        return EXIT_DENIED
    if verdict.outcome == "expired":
        say(
            call.tool,
            f"no decision within {_fmt_wait(timeout)}; request {req.id} expired and the call did not run",
            "tell your operator the call needs approval; do not retry it in another form",
        )
        return EXIT_TIMEOUT
    sig = verdict.signal or 2
    how = {2: "interrupted (Ctrl-C)", 15: "terminated (SIGTERM)"}.get(sig, f"signal {sig}")
    say(call.tool, f"{how} while held: request {req.id} withdrawn; the call did not run")
    return 128 + sig if sig != 2 else EXIT_INTERRUPTED


def _run_approved(
    call: Call,
    d: Decision,
    request: str,
    approver: str | None,
    real: str,
    bound: Bound,
    resolve: Resolve,
) -> int:
    """Run the approved command as a child and log how it ended.

    What runs is what the approver signed: `run_argv` and `run_env` on the sealed files and
    snapshots (stdin from the sealed stdin), on the pinned target. A sealed file or snapshot
    that changed, or a target that resolves otherwise now, runs nothing."""
    launch = bound.launch(call.argv, resolve)
    fields = {"decision": "ask", "rule": d.rule, "request": request, "approver": approver}
    if launch.problems:
        detail = "what was approved changed after the preview: " + "; ".join(launch.problems)
        call.log({"event": "security", **fields, "detail": detail + "; not run"})
        say(
            call.tool,
            f"request {request} was approved, but {detail}; the call did not run",
            "tell your operator; do not retry this call in another form",
        )
        return EXIT_DENIED
    env = {**call.env, **launch.env}
    status, duration_ms = run_child(real, launch.argv, env, launch.stdin, launch.pass_fds)
    launch.fields.update(bound.finish())
    if launch.fields.get("changed_while_running"):
        detail = "files bound to the approval changed while the command ran: " + ", ".join(
            launch.fields["changed_while_running"]
        )
        call.log({"event": "security", **fields, "detail": detail})
    try:
        call.log(
            {
                "event": "executed",
                **fields,
                "exit": status,
                "duration_ms": duration_ms,
                **launch.fields,
            }
        )
    except ShieldError as exc:
        say(call.tool, f"the command ran, but its exit status could not be logged: {exc.message}")
    return status
