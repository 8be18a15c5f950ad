"""One shim call: parse -> decide -> exec | hold | refuse (HOT).

Imports only the standard library and the small runtime modules; the hold path (ask) imports
shim.hold lazily. Nothing here reads stdin. Every configuration value that could relax the
policy (home, rule layers, trust store, log) comes from the shim file itself (`cfg`), never from
the environment; the environment may only shorten the wait (`SHIELD_HOLD_TIMEOUT`).
"""

import sys

from shim import audit, fs, ini
from shim.argv import UNKNOWN, parse_argv
from shim.compiled import load_tool
from shim.context import UNREADABLE, expand_path, home_of, read_text, resolve_context
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


def _path(alternatives: tuple[str, ...], env: dict[str, str]) -> str | None:
    """The first of `$VAR` (when set), `~/path` (under $HOME) or a literal path."""
    for alt in alternatives:
        if alt.startswith("$"):
            if env.get(alt[1:]):
                return env[alt[1:]]
        elif alt.startswith("~/"):
            return fs.join(home_of(env), alt[2:])
        else:
            return alt
    return None


def override_note(grammar: dict, env: dict[str, str]) -> str:
    """Why a file in the grammar's `overrides` changes what the real tool does with an argv
    (a kuberc, terraform dev_overrides, aws models or plugins), so no argv can be trusted; ''."""
    for o in grammar.get("overrides") or ():
        if any(env.get(k, "").lower() == v for k, v in o["unless_env"].items()):
            continue
        path = _path(o["path"], env)
        if path is None:
            continue
        for one in _expand(path, env):
            if _holds(one, o["when"]):
                return o["reason"].replace("{path}", one)
    return ""


def _expand(path: str, env: dict[str, str]) -> list[str]:
    """`path`, or, when its last part is `*SUFFIX`, the files in that directory ending so."""
    if path.startswith("~") or "$" in path:
        # a path from the environment as botocore opens it (expandvars, expanduser), and the
        # literal one too: whichever the tool reads is checked
        wide = expand_path(path, env)
        return [path, *_expand(wide, env)] if wide != path else [path]
    head, _, last = path.rpartition(fs.SEP)
    if not last.startswith("*"):
        return [path]
    try:
        names = fs.listdir(head or fs.SEP)
    except (OSError, ValueError):
        return []
    return [fs.join(head, n) for n in sorted(names) if n.endswith(last[1:])]


def _holds(path: str, when: tuple[str, str]) -> bool:
    test, arg = when
    if test == "exists":
        return fs.exists(path)
    if test == "dir":
        return fs.isdir(path)
    text = read_text(path)
    if text is None:
        return False
    if text == UNREADABLE:
        return True  # there, but shield cannot read it the way the tool will
    if test == "contains":  # also when spelled with escapes (HCL and JSON allow them)
        return arg in text or ("\\" in text and arg in _unescape(text))
    # section: read as configparser reads it; a file it would refuse may hide one, so it counts
    sections = ini.parse(text)
    return sections is None or bool(ini.find(sections, arg))


def _unescape(text: str) -> str:
    """Decode the numeric escapes of Go strings (HCL) and JSON: `\\xHH`, `\\NNN` (octal),
    `\\uXXXX`, `\\UXXXXXXXX` (without `re` or `codecs`)."""
    out: list[str] = []
    i = 0
    while True:
        j = text.find("\\", i)
        if j < 0 or j + 1 >= len(text):
            out.append(text[i:])
            return "".join(out)
        kind = text[j + 1]
        if kind in "01234567":
            width, start, base = 3, j + 1, 8
        else:
            width, start, base = {"x": 2, "u": 4, "U": 8}.get(kind, 0), j + 2, 16
        digits = text[start : start + width]
        try:
            ch = chr(int(digits, base)) if width and len(digits) == width else None
        except ValueError:
            ch = None
        if ch is None:
            out.append(text[i : j + 2])
            i = j + 2
        else:
            out.append(text[i:j] + ch)
            i = start + width


def alias_note(grammar: dict, env: dict[str, str], word: str) -> str:
    """Why `word` is not the command it looks like: the tool's alias file defines it (read as
    configparser reads it, `[DEFAULT]` keys included), or the file is one the tool would
    refuse to read; ''."""
    spec = grammar.get("alias_file")
    path = _path(spec["path"], env) if spec else None
    text = read_text(path) if path else None
    if spec is None or text is None:
        return ""
    sections = ini.parse(text) if text != UNREADABLE else None
    if sections is None:
        return f"the alias file {path} cannot be read the way the tool reads it"
    if any(word.lower() in body for body in ini.find(sections, spec["section"])):
        return f"{word!r} is defined in the alias file {path}"
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
    note = override_note(grammar, env) or (
        alias_note(grammar, env, inv.verb[0]) if inv.verb else ""
    )
    if note and inv.kind != UNKNOWN:
        inv = inv.as_unknown(note)
    major = aws_major(real) if grammar.get("style") == "aws" else 1
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
