"""The few file and process calls the hot path needs, straight from `posix` (HOT).

`import os` costs about 1.5 ms here (it pulls in `_collections_abc`, `stat` and `posixpath`),
which is a sixth of the whole Python start-up that a shim is measured against. `posix` is
built in and already loaded, so the hot modules use this instead. Cold code uses `os`.
"""

import posix
from posix import (  # noqa: F401 - re-exported for the hot modules
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOCTTY,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    X_OK,
    access,
    close,
    execve,
    fchmod,
    fdatasync,
    fstat,
    fsync,
    ftruncate,
    getcwd,
    getpid,
    listdir,
    lseek,
    lstat,
    mkdir,
    open,
    pread,
    pwrite,
    read,
    replace,
    stat,
    unlink,
    urandom,
    write,
)

SEP = "/"
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000


def environ() -> dict[str, str]:
    """The process environment as str (undecodable bytes kept as surrogates, like os.environ)."""
    return {
        k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
        for k, v in posix.environ.items()
    }


def join(base: str, *parts: str) -> str:
    path = base
    for part in parts:
        if part.startswith(SEP):
            path = part
        elif not path or path.endswith(SEP):
            path += part
        else:
            path += SEP + part
    return path


def isabs(path: str) -> bool:
    return path.startswith(SEP)


def _mode(path: str) -> int:
    try:
        return stat(path).st_mode
    except (OSError, ValueError):
        return 0


def isfile(path: str) -> bool:
    return (_mode(path) & _S_IFMT) == _S_IFREG


def isdir(path: str) -> bool:
    return (_mode(path) & _S_IFMT) == _S_IFDIR


def exists(path: str) -> bool:
    try:
        stat(path)
    except (OSError, ValueError):
        return False
    return True


def dirname(path: str) -> str:
    i = path.rfind(SEP) + 1
    head = path[:i]
    if head and head != SEP * len(head):
        head = head.rstrip(SEP)
    return head


def normpath(path: str) -> str:
    """posixpath.normpath for str paths."""
    if not path:
        return "."
    initial = (
        2
        if path.startswith("//") and not path.startswith("///")
        else (1 if path.startswith(SEP) else 0)
    )
    out: list[str] = []
    for comp in path.split(SEP):
        if comp in ("", "."):
            continue
        if comp != ".." or (not initial and not out) or (out and out[-1] == ".."):
            out.append(comp)
        elif out:
            out.pop()
    result = SEP * initial + SEP.join(out)
    return result or "."


def read_file(path: str, limit: int = 1 << 20) -> bytes:
    """Up to `limit` bytes of a file (raises OSError)."""
    fd = open(path, O_RDONLY | O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        got = 0
        while got < limit:
            chunk = read(fd, min(65536, limit - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        close(fd)


def makedirs(path: str, mode: int = 0o777) -> None:
    """mkdir -p (an existing directory is fine)."""
    if isdir(path):
        return
    parent = dirname(path)
    if parent and parent != path and not isdir(parent):
        makedirs(parent, mode)
    try:
        mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
