"""The log: canonical entries, a forward-secure MAC chain, safe appends, verification (HOT).

Files in a log directory (`<home>/log`):
- `shield.log`: JSON lines, one canonical entry per line (`shim.canon.encode`, ASCII only).
- `key`: one fixed-width line holding the key for the *next* entry, K(seq), with the log id,
  that seq, the log size in bytes and the SHA-256 of the last line. Overwritten in place after
  every append, so the key that MACed an entry is gone once the append returns.
- `anchor.json`: `{"log": id, "k0": hex}`, written once by `init_log` for the approver to take
  away (`shield log anchor import`); it must not stay on the agent side.
- `checkpoints/NNN.json`: copies of the approver's signed checkpoints.

Entry `seq` starts at 0 and is MACed with K(seq): `mac = HMAC-SHA256(K(seq), canonical entry
without "mac")`, `K(0)` random, `K(i+1) = SHA-256(KEY_LABEL || K(i))`. `prev` is the SHA-256 hex
of the previous line's bytes (without its newline); the first entry's `prev` is
`SHA-256("shield-log-genesis-v1:" + log id)`.

A torn tail (a writer killed mid-write) is never cut: the next append terminates it with a
newline and first writes a `security` entry whose `detail` lists the torn lines (bytes, SHA-256)
and the hash of the last good line before them; its `prev` is the hash of the last torn line.
`verify_log` accepts such a recorded run of unparseable lines, and reports it in `torn`.

Import discipline: this module runs on every shim call, so it imports only os, sys, time,
fcntl, errno, `_sha256` (HMAC is done by hand) and shim's hot modules; `json`, `hashlib`,
`hmac` and the keys module are imported lazily by the cold functions (verify, read, checkpoint).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from shim.canon import encode
from shim.errors import LogDamage, LogError

try:
    from _sha256 import sha256 as _sha256
except ImportError:  # Python 3.12+ merged the builtin SHA-2 modules
    from _sha2 import sha256 as _sha256

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    from shim.keys import PublicKey

LOG_NAME = "shield.log"
KEY_NAME = "key"
ANCHOR_NAME = "anchor.json"
CHECKPOINT_DIR = "checkpoints"

KEY_LABEL = b"shield-log-key-advance-v1"
GENESIS_LABEL = b"shield-log-genesis-v1:"
CHECKPOINT_LABEL = b"shield-checkpoint-v1\n"

# The fields every entry carries (scripts depend on the names); `append_entry` fills the
# missing ones with None (argv with [], context with {}).
FIELDS = (
    "event",
    "agent",
    "tool",
    "argv",
    "cwd",
    "context",
    "decision",
    "rule",
    "request",
    "approver",
)
RESERVED = ("seq", "time", "log", "prev", "mac")
KINDS = (
    "mac",
    "chain",
    "sequence",
    "truncated",
    "canonical",
    "fork",
    "replaced",
    "torn",
    "checkpoint-signature",
)

_KEY_MAGIC = "shield-log-key 1"
_KEY_RECORD_LEN = 211  # see _key_record
_IPAD = int.from_bytes(b"\x36" * 64, "big")
_OPAD = int.from_bytes(b"\x5c" * 64, "big")
_HEX = frozenset("0123456789abcdef")


# --- pure crypto -----------------------------------------------------------------------------


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) over the builtin `_sha256`: `hmac` and `hashlib` are too slow to
    import on the hot path. A test keeps it equal to `hmac.new(key, msg, "sha256")`."""
    if len(key) > 64:
        key = _sha256(key).digest()
    k = int.from_bytes(key + b"\0" * (64 - len(key)), "big")
    inner = _sha256((k ^ _IPAD).to_bytes(64, "big"))
    inner.update(msg)
    return _sha256((k ^ _OPAD).to_bytes(64, "big") + inner.digest()).digest()


def next_key(key: bytes) -> bytes:
    """K(i+1) = SHA-256(KEY_LABEL || K(i))."""
    return _sha256(KEY_LABEL + key).digest()


def genesis(log_id: str) -> str:
    """The `prev` of a log's first entry."""
    return _sha256(GENESIS_LABEL + log_id.encode("ascii")).hexdigest()


def line_hash(line: bytes) -> str:
    """SHA-256 hex of one line's bytes, without its newline."""
    return _sha256(line).hexdigest()


def now_iso() -> str:
    """ISO-8601 UTC with milliseconds and `Z`, without importing datetime."""
    t = time.time()
    secs = int(t)
    millis = int((t - secs) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(secs))}.{millis:03d}Z"


