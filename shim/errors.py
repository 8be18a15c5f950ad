"""One error hierarchy; each error knows its exit codes (hot: stdlib only)."""

# Exit codes of a shim (SPEC: "Exit codes of a shim").
EXIT_DENIED = 126
EXIT_TIMEOUT = 124
EXIT_SHIELD_FAILED = 125
EXIT_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

# Exit codes of the `shield` CLI.
CLI_OK = 0
CLI_ERROR = 1
CLI_USAGE = 2
CLI_UNEXPECTED = 3


class ShieldError(Exception):
    """An expected failure: one line for the user, a hint, and exit codes."""

    cli_code = CLI_ERROR
    shim_code = EXIT_SHIELD_FAILED

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ShieldError):
    """A command was called wrongly (exit code 2)."""

    cli_code = CLI_USAGE


class RulesError(ShieldError):
    """A rule layer is invalid; the message names file and line."""

    def __init__(self, message: str, path: str = "", line: int = 0, hint: str = "") -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message, hint or "fix the file, then run: shield rules lint")
        self.path = path
        self.line = line


class LogError(ShieldError):
    """The log could not be written or read."""


class LogDamage(ShieldError):
    """The log failed verification."""


class KeyError_(ShieldError):
    """Approver keys or the trust store are missing or invalid."""


class SpoolError(ShieldError):
    """A held request or decision could not be read or written."""


class NotFoundError(ShieldError):
    """The real binary was not found."""

    shim_code = EXIT_NOT_FOUND


class LoopError(ShieldError):
    """A shim would call itself."""


def format_error(tool: str, message: str, hint: str = "") -> str:
    """The one message shape: `shield: <tool>: <what>` and `hint: <next step>`."""
    head = f"shield: {tool}: {message}" if tool else f"shield: {message}"
    return head + (f"\nhint: {hint}" if hint else "")
