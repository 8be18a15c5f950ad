"""The used store: every decision the shim accepted, so that none is accepted twice (cold).

One line per decision (the SHA-256 of its signed payload), appended under an exclusive flock
and fsynced before the decision takes effect.
"""

from __future__ import annotations

import os

from shim.errors import SpoolError


def load_used(path: str) -> set[str]:
    """Hashes of decisions already accepted (one per line)."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return {line.strip() for line in fh if line.strip()}
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise SpoolError(f"cannot read the used-decision store {path}: {exc.strerror}") from exc


def commit_used(path: str, digest: str) -> bool:
    """Record `digest` under an exclusive flock; False when it was already there."""
    import fcntl

    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise SpoolError(f"cannot open the used-decision store {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        chunks = []
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        seen = b"".join(chunks).decode("ascii", "replace").split()
        if digest in seen:
            return False
        os.write(fd, (digest + "\n").encode("ascii"))
        os.fsync(fd)
        return True
    except OSError as exc:
        raise SpoolError(f"cannot update the used-decision store {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


# --- waiting ---------------------------------------------------------------------------------
