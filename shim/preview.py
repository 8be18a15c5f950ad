"""Previews: what a held call would do, worked out by read-only calls before a human sees it (cold).

Imported only on the ask path. `prepare()` runs the preview that a rule declares
(`preview: {kind: NAME, timeout: SECONDS}`), returns a plain JSON-able dict for the held request,
and, where the call reads a file (a plan, a manifest, piped stdin, a values file, a chart
directory), snapshots it into the request's private `workdir` so that what runs on approval is
exactly what was previewed:

- `run_argv`: the argv to run instead of the agent's (the same call with its files pointing at
  the snapshots, or `terraform apply <saved plan>`), or None to run the agent's argv unchanged;
- `stdin_file`: the snapshot of piped stdin (`kubectl apply -f -`) to feed the approved command;
- `snapshots`: `{name under workdir: sha256 hex}`, to be bound into the request's digest and
  checked again (`check_snapshots`) just before the approved command runs.

Every preview command runs the real binary (never the shim) with the call's own environment,
cwd and target flags, stdin from /dev/null, one deadline for the whole preview, and output caps;
and only after the shim's own classifier (`is_read_only`) has said that the exact argv is
allowed. A preview that fails or times out comes back with `ok: False` and an `error`; it never
raises and never blocks the request.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

MAX_LINES = 40  # detail lines per preview
MAX_LINE_CHARS = 200
MAX_STDOUT = 16 << 20  # a preview command's stdout; more is an error (the command is killed)
MAX_STDERR = 64 << 10  # kept for the error message; the rest is read and dropped
MAX_SNAPSHOT = 64 << 20  # bytes copied per request (files, directories and stdin together)
MAX_SNAPSHOT_FILES = 2000
EXIT_GRACE_S = 0.5  # after the command exits, how long its pipes may stay open (grandchildren)

TERRAFORM_PLAN = "terraform-plan"
KUBECTL_DELETE = "kubectl-delete"
KUBECTL_DIFF = "kubectl-diff"
KUBECTL_TARGETS = "kubectl-targets"
HELM_RELEASE = "helm-release"
AWS_S3_OBJECTS = "aws-s3-objects"
AWS_EC2_INSTANCES = "aws-ec2-instances"
AUTO = "auto"  # pick the kind from the tool and verb (one declaration for a broad rule)
PREVIEW_ENV = "_SHIELD_PREVIEW"

KINDS = (
    TERRAFORM_PLAN,
    KUBECTL_DELETE,
    KUBECTL_DIFF,
    KUBECTL_TARGETS,
    HELM_RELEASE,
    AWS_S3_OBJECTS,
    AWS_EC2_INSTANCES,
    AUTO,
)

ReadOnly = Callable[[list[str]], bool]


def kinds() -> list[str]:
    """Every kind a rule may declare (`preview: {kind: ...}`)."""
    return list(KINDS)


# --------------------------------------------------------------------------- which kind applies

_KUBECTL_DIFF_VERBS = {("apply",), ("replace",), ("patch",)}
_KUBECTL_TARGET_VERBS = {
    ("scale",),
    ("drain",),
    ("cordon",),
    ("uncordon",),
    ("rollout", "restart"),
    ("rollout", "undo"),
    ("rollout", "pause"),
    ("rollout", "resume"),
}


def select_kind(kind: str, inv: Any) -> str | None:
    """The concrete kind to run for this call, or None when `kind` does not apply to it
    (for example `kubectl-delete` declared on a rule that also matches `kubectl label`).
    Pure: the caller may skip creating a workdir when it returns None."""
    tool = getattr(inv, "tool", "")
    verb = tuple(getattr(inv, "verb", ()) or ())
    if getattr(inv, "kind", "ok") != "ok" or getattr(inv, "dry_run", False):
        return None
    found: str | None = None
    if tool == "terraform" and verb in {("apply",), ("destroy",)}:
        found = TERRAFORM_PLAN
    elif tool == "kubectl":
        if verb == ("delete",):
            found = KUBECTL_DELETE
        elif verb in _KUBECTL_DIFF_VERBS or (verb == ("create",) and inv.flags.get("--filename")):
            found = KUBECTL_DIFF
        elif verb in _KUBECTL_TARGET_VERBS:
            found = KUBECTL_TARGETS
    elif tool == "helm" and verb in {("upgrade",), ("uninstall",), ("rollback",)}:
        found = HELM_RELEASE
    elif tool == "aws":
        if verb in {("s3", "rm"), ("s3", "rb"), ("s3", "sync")}:
            found = AWS_S3_OBJECTS
        elif verb == ("ec2", "terminate-instances"):
            found = AWS_EC2_INSTANCES
    if found is None or (kind != AUTO and kind != found):
        return None
    return found


# --------------------------------------------------------------------------- the result


class _Fail(Exception):
    """The preview could not be completed; `str(exc)` is the error shown to the approver."""


class _Preview:
    """What a kind fills in while it runs; `prepare` turns it into the returned dict."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.summary = ""
        self.lines: list[str] = []
        self.counts: dict[str, int] = {}
        self.argvs: list[list[str]] = []
        self.run_argv: list[str] | None = None
        self.stdin_file: str | None = None
        self.snapshots: dict[str, str] = {}

    def line(self, text: str) -> None:
        self.lines.append(text)


def render_lines(pv: dict) -> list[str]:
    """A preview as text for a human (the TTY panel, `shield pending`): the summary, a failure
    if any, the detail lines indented. Callers still escape it (prompt.printable)."""
    out = [str(pv.get("summary") or "")]
    if not pv.get("ok"):
        error = str(pv.get("error") or "unknown error")
        if error not in out[0]:
            out.append(f"preview FAILED: {error}")
    out += [f"  {line}" for line in pv.get("lines") or ()]
    return out


def _clip_lines(lines: list[str]) -> list[str]:
    out = [ln if len(ln) <= MAX_LINE_CHARS else ln[: MAX_LINE_CHARS - 3] + "..." for ln in lines]
    if len(out) > MAX_LINES:
        extra = len(out) - (MAX_LINES - 1)
        out = out[: MAX_LINES - 1] + [f"... and {extra} more"]
    return out


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- running commands


