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


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (a write may take less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[write(fd, view) :]


CONFIG_LIMIT = 16 << 20
_S_IFCHR = 0o020000


def _is_dev_null(st: posix.stat_result) -> bool:
    if (st.st_mode & _S_IFMT) != _S_IFCHR:
        return False
    try:
        null = stat("/dev/null")
    except OSError:
        return False
    return (null.st_mode & _S_IFMT) == _S_IFCHR and null.st_rdev == st.st_rdev


def read_config(path: str, limit: int = CONFIG_LIMIT) -> bytes:
    """The whole of a config file the real tool will read. FileNotFoundError when it is not
    there; ValueError when it is there but cannot be judged: not a regular file (a FIFO can
    hand the tool other bytes than it hands shield), or larger than `limit` (a check that read
    only the start would miss what the tool reads further on)."""
    fd = open(path, O_RDONLY | O_CLOEXEC | posix.O_NONBLOCK)
    try:
        st = fstat(fd)
        if (st.st_mode & _S_IFMT) != _S_IFREG:
            if _is_dev_null(st):
                return b""  # TF_CLI_CONFIG_FILE=/dev/null: "no config", read the same by all
            raise ValueError(f"{path} is not a regular file")
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        close(fd)


def read_plain(path: str, limit: int, dir_fd: int | None = None) -> bytes:
    """A whole file the other side can write (a spool file, a checkpoint copy): a regular file
    (no symlink is followed, no FIFO or device is read) of at most `limit` bytes, `path`
    relative to `dir_fd` when given. OSError when it cannot be opened; ValueError otherwise."""
    flags = O_RDONLY | O_CLOEXEC | posix.O_NONBLOCK | posix.O_NOFOLLOW
    fd = open(path, flags, dir_fd=dir_fd)
    try:
        if (fstat(fd).st_mode & _S_IFMT) != _S_IFREG:
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = read(fd, limit + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        close(fd)
    if got > limit:
        raise ValueError(f"larger than {limit} bytes")
    return b"".join(chunks)


def can_write(path: str) -> bool:
    """Could this user create or change `path` (itself when it exists, else the nearest
    directory above it that exists)?"""
    probe = path
    while not exists(probe):
        parent = dirname(probe)
        if parent == probe:
            return False
        probe = parent
    return access(probe, posix.W_OK)


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
