"""The state of one shim call: who, what, where; its log entries and its messages (HOT)."""

import sys

from shim.errors import EXIT_NOT_FOUND, ShieldError, format_error
from shim.home import log_dir
from shim.log import append


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
        return append.append_entry(log_dir(self.home), entry)


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
