"""The log: canonical entries, a forward-secure MAC chain, safe appends (HOT).

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

Import discipline: this module runs on every shim call, so it imports only fcntl, `_sha256`
(HMAC is done by hand) and shim's hot modules. Verification and reading live in
`shim.log.verify`, anchors and checkpoints in `shim.log.anchors` (both cold).
"""

import fcntl

from shim import fs
from shim.canon import encode
from shim.clock import now_iso
from shim.errors import LogError

try:
    from _sha256 import sha256 as _sha256
except ImportError:  # Python 3.12+ merged the builtin SHA-2 modules
    from _sha2 import sha256 as _sha256

# errno values used on failure paths (the errno module costs an import on every call)
_EIO = 5
_ENOSPC = 28

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


def seal(entry: dict[str, object], key: bytes) -> bytes:
    """The canonical line (without newline) for `entry` (which holds seq, log, prev, time but
    no mac), MACed with `key`. Sets `entry["mac"]`."""
    parts, slots = _template(entry, ("mac",))
    return _close(entry, parts, slots, key)


def _close(entry: dict[str, object], parts: list[str], slots: dict[str, int], key: bytes) -> bytes:
    """MAC the members in `parts` (all but `mac` filled in), put the MAC in its place and in
    `entry`, and return the line."""
    at = slots["mac"]
    body = "{" + ",".join(parts[:at] + parts[at + 1 :]) + "}"
    mac = hmac_sha256(key, body.encode("ascii")).hex()
    parts[at] = '"mac":"' + mac + '"'
    entry["mac"] = mac
    return ("{" + ",".join(parts) + "}").encode("ascii")


# The members the log fills in itself, in canonical (sorted) order with the rest.
_SLOTS = ("log", "mac", "prev", "seq", "time")


def _template(
    entry: dict[str, object], places: tuple[str, ...] = _SLOTS
) -> tuple[list[str], dict[str, int]]:
    """The canonical members of `entry` (`"key":value`, sorted by key as `shim.canon.encode`
    sorts them) with empty places for the members named in `places`, and where those places
    are. `append_entry` encodes here, before it takes the lock, so the lock is held only to
    fill in the places and MAC."""
    parts: list[str] = []
    slots: dict[str, int] = {}
    for key in sorted(set(entry).union(places)):
        if key in places:
            slots[key] = len(parts)
            parts.append("")
        else:
            parts.append(encode(key) + ":" + encode(entry[key]))
    return parts, slots


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
    if fs.pwrite(kfd, rec, 0) != len(rec):
        raise OSError(_EIO, "short write to the key file")
    fs.fdatasync(kfd)


