"""The TTY prompt for a held call (hot-ish: stdlib only).

Reads `/dev/tty` only, never stdin: the held command's stdin stays untouched (`kubectl apply -f -`
with a piped manifest). The panel shows the request and a short random code; only typing that
code approves, so a blind `y` or Enter cannot. `deny [reason]` (or `n`, `no`) denies. A wrong
answer re-asks; the third wrong answer denies the request. Enter alone just re-asks. Typing
Ctrl-D closes the prompt; the request stays held for `shield approve` from another terminal.

The prompt never blocks: `TtyPrompt.poll(timeout)` waits at most `timeout` on the terminal, so
the caller can alternate it with polling the spool (the first decision wins).
"""

from __future__ import annotations

import os
import select
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from shim.hold import HeldRequest

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_LEN = 4
DENY_WORDS = ("deny", "n", "no")
MAX_PREVIEW_LINES = 30


class Answer(NamedTuple):
    kind: str  # "approve" | "deny" | "wrong" | "closed"
    text: str  # the deny reason, or what was typed when wrong
    tries_left: int


def new_code(n: int = CODE_LEN) -> str:
    from shim.hold import random_string

    return random_string(n, CODE_ALPHABET)


def judge(line: str, code: str) -> str:
    """Classify one typed line: "approve", "deny", "wrong" or "empty". Pure."""
    text = line.strip().lower()
    if not text:
        return "empty"
    if text == code.lower():
        return "approve"
    word = text.split(None, 1)[0]
    if word in DENY_WORDS:
        return "deny"
    return "wrong"


def printable(text: str) -> str:
    """`text` with control, format and other invisible characters escaped (`\\x1b`, `\\u202e`).

    Everything the agent controls goes through this before a human sees it, so escape
    sequences and bidi overrides cannot disguise a command as another.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
            continue
        o = ord(ch)
        out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out)


def command_line(argv: list[str] | tuple[str, ...]) -> str:
    """The argv as one shell-quoted, printable line."""
    import shlex

    return printable(shlex.join(argv))


def context_line(context: dict[str, str]) -> str:
    items = sorted((k, v) for k, v in context.items() if k != "cwd")
    return printable(" ".join(f"{k}={v}" for k, v in items)) or "(none)"


def duration(seconds: float) -> str:
    """`45s`, `9m05s`, `1h02m`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def extra_lines(extra: dict[str, object]) -> list[tuple[str, str]]:
    """(label, text) rows for preview/risk and other extra fields, each line printable."""
    from shim import canon

    rows: list[tuple[str, str]] = []
    first = {"risk": 0, "preview": 1}
    for key in sorted(extra, key=lambda k: (first.get(k, 2), k)):
        value = extra[key]
        if value is None:
            continue
        if key == "preview" and isinstance(value, dict):
            from shim.preview import render_lines

            lines = render_lines(value)
        elif key == "run_argv" and isinstance(value, list):
            lines = [command_line([str(a) for a in value])]
        elif key == "snapshots" and isinstance(value, dict):
            lines = [f"{digest[:16]}  {name}" for name, digest in sorted(value.items())]
        else:
            text = value if isinstance(value, str) else canon.encode(value)
            lines = text.splitlines() or [""]
        if len(lines) > MAX_PREVIEW_LINES:
            lines = lines[:MAX_PREVIEW_LINES] + [f"... ({len(lines) - MAX_PREVIEW_LINES} more)"]
        for i, line in enumerate(lines):
            rows.append((printable(key) if i == 0 else "", printable(line)))
    return rows


def render_panel(req: HeldRequest, code: str, now: float) -> str:
    """The panel shown on the terminal (plain ASCII frame). Pure."""
    from shim.hold import parse_iso

    left = parse_iso(req.expires) - now
    rows = [
        ("request", f"{req.id}   expires in {duration(left)} ({req.expires})"),
        ("agent", printable(req.agent)),
        ("command", command_line([req.tool, *req.argv])),
        ("rule", printable(req.rule or "(no rule matched)")),
        ("why", printable(req.reason)),
        ("context", context_line(req.context)),
        ("cwd", printable(req.cwd)),
        *extra_lines(req.extra),
    ]
    title = " shield: a call is held for your approval "
    out = ["+--" + title + "-" * (68 - len(title))]
    out += [f"| {label:<8} {text}" for label, text in rows]
    out.append("+" + "-" * 70)
    out.append(f"  To approve, type the code:  {code}")
    out.append("  To deny, type:  deny [reason]")
    out.append(f"  (or from another terminal: shield approve {req.id} / shield deny {req.id})")
    return "\r\n".join(out) + "\r\n"


class TtyPrompt:
    """An open prompt on the terminal: `poll` for answers, `say` a result, `close`."""

    def __init__(self, fd: int, req: HeldRequest, code: str, tries: int = 3) -> None:
        self.fd = fd
        self.req = req
        self.code = code
        self.tries = tries
        self.buf = b""

    def write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            pass

    def show(self) -> None:
        try:
            import termios

            termios.tcflush(self.fd, termios.TCIFLUSH)  # type-ahead cannot answer this prompt
        except (ImportError, OSError):
            pass
        self.write("\r\n" + render_panel(self.req, self.code, time.time()))
        self.ask()

    def ask(self) -> None:
        self.write("code> ")

    def say(self, text: str) -> None:
        self.write(f"\r\nshield: {text}\r\n")

    def take_line(self) -> str | None:
        cut = [i for i in (self.buf.find(b"\n"), self.buf.find(b"\r")) if i >= 0]
        if not cut:
            return None
        end = min(cut)
        crlf = self.buf[end : end + 2] == b"\r\n"
        line, self.buf = self.buf[:end], self.buf[end + (2 if crlf else 1) :]
        return line.decode("utf-8", "replace")

    def poll(self, timeout: float) -> Answer | None:
        """The next answer typed, waiting at most `timeout` seconds for one."""
        line = self.take_line()
        if line is None:
            try:
                ready, _, _ = select.select([self.fd], [], [], timeout)
            except (OSError, ValueError):
                return Answer("closed", "", self.tries)
            if not ready:
                return None
            try:
                data = os.read(self.fd, 1024)
            except OSError:
                return Answer("closed", "", self.tries)
            if not data:
                self.say("prompt closed; the request stays held for: shield approve " + self.req.id)
                return Answer("closed", "", self.tries)
            self.buf += data
            line = self.take_line()
            if line is None:
                return None
        kind = judge(line, self.code)
        if kind == "empty":
            self.ask()
            return None
        if kind == "approve":
            return Answer("approve", "", self.tries)
        if kind == "deny":
            parts = line.strip().split(None, 1)
            return Answer("deny", parts[1] if len(parts) > 1 else "", self.tries)
        self.tries -= 1
        if self.tries > 0:
            self.write(f"wrong code: not approved ({self.tries} tries left)\r\n")
            self.ask()
        return Answer("wrong", line.strip(), self.tries)

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def open_prompt(req: HeldRequest, tries: int = 3, code: str | None = None) -> TtyPrompt | None:
    """Show the prompt on /dev/tty; None when there is no terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    prompt = TtyPrompt(fd, req, code or new_code(), tries)
    prompt.show()
    return prompt
