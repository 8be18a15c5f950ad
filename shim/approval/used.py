"""The used store: every decision the shim accepted, so that none is accepted twice (cold).

One line per decision (the SHA-256 of its signed payload), appended under an exclusive flock
and fsynced before the decision takes effect. Beside it, the last WebAuthn sign count seen per
passkey (`passkey-counts`: one `FINGERPRINT COUNT` line each), so that an assertion whose
count does not go up (a cloned authenticator) is refused.
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


def load_sign_counts(path: str) -> dict[str, int]:
    """The last sign count seen per passkey fingerprint."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SpoolError(f"cannot read the passkey sign counts {path}: {exc.strerror}") from exc
    return _parse_counts(text)


def _parse_counts(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def commit_sign_count(path: str, fingerprint: str, count: int) -> bool:
    """Record `count` for passkey `fingerprint` under an exclusive flock; False when a count as
    high was recorded already (a cloned authenticator, or an assertion that arrives after a
    newer one of the same passkey was accepted). An authenticator that keeps no count signs 0:
    always recorded, nothing to compare."""
    import fcntl

    try:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SpoolError(f"cannot open the passkey sign counts {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="ascii", errors="replace") as fh:
            counts = _parse_counts(fh.read())
            last = counts.get(fingerprint, 0)
            if (count or last) and count <= last:
                return False
            counts[fingerprint] = count
            fh.seek(0)
            fh.truncate()
            fh.write("".join(f"{fp} {n}\n" for fp, n in sorted(counts.items())))
            fh.flush()
            os.fsync(fh.fileno())
        return True
    except OSError as exc:
        raise SpoolError(f"cannot update the passkey sign counts {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


# --- waiting ---------------------------------------------------------------------------------
