"""The agent's side of a race: an inotify watcher (ctypes, no dependency) that swaps files the
shim writes while it previews a held call, and tries to write the shim's sealed files.

A process of the agent's user can watch the agent's own state directory and open
`/proc/<shim pid>/fd/N`: both are what an agent that wants to change an approved call would do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
from collections.abc import Callable

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Watcher(threading.Thread):
    """Watches `root` and every directory created under it; calls `on_file(path, mask)` for
    each file written, closed, renamed in or chmod-ed there."""

    def __init__(self, root: str, on_file: Callable[[str, int], None]) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.on_file = on_file
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, str] = {}
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self._watch(root)

    def _watch(self, path: str) -> None:
        mask = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_MODIFY
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd >= 0:
            self.dirs[wd] = path
            for name in os.listdir(path):  # what appeared before the watch was in place
                child = os.path.join(path, name)
                if os.path.isdir(child) and not os.path.islink(child):
                    self._watch(child)
                elif os.path.isfile(child):
                    self.on_file(child, IN_CLOSE_WRITE)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.02)
                if not ready:
                    continue
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                self._events(data)
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def _events(self, data: bytes) -> None:
        off = 0
        while off < len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
            name = data[off + _EVENT.size : off + _EVENT.size + length].rstrip(b"\0")
            off += _EVENT.size + length
            base = self.dirs.get(wd)
            if base is None or not name:
                continue
            path = os.path.join(base, os.fsdecode(name))
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self._watch(path)
            elif os.path.isfile(path) and not os.path.islink(path):
                self.on_file(path, mask)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        os.close(self.fd)


def overwrite(path: str, data: bytes) -> bool:
    """Write `data` over a file the shim made read-only (its owner may chmod it back)."""
    try:
        os.chmod(path, 0o600)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, 0o400)
        return True
    except OSError:
        return False


def write_sealed_files(pid: int, data: bytes) -> list[str]:
    """Try to change every sealed file of process `pid` through /proc/PID/fd; what happened."""
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for n in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except OSError:
            continue
        if not target.startswith("/memfd:shield-"):
            continue
        try:
            fd = os.open(f"/proc/{pid}/fd/{n}", os.O_RDWR)
        except OSError as exc:
            out.append(f"{target}: open: {exc.strerror}")
            continue
        try:
            os.pwrite(fd, data, 0)
            out.append(f"{target}: WRITTEN")
        except OSError as exc:
            out.append(f"{target}: {exc.strerror}")
        finally:
            os.close(fd)
    return out
