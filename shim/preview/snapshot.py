"""Snapshots: the files a held call reads, copied once, hashed as written, checked before the run.

A snapshot lives in the request's private workdir; its name and SHA-256 go into the request's
digest, so the approver's signature covers them, and `check_snapshots` refuses an approved run
when any of them changed or anything was added.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import time

from shim.preview.runner import Failed, Preview
from shim.preview.sealed import Sealed, SealedSet, SealError

MAX_SNAPSHOT = 64 << 20  # bytes copied per request (files, directories and stdin together)
MAX_SNAPSHOT_FILES = 2000
LINK = "link:"  # a bound symlink's entry: "link:" + its target (terraform's real state files)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def drop_unbound(workdir: str, keep: dict[str, str]) -> None:
    """Remove every top-level entry of the workdir but the names in `keep` (the copies a
    failed preview made before it failed), so that the check before an approved run sees only
    bound files."""
    import shutil

    try:
        names = os.listdir(workdir)
    except OSError:
        return
    for name in names:
        if name in keep:
            continue
        path = os.path.join(workdir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def stamp(path: str) -> str:
    """A file's identity and last change: inode and ctime. Any write, chmod, rename or
    replacement changes it, and no process can set a ctime back (only the clock moves it)."""
    st = os.lstat(path)
    return f"{st.st_ino}:{st.st_ctime_ns}"


def check_snapshots(
    workdir: str, snapshots: dict[str, str], stamps: dict[str, str] | None = None
) -> list[str]:
    """Names (relative to workdir) whose file is missing or no longer has the bound hash, and
    anything in workdir that is not a bound file (a file added to a snapshotted directory
    would run with the approval). With `stamps` ({name: stamp}), also every file touched since
    it was written, even if its bytes were put back (a swap during the preview, restored
    after it). Call it just before running an approved `run_argv`; refuse unless it is []."""
    bad: list[str] = []
    for root, dirs, names in os.walk(workdir):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, n), workdir)
            if rel not in snapshots:
                bad.append(rel)
    for name, digest in sorted(snapshots.items()):
        path = os.path.join(workdir, name)
        if os.path.isabs(name) or ".." in name.split("/"):
            bad.append(name)
            continue
        try:
            if digest.startswith(LINK):
                if not os.path.islink(path) or LINK + os.readlink(path) != digest:
                    bad.append(name)
            elif (
                os.path.islink(path)
                or sha256_file(path) != digest
                or stamps is not None
                and stamps.get(name) != stamp(path)
            ):
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad


MAX_INPUT_TEXT = 256 << 10  # bytes of input text carried in the request for the approver


class Snapper:
    """Snapshots what a held call reads: a single file into a sealed in-memory file (read once,
    hashed once, never read again from the agent's path), a directory into the private
    workdir (hashed as written, listed and re-hashed just before the approved run)."""

    def __init__(self, pv: Preview, workdir: str, cwd: str, sealed: SealedSet) -> None:
        self.pv = pv
        self.workdir = workdir
        self.cwd = cwd
        self.sealed = sealed
        self.total = 0
        self.files = 0
        self.seq = 0
        self.text_left = MAX_INPUT_TEXT
        self.stamps = pv.stamps

    def _count(self, size: int, capped: bool = True) -> None:
        self.total += size
        self.files += 1
        if capped and (self.total > MAX_SNAPSHOT or self.files > MAX_SNAPSHOT_FILES):
            raise Failed(
                f"the files this call reads are too large to snapshot "
                f"(over {MAX_SNAPSHOT} bytes or {MAX_SNAPSHOT_FILES} files)"
            )

    def _write(self, dest: str, data: bytes, mode: int = 0o400) -> None:
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.chmod(dest, mode & 0o555 | 0o400)  # read-only; a script stays executable
        name = os.path.relpath(dest, self.workdir)
        self.pv.snapshots[name] = hashlib.sha256(data).hexdigest()
        self.stamps[name] = stamp(dest)
        self._count(len(data))

    def _slot(self) -> str:
        self.seq += 1
        return os.path.join(self.workdir, f"snap-{self.seq}")

    def full(self, src: str, base: str | None = None) -> str:
        return os.path.normpath(os.path.join(base or self.cwd, os.path.expanduser(src)))

    def seal(self, label: str, data: bytes, show: bool = True, capped: bool = True) -> Sealed:
        """Seal bytes already read; with `show`, carry them (as text, capped) for the approver."""
        try:
            item = self.sealed.seal(label, data)
        except SealError as exc:
            raise Failed(str(exc)) from exc
        self._count(len(data), capped)
        if show:
            self.show(label, data, item.sha256)
        return item

    def show(self, label: str, data: bytes, sha256: str) -> None:
        """Carry an input's text in the request (`inputs`), within MAX_INPUT_TEXT in all."""
        entry: dict = {"source": label, "sha256": sha256, "bytes": len(data)}
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
            entry["note"] = "binary: not shown"
        if text is not None:
            if len(data) > self.text_left:
                cut = data[: max(self.text_left, 0)].decode("utf-8", "ignore")
                entry["note"] = f"cut: the first {len(cut.encode())} of {len(data)} bytes shown"
                text = cut
            self.text_left -= len(text.encode())
            entry["text"] = text
        self.pv.inputs.append(entry)

    def file(self, src: str, base: str | None = None, show: bool = True) -> str:
        """Seal the regular file `src` (relative to `base`, default cwd); its /proc/self/fd path."""
        full = self.full(src, base)
        data = read_capped(full, MAX_SNAPSHOT - self.total)
        label = os.path.relpath(full, self.cwd) if os.path.isabs(src) else src
        return self.seal(label if not label.startswith("..") else full, data, show).path

    def path(self, src: str, base: str | None = None, exts: tuple[str, ...] = ()) -> str:
        """Snapshot the file or directory `src` (relative to `base`, default cwd): a file is
        sealed (its /proc/self/fd path), a directory is copied with its layout (with `exts`,
        only files with those endings: what kubectl reads from a directory)."""
        full = self.full(src, base)
        try:
            st = os.stat(full)
        except OSError as exc:
            raise Failed(f"cannot read {src}: {exc.strerror}") from exc
        import stat

        if stat.S_ISREG(st.st_mode):
            return self.file(src, base)
        if not stat.S_ISDIR(st.st_mode):
            raise Failed(f"{src} is not a regular file or directory; it cannot be snapshotted")
        return self.tree(src, base, exts=exts, show=bool(exts))

    def dir_files(self, src: str, exts: tuple[str, ...], recursive: bool) -> list[str]:
        """The files kubectl reads from the directory `src` (those ending in `exts`; the whole
        tree with `recursive`), each sealed; their paths in the order kubectl visits them."""
        found: list[str] = []

        def walk(d: str) -> None:  # filepath.Walk: names sorted in each directory
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    if recursive:
                        walk(p)
                elif name.endswith(exts):
                    found.append(p)

        walk(self.full(src))
        out = [self.file(p) for p in found if os.path.isfile(p)]
        if not out:
            raise Failed(f"{src} holds no {', '.join(exts)} file to snapshot")
        return out

    def tree(
        self,
        src: str,
        base: str | None = None,
        exts: tuple[str, ...] = (),
        show: bool = False,
        skip: frozenset[str] = frozenset(),
        dest: str | None = None,
        follow: bool = False,
    ) -> str:
        """Copy the directory `src` whole (listing and content) under the workdir; names in
        `skip` (top level only) are left out; with `follow`, symlinked directories are copied
        too (and symlinked files always, as their content). Returns the copy's path."""
        full = self.full(src, base)
        if dest is None:
            dest = os.path.join(self._slot(), os.path.basename(full.rstrip("/")) or "root")
        os.makedirs(dest, mode=0o700, exist_ok=True)
        for root, dirs, names in os.walk(full, followlinks=follow):
            if root == full:
                dirs[:] = [d for d in dirs if d not in skip]
                names = [n for n in names if n not in skip]
            dirs.sort()
            for n in sorted(names):
                if exts and not n.endswith(exts):
                    continue
                p = os.path.join(root, n)
                if not os.path.isfile(p):
                    continue
                rel = os.path.relpath(p, full)
                data = self.tree_file(p, os.path.join(dest, rel))
                if show:
                    self.show(os.path.join(src, rel), data, hashlib.sha256(data).hexdigest())
        return dest

    def tree_file(self, src: str, dest: str) -> bytes:
        """Copy one file (read once) to `dest` under the workdir, bound, keeping its x bits."""
        with open(src, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read(max(MAX_SNAPSHOT - self.total, 0) + 1)
        if len(data) > MAX_SNAPSHOT - self.total:
            raise Failed(f"{src} is larger than the snapshot limit ({MAX_SNAPSHOT} bytes)")
        self._write(dest, data, st.st_mode)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))  # s3 sync compares mtimes
        self.stamps[os.path.relpath(dest, self.workdir)] = stamp(dest)
        return data


def read_capped(path: str, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(max(limit, 0) + 1)
    if len(data) > limit:
        raise Failed(f"{path} is larger than the snapshot limit ({MAX_SNAPSHOT} bytes)")
    return data


def read_stdin(fd: int, deadline: float, limit: int = MAX_SNAPSHOT) -> tuple[bytes, str | None]:
    """Read `fd` to EOF once, until `deadline`; (data, problem or None). Never blocks past the
    deadline (poll before each read) and never changes the descriptor's flags."""
    chunks: list[bytes] = []
    size = 0
    poller: selectors.BaseSelector | None = selectors.DefaultSelector()
    try:
        poller.register(fd, selectors.EVENT_READ)  # type: ignore[union-attr]
    except (OSError, ValueError):
        poller.close()  # type: ignore[union-attr]
        poller = None  # a regular file (epoll refuses those): its reads never block
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return b"".join(chunks), "stdin was still open when the preview's time ran out"
            if poller is not None and not poller.select(timeout=deadline - now):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks), None
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks), f"stdin is larger than {limit} bytes"
    except OSError as exc:
        return b"".join(chunks), f"cannot read stdin: {exc.strerror}"
    finally:
        if poller is not None:
            poller.close()
