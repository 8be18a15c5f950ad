"""Is the log's filesystem fit for it? Network filesystems and locking (cold, for doctor)."""

from __future__ import annotations

import fcntl
import os

from shim.log.append import LOG_NAME

# --- environment checks (for `shield doctor`) ------------------------------------------------

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "glusterfs",
        "ceph",
        "lustre",
        "fuse.s3fs",
    }
)


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (longest matching mount point), or None."""
    target = os.path.realpath(path)
    best, kind = "", None
    try:
        with open(mounts) as fh:
            rows = [line.split() for line in fh]
    except OSError:
        return None
    for row in rows:
        if len(row) < 3:
            continue
        point = row[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, row[2]
    return kind


def is_network_filesystem(path: str) -> bool:
    """True when the log's directory is on NFS, SMB, sshfs and the like (locking is unreliable)."""
    return (filesystem_type(path) or "") in NETWORK_FILESYSTEMS


def lock_works(log_dir: str) -> bool:
    """Do two processes exclude each other with `flock` on this directory's log? (A child tries
    to take the lock the caller holds; it must fail.)"""
    path = os.path.join(log_dir, LOG_NAME)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                other = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
