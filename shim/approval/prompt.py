"""The TTY prompt for a held call (cold, stdlib only).

Reads `/dev/tty` only, never stdin: the held command's stdin stays untouched (`kubectl apply -f -`
with a piped manifest). The panel shows the request and a short random code; only typing that
code approves, so a blind `y` or Enter cannot. `deny [reason]` (or `n`, `no`) denies. A wrong
answer re-asks; the third wrong answer denies the request. Enter alone just re-asks. Typing
Ctrl-D closes the prompt; the request stays held for `shield approve` from another terminal.

The prompt never blocks: `TtyPrompt.poll(timeout)` waits at most `timeout` on the terminal, so
the waiting code can alternate it with the other transports (the first decision wins);
`TtyTransport` is the prompt behind the transport interface.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import NamedTuple

from shim.approval.request import HeldRequest, random_string
from shim.approval.show import command_line, context_line, duration, extra_lines, printable
from shim.approval.transport import Delivery, Verdict
from shim.clock import parse_iso

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
CODE_LEN = 4
DENY_WORDS = ("deny", "n", "no")


class Answer(NamedTuple):
    kind: str  # "approve" | "deny" | "wrong" | "closed"
    text: str  # the deny reason, or what was typed when wrong
    tries_left: int


def new_code(n: int = CODE_LEN) -> str:
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


def render_panel(req: HeldRequest, code: str, now: float) -> str:
    """The panel shown on the terminal (plain ASCII frame). Pure."""
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


TTY_TRIES = 3


def tty_login() -> str:
    """The login name of whoever sits at the terminal, for `tty:<login>`."""
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "") or f"uid{os.getuid()}"


class TtyTransport:
    """The prompt as a transport: a human at this host's terminal types the code (or denies).

    Its verdicts are not signed: the operator turns it on only where the agent cannot answer
    a prompt itself (an agent can open a pseudo-terminal of its own)."""

    channel = "tty"

    def __init__(self, req: HeldRequest, log: Callable[[dict], object]) -> None:
        self.req = req
        self.log = log
        self.prompt: TtyPrompt | None = None

    @property
    def blocking(self) -> bool:
        return self.prompt is not None

    def publish(self) -> None:
        self.prompt = open_prompt(self.req, tries=TTY_TRIES)

    def poll(self, timeout: float) -> list[Delivery]:
        if self.prompt is None:
            return []
        answer = self.prompt.poll(timeout)
        if answer is None:
            return []
        if answer.kind == "closed":
            self.prompt.close()
            self.prompt = None
            return []
        who = "tty:" + tty_login()
        if answer.kind == "wrong":
            self.log(
                {
                    "event": "security",
                    "request": self.req.id,
                    "detail": f"wrong approval code typed at the TTY prompt ({answer.text[:64]!r})"
                    f"; {answer.tries_left} tries left",
                }
            )
            if answer.tries_left > 0:
                return []
            return [self._decided("denied", who, f"wrong code typed {TTY_TRIES} times")]
        if answer.kind == "approve":
            return [self._decided("approved", who, answer.text or "approved at the TTY")]
        return [self._decided("denied", who, answer.text or "denied at the TTY")]

    def _decided(self, outcome: str, who: str, reason: str) -> Delivery:
        return Delivery(self.channel, "tty", verdict=Verdict(outcome, who, reason, None, "tty"))

    def reject(self, delivery: Delivery, why: str) -> None:
        """An answer typed here did not decide the request (a quorum needs signatures)."""
        if self.prompt is not None:
            self.prompt.say(f"not counted: {why}")

    def close(self, verdict: Verdict) -> None:
        if self.prompt is None:
            return
        if verdict.channel == self.channel:
            self.prompt.say(f"{verdict.outcome} at this terminal")
        elif verdict.outcome in ("approved", "denied"):
            self.prompt.say(f"{verdict.outcome} by {verdict.approver} ({verdict.channel})")
        elif verdict.outcome == "expired":
            self.prompt.say(f"expired: {verdict.reason}")
        else:
            self.prompt.say("cancelled")
        self.prompt.close()
        self.prompt = None