def seal(entry: dict[str, object], key: bytes) -> bytes:
    """The canonical line (without newline) for `entry` (which holds seq, log, prev, time but
    no mac), MACed with `key`. Sets `entry["mac"]`."""
    left = {k: v for k, v in entry.items() if k < "mac"}
    right = {k: v for k, v in entry.items() if k > "mac"}
    lhs = encode(left)[:-1]  # '{...' without the closing brace
    rhs = encode(right)[1:]  # '...}' without the opening brace
    if lhs == "{":
        body = "{" + rhs
        sep_l = ""
    else:
        body = lhs + ("," + rhs if rhs != "}" else "}")
        sep_l = ","
    mac = hmac_sha256(key, body.encode("ascii")).hex()
    entry["mac"] = mac
    sep_r = "," if rhs != "}" else ""
    return (lhs + sep_l + '"mac":"' + mac + '"' + sep_r + rhs).encode("ascii")


def mac_body(line: bytes, mac: str) -> bytes | None:
    """The MACed bytes of a canonical line: the line without its top-level `"mac":"..."` member.
    None when the member is not there."""
    seg = b'"mac":"' + mac.encode("ascii") + b'"'
    i = line.find(b"," + seg)
    if i >= 0:
        return line[:i] + line[i + len(seg) + 1 :]
    i = line.find(b"{" + seg + b",")
    if i == 0:
        return b"{" + line[len(seg) + 2 :]
    return None


# --- the key file ----------------------------------------------------------------------------


class _State:
    """What the key file holds: the next seq, its key, and where the log ends."""

    __slots__ = ("log", "seq", "size", "head", "key")

    def __init__(self, log: str, seq: int, size: int, head: str, key: bytes) -> None:
        self.log = log
        self.seq = seq
        self.size = size
        self.head = head
        self.key = key


def _key_record(st: _State) -> bytes:
    body = f"{_KEY_MAGIC} {st.log} {st.seq:012d} {st.size:016d} {st.head} {st.key.hex()}"
    return (body + " " + _sha256(body.encode("ascii")).hexdigest()[:16] + "\n").encode("ascii")


def _parse_key_record(raw: bytes, where: str) -> _State:
    damaged = LogError(
        f"the log key file is damaged: {where}",
        "the log cannot be continued; keep it for audit, move the log directory aside and "
        "run the install again (the approver imports the new anchor)",
    )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise damaged from None
    parts = text.split()
    if len(raw) != _KEY_RECORD_LEN or len(parts) != 8 or " ".join(parts[:2]) != _KEY_MAGIC:
        raise damaged
    body = text[: text.rindex(" ")]
    if _sha256(body.encode("ascii")).hexdigest()[:16] != parts[7]:
        raise damaged
    try:
        return _State(parts[2], int(parts[3]), int(parts[4]), parts[5], bytes.fromhex(parts[6]))
    except ValueError:
        raise damaged from None


def _put_key(kfd: int, rec: bytes) -> None:
    """Overwrite the key record in place (same length, one write) and make it durable."""
    if os.pwrite(kfd, rec, 0) != len(rec):
        raise OSError(errno.EIO, "short write to the key file")
    os.fdatasync(kfd)