class _Runner:
    """Runs preview commands: classifier first, the real binary, one deadline, capped output."""

    def __init__(
        self,
        pv: _Preview,
        tool: str,
        real: str,
        env: dict[str, str],
        cwd: str,
        deadline: float,
        timeout_s: float,
        is_read_only: ReadOnly,
    ) -> None:
        self.pv = pv
        self.tool = tool
        self.real = real
        self.env = env
        self.cwd = cwd
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.is_read_only = is_read_only

    def allowed(self, args: list[str]) -> bool:
        try:
            return bool(self.is_read_only(list(args)))
        except Exception:  # a classifier failure is a refusal
            return False

    def run(self, args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[int, str, str]:
        """Run `tool args` if the classifier allows it; (exit code, stdout, stderr).
        Raises _Fail when refused, timed out, too large, or the exit code is not in `ok`."""
        self.pv.argvs.append([self.tool, *args])
        if not self.allowed(args):
            raise _Fail(
                f"not read-only: {shlex.join([self.tool, *args])} (the shim would not allow it)"
            )
        code, out, err = run_capped(
            [self.real, *args], self.env, self.cwd, self.deadline, self.timeout_s
        )
        if code not in ok:
            raise _Fail(
                f"{self.tool} {args[0] if args else ''} exited {code}: {_first_error(err, out)}"
            )
        return code, out, err

    def try_run(self, args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[int, str, str] | None:
        """Like run, for an optional step: None (and a note) when it is refused; other
        failures still raise."""
        if not self.allowed(args):
            self.pv.argvs.append([self.tool, *args])
            self.pv.line(f"(skipped, not allowed for this agent: {shlex.join([self.tool, *args])})")
            return None
        return self.run(args, ok)


def _first_error(err: str, out: str = "") -> str:
    for text in (err, out):
        for line in text.splitlines():
            line = line.strip().strip("│").strip()
            if line and not line.startswith("╷") and not line.startswith("╵"):
                return _one_line(line)
    return "no output"


def run_capped(
    argv: list[str], env: dict[str, str], cwd: str, deadline: float, timeout_s: float
) -> tuple[int, str, str]:
    """Run argv (stdin /dev/null, own process group) until `deadline`; (code, stdout, stderr).
    Raises _Fail on a timeout, on too much output, or when it cannot start."""
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
        )
    except OSError as exc:
        raise _Fail(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
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
                problem = f"timed out after {_secs(timeout_s)}"
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
                problem = f"timed out after {_secs(timeout_s)}"
    finally:
        sel.close()
        _kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
    if problem:
        raise _Fail(problem)
    code = proc.returncode
    out = bytes(bufs.pop(out_fd)).decode("utf-8", "replace")
    err = b"".join(bytes(b) for b in bufs.values()).decode("utf-8", "replace")
    return (128 - code if code < 0 else code), out, err


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the preview's whole process group (it has its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _secs(timeout_s: float) -> str:
    return f"{int(timeout_s)}s" if timeout_s >= 1 else f"{int(timeout_s * 1000)}ms"


# --------------------------------------------------------------------------- snapshots


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _drop_unbound(workdir: str, keep: dict[str, str]) -> None:
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


def check_snapshots(workdir: str, snapshots: dict[str, str]) -> list[str]:
    """Names (relative to workdir) whose file is missing or no longer has the bound hash, and
    anything in workdir that is not a bound file (a file added to a snapshotted directory
    would run with the approval). Call it just before running an approved
    `run_argv`/`stdin_file`; refuse to run unless it returns []."""
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
            if os.path.islink(path) or sha256_file(path) != digest:
                bad.append(name)
        except OSError:
            bad.append(name)
    return bad


class _Snapper:
    """Copies files into workdir (read once, hashed as written) and records their hashes."""

    def __init__(self, pv: _Preview, workdir: str, cwd: str) -> None:
        self.pv = pv
        self.workdir = workdir
        self.cwd = cwd
        self.total = 0
        self.files = 0
        self.seq = 0

    def _write(self, dest: str, data: bytes, capped: bool = True) -> None:
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.chmod(dest, 0o400)
        name = os.path.relpath(dest, self.workdir)
        self.pv.snapshots[name] = hashlib.sha256(data).hexdigest()
        self.total += len(data)
        self.files += 1
        if capped and (self.total > MAX_SNAPSHOT or self.files > MAX_SNAPSHOT_FILES):
            raise _Fail(
                f"the files this call reads are too large to snapshot "
                f"(over {MAX_SNAPSHOT} bytes or {MAX_SNAPSHOT_FILES} files)"
            )

    def _slot(self) -> str:
        self.seq += 1
        return os.path.join(self.workdir, f"snap-{self.seq}")

    def path(self, src: str, base: str | None = None, exts: tuple[str, ...] = ()) -> str:
        """Snapshot the file or directory `src` (relative to `base`, default cwd); return the
        snapshot's absolute path. Directories keep their layout; with `exts`, only files with
        those endings are copied (what kubectl reads from a directory)."""
        full = os.path.normpath(os.path.join(base or self.cwd, os.path.expanduser(src)))
        try:
            st = os.stat(full)
        except OSError as exc:
            raise _Fail(f"cannot read {src}: {exc.strerror}") from exc
        import stat

        slot = self._slot()
        dest = os.path.join(slot, os.path.basename(full.rstrip("/")) or "root")
        if stat.S_ISREG(st.st_mode):
            self._write(dest, _read_capped(full, MAX_SNAPSHOT - self.total))
            return dest
        if not stat.S_ISDIR(st.st_mode):
            raise _Fail(f"{src} is not a regular file or directory; it cannot be snapshotted")
        os.makedirs(dest, mode=0o700)
        for root, dirs, names in os.walk(full):
            dirs.sort()
            for n in sorted(names):
                if exts and not n.endswith(exts):
                    continue
                p = os.path.join(root, n)
                if not os.path.isfile(p):
                    continue
                rel = os.path.relpath(p, full)
                self._write(os.path.join(dest, rel), _read_capped(p, MAX_SNAPSHOT - self.total))
        return dest

    def data(self, name: str, data: bytes) -> str:
        """Store bytes already read (stdin: read_stdin capped them)."""
        dest = os.path.join(self.workdir, name)
        self._write(dest, data, capped=False)
        return dest


def _read_capped(path: str, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(max(limit, 0) + 1)
    if len(data) > limit:
        raise _Fail(f"{path} is larger than the snapshot limit ({MAX_SNAPSHOT} bytes)")
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


# --------------------------------------------------------------------------- argv helpers


def _truthy(value: str | None) -> bool:
    return value is not None and value in ("1", "t", "T", "TRUE", "true", "True")


def _flag(inv: Any, name: str) -> str | None:
    vals = inv.flags.get(name)
    return vals[-1] if vals else None


def _flag_args(inv: Any, names: tuple[str, ...]) -> list[str]:
    """`--name=value` (or bare `--name` for a bool given without a value) for each flag that
    the call gave, in the order of `names`, every value kept."""
    out: list[str] = []
    for name in names:
        for value in inv.flags.get(name, ()):
            out.append(name if value == "true" else f"{name}={value}")
    return out


def _split_list(value: str) -> list[str]:
    """pflag StringSlice: one value may hold several, comma-separated (CSV quoting)."""
    try:
        return next(csv.reader([value])) if value else [""]
    except (csv.Error, StopIteration):
        return [value]


def _join_list(values: list[str]) -> str:
    if len(values) == 1 and "," not in values[0] and '"' not in values[0]:
        return values[0]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def rewrite_flag_values(
    argv: list[str] | tuple[str, ...],
    short: str,
    long: str,
    expected: list[str],
    new_values: list[str],
    value_shorts: frozenset[str] = frozenset(),
    bool_shorts: frozenset[str] = frozenset(),
) -> list[str] | None:
    """`argv` with the values of one flag (`-f`/`--filename`, in every pflag spelling)
    replaced, in order, by `new_values`. Returns None unless the values found are exactly
    `expected` (the parser's reading), so a spelling this scan misreads is never rewritten."""
    out = list(argv)
    where: list[tuple[int, str]] = []  # (token index, "next" | prefix to keep)
    letter = short[1:]
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--":
            break
        if tok in (long, short):
            where.append((i + 1, ""))
            i += 2
            continue
        if tok.startswith(long + "="):
            where.append((i, long + "="))
        elif tok.startswith("-") and not tok.startswith("--") and len(tok) > 2:
            body = tok[1:]
            k = 0
            while k < len(body) and ("-" + body[k]) in bool_shorts and body[k] != letter:
                k += 1
            if k < len(body) and body[k] == letter:
                rest = body[k + 1 :]
                if rest:
                    keep = "-" + body[: k + 1] + ("=" if rest.startswith("=") else "")
                    where.append((i, keep))
                else:
                    where.append((i + 1, ""))
                    i += 2
                    continue
        elif tok in value_shorts:
            i += 2
            continue
        i += 1
    found: list[str] = []
    for idx, keep in where:
        if idx >= len(out):
            return None
        found.append(out[idx][len(keep) :] if keep else out[idx])
    if found != list(expected) or len(new_values) != len(found):
        return None
    for (idx, keep), value in zip(where, new_values, strict=True):
        out[idx] = keep + value if keep else value
    return out


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class _Job:
    """One preview's world, handed to the kind that runs it."""

    def __init__(
        self,
        pv: _Preview,
        inv: Any,
        context: dict[str, str],
        run: _Runner,
        snap: _Snapper,
        stdin_fd: int | None,
        deadline: float,
    ) -> None:
        self.pv = pv
        self.inv = inv
        self.context = context
        self.run = run
        self.snap = snap
        self.stdin_fd = stdin_fd
        self.deadline = deadline


# --------------------------------------------------------------------------- prepare


def prepare(
    kind: str,
    inv: Any,
    context: dict[str, str],
    *,
    real: str,
    env: dict[str, str],
    cwd: str,
    workdir: str,
    timeout_s: float,
    is_read_only: ReadOnly,
    stdin_fd: int | None = 0,
) -> dict:
    """Run the preview for a held call. Returns a plain dict (JSON-able, no floats):

      {"preview": {"kind", "ok", "summary", "lines", "counts", "error", "argv", "duration_ms"}
                  or None when `kind` does not apply to this call (nothing ran),
       "run_argv": argv to run instead of inv.argv on approval, or None,
       "stdin_file": a snapshot to feed as stdin on approval, or None,
       "snapshots": {name under workdir: sha256 hex}}

    Never raises: a failing or slow preview comes back with ok=False and `error` set, and
    whatever it learned before failing. Every preview command is shown to `is_read_only`
    first and is not run unless it returns True."""
    start = time.monotonic()
    timeout_s = max(float(timeout_s), 0.0)
    deadline = start + timeout_s
    concrete = select_kind(kind, inv) if kind in KINDS else None
    if concrete is None:
        if kind in KINDS:
            return {"preview": None, "run_argv": None, "stdin_file": None, "snapshots": {}}
        concrete = kind
    pv = _Preview(concrete)
    error: str | None = None
    try:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        penv = dict(env)
        penv[PREVIEW_ENV] = "1"  # lets a stand-in, a wrapper or a log tell preview runs apart
        if inv.tool == "aws":
            penv["AWS_PAGER"] = ""  # v2 would page its output otherwise
        runner = _Runner(pv, inv.tool, real, penv, cwd, deadline, timeout_s, is_read_only)
        snap = _Snapper(pv, workdir, cwd)
        impl = _KIND_IMPLS.get(concrete)
        if impl is None:
            raise _Fail(f"unknown preview kind {kind!r} (known: {', '.join(KINDS)})")
        impl(_Job(pv, inv, context, runner, snap, stdin_fd, deadline))
    except _Fail as exc:
        error = str(exc)
    except Exception as exc:  # a preview never breaks the request
        error = f"preview failed: {type(exc).__name__}: {exc}"
    if error and not pv.summary:
        pv.summary = f"preview failed: {error}"
    if error and pv.run_argv is None:
        # Nothing was rebound, so the approved run reads the live files: listing the copies
        # made before the failure would tell the approver they are bound. Only consumed stdin
        # stays bound (the run gets exactly those bytes, or nothing runs).
        pv.snapshots = {k: v for k, v in pv.snapshots.items() if k == "stdin.yaml"}
        _drop_unbound(workdir, pv.snapshots)
    preview = {
        "kind": concrete,
        "ok": error is None,
        "summary": _one_line(pv.summary),
        "lines": _clip_lines(pv.lines),
        "counts": {k: int(v) for k, v in pv.counts.items()},
        "error": error,
        "argv": pv.argvs,
        "duration_ms": int((time.monotonic() - start) * 1000),
    }
    return {
        "preview": preview,
        "run_argv": pv.run_argv,
        "stdin_file": pv.stdin_file,
        "snapshots": dict(pv.snapshots),
    }


# --------------------------------------------------------------------------- the hold path

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 600


class Bound:
    """A held call's preview, ready for the request and for the approved run.

    `extra` goes into `hold.new_request(extra=...)` (so the digest, and with it the approver's
    signature, covers the preview, the risk, `run_argv`, `stdin_file` and every snapshot hash).
    `command(argv)` is what the approved run executes; `cleanup()` removes the snapshots."""

    def __init__(self, extra: dict, workdir: str | None) -> None:
        self.extra = extra
        self.workdir = workdir

    @property
    def preview(self) -> dict | None:
        pv = self.extra.get("preview")
        return pv if isinstance(pv, dict) else None

    def held_fields(self) -> dict:
        """Fields for the log's `held` entry."""
        keys = ("risk", "preview", "run_argv", "stdin_file", "snapshots")
        return {k: self.extra[k] for k in keys if k in self.extra}

    def agent_lines(self) -> str:
        """Lines for the agent's `held` message (stderr)."""
        pv = self.preview
        text = f"  preview: {pv['summary']}\n" if pv else ""
        return text + f"  risk: {self.extra.get('risk', 'medium')}\n"

    def command(self, argv: list[str]) -> tuple[list[str], str | None, list[str], dict]:
        """(argv to run, stdin file or None, snapshots that changed, fields for the log's
        `executed` entry). Run nothing when the third item is not empty."""
        snaps = self.extra.get("snapshots") or {}
        bad = check_snapshots(self.workdir, snaps) if snaps and self.workdir else []
        run_argv = self.extra.get("run_argv")
        out = list(run_argv) if run_argv is not None else list(argv)
        fields: dict = {}
        if run_argv is not None:
            fields["ran"] = out
        if snaps:
            fields["snapshots"] = sorted(snaps)
        stdin = self.extra.get("stdin_file") or None
        if stdin:
            fields["stdin"] = "snapshot"
        return out, stdin, bad, fields

    def cleanup(self) -> None:
        if self.workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)


def hold_preview(
    rule: dict | None,
    inv: Any,
    context: dict[str, str],
    *,
    real: str | None,
    env: dict[str, str],
    cwd: str,
    home: str,
    is_read_only: ReadOnly,
    run: bool = True,
    limit_s: float | None = None,
    stdin_fd: int | None = 0,
) -> Bound:
    """The preview a held call's rule declares (`preview: {kind, timeout}`), run in a fresh
    0700 dir under `<home>/state/previews/`, plus the request's risk level. With `run` False
    (a zero hold timeout) or no declaration, only the risk is computed. `limit_s` caps the
    rule's timeout (the hold's own deadline: a preview never waits longer than a human would
    be given). Never raises."""
    from shim import risk

    spec = (rule or {}).get("preview")
    res: dict | None = None
    workdir: str | None = None
    if run and isinstance(spec, dict) and real:
        kind = str(spec.get("kind") or AUTO)
        try:
            timeout_s = min(float(spec.get("timeout") or DEFAULT_TIMEOUT_S), MAX_TIMEOUT_S)
        except (TypeError, ValueError):
            timeout_s = float(DEFAULT_TIMEOUT_S)
        if limit_s is not None:
            timeout_s = max(min(timeout_s, limit_s), 0.0)
        if kind not in KINDS or select_kind(kind, inv) is not None:
            workdir = os.path.join(home, "state", "previews", os.urandom(8).hex())
            try:
                os.makedirs(os.path.dirname(workdir), mode=0o700, exist_ok=True)
                os.mkdir(workdir, 0o700)
            except OSError as exc:
                # the concrete kind, so that a destructive call's unknown blast radius raises
                # its risk (kubectl delete is `auto` in the rule)
                concrete = select_kind(kind, inv) if kind in KINDS else kind
                res = _failed(concrete or kind, f"cannot create {workdir}: {exc.strerror}")
                workdir = None
            else:
                res = prepare(
                    kind,
                    inv,
                    context,
                    real=real,
                    env=env,
                    cwd=cwd,
                    workdir=workdir,
                    timeout_s=timeout_s,
                    is_read_only=is_read_only,
                    stdin_fd=stdin_fd,
                )
    extra: dict = {}
    pv = res.get("preview") if res else None
    if pv is not None:
        extra["preview"] = pv
    if res and (res["run_argv"] is not None or res["stdin_file"] or res["snapshots"]):
        extra["run_argv"] = res["run_argv"]
        extra["stdin_file"] = res["stdin_file"]
        extra["snapshots"] = dict(res["snapshots"])
        extra["workdir"] = workdir
    extra["risk"] = risk.assess(rule, context, pv)
    return Bound(extra, workdir)


def _failed(kind: str, error: str) -> dict:
    pv = {
        "kind": kind,
        "ok": False,
        "summary": f"preview failed: {error}",
        "lines": [],
        "counts": {},
        "error": error,
        "argv": [],
        "duration_ms": 0,
    }
    return {"preview": pv, "run_argv": None, "stdin_file": None, "snapshots": {}}


# --------------------------------------------------------------------------- terraform

# Go `flag` options of apply/destroy that take a value (the rest are bools, `-x` or `-x=v`).
_TF_VALUE = frozenset(
    (
        "-var",
        "-var-file",
        "-target",
        "-replace",
        "-exclude",
        "-state",
        "-state-out",
        "-backup",
        "-lock-timeout",
        "-parallelism",
    )
)
# Options that shape the plan (they go to `plan`, and a saved plan ignores them on apply).
_TF_PLAN_ONLY = frozenset(
    (
        "-var",
        "-var-file",
        "-target",
        "-replace",
        "-exclude",
        "-refresh-only",
        "-destroy",
        "-refresh",
    )
)
# Options of the run itself (kept on `apply <plan>`; also given to plan where it knows them).
_TF_RUN = frozenset(
    ("-lock", "-lock-timeout", "-parallelism", "-no-color", "-compact-warnings", "-json")
)
_TF_BOTH = frozenset(("-state", "-lock", "-lock-timeout", "-parallelism"))
_TF_APPLY_ONLY = frozenset(("-state-out", "-backup"))
_TF_DROP = frozenset(("-auto-approve", "-input"))


def _tf_walk(tokens: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Go flag parsing of a subcommand's tokens: ([(name, token as -name=value)], positionals)."""
    flags: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            return flags, tokens[i + 1 :]
        if not tok.startswith("-") or tok == "-":
            return flags, tokens[i:]
        name, eq, value = tok.partition("=")
        if name.startswith("--"):
            name = name[1:]
        if eq:
            flags.append((name, f"{name}={value}"))
        elif name in _TF_VALUE and i + 1 < len(tokens):
            flags.append((name, f"{name}={tokens[i + 1]}"))
            i += 1
        else:
            flags.append((name, name))
        i += 1
    return flags, []


def _terraform(job: _Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    argv = list(inv.argv)
    k = 0
    while k < len(argv) and argv[k].startswith("-"):
        k += 1
    pre = [t for t in argv[:k] if t.startswith("-chdir=")]
    verb = inv.verb[0]
    injected: list[str] = []
    extra = run.env.get("TF_CLI_ARGS_" + verb)
    if extra:
        try:
            injected = shlex.split(extra)
        except ValueError as exc:
            raise _Fail(f"TF_CLI_ARGS_{verb} does not parse: {exc}") from exc
    flags, positionals = _tf_walk(argv[k + 1 :])
    inj_flags, _ = _tf_walk(injected)
    chdir = pre[-1].split("=", 1)[1] if pre else ""
    tfdir = os.path.normpath(os.path.join(run.cwd, chdir)) if chdir else run.cwd
    ws = context.get("workspace") or run.env.get("TF_WORKSPACE") or "default"
    apply_flags = [t for n, t in flags if n in _TF_RUN or n in _TF_APPLY_ONLY or n == "-state"]
    if verb == "destroy":  # TF_CLI_ARGS_destroy would not reach `apply <plan>`
        apply_flags = [
            t for n, t in inj_flags if n in _TF_RUN or n in _TF_APPLY_ONLY or n == "-state"
        ] + apply_flags
    if positionals:
        # apply PLANFILE: bind a copy of it (terraform reads it relative to -chdir)
        if verb != "apply" or len(positionals) != 1:
            raise _Fail(f"terraform {verb} {' '.join(positionals)}: not a single saved plan")
        plan = snap.path(positionals[0], base=tfdir)
        pv.run_argv = [*pre, "apply", "-input=false", *apply_flags, plan]
        _, out, _ = run.run([*pre, "show", "-no-color", plan])
        _tf_summarise_text(pv, out, ws)
        return
    plan_flags = [t for n, t in inj_flags + flags if n in _TF_PLAN_ONLY or n in _TF_BOTH]
    plan_flags += [
        t
        for n, t in flags
        if n not in _TF_PLAN_ONLY | _TF_RUN | _TF_APPLY_ONLY | _TF_DROP | _TF_BOTH
    ]
    if verb == "destroy":
        plan_flags.insert(0, "-destroy")
    target = os.path.join(snap.workdir, "plan.tfplan")
    code, out, err = run.run(
        [*pre, "plan", "-input=false", "-json", f"-out={target}", *plan_flags], ok=(0, 1)
    )
    events = _tf_events(out)
    if code != 0 or not os.path.isfile(target):
        raise _Fail(f"terraform plan failed (exit {code}): {_tf_diag(events) or _first_error(err)}")
    data = _read_capped(target, MAX_SNAPSHOT)
    os.chmod(target, 0o400)
    pv.snapshots["plan.tfplan"] = hashlib.sha256(data).hexdigest()
    pv.run_argv = [*pre, "apply", "-input=false", *apply_flags, target]
    _tf_summarise_events(pv, events, ws)


def _tf_events(out: str) -> list[dict]:
    events = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def _tf_diag(events: list[dict]) -> str:
    for ev in events:
        if ev.get("type") == "diagnostic" and ev.get("@level") == "error":
            d = ev.get("diagnostic") or {}
            text = d.get("summary") or ev.get("@message") or ""
            if d.get("detail"):
                text += f": {d['detail']}"
            return _one_line(str(text))
    return ""


_TF_SYMBOL = {
    "delete": "-",
    "replace": "-/+",
    "create": "+",
    "update": "~",
    "read": "<=",
    "move": "->",
    "remove": "forget",
    "import": "import",
}
_TF_ORDER = ("delete", "replace", "remove", "update", "create", "move", "import", "read")


def _tf_list(pv: _Preview, changes: list[tuple[str, str, str]]) -> None:
    """Detail lines: destroyed and replaced resources first."""
    rank = {a: i for i, a in enumerate(_TF_ORDER)}
    for action, addr, why in sorted(changes, key=lambda c: (rank.get(c[0], 99), c[1])):
        note = f" ({why})" if why else ""
        pv.line(f"{_TF_SYMBOL.get(action, action)} {addr}{note}")


def _tf_summarise_events(pv: _Preview, events: list[dict], ws: str) -> None:
    changes: list[tuple[str, str, str]] = []
    summary: dict | None = None
    drift = 0
    for ev in events:
        kind = ev.get("type")
        if kind == "planned_change":
            ch = ev.get("change") or {}
            addr = str((ch.get("resource") or {}).get("addr") or "?")
            action = str(ch.get("action") or "?")
            if action != "noop":
                changes.append((action, addr, str(ch.get("reason") or "").replace("_", " ")))
        elif kind == "resource_drift":
            drift += 1
        elif kind == "change_summary":
            summary = ev.get("changes") or {}
    if summary is None:
        raise _Fail("terraform plan printed no change summary")
    replace = sum(1 for c in changes if c[0] == "replace")
    counts = {
        "add": int(summary.get("add") or 0),
        "change": int(summary.get("change") or 0),
        "destroy": int(summary.get("remove") or 0),
        "replace": replace,
    }
    if summary.get("import"):
        counts["import"] = int(summary["import"])
    if drift:
        counts["drift"] = drift
    forget = sum(1 for c in changes if c[0] == "remove")
    if forget:
        counts["forget"] = forget
    pv.counts = counts
    pv.summary = _tf_sentence(counts, ws, summary.get("operation") == "refresh")
    _tf_list(pv, changes)


def _tf_sentence(counts: dict[str, int], ws: str, refresh: bool = False) -> str:
    if refresh:
        return f"terraform refresh-only plan (workspace {ws}): {counts.get('drift', 0)} drifted"
    text = (
        f"terraform plan (workspace {ws}): {counts['add']} to add, {counts['change']} to change, "
        f"{counts['destroy']} to destroy"
    )
    if counts.get("replace"):
        text += f" ({counts['replace']} replaced)"
    if counts.get("import"):
        text += f", {counts['import']} to import"
    return text


_TF_COMMENT = re.compile(
    r"^\s*# (?P<addr>.+?) (?P<what>will be destroyed|must be replaced|is tainted, so must be "
    r"replaced|will be replaced.*|will be created|will be updated in-place|will be read during "
    r"apply|will be imported|has moved to .+|will no longer be managed by Terraform)$"
)
_TF_PLAN_LINE = re.compile(
    r"^Plan: (?:(?P<imp>\d+) to import, )?(?P<add>\d+) to add, (?P<chg>\d+) to change, "
    r"(?P<des>\d+) to destroy"
)


def _tf_summarise_text(pv: _Preview, out: str, ws: str) -> None:
    """`terraform show PLAN` (human form: the JSON form prints sensitive values, which the
    default policy holds for a human)."""
    changes: list[tuple[str, str, str]] = []
    counts: dict[str, int] | None = None
    for line in out.splitlines():
        m = _TF_COMMENT.match(line)
        if m:
            what = m.group("what")
            if "replace" in what:
                action = "replace"
            elif "destroyed" in what:
                action = "delete"
            elif "created" in what:
                action = "create"
            elif "updated" in what:
                action = "update"
            elif "read" in what:
                action = "read"
            elif "imported" in what:
                action = "import"
            elif "moved" in what:
                action = "move"
            else:
                action = "remove"
            changes.append((action, m.group("addr"), ""))
            continue
        p = _TF_PLAN_LINE.match(line.strip())
        if p:
            counts = {
                "add": int(p.group("add")),
                "change": int(p.group("chg")),
                "destroy": int(p.group("des")),
            }
            if p.group("imp"):
                counts["import"] = int(p.group("imp"))
    if counts is None:
        if "No changes." in out:
            counts = {"add": 0, "change": 0, "destroy": 0}
        else:
            raise _Fail("terraform show printed no 'Plan:' line for this plan file")
    counts["replace"] = sum(1 for c in changes if c[0] == "replace")
    pv.counts = counts
    pv.summary = _tf_sentence(counts, ws) + " (saved plan)"
    _tf_list(pv, changes)


# --------------------------------------------------------------------------- kubectl

# Flags that pick the cluster, the credentials and the namespace: copied to every preview.
_KUBE_TARGET = (
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "--server",
    "--token",
    "--as",
    "--as-group",
    "--as-uid",
    "--certificate-authority",
    "--client-certificate",
    "--client-key",
    "--tls-server-name",
    "--insecure-skip-tls-verify",
    "--username",
    "--password",
    "--request-timeout",
    "--namespace",
)
_KUBE_VALUE_SHORTS = frozenset(("-n", "-l", "-o", "-c", "-p", "-k", "-e", "-s", "-v", "-L", "-r"))
_KUBE_BOOL_SHORTS = frozenset(("-R", "-A", "-i", "-t", "-q", "-w", "-h"))
_KUBE_DIR_EXTS = (".json", ".yaml", ".yml")


def _kube_target(inv: Any) -> list[str]:
    return _flag_args(inv, _KUBE_TARGET)


def _kube_where(inv: Any, context: dict[str, str]) -> str:
    ctx = context.get("context") or "?"
    if _truthy(_flag(inv, "--all-namespaces")):
        return f"context {ctx}, all namespaces"
    return f"context {ctx}, namespace {context.get('namespace') or '?'}"


class _Files:
    """The call's `-f` values, snapshotted; the preview's `-f` args; the rewritten argv."""

    def __init__(self) -> None:
        self.preview_args: list[str] = []
        self.run_argv: list[str] | None = None
        self.notes: list[str] = []


def _snap_filenames(
    pv: _Preview,
    inv: Any,
    snap: _Snapper,
    stdin_fd: int | None,
    deadline: float,
    short: str = "-f",
    long: str = "--filename",
    exts: tuple[str, ...] = _KUBE_DIR_EXTS,
    value_shorts: frozenset[str] = _KUBE_VALUE_SHORTS,
    bool_shorts: frozenset[str] = _KUBE_BOOL_SHORTS,
) -> _Files:
    """Snapshot every file, directory and piped stdin named by `-f`; rewrite the argv so that
    the approved command reads the snapshots (stdin: `pv.stdin_file`)."""
    res = _Files()
    values = list(inv.flags.get(long, ()))
    if not values:
        return res
    new_values: list[str] = []
    stdin_snap: str | None = None
    for value in values:
        items = _split_list(value)
        mapped: list[str] = []
        for item in items:
            if item == "-":
                if stdin_snap is None:
                    stdin_snap = _snap_stdin(pv, snap, stdin_fd, deadline)
                mapped.append("-")
                if stdin_snap:
                    res.preview_args += [short, stdin_snap]
                continue
            if _is_url(item):
                res.notes.append(
                    f"{item} is a URL: not snapshotted, it is fetched again on approval"
                )
                mapped.append(item)
                res.preview_args += [short, item]
                continue
            copy = snap.path(item, exts=exts)
            mapped.append(copy)
            res.preview_args += [short, copy]
        new_values.append(_join_list(mapped))
    if new_values != values:
        res.run_argv = rewrite_flag_values(
            inv.argv, short, long, values, new_values, value_shorts, bool_shorts
        )
        if res.run_argv is None:
            raise _Fail(f"could not bind the {long} files of this command line to their snapshots")
    return res


def _snap_stdin(pv: _Preview, snap: _Snapper, stdin_fd: int | None, deadline: float) -> str | None:
    if stdin_fd is None:
        pv.line("(stdin is not available to the preview: -f - is not bound)")
        return None
    try:
        if os.isatty(stdin_fd):
            pv.line("(stdin is a terminal: -f - is not snapshotted)")
            return None
    except OSError:
        return None
    data, problem = read_stdin(stdin_fd, deadline)
    # stdin is consumed now: the approved run gets this snapshot, or it must not run at all
    path = os.path.join(snap.workdir, "stdin.yaml")
    pv.stdin_file = path
    try:
        snap.data("stdin.yaml", data)
    except OSError as exc:
        pv.snapshots["stdin.yaml"] = "0" * 64  # matches no file: check_snapshots refuses
        raise _Fail(f"cannot store stdin in {snap.workdir}: {exc.strerror}") from exc
    if problem:
        raise _Fail(
            f"{problem}; only the {len(data)} bytes read are bound, and approving runs "
            "exactly those"
        )
    return path


def _kube_names(out: str) -> list[str]:
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def _kubectl_delete(job: _Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = _kube_where(inv, context)
    if inv.flags.get("--raw"):
        raise _Fail("delete --raw names an API path: no preview")
    files = _snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    pv.run_argv = files.run_argv
    for note in files.notes:
        pv.line(f"({note})")
    kust = inv.flags.get("--kustomize")
    selectors_ = _flag_args(inv, ("--selector", "--field-selector"))
    names = list(inv.args)
    if not (
        files.preview_args
        or kust
        or selectors_
        or _truthy(_flag(inv, "--all"))
        or len(names) >= 2
        or any("/" in a for a in names)
    ):
        if inv.flags.get("--filename"):
            raise _Fail("nothing to preview: the -f input could not be read")
        pv.counts = {"delete": 0}
        pv.summary = f"delete names no object ({where}): kubectl will refuse it"
        return
    args = ["get", *names, *files.preview_args]
    if kust:
        args += ["-k", kust[-1]]
        pv.line(f"(-k {kust[-1]} is rendered again on approval: not snapshotted)")
    args += selectors_ + _flag_args(inv, ("--all-namespaces", "--recursive"))
    args += _kube_target(inv) + ["-o", "name"]
    _, out, _ = run.run(args)
    found = _kube_names(out)
    pv.counts = {"delete": len(found)}
    pv.summary = f"delete {len(found)} object(s) ({where})"
    for name in found:
        pv.line(f"- {name}")


_DIFF_HEADER = re.compile(r"^diff -u -N \S*/(?:LIVE|MERGED)-\d+/(\S+) ")
_DIFF_NAME = re.compile(
    r"^(?:(?P<group>.+)\.)?(?P<version>v\d+(?:(?:alpha|beta)\d+)?)\.(?P<kind>[A-Z][A-Za-z0-9]*)"
    r"\.(?P<ns>[a-z0-9-]*)\.(?P<name>.+)$"
)


def _diff_object(base: str) -> str:
    m = _DIFF_NAME.match(base)
    if not m:
        return base
    ns = f"{m.group('ns')}/" if m.group("ns") else ""
    return f"{m.group('kind')} {ns}{m.group('name')}"


def parse_kubectl_diff(out: str) -> list[tuple[str, int, int, bool]]:
    """`kubectl diff` output -> [(object, lines added, lines removed, new object)]."""
    objs: list[list[Any]] = []
    for line in out.splitlines():
        m = _DIFF_HEADER.match(line)
        if m:
            objs.append([_diff_object(m.group(1)), 0, 0, False])
            continue
        if not objs:
            continue
        cur = objs[-1]
        if line.startswith("@@ -0,0 "):
            cur[3] = True
        elif line.startswith("+") and not line.startswith("+++"):
            cur[1] += 1
        elif line.startswith("-") and not line.startswith("---"):
            cur[2] += 1
    return [(str(o[0]), int(o[1]), int(o[2]), bool(o[3])) for o in objs]


def _kubectl_diff(job: _Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = _kube_where(inv, context)
    verb = inv.verb[0]
    files = _snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    run_argv = files.run_argv
    if verb == "patch":
        patch_files = list(inv.flags.get("--patch-file", ()))
        if patch_files:
            copy = snap.path(patch_files[-1])
            run_argv = rewrite_flag_values(
                run_argv or inv.argv,
                "--patch-file",
                "--patch-file",
                patch_files,
                [copy] * len(patch_files),
                _KUBE_VALUE_SHORTS,
                _KUBE_BOOL_SHORTS,
            )
            if run_argv is None:
                raise _Fail("could not bind --patch-file to its snapshot")
        pv.run_argv = run_argv
        for note in files.notes:
            pv.line(f"({note})")
        args = ["get", *inv.args, *files.preview_args, *_kube_target(inv), "-o", "name"]
        _, out, _ = run.run(args)
        found = _kube_names(out)
        pv.counts = {"objects": len(found)}
        how = _flag(inv, "--type") or "strategic"
        pv.summary = f"patch ({how}) {len(found)} object(s) ({where})"
        for name in found:
            pv.line(f"~ {name}")
        return
    pv.run_argv = run_argv
    for note in files.notes:
        pv.line(f"({note})")
    kust = inv.flags.get("--kustomize")
    if not files.preview_args and not kust:
        raise _Fail(f"kubectl {verb} without -f or -k: nothing to diff")
    args = ["diff", *files.preview_args]
    if kust:
        args += ["-k", kust[-1]]
        pv.line(f"(-k {kust[-1]} is rendered again on approval: not snapshotted)")
    args += _flag_args(
        inv, ("--server-side", "--force-conflicts", "--field-manager", "--recursive", "--selector")
    )
    args += _kube_target(inv)
    if verb == "replace":
        pv.line("(replace overwrites whole objects; kubectl diff shows an apply-style diff)")
        if _truthy(_flag(inv, "--force")):
            pv.line("(--force deletes and re-creates every object in the files)")
    if _truthy(_flag(inv, "--prune")):
        pv.line("(--prune also deletes objects that are not in the files: not shown here)")
    code, out, err = run.run(args, ok=(0, 1))
    objs = parse_kubectl_diff(out) if code == 1 else []
    if code == 1 and not objs and err.strip():
        # kubectl diff exits 1 for "differences"; errors exit 2 or more, but be sure
        raise _Fail(f"kubectl diff exited 1 without a diff: {_first_error(err)}")
    created = sum(1 for o in objs if o[3])
    pv.counts = {
        "objects": len(objs),
        "create": created,
        "lines_added": sum(o[1] for o in objs),
        "lines_removed": sum(o[2] for o in objs),
    }
    if not objs:
        pv.summary = f"kubectl diff: no changes ({where})"
    else:
        pv.summary = (
            f"kubectl diff: {len(objs)} object(s) change, {created} new "
            f"(+{pv.counts['lines_added']} -{pv.counts['lines_removed']} lines; {where})"
        )
    for name, plus, minus, new in objs:
        pv.line(f"{'+' if new else '~'} {name} (+{plus} -{minus})")


def _kubectl_targets(job: _Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = _kube_where(inv, context)
    verb = " ".join(inv.verb)
    target = _kube_target(inv)
    sel = _flag_args(inv, ("--selector",))
    if verb in ("drain", "cordon", "uncordon"):
        nodes = list(inv.args)
        _, out, _ = run.run(["get", "nodes", *nodes, *sel, *target, "-o", "wide"])
        rows = [ln for ln in out.splitlines() if ln.strip()]
        count = max(len(rows) - 1, 0)
        pv.counts = {"nodes": count}
        for row in rows:
            pv.line(row)
        if verb != "drain":
            pv.summary = f"{verb} {count} node(s) ({where})"
            return
        if not nodes:
            _, names, _ = run.run(["get", "nodes", *sel, *target, "-o", "name"])
            nodes = [n.split("/", 1)[-1] for n in _kube_names(names)]
        pods: list[str] = []
        podsel = _flag_args(inv, ("--pod-selector",))
        podsel = ["--selector=" + a.split("=", 1)[1] for a in podsel]
        for node in nodes[:10]:
            _, out, _ = run.run(
                [
                    "get",
                    "pods",
                    "--all-namespaces",
                    f"--field-selector=spec.nodeName={node}",
                    *podsel,
                    *target,
                    "-o",
                    "name",
                ]
            )
            pods += [f"{node}: {p}" for p in _kube_names(out)]
        pv.counts["pods"] = len(pods)
        pv.summary = f"drain {count} node(s): {len(pods)} pod(s) evicted or deleted ({where})"
        for p in pods:
            pv.line(f"- {p}")
        return
    files = _snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    pv.run_argv = files.run_argv
    args = ["get", *inv.args, *files.preview_args, *sel, *target, "-o", "wide"]
    _, out, _ = run.run(args)
    rows = [ln for ln in out.splitlines() if ln.strip()]
    count = max(len(rows) - 1, 0)
    pv.counts = {"objects": count}
    if verb == "scale":
        replicas = _flag(inv, "--replicas")
        if replicas is not None and replicas.lstrip("-").isdigit():
            pv.counts["replicas"] = int(replicas)
        pv.summary = f"scale {count} object(s) to {replicas} replica(s) ({where})"
    else:
        pv.summary = f"{verb} {count} object(s) ({where})"
    for row in rows:
        pv.line(row)


# --------------------------------------------------------------------------- helm

_HELM_TARGET = (
    "--kubeconfig",
    "--kube-context",
    "--kube-token",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-apiserver",
    "--kube-ca-file",
    "--kube-tls-server-name",
    "--kube-insecure-skip-tls-verify",
    "--namespace",
)
_HELM_RENDER = (
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--version",
    "--repo",
    "--devel",
    "--kube-version",
    "--api-versions",
    "--skip-crds",
)
_HELM_VALUE_SHORTS = frozenset(("-n", "-o", "-a", "-s", "-m", "-d", "-l", "-v"))
_HELM_BOOL_SHORTS = frozenset(("-i", "-A", "-q", "-g", "-r", "-h"))


def split_manifest(text: str) -> dict[str, str]:
    """A rendered manifest -> {"Kind/name": document}. Documents without a kind keep their
    `# Source:` comment (or position) as the key."""
    docs: dict[str, str] = {}
    cur: list[str] = []

    def flush() -> None:
        body = "\n".join(cur).strip("\n")
        cur.clear()
        if not body.strip():
            return
        kind = name = source = ""
        in_meta = False
        for ln in body.splitlines():
            if ln.startswith("# Source:"):
                source = ln[len("# Source:") :].strip()
            elif ln.startswith("kind:"):
                kind = ln[5:].strip().strip("'\"")
            elif ln.startswith("metadata:"):
                in_meta = True
            elif in_meta and ln[:1] not in (" ", "\t", "") and not ln.startswith("#"):
                in_meta = False
            elif in_meta and not name:
                m = re.match(r"^(\s+)name:\s*(.+)$", ln)
                if m and len(m.group(1)) <= 4:
                    name = m.group(2).strip().strip("'\"")
        key = f"{kind}/{name}" if kind else (source or f"document {len(docs) + 1}")
        while key in docs:
            key += "'"
        docs[key] = "\n".join(ln for ln in body.splitlines() if not ln.startswith("# Source:"))

    for line in text.splitlines():
        if line.rstrip() == "---":
            flush()
        else:
            cur.append(line)
    flush()
    return docs


def diff_manifests(old: str, new: str) -> tuple[dict[str, int], list[str]]:
    """Object-level diff of two rendered manifests: counts and one line per object."""
    a, b = split_manifest(old), split_manifest(new)
    counts = {"create": 0, "update": 0, "delete": 0, "lines_added": 0, "lines_removed": 0}
    lines: list[str] = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key), b.get(key)
        if before == after:
            continue
        plus = minus = 0
        for d in difflib.unified_diff(
            (before or "").splitlines(), (after or "").splitlines(), lineterm="", n=0
        ):
            if d.startswith("+") and not d.startswith("+++"):
                plus += 1
            elif d.startswith("-") and not d.startswith("---"):
                minus += 1
        counts["lines_added"] += plus
        counts["lines_removed"] += minus
        if before is None:
            counts["create"] += 1
            lines.append(f"+ {key} (+{plus})")
        elif after is None:
            counts["delete"] += 1
            lines.append(f"- {key} (-{minus})")
        else:
            counts["update"] += 1
            lines.append(f"~ {key} (+{plus} -{minus})")
    return counts, lines


def _helm_history(run: _Runner, release: str, target: list[str]) -> list[dict]:
    code, out, err = run.run(["history", release, *target, "-o", "json"], ok=(0, 1))
    if code != 0:
        if "not found" in err.lower():
            return []
        raise _Fail(f"helm history exited {code}: {_first_error(err, out)}")
    try:
        data = json.loads(out or "[]")
    except ValueError as exc:
        raise _Fail("helm history printed no JSON") from exc
    return [h for h in data if isinstance(h, dict)] if isinstance(data, list) else []


def _helm_rev(entry: dict) -> str:
    return (
        f"revision {entry.get('revision')} ({entry.get('chart') or '?'}, "
        f"{entry.get('status') or '?'})"
    )


def _helm_release(job: _Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    verb = inv.verb[0]
    where = _kube_where(inv, context)
    target = _flag_args(inv, _HELM_TARGET)
    if not inv.args:
        raise _Fail(f"helm {verb} without a release name")
    release = inv.args[0]
    run_argv: list[str] | None = None
    chart_ref = inv.args[1] if verb == "upgrade" and len(inv.args) > 1 else None
    values: list[str] = []
    if verb == "upgrade":
        files = _snap_filenames(
            pv,
            inv,
            snap,
            None,
            job.deadline,
            "-f",
            "--values",
            (),
            _HELM_VALUE_SHORTS,
            _HELM_BOOL_SHORTS,
        )
        run_argv = files.run_argv
        values = files.preview_args
        for note in files.notes:
            pv.line(f"({note})")
        if chart_ref and os.path.exists(os.path.join(run.cwd, chart_ref)):
            copy = snap.path(chart_ref)
            base = list(run_argv or inv.argv)
            hits = [i for i, t in enumerate(base) if t == chart_ref]
            if len(hits) != 1:
                raise _Fail(f"could not bind the chart {chart_ref} to its snapshot")
            base[hits[0]] = copy
            run_argv = base
            chart_ref = copy
        elif chart_ref:
            pv.line(f"(chart {chart_ref} is fetched again on approval: not snapshotted)")
        pv.run_argv = run_argv
    history = _helm_history(run, release, target)
    current = history[-1] if history else None
    counts: dict[str, int] = {"revision": int(current.get("revision") or 0)} if current else {}
    if current is None and verb != "upgrade":
        pv.counts = {"delete": 0}
        pv.summary = f"helm {verb} {release}: no such release ({where})"
        return
    if current is None:
        pv.line(f"release {release} does not exist yet: upgrade --install creates it")
    else:
        pv.line(f"release {release}: {_helm_rev(current)}")
    old_manifest: str | None = None
    if current is not None:
        got = run.try_run(["get", "manifest", release, *target])
        old_manifest = got[1] if got else None
    elif verb == "upgrade":
        old_manifest = ""
    new_manifest: str | None = None
    head = ""
    if verb == "upgrade":
        if chart_ref is None:
            raise _Fail("helm upgrade without a chart")
        got = run.try_run(
            [
                "template",
                release,
                chart_ref,
                *values,
                *_flag_args(inv, _HELM_RENDER),
                *target,
                "--is-upgrade",
                "--no-hooks",
            ]
        )
        new_manifest = got[1] if got else None
        if _flag(inv, "--reuse-values") or _flag(inv, "--reset-then-reuse-values"):
            pv.line("(--reuse-values: the diff renders only the values given on this command line)")
        head = f"helm upgrade {release} to {inv.args[1] if len(inv.args) > 1 else '?'}"
    elif verb == "rollback":
        to = inv.args[1] if len(inv.args) > 1 and inv.args[1] != "0" else None
        if to is None and len(history) >= 2:
            to = str(history[-2].get("revision"))
        entry = next((h for h in history if str(h.get("revision")) == to), None)
        if entry is not None:
            pv.line(f"back to: {_helm_rev(entry)}")
        if to is not None:
            counts["to_revision"] = int(to) if to.isdigit() else 0
            got = run.try_run(["get", "manifest", release, f"--revision={to}", *target])
            new_manifest = got[1] if got else None
        head = f"helm rollback {release} to revision {to or '?'}"
    else:  # uninstall
        new_manifest = ""
        head = f"helm uninstall {release}"
        counts["delete"] = 1
    if old_manifest is not None and new_manifest is not None:
        dcounts, dlines = diff_manifests(old_manifest, new_manifest)
        counts.update(dcounts)
        if verb == "uninstall":
            counts["delete"] = max(dcounts["delete"], 1)
        for ln in dlines:
            pv.line(ln)
        pv.summary = (
            f"{head} ({where}): {dcounts['create']} object(s) created, {dcounts['update']} "
            f"changed, {dcounts['delete']} deleted"
        )
    else:
        pv.summary = f"{head} ({where}): manifest diff not available"
    pv.counts = counts


# --------------------------------------------------------------------------- aws

_AWS_TARGET = (
    "--profile",
    "--region",
    "--endpoint-url",
    "--ca-bundle",
    "--no-verify-ssl",
    "--no-sign-request",
    "--cli-read-timeout",
    "--cli-connect-timeout",
)
_S3_LS = re.compile(r"^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(\d+) (.*)$")
_S3_DRY = re.compile(r"^\(dryrun\) (\w+): (.+)$")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _s3_bucket(path: str) -> str:
    return path[len("s3://") :].split("/", 1)[0]


def _s3_ls(run: _Runner, path: str, target: list[str]) -> tuple[dict[str, int], int, int]:
    """{key: size}, total objects, total bytes of `aws s3 ls PATH --recursive --summarize`."""
    _, out, _ = run.run(["s3", "ls", path, "--recursive", "--summarize", *target])
    sizes: dict[str, int] = {}
    total_n = total_b = -1
    for line in out.splitlines():
        m = _S3_LS.match(line)
        if m:
            sizes[m.group(3)] = int(m.group(2))
            continue
        s = line.strip()
        if s.startswith("Total Objects:"):
            total_n = int(s.split(":", 1)[1].strip() or 0)
        elif s.startswith("Total Size:"):
            total_b = int(s.split(":", 1)[1].strip().split()[0] or 0)
    if total_n < 0:
        total_n = len(sizes)
    if total_b < 0:
        total_b = sum(sizes.values())
    return sizes, total_n, total_b


def _aws_s3(job: _Job) -> None:
    pv, inv, context, run = job.pv, job.inv, job.context, job.run
    verb = inv.verb[1]
    target = _flag_args(inv, _AWS_TARGET)
    where = f"profile {context.get('profile') or '?'}, region {context.get('region') or '?'}"
    if verb == "sync":
        _aws_s3_sync(pv, inv, run, target, where)
        return
    if not inv.args or not inv.args[0].startswith("s3://"):
        raise _Fail(f"s3 {verb}: no s3:// path")
    path = inv.args[0]
    bucket = _s3_bucket(path)
    filtered = bool(inv.flags.get("--exclude") or inv.flags.get("--include"))
    recursive = _truthy(_flag(inv, "--recursive"))
    if verb == "rb":
        sizes, n, size = _s3_ls(run, f"s3://{bucket}", target)
        force = _truthy(_flag(inv, "--force"))
        pv.counts = {"objects": n, "bytes": size, "delete": n if force else 0, "buckets": 1}
        pv.summary = (
            f"s3 rb s3://{bucket}{' --force' if force else ''}: {n} object(s), {_human(size)} "
            f"({where})"
        )
        if n and not force:
            pv.line("(the bucket is not empty: rb without --force will fail)")
        for key in sorted(sizes)[:MAX_LINES]:
            pv.line(f"- s3://{bucket}/{key} ({sizes[key]} B)")
        return
    # `rm --recursive s3://b/logs` removes the "directory" logs/, while `ls s3://b/logs` lists
    # every key that starts with "logs" (logs2/, logs.txt): list the directory rm removes
    bucket_root = f"s3://{bucket}"
    listed = path if path.rstrip("/") == bucket_root or path.endswith("/") else path + "/"
    if not recursive:
        listed = path
    sizes, n, size = _s3_ls(run, listed, target)
    keys = sorted(sizes)
    if filtered or not recursive:
        # the exact set: rm's own dry run (same filters), sizes from the listing
        _, out, _ = run.run([*inv.argv, "--dryrun"])
        keys = [k for action, k in _s3_dry(out, bucket) if action == "delete"]
        n = len(keys)
        size = sum(sizes.get(k, 0) for k in keys)
    pv.counts = {"objects": n, "bytes": size, "delete": n}
    pv.summary = (
        f"s3 rm {path}{' --recursive' if recursive else ''}: {n} object(s), {_human(size)} "
        f"({where})"
    )
    for key in keys:
        pv.line(f"- s3://{bucket}/{key} ({sizes.get(key, 0)} B)")


def _s3_dry(out: str, bucket: str = "") -> list[tuple[str, str]]:
    """`--dryrun` lines -> [(action, what)]; with `bucket`, s3 paths in it become keys."""
    found: list[tuple[str, str]] = []
    prefix = f"s3://{bucket}/" if bucket else None
    for line in out.splitlines():
        m = _S3_DRY.match(line.strip())
        if not m:
            continue
        action, what = m.group(1), m.group(2)
        if prefix is not None:
            if not what.startswith(prefix):
                continue
            what = what[len(prefix) :]
        found.append((action, what))
    return found


def _aws_s3_sync(pv: _Preview, inv: Any, run: _Runner, target: list[str], where: str) -> None:
    """The sync's own dry run (every filter and option kept) lists what it would do."""
    _, out, _ = run.run([*inv.argv, "--dryrun"])
    acts: dict[str, list[str]] = {}
    for action, what in _s3_dry(out):
        acts.setdefault(action, []).append(what)
    deleted = acts.get("delete", [])
    counts = {a: len(v) for a, v in acts.items()}
    counts["delete"] = len(deleted)
    size = 0
    dest = inv.args[1] if len(inv.args) > 1 else ""
    if deleted and dest.startswith("s3://"):
        sizes, _, _ = _s3_ls(run, dest, target)
        bucket = _s3_bucket(dest)
        for d in deleted:
            size += sizes.get(d[len(f"s3://{bucket}/") :], 0) if d.startswith("s3://") else 0
        counts["bytes"] = size
    pv.counts = counts
    moved = ", ".join(f"{len(v)} to {a}" for a, v in sorted(acts.items()) if a != "delete")
    pv.summary = (
        f"s3 sync: {len(deleted)} object(s) deleted"
        + (f" ({_human(size)})" if size else "")
        + (f", {moved}" if moved else "")
        + f" ({where})"
    )
    for d in deleted:
        pv.line(f"- {d}")
    for a, v in sorted(acts.items()):
        if a != "delete":
            for item in v:
                pv.line(f"{a}: {item}")


def _aws_ec2(job: _Job) -> None:
    pv, inv, context, run = job.pv, job.inv, job.context, job.run
    if inv.flags.get("--cli-input-json") or inv.flags.get("--cli-input-yaml"):
        raise _Fail("the instance ids come from --cli-input-json/yaml: not previewed")
    ids: list[str] = []
    for name, vals in inv.flags.items():
        if len(name) >= 6 and "--instance-ids".startswith(name):
            for v in vals:
                ids += [i for i in re.split(r"[,\s]+", v) if i and v != "true"]
    if not ids:
        raise _Fail("no --instance-ids on the command line")
    where = f"profile {context.get('profile') or '?'}, region {context.get('region') or '?'}"
    args = ["ec2", "describe-instances", "--instance-ids", *ids, "--output", "json"]
    _, out, _ = run.run([*args, *_flag_args(inv, _AWS_TARGET)])
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise _Fail("describe-instances printed no JSON") from exc
    found: dict[str, tuple[str, str, str]] = {}
    for res in data.get("Reservations") or ():
        for inst in res.get("Instances") or ():
            tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags") or ()}
            found[str(inst.get("InstanceId"))] = (
                str(tags.get("Name") or "-"),
                str((inst.get("State") or {}).get("Name") or "?"),
                str(inst.get("InstanceType") or "?"),
            )
    live = [i for i, f in found.items() if f[1] not in ("terminated", "shutting-down")]
    running = [i for i, f in found.items() if f[1] == "running"]
    pv.counts = {"instances": len(found), "terminate": len(live), "running": len(running)}
    pv.summary = f"terminate {len(live)} instance(s), {len(running)} running ({where})" + (
        f"; {len(ids) - len(found)} id(s) not found" if len(found) < len(ids) else ""
    )
    for iid in ids:
        name, state, itype = found.get(iid, ("?", "not found", "?"))
        pv.line(f"- {iid} {name} ({state}, {itype})")


_KIND_IMPLS: dict[str, Callable[[_Job], None]] = {
    TERRAFORM_PLAN: _terraform,
    KUBECTL_DELETE: _kubectl_delete,
    KUBECTL_DIFF: _kubectl_diff,
    KUBECTL_TARGETS: _kubectl_targets,
    HELM_RELEASE: _helm_release,
    AWS_S3_OBJECTS: _aws_s3,
    AWS_EC2_INSTANCES: _aws_ec2,
}
