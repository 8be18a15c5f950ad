"""Run an approved command as a child: same stdio and TTY, signals forwarded (cold).

An allowed call replaces the shim (`execve`); an approved one cannot, because its exit status
and duration must be logged after it ends. So the shim stays as a thin parent: the child
shares its stdin, stdout, stderr and terminal, and every signal the shim gets (INT, TERM, HUP,
QUIT, WINCH) is passed on, except those the terminal already delivers to the child's process
group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

FORWARD = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGWINCH")
TTY_SIGNALS = ("SIGINT", "SIGQUIT", "SIGWINCH")


def _terminal_delivers(sig_name: str) -> bool:
    """True when the terminal already sends this signal to the child (same foreground group)."""
    if sig_name not in TTY_SIGNALS:
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def run_child(
    real: str,
    argv: list[str],
    env: dict[str, str],
    stdin_file: str | None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[int, int]:
    """Run `real argv` (stdin from `stdin_file` when given: a sealed /proc/self/fd/N path,
    opened afresh at offset 0) to its end, with the sealed descriptors `pass_fds` inherited
    at the same numbers: (exit status, 128+n for a death by signal n; duration in ms)."""
    stdin = os.open(stdin_file, os.O_RDONLY | os.O_CLOEXEC) if stdin_file else None
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [real] + argv, env=env, executable=real, stdin=stdin, pass_fds=pass_fds
        )
    finally:
        if stdin is not None:
            os.close(stdin)

    def forward(signum: int, _frame: object) -> None:
        if _terminal_delivers(signal.Signals(signum).name):
            return
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    handlers = {}
    for name in FORWARD:
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                handlers[sig] = signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        for sig, old in handlers.items():
            try:
                signal.signal(sig, old)
            except (OSError, ValueError):
                pass
    status = 128 - rc if rc < 0 else rc
    return status, int((time.monotonic() - start) * 1000)