def _create_file(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _oserror(exc: OSError, doing: str, path: str) -> LogError:
    reason = exc.strerror or str(exc)
    hint = "the call was not run because its log entry could not be written"
    if exc.errno == errno.ENOSPC:
        hint = "free space on the log's filesystem, then retry; " + hint
    return LogError(f"cannot {doing} {path}: {reason}", hint)


# --- init and append (hot) -------------------------------------------------------------------


def init_log(log_dir: str) -> dict[str, object]:
    """Create the log directory, a random log id and K0 when no log exists yet.

    Idempotent: an existing log and key are left alone. A new log also gets
    `<log_dir>/anchor.json` (0600) = {"log": id, "k0": hex} for the approver to take away with
    `shield log anchor import`. Returns {"log": id, "anchor": path or None, "created": bool}.
    """
    path = os.path.join(log_dir, LOG_NAME)
    kpath = os.path.join(log_dir, KEY_NAME)
    apath = os.path.join(log_dir, ANCHOR_NAME)
    try:
        os.makedirs(log_dir, mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise _oserror(exc, "create the log", path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(kpath, "rb") as fh:
                st = _parse_key_record(fh.read(), kpath)
            return {
                "log": st.log,
                "anchor": apath if os.path.exists(apath) else None,
                "created": False,
            }
        except FileNotFoundError:
            pass
        if os.fstat(fd).st_size:
            raise LogError(
                f"{path} exists but its key file {kpath} is missing",
                "the log cannot be continued; move the log directory aside (keep it for "
                "audit) and run the install again",
            )
        log_id = os.urandom(8).hex()
        k0 = os.urandom(32)
        anchor = encode({"k0": k0.hex(), "log": log_id}) + "\n"
        _create_file(apath, anchor.encode("ascii"), 0o600)
        _create_file(kpath, _key_record(_State(log_id, 0, 0, genesis(log_id), k0)), 0o600)
        _fsync_dir(log_dir)
        return {"log": log_id, "anchor": apath, "created": True}
    except OSError as exc:
        raise _oserror(exc, "initialise the log in", log_dir) from exc
    finally:
        os.close(fd)


def append_entry(log_dir: str, fields: dict[str, object]) -> dict[str, object]:
    """Append one entry and return it (with seq, time, log, prev, mac).

    Under an exclusive `flock` on the log: read the key record, heal a crash between a previous
    write and its key advance, record a torn tail, then one `O_APPEND` write of the whole line,
    `fdatasync`, and the key advance overwritten in place (`fdatasync`). Raises LogError on any
    failure; the log and key are then left as they were (or in a state the next append heals),
    so no entry is half-counted.
    """
    for name in RESERVED:
        if name in fields:
            raise LogError(f"log entry field {name!r} is set by the log itself")
    if not isinstance(fields.get("event"), str) or not fields["event"]:
        raise LogError("a log entry needs an event name (call, held, executed, ...)")
    entry: dict[str, object] = dict(fields)
    for name in FIELDS:
        if name not in entry:
            entry[name] = [] if name == "argv" else {} if name == "context" else None
    path = os.path.join(log_dir, LOG_NAME)
    kpath = os.path.join(log_dir, KEY_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LogError(
            f"no log at {path}",
            "the log is created at install: run `shield install` again (the approver then "
            "imports the anchor); if the log was deleted, that is a security event",
        ) from None
    except OSError as exc:
        raise _oserror(exc, "open", path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            kfd = os.open(kpath, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LogError(
                f"the log key file {kpath} is missing",
                "the log cannot be continued; move the log directory aside (keep it for "
                "audit) and run the install again",
            ) from None
        try:
            return _append_locked(fd, kfd, entry, path)
        finally:
            os.close(kfd)
    except OSError as exc:
        raise _oserror(exc, "append to", path) from exc
    finally:
        os.close(fd)  # releases the lock


def _append_locked(fd: int, kfd: int, entry: dict[str, object], path: str) -> dict[str, object]:
    st = _parse_key_record(os.pread(kfd, _KEY_RECORD_LEN + 1, 0), path)
    eof = os.fstat(fd).st_size
    if eof < st.size:
        raise LogError(
            f"{path} is shorter than its key file records ({eof} < {st.size} bytes): "
            "the log was truncated or replaced",
            "run `shield log verify`; the log cannot be continued as it is",
        )
    parts: list[bytes] = []
    if eof > st.size:
        torn, partial = _heal(fd, kfd, st, eof, path)
        if torn:
            if partial:
                parts.append(b"\n")
            record: dict[str, object] = {
                "event": "security",
                "agent": entry.get("agent"),
                "tool": entry.get("tool"),
                "argv": [],
                "cwd": None,
                "context": {},
                "decision": None,
                "rule": None,
                "request": None,
                "approver": None,
                "reason": "torn tail: a writer died mid-append; its partial line is kept above",
                "detail": {
                    "kind": "torn-tail",
                    "after": st.head,
                    "lines": [{"bytes": len(t), "sha256": line_hash(t)} for t in torn],
                },
            }
            line = _seal_next(record, st, line_hash(torn[-1]))
            parts.append(line + b"\n")
            st.head = line_hash(line)
    line = _seal_next(entry, st, st.head)
    parts.append(line + b"\n")
    data = b"".join(parts)
    st.head = line_hash(line)
    st.size = eof + len(data)
    base = os.pread(kfd, _KEY_RECORD_LEN, 0)  # the key record as it is now (after any heal)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, "short write (disk full?)")
        os.fdatasync(fd)
    except OSError:
        _undo_log(fd, eof)
        raise
    try:
        _put_key(kfd, _key_record(st))
    except OSError:
        # The entry is written but the key did not advance: put the old record back and take
        # the entry out again, so the caller's refusal matches the log. When the old record
        # cannot even be written back, the log stays one entry ahead of the key file, which
        # the next append heals (the entry then counts once, whole).
        try:
            if os.pwrite(kfd, base, 0) != len(base):
                raise OSError(errno.EIO, "short write to the key file")
        except OSError:
            pass
        else:
            _undo_log(fd, eof)
            try:
                os.fdatasync(kfd)
            except OSError:
                pass
        raise
    return entry


def _seal_next(entry: dict[str, object], st: _State, prev: str) -> bytes:
    """Seal `entry` as the next one after `st` and advance `st` (seq and key)."""
    entry["seq"] = st.seq
    entry["log"] = st.log
    entry["prev"] = prev
    entry["time"] = now_iso()
    try:
        line = seal(entry, st.key)
    except (TypeError, ValueError) as exc:
        raise LogError(f"cannot log this entry: {exc}") from None
    st.seq += 1
    st.key = next_key(st.key)
    return line


def _undo_log(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fdatasync(fd)
    except OSError:
        pass  # the partial line stays; the next append records it as torn


def _is_next(line: bytes, st: _State, prev: str) -> bool:
    """Is `line` the authentic entry number `st.seq` (MAC under `st.key`) after `prev`?"""
    i = line.rfind(b'"mac":"')
    while i >= 0:
        mac = line[i + 7 : i + 71]
        if line[i + 71 : i + 72] == b'"':
            body = mac_body(line, mac.decode("ascii", "replace"))
            if body is not None and hmac_sha256(st.key, body).hex().encode() == mac:
                seq = b'"seq":%d' % st.seq
                return (
                    (seq + b"," in line or seq + b"}" in line)
                    and b'"prev":"' + prev.encode() + b'"' in line
                    and b'"log":"' + st.log.encode() + b'"' in line
                )
        i = line.rfind(b'"mac":"', 0, i)
    return False


def _heal(fd: int, kfd: int, st: _State, eof: int, path: str) -> tuple[list[bytes], bytes]:
    """The log holds bytes past what the key file knows. Advance over an entry whose key advance
    was lost in a crash (at most one, plus a torn-tail record), and return the torn lines to
    record: (complete unparseable lines and the partial last one, the partial last one).

    A key file older than the log by more than one entry (rolled back) is refused.
    """
    tail = b""
    while len(tail) < eof - st.size:
        chunk = os.pread(fd, eof - st.size - len(tail), st.size + len(tail))
        if not chunk:
            break
        tail += chunk
    lines = tail.split(b"\n")
    partial = lines.pop()
    torn: list[bytes] = []
    healed = 0
    seq0 = st.seq
    offset = st.size
    for line in lines:
        offset += len(line) + 1
        if not _is_next(line, st, line_hash(torn[-1]) if torn else st.head):
            torn.append(line)
            continue
        if not torn:  # an ordinary entry, not the record of a torn run
            healed += 1
            if healed > 1:
                raise LogError(
                    f"the key file of {path} is older than the log by more than one entry "
                    "(rolled back?)",
                    "a rolled-back key could forge entries, so the log is not continued; "
                    "run `shield log verify` and tell the approver",
                )
        torn = []
        st.head = line_hash(line)
        st.seq += 1
        st.key = next_key(st.key)
        st.size = offset
    if partial:
        torn.append(partial)
    if st.seq != seq0:
        _put_key(kfd, _key_record(st))  # erase the key of the healed entry now
    return torn, partial


# --- verification (cold: json, hashlib and hmac are imported here, not at module level) -------


class VerifyReport:
    """The outcome of `verify_log` (frozen).

    ok: intact; entries: valid entries read (up to the first bad line); first_bad: the 1-based
    line number of the first bad line (None when ok, or for a bad checkpoint signature); kind:
    one of KINDS or None; message: one line for humans. Also: lines (complete lines up to the
    last good one), head (SHA-256 of that line), log (the log id), macs_checked, checkpoints
    (valid checkpoints checked), torn (line numbers of torn lines that a later entry records).
    """

    __slots__ = (
        "ok",
        "entries",
        "first_bad",
        "kind",
        "message",
        "lines",
        "head",
        "log",
        "macs_checked",
        "checkpoints",
        "torn",
    )
    ok: bool
    entries: int
    first_bad: int | None
    kind: str | None
    message: str
    lines: int
    head: str | None
    log: str | None
    macs_checked: bool
    checkpoints: int
    torn: tuple[int, ...]

    def __init__(
        self,
        ok: bool,
        entries: int,
        first_bad: int | None,
        kind: str | None,
        message: str,
        *,
        lines: int = 0,
        head: str | None = None,
        log: str | None = None,
        macs_checked: bool = False,
        checkpoints: int = 0,
        torn: tuple[int, ...] = (),
    ) -> None:
        values = (ok, entries, first_bad, kind, message, lines, head, log, macs_checked)
        for name, value in zip(self.__slots__, values, strict=False):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "checkpoints", checkpoints)
        object.__setattr__(self, "torn", tuple(torn))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VerifyReport is frozen")

    def as_dict(self) -> dict[str, object]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["torn"] = list(self.torn)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyReport) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__slots__))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"VerifyReport({inner})"


_EXPLAIN = {
    "mac": "the MAC does not match: the entry was edited or forged",
    "chain": "prev does not match the line before: a line was edited, inserted, removed or spliced",
    "sequence": "sequence number out of order: an entry was deleted, inserted, swapped or renumbered",
    "truncated": "the log is shorter than a signed checkpoint: entries were cut",
    "canonical": "not a canonical log entry (JSON spelling, key order, spaces or missing fields)",
    "fork": "differs from the line a signed checkpoint recorded: history was rewritten",
    "replaced": "the log is not the one the approver anchored: it was replaced",
    "torn": "the last line is incomplete (a writer died mid-append); the next append records it",
    "checkpoint-signature": "a checkpoint's signature does not verify with a trusted approver key",
}


def _no_float(text: str) -> object:
    raise ValueError(f"floats are not canonical: {text}")


class _Checker:
    """Per-run helpers bound once: the C JSON scanner/encoder and hashlib."""

    def __init__(self) -> None:
        import hashlib
        import hmac
        import json
        from json.encoder import encode_basestring_ascii

        c_make_encoder = getattr(json.encoder, "c_make_encoder", None)

        self.sha256 = hashlib.sha256
        self.hmac_digest = hmac.digest
        decoder = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
        self.scan = decoder.scan_once  # type: ignore[attr-defined]  # (text, 0) -> (obj, end); no whitespace skipping
        if c_make_encoder is not None:
            enc = c_make_encoder(
                None, _no_float, encode_basestring_ascii, None, ":", ",", True, False, False
            )
            self.encode = lambda obj: "".join(enc(obj, 0))
        else:  # pragma: no cover - CPython always has the C encoder
            self.encode = encode


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


_REQUIRED = frozenset(FIELDS + RESERVED)


def _entry_problem(d: dict[str, object]) -> str | None:
    """Why a parsed line is not a well-formed entry (None when it is). Cheap on the good path:
    prev and mac are later compared with values computed here, which checks their form."""
    if not d.keys() >= _REQUIRED:
        return "missing " + ", ".join(sorted(_REQUIRED - d.keys()))
    if type(d["seq"]) is not int:
        return "seq is not a number"
    for name in ("prev", "mac", "log", "time", "event"):
        if type(d[name]) is not str:
            return f"{name} is not a string"
    return None


def _torn_record_matches(
    d: dict[str, object], garbage: list[tuple[int, bytes]], after: str, sha: Callable[..., Any]
) -> bool:
    detail = d.get("detail")
    if d.get("event") != "security" or not isinstance(detail, dict):
        return False
    if detail.get("kind") != "torn-tail" or detail.get("after") != after:
        return False
    want = [{"bytes": len(line), "sha256": sha(line).hexdigest()} for _, line in garbage]
    return detail.get("lines") == want


def verify_lines(
    lines: Iterable[bytes],
    *,
    anchor: dict[str, object] | None = None,
    checkpoints: Iterable[dict[str, object]] = (),
    trusted: dict[str, PublicKey] | None = None,
) -> VerifyReport:
    """Verify a log given as its lines (bytes, each with its newline; pure).

    With `anchor` ({"log", "k0"}) every MAC is checked; without it, sequence, chain, canonical
    form and checkpoints only. Every checkpoint is checked against `trusted` keys, then against
    the log (size and head). Stops at the first bad line.
    """
    ck = _Checker()
    sha = ck.sha256
    hmac_digest = ck.hmac_digest
    scan = ck.scan
    reencode = ck.encode

    key: bytes | None = None
    want_log: str | None = None
    if anchor is not None:
        want_log = str(anchor.get("log"))
        k0 = anchor.get("k0")
        if not _is_hex(k0, 64):
            raise LogError("the anchor has no valid k0", "re-import the anchor file")
        key = bytes.fromhex(str(k0))

    good_cps: dict[int, list[dict[str, object]]] = {}
    bad_cps: list[dict[str, object]] = []
    cp_logs: set[str] = set()
    for cp in checkpoints:
        if verify_checkpoint(cp, trusted or {}) is None:
            bad_cps.append(cp)
            continue
        size = cp["size"]
        assert isinstance(size, int)
        good_cps.setdefault(size, []).append(cp)
        cp_logs.add(str(cp["log"]))
    n_cps = sum(len(v) for v in good_cps.values())
    max_cp = max(good_cps, default=0)

    lineno = 0
    entries = 0
    good_lines = 0
    seq = 0
    head: str | None = None
    log_id: str | None = None
    torn_ok: list[int] = []
    garbage: list[tuple[int, bytes]] = []
    label = KEY_LABEL

    def report(ok: bool, first_bad: int | None, kind: str | None, message: str) -> VerifyReport:
        return VerifyReport(
            ok,
            entries,
            first_bad,
            kind,
            message,
            lines=good_lines,
            head=head,
            log=log_id or want_log,
            macs_checked=anchor is not None,
            checkpoints=n_cps,
            torn=tuple(torn_ok),
        )

    def bad(where: int, kind: str, detail: str = "") -> VerifyReport:
        text = f"line {where}: {kind}: {detail or _EXPLAIN[kind]}"
        return report(False, where, kind, text)

    for raw in lines:
        lineno += 1
        complete = raw.endswith(b"\n")
        line = raw[:-1] if complete else raw
        if complete:
            for cp in good_cps.get(lineno, ()):
                if cp["head"] != sha(line).hexdigest():
                    return bad(
                        lineno,
                        "fork",
                        f"differs from checkpoint {cp.get('time')} (size {lineno}, signed by "
                        f"{cp.get('name')}): history was rewritten",
                    )
        d = None
        if complete:
            try:
                text = line.decode("ascii")
                d, end = scan(text, 0)
            except (UnicodeDecodeError, ValueError, StopIteration, RecursionError):
                d = None
        if not isinstance(d, dict) or end != len(text):
            garbage.append((lineno, line))
            continue
        if reencode(d) != text:
            return bad(lineno, "canonical")
        problem = _entry_problem(d)
        if problem:
            return bad(lineno, "canonical", f"not a log entry: {problem}")
        if log_id is None:
            log_id = str(d["log"])
            expected = want_log or (next(iter(cp_logs)) if len(cp_logs) == 1 else None)
            if (expected is not None and log_id != expected) or (cp_logs - {log_id}):
                return bad(
                    lineno,
                    "replaced",
                    f"log id {log_id} is not the anchored/checkpointed log "
                    f"{expected or ', '.join(sorted(cp_logs - {log_id}))}: the log was replaced",
                )
            head = genesis(log_id)
        prev = head
        if garbage:
            if not _torn_record_matches(d, garbage, str(head), sha):
                return bad(
                    garbage[0][0],
                    "canonical",
                    "not a log entry, and no torn-tail record follows it",
                )
            prev = sha(garbage[-1][1]).hexdigest()
        if d["seq"] != seq:
            return bad(
                lineno,
                "sequence",
                f"seq {d['seq']} where {seq} was expected: "
                + _EXPLAIN["sequence"].split(": ", 1)[1],
            )
        if d["log"] != log_id:
            return bad(lineno, "chain", f"entry of another log ({d['log']}): spliced in")
        if d["prev"] != prev:
            return bad(lineno, "chain")
        if key is not None:
            mac = str(d["mac"])
            body = mac_body(line, mac)
            if body is None or hmac_digest(key, body, "sha256").hex() != mac:
                return bad(lineno, "mac")
            key = sha(label + key).digest()
        if garbage:
            torn_ok.extend(n for n, _ in garbage)
            garbage = []
        head = sha(line).hexdigest()
        seq += 1
        entries += 1
        good_lines = lineno

    if max_cp > good_lines:
        return bad(
            good_lines + 1,
            "truncated",
            f"the log ends at line {good_lines} but a signed checkpoint covers {max_cp} lines: "
            "entries were cut",
        )
    if garbage:
        first = garbage[0][0]
        return bad(first, "torn")
    if bad_cps:
        cp = bad_cps[0]
        where = cp.get("_file") or f"size {cp.get('size')}"
        return report(
            False,
            None,
            "checkpoint-signature",
            f"checkpoint {where}: checkpoint-signature: {_EXPLAIN['checkpoint-signature']}",
        )
    parts = [f"intact: {entries} entries"]
    parts.append("MACs checked" if anchor is not None else "MACs not checked (no anchor)")
    parts.append(f"{n_cps} checkpoint{'s' if n_cps != 1 else ''}")
    if torn_ok:
        parts.append(f"torn lines recorded at {', '.join(map(str, torn_ok))}")
    return report(True, None, None, "; ".join(parts))


def verify_log(
    path: str,
    *,
    anchor: dict[str, object] | None = None,
    checkpoints: Iterable[dict[str, object]] = (),
    trusted: dict[str, PublicKey] | None = None,
) -> VerifyReport:
    """Verify the log file at `path` (see `verify_lines`). Raises LogError when unreadable."""
    try:
        with open(path, "rb", buffering=1 << 20) as fh:
            return verify_lines(fh, anchor=anchor, checkpoints=list(checkpoints), trusted=trusted)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}", "check --path") from exc


# --- reading ---------------------------------------------------------------------------------


def parse_line(line: bytes) -> dict[str, object] | None:
    """One log line (without newline) as a dict, or None when it is not a JSON object."""
    import json

    try:
        obj = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def torn_marker(lineno: int, line: bytes) -> dict[str, object]:
    """What `read_entries` yields for a line that is not an entry (torn by a crash)."""
    return {"event": "torn", "line": lineno, "bytes": len(line)}


def read_entries(path: str) -> Iterator[dict[str, object]]:
    """The entries of a log, in order. Tolerant: a line that is not a JSON object (a torn tail)
    is yielded as `torn_marker(...)` ({"event": "torn", "line", "bytes"}), never dropped."""
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                d = parse_line(line) if raw.endswith(b"\n") else None
                yield d if d is not None else torn_marker(lineno, line)
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}", "check --path") from exc


# --- anchors and checkpoints (cold; approver side) -------------------------------------------


def _load_json(path: str) -> object:
    import json

    with open(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def _write_json(path: str, obj: object, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _create_file(path, (encode(obj) + "\n").encode("ascii"), mode)


def anchors_dir(home: str) -> str:
    return os.path.join(home, "anchors")


def approver_checkpoints_dir(home: str, log_id: str) -> str:
    return os.path.join(home, "checkpoints", log_id)


def log_checkpoints_dir(log_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(log_path)), CHECKPOINT_DIR)


def load_anchor(path: str) -> dict[str, object]:
    """Read and check an anchor file ({"log": id, "k0": hex})."""
    try:
        obj = _load_json(path)
    except (OSError, ValueError) as exc:
        raise LogError(f"cannot read the anchor {path}: {exc}") from exc
    if (
        not isinstance(obj, dict)
        or not _is_hex(obj.get("k0"), 64)
        or not _is_hex(obj.get("log"), 16)
    ):
        raise LogError(
            f"{path} is not a log anchor",
            "use the anchor.json that `shield install` wrote next to the agent's log",
        )
    return {"log": obj["log"], "k0": obj["k0"]}


def import_anchor(home: str, path: str) -> str:
    """Store an anchor in the approver's home (`<home>/anchors/<log>.json`, 0600)."""
    anchor = load_anchor(path)
    dest = os.path.join(anchors_dir(home), f"{anchor['log']}.json")
    if os.path.exists(dest):
        if load_anchor(dest) != anchor:
            raise LogError(
                f"a different anchor for log {anchor['log']} is already stored in {dest}",
                "the log was re-initialised or the file was tampered with; keep both and "
                "verify the log with --anchor",
            )
        return dest
    _write_json(dest, anchor, 0o600)
    return dest


def known_log_ids(home: str) -> list[str]:
    """Log ids this (approver) home holds anchors or checkpoints for."""
    ids: set[str] = set()
    for base, suffix in ((anchors_dir(home), ".json"), (os.path.join(home, "checkpoints"), "")):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            if name.endswith(suffix) and _is_hex(name[: len(name) - len(suffix)], 16):
                ids.add(name[: len(name) - len(suffix)])
    return sorted(ids)


def first_log_id(path: str) -> str | None:
    """The log id named by the first entry of a log, if any."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
    except OSError:
        return None
    d = parse_line(first.rstrip(b"\n"))
    log = d.get("log") if d else None
    return log if isinstance(log, str) else None


def load_checkpoints(directory: str) -> list[dict[str, object]]:
    """Every `*.json` checkpoint in a directory (unreadable ones are kept, marked with `_file`
    and no signature, so verification reports them)."""
    out: list[dict[str, object]] = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        try:
            obj = _load_json(path)
        except (OSError, ValueError):
            obj = None
        cp = dict(obj) if isinstance(obj, dict) else {}
        cp["_file"] = path
        out.append(cp)
    return out


def checkpoint_message(cp: dict[str, object]) -> bytes:
    """The signed bytes of a checkpoint: a label and the canonical {head, log, size, time}."""
    body = {"head": cp["head"], "log": cp["log"], "size": cp["size"], "time": cp["time"]}
    return CHECKPOINT_LABEL + encode(body).encode("ascii")


def verify_checkpoint(cp: dict[str, object], trusted: dict[str, PublicKey]) -> PublicKey | None:
    """The trusted key that signed `cp`, or None (bad signature, unknown key, malformed)."""
    from shim.keys import verify_signature

    size = cp.get("size")
    if (
        type(size) is not int
        or size < 0
        or not _is_hex(cp.get("head"), 64)
        or not isinstance(cp.get("log"), str)
        or not isinstance(cp.get("time"), str)
        or not isinstance(cp.get("signer"), str)
        or not isinstance(cp.get("sig"), str)
    ):
        return None
    signer, sig, msg = str(cp["signer"]), str(cp["sig"]), checkpoint_message(cp)
    pub = trusted.get(signer)
    if pub is None:
        return None
    memo = (pub.raw, msg, sig)  # Ed25519 costs ~0.1 ms; verify runs often over the same files
    if memo in _GOOD_SIGNATURES:
        return pub
    good = verify_signature(trusted, signer, msg, sig)
    if good is not None:
        if len(_GOOD_SIGNATURES) > 4096:
            _GOOD_SIGNATURES.clear()
        _GOOD_SIGNATURES.add(memo)
    return good


_GOOD_SIGNATURES: set[tuple[bytes, bytes, str]] = set()


def approver_trusted(home: str) -> dict[str, PublicKey]:
    """Keys whose checkpoints a home accepts: its trust store and its own approver key."""
    from shim.errors import KeyError_
    from shim.keys import approver_identity, load_trusted

    trusted = load_trusted(home)
    try:
        own = approver_identity(home)
    except KeyError_:
        return trusted
    trusted[own.fingerprint] = own
    return trusted


def gather(
    home: str, log_path: str, anchor_file: str | None = None
) -> tuple[dict[str, object] | None, list[dict[str, object]], list[str]]:
    """What a home knows about the log at `log_path`: (anchor or None, checkpoints, notes).

    The anchor is `anchor_file`, else `<home>/anchors/<log id>.json`, else the home's only
    anchor (so a replaced log shows as replaced). Checkpoints: the approver's for that log id
    and the copies next to the log.
    """
    notes: list[str] = []
    log_id = first_log_id(log_path)
    anchor: dict[str, object] | None = None
    if anchor_file:
        anchor = load_anchor(anchor_file)
    else:
        known = known_log_ids(home)
        pick = log_id if log_id in known else (known[0] if len(known) == 1 else None)
        if pick and os.path.exists(os.path.join(anchors_dir(home), f"{pick}.json")):
            anchor = load_anchor(os.path.join(anchors_dir(home), f"{pick}.json"))
        elif pick is None and known:
            notes.append(
                f"this home holds anchors for other logs ({', '.join(known)}), not for "
                f"{log_id}; pass --anchor to check against one of them"
            )
        if anchor is None:
            notes.append(
                f"MACs not checked: no anchor for log {log_id or '?'} in {anchors_dir(home)} "
                "(the approver imports it with `shield log anchor import`)"
            )
    ids = {str(i) for i in (log_id, anchor["log"] if anchor else None) if i}
    cps: list[dict[str, object]] = []
    seen: set[str] = set()
    dirs = [approver_checkpoints_dir(home, i) for i in sorted(ids)]
    dirs.append(log_checkpoints_dir(log_path))
    for directory in dirs:
        for cp in load_checkpoints(directory):
            sig = str(cp.get("sig"))
            if sig in seen and "sig" in cp:
                continue
            seen.add(sig)
            cps.append(cp)
    agent_anchor = os.path.join(os.path.dirname(os.path.abspath(log_path)), ANCHOR_NAME)
    if os.path.exists(agent_anchor):
        notes.append(
            f"warning: {agent_anchor} is still on the agent side: whoever reads it can forge the "
            "whole log; import it on the approver side, then delete it"
        )
    return anchor, cps, notes


def sign_checkpoint(approver_home: str, log_path: str) -> dict[str, object]:
    """Verify the log (with the approver's anchor), then sign a checkpoint of its size (lines)
    and head with the approver key of `approver_home`. Stored in
    `<home>/checkpoints/<log>/NNN.json` and copied to `<log dir>/checkpoints/NNN.json`.

    Returns the checkpoint plus `stored` and `copied` (the copy's path, or None when the log's
    directory is not writable from here). Raises LogDamage when the log does not verify (a torn
    tail is fine: the checkpoint covers the complete lines before it).
    """
    from shim.keys import sign

    anchor, cps, _ = gather(approver_home, log_path)
    if anchor is None:
        raise LogError(
            f"no anchor for the log {log_path} in {anchors_dir(approver_home)}",
            "import it first: shield log anchor import ANCHOR_FILE (a checkpoint without "
            "MAC checks could bless a forged log)",
        )
    rep = verify_log(
        log_path, anchor=anchor, checkpoints=cps, trusted=approver_trusted(approver_home)
    )
    if not rep.ok and rep.kind != "torn":
        raise LogDamage(rep.message, "investigate before signing: shield log verify")
    if rep.head is None or rep.log is None:
        raise LogError(f"{log_path} has no entries yet", "sign a checkpoint once it has some")
    cp: dict[str, object] = {"head": rep.head, "log": rep.log, "size": rep.lines, "time": now_iso()}
    ident, sig = sign(approver_home, checkpoint_message(cp))
    cp.update(signer=ident.fingerprint, name=ident.name, sig=sig)
    directory = approver_checkpoints_dir(approver_home, rep.log)
    try:
        numbers = [int(n[:-5]) for n in os.listdir(directory) if n[:-5].isdigit()]
    except OSError:
        numbers = []
    name = f"{max(numbers, default=0) + 1:03d}.json"
    stored = os.path.join(directory, name)
    _write_json(stored, cp, 0o644)
    copied: str | None = os.path.join(log_checkpoints_dir(log_path), name)
    try:
        _write_json(str(copied), cp, 0o644)
    except OSError:
        copied = None
    return {**cp, "stored": stored, "copied": copied}


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
