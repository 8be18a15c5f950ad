"""Sealed in-memory files: bytes read once, hashed once, and unchangeable after (Linux memfd).

A held call's single-file inputs (a saved plan, `-f` manifests, piped stdin, values files, the
kubeconfig and aws config it resolved) are copied into a `memfd_create` file and sealed with
F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL: from then on no process, the agent's
included, can change those bytes through any descriptor or path. The preview commands and the
approved run open it as `/proc/self/fd/N` (the same number in the shim and in each child, which
get it through `pass_fds`), so what was previewed, hashed and signed is what the tool reads.
"""

from __future__ import annotations

import fcntl
import hashlib
import os

SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL


class SealError(Exception):
    """A sealed file could not be made (no memfd on this system, out of memory)."""


class Sealed:
    """One sealed in-memory file: its descriptor, the path a child opens, its hash and size."""

    def __init__(self, fd: int, label: str, sha256: str, size: int) -> None:
        self.fd = fd
        self.label = label  # where the bytes came from (for the approver), never opened again
        self.sha256 = sha256
        self.size = size

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def read(self) -> bytes:
        """The sealed bytes (a fresh read from offset 0; the file cannot have changed)."""
        return os.pread(self.fd, self.size, 0) if self.size else b""

    def intact(self) -> bool:
        """Still sealed, still this size, still these bytes (re-hashed)."""
        try:
            if fcntl.fcntl(self.fd, fcntl.F_GET_SEALS) & SEALS != SEALS:
                return False
            if os.fstat(self.fd).st_size != self.size:
                return False
            return hashlib.sha256(self.read()).hexdigest() == self.sha256
        except OSError:
            return False


def _memfd(label: str) -> int:
    make = getattr(os, "memfd_create", None)
    if make is None:
        raise SealError("sealed snapshots need Linux memfd_create")
    try:
        # no MFD_CLOEXEC: the children that read it inherit it through pass_fds only
        # (subprocess closes every other descriptor), and the shim never execs over itself here
        fd = make("shield-" + label[-40:].replace("/", "_"), os.MFD_ALLOW_SEALING)
    except OSError as exc:
        raise SealError(f"cannot create a sealed file: {exc.strerror}") from exc
    os.set_inheritable(fd, False)
    return fd


def seal_bytes(label: str, data: bytes) -> Sealed:
    """A sealed file holding exactly `data`."""
    fd = _memfd(label)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return seal_fd(fd, label)
    except BaseException:
        os.close(fd)
        raise


def open_unsealed(label: str) -> int:
    """An empty memfd a child may write through /proc/self/fd/N (`terraform plan -out=`);
    seal it with `seal_fd` once the child is gone, and derive everything from it after that."""
    return _memfd(label)


def seal_fd(fd: int, label: str) -> Sealed:
    """Seal the memfd `fd` as it is now; its hash is taken after the seals are on."""
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    except OSError as exc:
        raise SealError(f"cannot seal {label}: {exc.strerror}") from exc
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    return Sealed(fd, label, hashlib.sha256(data).hexdigest(), size)


class SealedSet:
    """Every sealed file of one held call, closed together when the call ends."""

    def __init__(self) -> None:
        self.files: list[Sealed] = []

    def add(self, item: Sealed) -> Sealed:
        self.files.append(item)
        return item

    def seal(self, label: str, data: bytes) -> Sealed:
        return self.add(seal_bytes(label, data))

    @property
    def fds(self) -> tuple[int, ...]:
        return tuple(s.fd for s in self.files)

    def digests(self) -> dict[str, dict]:
        """{path: {source, sha256, bytes}} for the request (the digest covers it)."""
        return {
            s.path: {"source": s.label, "sha256": s.sha256, "bytes": s.size} for s in self.files
        }

    def broken(self) -> list[str]:
        """Labels of sealed files that are no longer intact (refuse the run if any)."""
        return [f"{s.label} ({s.path})" for s in self.files if not s.intact()]

    def drop_after(self, n: int, keep: str | None = None) -> None:
        """Close the files sealed after the first `n` (but the one at path `keep`)."""
        for s in self.files[n:]:
            if s.path != keep:
                os.close(s.fd)
        self.files = self.files[:n] + [s for s in self.files[n:] if s.path == keep]

    def close(self) -> None:
        for s in self.files:
            try:
                os.close(s.fd)
            except OSError:
                pass
        self.files = []
