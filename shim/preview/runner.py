"""Running preview commands: read-only by the shim's own classifier, one deadline, capped output.

Every preview command runs the real binary (never the shim) with the call's own environment,
cwd and target flags, stdin from /dev/null, in its own process group (killed whole at the end),
and only after the shim's classifier has said that the exact argv is allowed for this agent.
A kind fills a `Preview` and raises `Failed` with a message for the approver.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from shim.preview.failure import clip_output, describe

MAX_LINES = 40  # detail lines per preview
MAX_LINE_CHARS = 200
MAX_STDOUT = 16 << 20  # a preview command's stdout; more is an error (the command is killed)
MAX_STDERR = 64 << 10  # kept for the error message; the rest is read and dropped
EXIT_GRACE_S = 0.5  # after the command exits, how long its pipes may stay open (grandchildren)
PREVIEW_ENV = "_SHIELD_PREVIEW"

ReadOnly = Callable[[list[str]], bool]


class Failed(Exception):
    """The preview could not be completed; `str(exc)` is the error shown to the approver (one
    line), `output` the failing command's raw output, kept for `shield show`."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class Preview:
    """What a kind fills in while it runs; `prepare` turns it into the returned dict."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.summary = ""
        self.lines: list[str] = []
        self.counts: dict[str, int] = {}
        self.argvs: list[list[str]] = []
        self.run_argv: list[str] | None = None
        self.stdin_file: str | None = None  # /proc/self/fd/N of the sealed stdin
        self.snapshots: dict[str, str] = {}  # copies on disk (directories): {name: sha256}
        self.inputs: list[dict] = []
        self.created: list[str] = []  # empty files made outside the workdir (removed if unused)
        self.stamps: dict[str, str] = {}  # {snapshot name: inode and ctime} (not in the request)
        self.write_back: dict[str, str] | None = None  # terraform: {from: copy, to: real dir}
        self.run_env: dict[str, str] = {}  # variables the approved run gets (terraform)
        self.diff = ""  # the preview's diff against the live objects (kubectl diff), capped
        self.output = ""  # a failed preview command's raw output, capped

    def line(self, text: str) -> None:
        self.lines.append(text)


def clip_lines(lines: list[str]) -> list[str]:
    out = [ln if len(ln) <= MAX_LINE_CHARS else ln[: MAX_LINE_CHARS - 3] + "..." for ln in lines]
    if len(out) > MAX_LINES:
        extra = len(out) - (MAX_LINES - 1)
        out = out[: MAX_LINES - 1] + [f"... and {extra} more"]
    return out


# --------------------------------------------------------------------------- running commands


class Runner:
    """Runs preview commands: classifier first, the real binary, one deadline, capped output."""

    def __init__(
        self,
        pv: Preview,
        tool: str,
        real: str,
        env: dict[str, str],
        cwd: str,
        deadline: float,
        timeout_s: float,
        is_read_only: ReadOnly,
        pin: list[str] | None = None,
        sealed: Any = None,
    ) -> None:
        self.pv = pv
        self.pin = list(pin or ())  # the pinned target's flags, put before every preview argv
        self.sealed = sealed  # the sealed files (/proc/self/fd/N) the commands may read
        self.extra_fds: tuple[int, ...] = ()  # and an unsealed one being written (plan -out)
        self.tool = tool
        self.real = real
        self.env = env
        self.cwd = cwd
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.is_read_only = is_read_only

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (*(self.sealed.fds if self.sealed is not None else ()), *self.extra_fds)

    def allowed(self, args: list[str]) -> bool:
        try:
            return bool(self.is_read_only(list(args)))
        except Exception:  # a classifier failure is a refusal
            return False

    def run(self, args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[int, str, str]:
        """Run `tool args` (after the pinned target's flags) if the classifier allows it;
        (exit code, stdout, stderr). Raises Failed when refused, timed out, too large, or the
        exit code is not in `ok`."""
        args = [*self.pin, *args]
        self.pv.argvs.append([self.tool, *args])
        if not self.allowed(args):
            raise Failed(
                f"not read-only: {shlex.join([self.tool, *args])} (the shim would not allow it)"
            )
        code, out, err = run_capped(
            [self.real, *args], self.env, self.cwd, self.deadline, self.timeout_s, self.pass_fds
        )
        if code not in ok:
            verb = args[len(self.pin)] if len(args) > len(self.pin) else ""
            raise Failed(describe(self.tool, verb, code, err, out), clip_output(err, out))
        return code, out, err

    def try_run(self, args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[int, str, str] | None:
        """Like run, for an optional step: None (and a note) when it is refused; other
        failures still raise."""
        if not self.allowed([*self.pin, *args]):
            self.pv.argvs.append([self.tool, *self.pin, *args])
            self.pv.line(f"(skipped, not allowed for this agent: {shlex.join([self.tool, *args])})")
            return None
        return self.run(args, ok)


def run_capped(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    deadline: float,
    timeout_s: float,
    pass_fds: tuple[int, ...] = (),
) -> tuple[int, str, str]:
    """Run argv (stdin /dev/null, own process group) until `deadline`; (code, stdout, stderr).
    Raises Failed on a timeout, on too much output, or when it cannot start."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise Failed(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    out_fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    problem = ""
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                problem = f"timed out after {secs(timeout_s)}"
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                break  # something it started still holds the pipes: stop reading
            wait = min(deadline - now, 0.1 if exited_at is None else EXIT_GRACE_S)
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                buf = bufs[fd]
                if fd == out_fd:
                    buf += chunk
                    if len(buf) > MAX_STDOUT:
                        problem = f"output larger than {MAX_STDOUT} bytes"
                        break
                elif len(buf) < MAX_STDERR:
                    buf += chunk[: MAX_STDERR - len(buf)]
            if problem:
                break
        if not problem:
            rest = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(rest, 0.0))
            except subprocess.TimeoutExpired:
                problem = f"timed out after {secs(timeout_s)}"
    finally:
        sel.close()
        kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
    if problem:
        raise Failed(problem)
    code = proc.returncode
    out = bytes(bufs.pop(out_fd)).decode("utf-8", "replace")
    err = b"".join(bytes(b) for b in bufs.values()).decode("utf-8", "replace")
    return (128 - code if code < 0 else code), out, err


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the preview's whole process group (it has its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def secs(timeout_s: float) -> str:
    return f"{int(timeout_s)}s" if timeout_s >= 1 else f"{int(timeout_s * 1000)}ms"