def create_file(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = fs.open(tmp, fs.O_WRONLY | fs.O_CREAT | fs.O_TRUNC | fs.O_CLOEXEC, mode)
    try:
        fs.fchmod(fd, mode)
        fs.write_all(fd, data)
        fs.fsync(fd)
    finally:
        fs.close(fd)
    fs.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = fs.open(path, fs.O_RDONLY | fs.O_DIRECTORY | fs.O_CLOEXEC)
    try:
        fs.fsync(fd)
    finally:
        fs.close(fd)


def _oserror(exc: OSError, doing: str, path: str) -> LogError:
    reason = exc.strerror or str(exc)
    hint = "the call was not run because its log entry could not be written"
    if exc.errno == _ENOSPC:
        hint = "free space on the log's filesystem, then retry; " + hint
    return LogError(f"cannot {doing} {path}: {reason}", hint)


# --- init and append (hot) -------------------------------------------------------------------


def init_log(log_dir: str) -> dict[str, object]:
    """Create the log directory, a random log id and K0 when no log exists yet.

    Idempotent: an existing log and key are left alone. A new log also gets
    `<log_dir>/anchor.json` (0600) = {"log": id, "k0": hex} for the approver to take away with
    `shield log anchor import`. Returns {"log": id, "anchor": path or None, "created": bool}.
    """
    path = fs.join(log_dir, LOG_NAME)
    kpath = fs.join(log_dir, KEY_NAME)
    apath = fs.join(log_dir, ANCHOR_NAME)
    try:
        fs.makedirs(log_dir, 0o750)
        fd = fs.open(path, fs.O_RDWR | fs.O_APPEND | fs.O_CREAT | fs.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise _oserror(exc, "create the log", path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(kpath, "rb") as fh:
                st = _parse_key_record(fh.read(), kpath)
            return {
                "log": st.log,
                "anchor": apath if fs.exists(apath) else None,
                "created": False,
            }
        except FileNotFoundError:
            pass
        if fs.fstat(fd).st_size:
            raise LogError(
                f"{path} exists but its key file {kpath} is missing",
                "the log cannot be continued; move the log directory aside (keep it for "
                "audit) and run the install again",
            )
        log_id = fs.urandom(8).hex()
        k0 = fs.urandom(32)
        anchor = encode({"k0": k0.hex(), "log": log_id}) + "\n"
        create_file(apath, anchor.encode("ascii"), 0o600)
        create_file(kpath, _key_record(_State(log_id, 0, 0, genesis(log_id), k0)), 0o600)
        _fsync_dir(log_dir)
        return {"log": log_id, "anchor": apath, "created": True}
    except OSError as exc:
        raise _oserror(exc, "initialise the log in", log_dir) from exc
    finally:
        fs.close(fd)


def append_entry(log_dir: str, fields: dict[str, object]) -> dict[str, object]:
    """Append one entry and return it (with seq, time, log, prev, mac) once it is durable.

    The entry is encoded before the lock is taken. Under an exclusive `flock` on the log: read
    the key record, heal a crash between a previous write and its key advance, record a torn
    tail, seal the line, one `O_APPEND` write, and the key advance overwritten in place (the
    old key is gone from the file before the lock is released). Then, outside the lock,
    `fdatasync` of the log: concurrent writers share one journal commit (group commit), so the
    lock is held for microseconds, not for a disk flush. Returns only when the line is durable.

    Raises LogError on any failure. A failed write is taken back under the lock. A failed
    `fdatasync` takes the entry back when no other writer has appended since; otherwise the
    entry stays (the log may then name a call that did not run: it over-reports, never
    under-reports).
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
    try:
        parts, slots = _template(entry)
    except (TypeError, ValueError) as exc:
        raise LogError(f"cannot log this entry: {exc}") from None
    path = fs.join(log_dir, LOG_NAME)
    kpath = fs.join(log_dir, KEY_NAME)
    try:
        fd = fs.open(path, fs.O_RDWR | fs.O_APPEND | fs.O_CLOEXEC)
    except FileNotFoundError:
        raise LogError(
            f"no log at {path}",
            "the log is created at install: run `shield install` again (the approver then "
            "imports the anchor); if the log was deleted, that is a security event",
        ) from None
    except OSError as exc:
        raise _oserror(exc, "open", path) from exc
    try:
        try:
            kfd = fs.open(kpath, fs.O_RDWR | fs.O_CLOEXEC)
        except FileNotFoundError:
            raise LogError(
                f"the log key file {kpath} is missing",
                "the log cannot be continued; move the log directory aside (keep it for "
                "audit) and run the install again",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                eof, end, base, rec = _append_locked(fd, kfd, entry, parts, slots, path)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fs.fdatasync(fd)
            except OSError:
                _retract(fd, kfd, eof, end, base, rec)
                raise
        finally:
            fs.close(kfd)
    except OSError as exc:
        raise _oserror(exc, "append to", path) from exc
    finally:
        fs.close(fd)
    return entry


def _fill(entry: dict[str, object], parts: list[str], slots: dict[str, int], st: _State) -> bytes:
    """Seal the templated `entry` as the next one after `st` (same bytes as `seal`), set its
    reserved fields and advance `st` (seq, key, head)."""
    stamp = now_iso()
    parts[slots["log"]] = '"log":"' + st.log + '"'
    parts[slots["prev"]] = '"prev":"' + st.head + '"'
    parts[slots["seq"]] = '"seq":' + str(st.seq)
    parts[slots["time"]] = '"time":"' + stamp + '"'
    entry.update(seq=st.seq, log=st.log, prev=st.head, time=stamp)
    line = _close(entry, parts, slots, st.key)
    st.seq += 1
    st.key = next_key(st.key)
    st.head = line_hash(line)
    return line


def _append_locked(
    fd: int,
    kfd: int,
    entry: dict[str, object],
    parts: list[str],
    slots: dict[str, int],
    path: str,
) -> tuple[int, int, bytes, bytes]:
    """Write the entry (and any torn-tail record before it) and advance the key; the caller holds
    the lock. Returns (log size before, log size after, key record before, key record after)."""
    st = _parse_key_record(fs.pread(kfd, _KEY_RECORD_LEN, 0), path)
    eof = fs.fstat(fd).st_size
    if eof < st.size:
        raise LogError(
            f"{path} is shorter than its key file records ({eof} < {st.size} bytes): "
            "the log was truncated or replaced",
            "run `shield log verify`; the log cannot be continued as it is",
        )
    chunks: list[bytes] = []
    if eof > st.size:
        torn, partial, healed = _heal(fd, kfd, st, eof, path)
        if partial:
            chunks.append(b"\n")
        if torn:  # the record of a torn run must follow it at once
            chunks.append(_note_torn(entry, st, torn) + b"\n")
        if healed > 1:
            chunks.append(_note_behind(entry, st, healed) + b"\n")
    chunks.append(_fill(entry, parts, slots, st) + b"\n")
    data = b"".join(chunks)
    st.size = eof + len(data)
    base = fs.pread(kfd, _KEY_RECORD_LEN, 0)  # the key record as it is now (after any heal)
    try:
        written = fs.write(fd, data)
        if written != len(data):
            raise OSError(_ENOSPC, "short write (disk full?)")
    except OSError:
        _undo_log(fd, eof)
        raise
    rec = _key_record(st)
    try:
        if fs.pwrite(kfd, rec, 0) != len(rec):
            raise OSError(_EIO, "short write to the key file")
    except OSError:
        # The entry is written but the key did not advance: put the old record back and take
        # the entry out again, so the caller's refusal matches the log. When the old record
        # cannot even be written back, the log stays one entry ahead of the key file, which
        # the next append heals (the entry then counts once, whole).
        try:
            if fs.pwrite(kfd, base, 0) != len(base):
                raise OSError(_EIO, "short write to the key file")
        except OSError:
            pass
        else:
            _undo_log(fd, eof)
        raise
    return eof, st.size, base, rec


def _retract(fd: int, kfd: int, eof: int, end: int, base: bytes, rec: bytes) -> None:
    """`fdatasync` failed after the lock was released: take the entry back if it is still the
    last thing in the log (log size and key record as this append left them)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        return
    try:
        if fs.fstat(fd).st_size != end or fs.pread(kfd, len(rec) + 1, 0) != rec:
            return  # another writer appended after it: the entry stays (it over-reports)
        if fs.pwrite(kfd, base, 0) == len(base):
            _undo_log(fd, eof)
            fs.fdatasync(kfd)
    except OSError:
        pass
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _note(entry: dict[str, object], st: _State, prev: str, reason: str, detail: object) -> bytes:
    """A `security` record sealed as the next entry after `st` (on the rare heal paths)."""
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
        "reason": reason,
        "detail": detail,
    }
    st.head = prev
    return _fill(record, *_template(record), st)


def _note_torn(entry: dict[str, object], st: _State, torn: list[bytes]) -> bytes:
    return _note(
        entry,
        st,
        line_hash(torn[-1]),
        "torn tail: a writer died mid-append; its partial line is kept above",
        {
            "kind": "torn-tail",
            "after": st.head,
            "lines": [{"bytes": len(t), "sha256": line_hash(t)} for t in torn],
        },
    )


def _note_behind(entry: dict[str, object], st: _State, healed: int) -> bytes:
    return _note(
        entry,
        st,
        st.head,
        f"the key file was {healed} entries behind the log (a power cut before the kernel "
        "wrote it back, or the file was rolled back); each entry stepped over was authentic "
        "(its MAC verified) and its key is now erased",
        {"kind": "key-behind", "entries": healed},
    )


def _undo_log(fd: int, size: int) -> None:
    try:
        fs.ftruncate(fd, size)
        fs.fdatasync(fd)
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


def _heal(fd: int, kfd: int, st: _State, eof: int, path: str) -> tuple[list[bytes], bytes, int]:
    """The log holds bytes past what the key file knows: step over the entries whose key
    advance was lost (a kill between write and advance, or a power cut before the kernel wrote
    the key file back), each only if its MAC verifies under the key `st` holds, and return
    (the torn lines to record: complete unparseable lines and the partial last one, the
    partial last one, how many ordinary entries were stepped over).

    Stepping over many entries is safe: only the holder of the key in the key file could have
    made them, and that key is then erased. A key file rolled back by an agent that saved it
    is healed the same way, and the append records how far behind it was. A line that does not
    verify but is followed by one that does (an insertion, which would pass authentic entries
    off as torn) is refused.
    """
    tail = b""
    while len(tail) < eof - st.size:
        chunk = fs.pread(fd, eof - st.size - len(tail), st.size + len(tail))
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
            if torn and _is_next(line, st, st.head):
                raise LogError(
                    f"{path}: a line was inserted before entry {st.seq}, past what the key "
                    "file covers",
                    "the log is not continued; run `shield log verify` and tell the approver",
                )
            torn.append(line)
            continue
        if not torn:  # an ordinary entry, not the record of a torn run
            healed += 1
        torn = []
        st.head = line_hash(line)
        st.seq += 1
        st.key = next_key(st.key)
        st.size = offset
    if partial:
        torn.append(partial)
    if st.seq != seq0:
        _put_key(kfd, _key_record(st))  # erase the keys of the healed entries now
    return torn, partial, healed
