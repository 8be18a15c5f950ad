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
from shim.classify.decide import ALLOW, DENY
from shim.errors import (
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_SHIELD_FAILED,
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
        from shim.rules.compile import compile_tool

        compiled = compile_tool(tool, layers, compiled_dir(call.home))
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
            return not_found(call)
        env[depth_var] = str(depth + 1)
        try:
            fs.execve(real, [real] + call.argv, env)
        except OSError as exc:
            say(tool, f"cannot run {real}: {exc.strerror}", "check the file's permissions")
            return EXIT_NOT_FOUND
    if d.decision == DENY:
        call.log({"event": "call", "decision": DENY, "rule": d.rule, "reason": d.reason})
        say(
            tool,
            f"denied by rule {d.rule}: {d.reason}",
            d.hint or "this call is not allowed for this agent; do not retry it in another form",
        )
        return EXIT_DENIED
    from shim.held import hold_and_run

    return hold_and_run(call, d, real, depth_var, depth, compiled)
