"""One shim call: parse -> decide -> exec | hold | refuse (HOT).

Imports only the standard library and the small runtime modules; the hold path (ask) imports
shim.hold lazily. Nothing here reads stdin. Every configuration value that could relax the
policy (home, rule layers, trust store, log) comes from the shim file itself (`cfg`), never from
the environment; the environment may only shorten the wait (`SHIELD_HOLD_TIMEOUT`).
"""

import sys

from shim import audit, fs
from shim.argv import UNKNOWN, parse_argv
from shim.compiled import load_tool
from shim.context import resolve_context
from shim.decide import ALLOW, DENY, Decision, decide
from shim.errors import (
    EXIT_DENIED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_SHIELD_FAILED,
    ShieldError,
    format_error,
)
from shim.home import compiled_dir, default_layers, log_dir
from shim.resolve import find_real

DEPTH_VAR = "_SHIELD_DEPTH_"
MAX_DEPTH = 4


def aws_aliases(env: dict[str, str]) -> set[str]:
    """Top-level words the aws CLI alias file defines (they shadow built-in commands).

    Read the way botocore reads it (configparser): `=` or `:`, keys lowercased, comments and
    indented continuation lines skipped."""
    home = env.get("HOME") or "/"
    try:
        text = fs.read_file(fs.join(home, ".aws", "cli", "alias")).decode("utf-8", "replace")
    except (OSError, ValueError):
        return set()
    words: set[str] = set()
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or raw[:1].isspace():
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        if section == "toplevel":
            cut = min((k for k in (line.find("="), line.find(":")) if k > 0), default=-1)
            if cut > 0:
                words.add(line[:cut].strip().lower())
    return words


def _config_has_section(path: str, name: str) -> bool:
    try:
        text = fs.read_file(path).decode("utf-8", "replace")
    except (OSError, ValueError):
        return False
    return any(line.strip().lower() == f"[{name}]" for line in text.splitlines())


def tool_overrides(style: str, tool: str, env: dict[str, str]) -> str:
    """Files that change what the real tool does with an argv, so shield cannot read it; ''.

    kubectl: a kuberc file (aliases and default flags). terraform: provider dev_overrides (local
    binaries run as providers, even by `plan`). aws: custom service models (which can turn a
    `head-object` into a DELETE) and CLI plugins."""
    home = env.get("HOME") or "/"
    if tool == "kubectl" and env.get("KUBECTL_KUBERC", "").lower() != "false":
        path = env.get("KUBERC") or fs.join(home, ".kube", "kuberc")
        if fs.exists(path):
            return f"a kuberc file ({path}) can redefine kubectl commands and their defaults"
    if tool == "terraform":
        rc = (
            env.get("TF_CLI_CONFIG_FILE")
            or env.get("TERRAFORM_CONFIG")
            or fs.join(home, ".terraformrc")
        )
        try:
            text = fs.read_file(rc, 1 << 20)
        except (OSError, ValueError):
            text = b""
        if b"dev_overrides" in text:
            return (
                f"the terraform CLI config ({rc}) has dev_overrides: providers run from local paths"
            )
    if style == "aws":
        if fs.isdir(fs.join(home, ".aws", "models")):
            return "~/.aws/models holds custom service models that change what operations send"
        cfg = env.get("AWS_CONFIG_FILE") or fs.join(home, ".aws", "config")
        if _config_has_section(cfg, "plugins"):
            return f"the aws config ({cfg}) loads CLI plugins (code inside every aws call)"
    return ""


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
    note = tool_overrides(grammar.get("style", ""), grammar.get("tool", ""), env)
    if not note and aws and inv.verb and inv.verb[0].lower() in aws_aliases(env):
        note = f"{inv.verb[0]!r} is defined in the aws CLI alias file (~/.aws/cli/alias)"
    if note and inv.kind != UNKNOWN:
        inv = inv.as_unknown(note)
    major = aws_major(real) if aws else 1
    context = resolve_context(grammar, inv, env, cwd, aws_major=major)
    return decide(inv, compiled["rules"], context, agent, env)


def say(tool: str, message: str, hint: str = "") -> None:
    try:
        sys.stderr.write(format_error(tool, message, hint) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
        """Append an entry about this call (the log fills the standard fields left out)."""
        entry = {
            "agent": self.agent,
            "tool": self.tool,
            "argv": self.argv,
            "cwd": self.cwd,
            "context": self.context,
            **fields,
        }
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
    compiled = load_tool(tool, default_layers(call.home, cfg["defaults"]), compiled_dir(call.home))
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
    from shim.ask import hold_and_run

    return hold_and_run(call, d, real, depth_var, depth, compiled)


def not_found(call: Call) -> int:
    try:
        call.log({"event": "error", "detail": f"real {call.tool} not found on PATH"})
    except ShieldError:
        pass
    say(
        call.tool,
        f"the real {call.tool} was not found on PATH (after the shim dirs)",
        f"install {call.tool}, or pin it: shield install --real {call.tool}=/path/to/{call.tool}",
    )
    return EXIT_NOT_FOUND
