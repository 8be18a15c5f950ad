"""One shim call: parse -> decide -> exec | hold | refuse (HOT).

Imports only the standard library and the small runtime modules (shim.classify, the log's
append side); the ask path (shim.held) and a stale rule cache (shim.rules.compile) are
imported only when needed. Nothing here reads stdin. Every configuration value that could relax the
policy (home, rule layers, trust store, log) comes from the shim file itself (`cfg`), never from
the environment; the environment may only shorten the wait (`SHIELD_HOLD_TIMEOUT`).
"""

import sys

from shim import fs
from shim.call import Call, not_found, say
from shim.classify.classify import classify
from shim.classify.decide import (
    ALLOW,
    ASK,
    DENY,
    ENFORCE,
    WARN,
    Decision,
)
from shim.errors import (
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_SHIELD_FAILED,
    RulesError,
    ShieldError,
)
from shim.home import compiled_dir, default_layers
from shim.real import find_real
from shim.rules.load import load_cached

DEPTH_VAR = "_SHIELD_DEPTH_"
MAX_DEPTH = 4


def main(cfg: dict, argv: list[str] | None = None) -> int:
    """Run one call of the tool described by the baked `cfg`; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = fs.environ()
    try:
        cwd = fs.getcwd()
    except OSError:
        cwd = "?"  # the directory is gone; $PWD is the agent's word, not a fact
    call = Call(cfg, argv, env, cwd)
    tool = call.tool
    try:
        return _main(call)
    except ShieldError as exc:
        say(tool, exc.message, exc.hint)
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
        say(
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
    layers = default_layers(call.home, cfg["defaults"])
    compiled = load_cached(tool, layers, compiled_dir(call.home))
    if compiled is None:
        compiled = _compile(call, layers)
    real = cfg.get("real") or None
    if real and not fs.isfile(real):
        real = None
    if real is None:
        real = find_real(tool, env.get("PATH", ""), list(cfg.get("shim_dirs") or ()), cwd=call.cwd)
    d = classify(
        compiled, call.argv, env, call.cwd, call.agent, real, _tables_maker(compiled, real)
    )
    call.context = d.context
    install_mode = cfg.get("mode") or ENFORCE
    if install_mode != ENFORCE and (d.policy or d.decision) != ALLOW:
        return not_enforced(call, d, install_mode, real, depth_var, depth)
    if d.decision == ALLOW:
        call.log({"event": "call", "decision": ALLOW, "rule": d.rule, **d.observed()})
        if d.mode == WARN:
            warn(call, d.policy or "", d.policy_rule, d.policy_reason, "the rule is")
        return run_real(call, real, depth_var, depth)
    if d.decision == DENY:
        call.log({"event": "call", "decision": DENY, "rule": d.rule, "reason": d.reason})
        say(
            tool,
            f"denied by rule {d.rule}: {d.reason}",
            d.hint or "this call is not allowed for this agent; do not retry it in another form",
        )
        return EXIT_DENIED
    if d.mode == WARN:
        warn(call, d.policy or "", d.policy_rule, d.policy_reason, "the rule is")
    if granted(call, d, compiled):
        return run_real(call, real, depth_var, depth)
    from shim.held import hold_and_run

    return hold_and_run(call, d, real, depth_var, depth, compiled)


def run_real(call: Call, real: str | None, depth_var: str, depth: int) -> int:
    """Replace this process with the real binary, argv exact (returns only on failure)."""
    if real is None:
        return not_found(call)
    call.env[depth_var] = str(depth + 1)
    try:
        fs.execve(real, [real] + call.argv, call.env)
    except OSError as exc:
        say(call.tool, f"cannot run {real}: {exc.strerror}", "check the file's permissions")
    return EXIT_NOT_FOUND


def not_enforced(
    call: Call, d: Decision, mode: str, real: str | None, depth_var: str, depth: int
) -> int:
    """The whole install is in warn or observe mode: the call runs, and the log keeps what the
    policy would have decided."""
    policy, rule = d.policy or d.decision, d.policy_rule or d.rule
    reason = d.policy_reason if d.policy else d.reason
    call.log(
        {
            "event": "call",
            "decision": ALLOW,
            "policy": policy,
            "mode": mode,
            "rule": rule,
            "reason": reason,
        }
    )
    if mode == WARN:
        warn(call, policy, rule, reason, "this agent is installed")
    return run_real(call, real, depth_var, depth)


def warn(call: Call, policy: str, rule: str | None, reason: str, why: str) -> None:
    would = "deny" if policy == DENY else "hold"
    say(
        call.tool,
        f"warning: rule {rule or '(no rule)'} would {would} this call ({reason}); "
        f"it runs because {why} in warn mode",
    )


def granted(call: Call, d: Decision, compiled: dict) -> bool:
    """True when a live, signed grant covers this call (its use is logged); the ask path
    stays out of allowed calls, and this stays off the held path's imports."""
    from time import time

    from shim.approval import grants

    if not grants.may_grant(d, compiled, call.agent, call.env):
        return False
    spool = call.env.get("SHIELD_SPOOL") or call.cfg.get("spool") or ""
    server = call.cfg.get("server")
    g = grants.find_grant(
        d,
        compiled,
        home=call.home,
        agent=call.agent,
        log=call.log,
        spool=spool,
        now=time(),
        server=server if isinstance(server, dict) and server.get("url") else None,
    )
    if g is None:
        return False
    call.log(
        {
            "event": "granted",
            "decision": ALLOW,
            "policy": ASK,
            "rule": d.rule,
            "grant": g["id"],
            "use": g["use"],
            "approver": g["approver"],
            "signer": "passkey" if "credential" in g else "ed25519",
            "reason": g["reason"],
        }
    )
    return True


def _compile(call: Call, layers: list[str]) -> dict:
    """Compile the rule layers (cold). Bad rules, and any fault in the compiler itself, are
    one message and exit 125 (the call does not run), logged as an `error` entry."""
    try:
        from shim.rules.compile import compile_tool

        return compile_tool(call.tool, layers, compiled_dir(call.home))
    except RulesError as exc:
        err = exc
    except Exception as exc:  # noqa: BLE001 - a compiler fault must not run the tool or trace
        err = RulesError(f"the rule layers could not be compiled ({type(exc).__name__}: {exc})")
    try:
        call.log({"event": "error", "detail": f"rules refused: {err.message}"})
    except ShieldError:
        pass  # the message below still says what happened; the call does not run
    raise RulesError(f"{err.message}; the call did not run", hint=err.hint)


def _tables_maker(compiled: dict, real: str | None):
    """The cold step for an aws call whose service has no option tables yet (aws only)."""
    if not compiled.get("tables") or not real:
        return None

    def make(service: str) -> bool:
        from shim.rules.awstables import maker

        made = maker(compiled["tables"], real)
        return bool(made and made(service))

    return make
