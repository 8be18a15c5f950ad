"""Held requests, signed decisions, and waiting for one (hot-ish: stdlib only at import).

A shim imports this module only when a call is held. `cryptography` is imported lazily, through
`shim.keys.verify_signature`, when a decision file shows up; `json` when one is read.

Spool layout (one directory shared by the agent and the approver sides, e.g. a bind mount):

    <spool>/requests/<id>.json           a held request (`to_dict`), written by the shim
    <spool>/decisions/<id>.<nonce>.json  a signed decision, written by `shield approve/deny`
    <spool>/closed/<id>.json             the request once approved, denied, expired or cancelled
                                         (the shim's own copy, plus "status" and "closed")
    <spool>/rejected/<name>.<ms>         decision files the shim refused, moved aside
    <spool>/tmp/                         staging for atomic writes (write, then rename)

Everything in the spool is readable and writable by the agent, so nothing in it is trusted: the
shim keeps the request in memory, computes its digest itself, and accepts only a decision that
a trusted key signed over this request's id and that digest, unexpired and unused.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shim import canon, fs
from shim.audit import now_iso
from shim.errors import KeyError_, SpoolError

if TYPE_CHECKING:
    import subprocess

    from shim.keys import PublicKey
    from shim.prompt import TtyPrompt

# Request ids: short, typeable, no look-alikes (no 0/o, 1/l/i).
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LEN = 6

# Every field of a request that the digest covers, in the JSON shape's order.
FIELDS = (
    "id",
    "agent",
    "tool",
    "argv",
    "cwd",
    "context",
    "rule",
    "reason",
    "created",
    "expires",
    "extra",
)
# Keys `extra` may not use once flattened into the JSON shape.
RESERVED = frozenset(FIELDS) | {"digest", "status", "closed"}

DECISION_TYPE = "shield.decision/1"
DECISION_KEYS = frozenset(
    {
        "type",
        "id",
        "digest",
        "verdict",
        "approver",
        "key",
        "time",
        "expires",
        "reason",
        "nonce",
        "sig",
    }
)
VERDICTS = {"approve": "approved", "deny": "denied"}

MAX_REQUEST_BYTES = 4 << 20
MAX_DECISION_BYTES = 64 << 10
CLOSED_KEEP_S = 24 * 3600.0
REJECTED_KEEP_S = 7 * 24 * 3600.0
TTY_TRIES = 3

LogFn = Callable[[dict[str, Any]], object]  # the return value is ignored


@dataclass(frozen=True)
class HeldRequest:
    """A held call, exactly as the shim saw it. `digest` covers every other field."""

    id: str
    agent: str
    tool: str
    argv: tuple[str, ...]
    cwd: str
    context: dict[str, str]
    rule: str | None
    reason: str
    created: str
    expires: str
    extra: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class Verdict:
    """How a hold ended. `channel` is "spool" or "tty" for a decision, "" otherwise."""

    outcome: str  # "approved" | "denied" | "expired" | "interrupted"
    approver: str | None = None
    reason: str = ""
    signal: int | None = None
    channel: str = ""


# --- ids, times, digests ----------------------------------------------------------------------


def random_string(n: int, alphabet: str = ID_ALPHABET) -> str:
    """`n` characters drawn uniformly from `alphabet` (os.urandom, rejection sampling)."""
    size = len(alphabet)
    limit = 256 - 256 % size
    out: list[str] = []
    while len(out) < n:
        for byte in os.urandom(2 * n):
            if byte < limit:
                out.append(alphabet[byte % size])
                if len(out) == n:
                    break
    return "".join(out)


def is_request_id(text: str) -> bool:
    return len(text) == ID_LEN and all(c in ID_ALPHABET for c in text)


iso = now_iso  # the log's formatter: one spelling of time in requests, decisions and entries


def parse_iso(text: str) -> float:
    """Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.fff]Z`; ValueError otherwise."""
    if not isinstance(text, str) or len(text) < 20 or not text.endswith("Z"):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    body = text[:-1]
    frac = 0.0
    if len(body) > 19:
        tail = body[19:]
        if tail[0] != "." or not tail[1:].isdigit() or not tail[1:].isascii():
            raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
        frac = int(tail[1:]) / 10 ** (len(tail) - 1)
    parts = (body[0:4], body[5:7], body[8:10], body[11:13], body[14:16], body[17:19])
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    y, mo, d, h, mi, s = (int(p) for p in parts)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + frac


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def content_of(req: HeldRequest) -> dict[str, Any]:
    """The digested content of a request (every field but `digest`)."""
    return {
        "id": req.id,
        "agent": req.agent,
        "tool": req.tool,
        "argv": list(req.argv),
        "cwd": req.cwd,
        "context": dict(req.context),
        "rule": req.rule,
        "reason": req.reason,
        "created": req.created,
        "expires": req.expires,
        "extra": dict(req.extra),
    }


def compute_digest(content: dict[str, Any]) -> str:
    """SHA-256 hex over the canonical JSON encoding of a request's content."""
    return hashlib.sha256(canon.encode(content).encode("ascii")).hexdigest()


def _check_fields(
    rid: object,
    agent: object,
    tool: object,
    argv: object,
    cwd: object,
    context: object,
    rule: object,
    reason: object,
    extra: object,
) -> str | None:
    """What is wrong with these request fields, or None."""
    if not isinstance(rid, str) or not is_request_id(rid):
        return "id"
    for name, value in (("agent", agent), ("tool", tool), ("cwd", cwd), ("reason", reason)):
        if not isinstance(value, str):
            return name
    if not isinstance(argv, (list, tuple)) or not all(isinstance(a, str) for a in argv):
        return "argv"
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in context.items()
    ):
        return "context"
    if rule is not None and not isinstance(rule, str):
        return "rule"
    if not isinstance(extra, dict) or any(not isinstance(k, str) or k in RESERVED for k in extra):
        return "extra"
    try:
        canon.encode(extra)
    except TypeError:
        return "extra"
    return None


def new_request(
    *,
    agent: str,
    tool: str,
    argv: list[str] | tuple[str, ...],
    cwd: str,
    context: dict[str, str],
    rule: str | None,
    reason: str,
    timeout_s: float,
    extra: dict[str, Any] | None = None,
    now: float | None = None,
) -> HeldRequest:
    """A new held request with a fresh id, `created` = now, `expires` = now + timeout_s."""
    now = time.time() if now is None else now
    extra = {} if extra is None else dict(extra)
    rid = random_string(ID_LEN)
    bad = _check_fields(rid, agent, tool, argv, cwd, context, rule, reason, extra)
    if bad:
        raise ValueError(f"held request: bad {bad} (extra may not reuse {sorted(RESERVED)})")
    fields: dict[str, Any] = {
        "id": rid,
        "agent": agent,
        "tool": tool,
        "argv": tuple(argv),
        "cwd": cwd,
        "context": dict(context),
        "rule": rule,
        "reason": reason,
        "created": iso(now),
        "expires": iso(now + max(0.0, timeout_s)),
        "extra": extra,
    }
    probe = HeldRequest(digest="", **fields)
    return HeldRequest(digest=compute_digest(content_of(probe)), **fields)


def to_dict(req: HeldRequest) -> dict[str, Any]:
    """The JSON shape (spool file, `shield pending --json`): fields, digest, extra flattened."""
    out = content_of(req)
    extra = out.pop("extra")
    out["digest"] = req.digest
    out.update(extra)
    return out


def request_from_dict(data: object) -> HeldRequest:
    """A request from its JSON shape; the digest is recomputed, never read from `data`."""
    if not isinstance(data, dict):
        raise SpoolError("held request: not a JSON object")
    extra = {k: v for k, v in data.items() if k not in RESERVED}
    missing = [f for f in FIELDS if f != "extra" and f not in data]
    if missing:
        raise SpoolError(f"held request: missing {', '.join(missing)}")
    bad = _check_fields(
        data["id"],
        data["agent"],
        data["tool"],
        data["argv"],
        data["cwd"],
        data["context"],
        data["rule"],
        data["reason"],
        extra,
    )
    if bad:
        raise SpoolError(f"held request: bad {bad}")
    try:
        parse_iso(data["created"])
        parse_iso(data["expires"])
    except ValueError as exc:
        raise SpoolError(f"held request: {exc}") from exc
    fields: dict[str, Any] = {f: data[f] for f in FIELDS if f != "extra"}
    fields["argv"] = tuple(fields["argv"])
    fields["extra"] = extra
    probe = HeldRequest(digest="", **fields)
    return HeldRequest(digest=compute_digest(content_of(probe)), **fields)


# --- the spool -------------------------------------------------------------------------------


def _subdir(spool: str, name: str) -> str:
    """<spool>/<name>, created if missing; SpoolError when it is not a plain directory."""
    os.close(_subdir_fd(spool, name))
    return os.path.join(spool, name)


def _subdir_fd(spool: str, name: str, create: bool = True) -> int:
    """An open fd for <spool>/<name>, which must be a plain directory: the other side can
    write the spool, and a symlink it plants there must never lead this side's writes,
    renames or deletes elsewhere (the approver's keys, anchors, checkpoints). Every spool
    operation goes through such an fd (`dir_fd=`), so the check cannot be raced."""
    path = os.path.join(spool, name)
    if create:
        try:
            os.makedirs(spool, exist_ok=True)
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SpoolError(
                f"cannot create {path}: {exc.strerror}",
                "check --spool / SHIELD_SPOOL and that this user can write there",
            ) from exc
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise SpoolError(
            f"{path} is not a plain directory ({exc.strerror}): refusing to use it",
            "a symlink there may point anywhere; remove it and let shield recreate the "
            "directory, then find out who put it there",
        ) from exc


def _write_atomic(spool: str, sub: str, name: str, data: bytes, no_clobber: bool = False) -> str:
    """Write `data` to <spool>/<sub>/<name> atomically (staged in <spool>/tmp, then linked or
    renamed, both relative to directory fds). Returns the path."""
    dest = os.path.join(spool, sub, name)
    tfd = _subdir_fd(spool, "tmp")
    try:
        dfd = _subdir_fd(spool, sub)
    except SpoolError:
        os.close(tfd)
        raise
    tmp = f"{os.getpid()}.{random_string(10)}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=tfd)
        try:
            fs.write_all(fd, data)
        finally:
            os.close(fd)
        if no_clobber:
            try:
                os.link(tmp, name, src_dir_fd=tfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                raise SpoolError(f"{dest} already exists") from None
            except OSError:
                # Some shared mounts refuse hard links; fall back to check-then-rename.
                try:
                    os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    os.rename(tmp, name, src_dir_fd=tfd, dst_dir_fd=dfd)
                else:
                    raise SpoolError(f"{dest} already exists") from None
        else:
            os.replace(tmp, name, src_dir_fd=tfd, dst_dir_fd=dfd)
    except OSError as exc:
        raise SpoolError(f"cannot write {dest}: {exc.strerror}") from exc
    finally:
        try:
            os.unlink(tmp, dir_fd=tfd)
        except OSError:
            pass
        os.close(tfd)
        os.close(dfd)
    return dest


def read_plain_json(path: str, limit: int, dir_fd: int | None = None) -> object:
    """Parse a file the other side can write (a spool file, a checkpoint copy): a regular file (no symlink, FIFO or device) of at most `limit` bytes
    (`path` relative to `dir_fd` when given)."""
    import json
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise ValueError(f"larger than {limit} bytes")
    return json.loads(b"".join(chunks))


def request_path(spool: str, rid: str) -> str:
    return os.path.join(spool, "requests", f"{rid}.json")


def write_request(spool: str, req: HeldRequest) -> str:
    """Put a held request into the spool; return its path. Refuses to overwrite one."""
    _subdir(spool, "decisions")
    data = (canon.encode(to_dict(req)) + "\n").encode("ascii")
    return _write_atomic(spool, "requests", f"{req.id}.json", data, True)


def _existing_fd(spool: str, sub: str) -> int | None:
    """An fd for an existing plain <spool>/<sub>; None when it does not exist."""
    if not os.path.lexists(os.path.join(spool, sub)):
        return None
    return _subdir_fd(spool, sub, create=False)


def list_pending(spool: str, now: float | None = None) -> list[dict[str, Any]]:
    """Well-formed, unexpired requests in the spool, oldest first. Prunes old leftovers.
    SpoolError when <spool>/requests is not a plain directory."""
    now = time.time() if now is None else now
    rfd = _existing_fd(spool, "requests")
    if rfd is None:
        return []
    items: list[tuple[float, str, dict[str, Any]]] = []
    try:
        for name in os.listdir(rfd):
            rid = name[:-5]
            if not name.endswith(".json") or not is_request_id(rid):
                continue
            try:
                data = read_plain_json(name, MAX_REQUEST_BYTES, dir_fd=rfd)
                req = request_from_dict(data)
            except (OSError, ValueError, SpoolError):
                continue
            if req.id != rid or parse_iso(req.expires) <= now:
                continue
            assert isinstance(data, dict)
            items.append((parse_iso(req.created), rid, data))
    finally:
        os.close(rfd)
    _prune(spool, now)
    return [d for _, _, d in sorted(items, key=lambda t: (t[0], t[1]))]


def lookup(spool: str, rid: str) -> tuple[str, dict[str, Any] | None]:
    """("pending", request) or (closed status, request) or ("unknown", None)."""
    if not is_request_id(rid):
        return "unknown", None
    for sub, status in (("requests", "pending"), ("closed", "")):
        path = os.path.join(spool, sub, f"{rid}.json")
        dfd = _existing_fd(spool, sub)
        if dfd is None:
            continue
        try:
            data = read_plain_json(f"{rid}.json", MAX_REQUEST_BYTES, dir_fd=dfd)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise SpoolError(f"cannot read {path}: {exc}") from exc
        finally:
            os.close(dfd)
        if not isinstance(data, dict):
            raise SpoolError(f"{path}: not a JSON object")
        return status or str(data.get("status", "closed")), data
    return "unknown", None


def _prune(spool: str, now: float) -> None:
    """Best effort: drop closed requests after a day, rejected decisions after a week. Only
    entries of plain spool directories, removed relative to their fd: a symlinked
    subdirectory is skipped, never followed."""
    for sub, keep in (("closed", CLOSED_KEEP_S), ("rejected", REJECTED_KEEP_S), ("tmp", 3600.0)):
        try:
            dfd = _existing_fd(spool, sub)
        except SpoolError:
            continue
        if dfd is None:
            continue
        try:
            with os.scandir(dfd) as it:
                for entry in it:
                    try:
                        if now - entry.stat(follow_symlinks=False).st_mtime > keep:
                            os.unlink(entry.name, dir_fd=dfd)
                    except OSError:
                        pass
        except OSError:
            pass
        finally:
            os.close(dfd)


# --- decisions -------------------------------------------------------------------------------


def decision_payload(decision: dict[str, Any]) -> bytes:
    """The bytes a decision's signature covers: canonical JSON of every field but `sig`."""
    body = {k: v for k, v in decision.items() if k != "sig"}
    return canon.encode(body).encode("ascii")


def decision_hash(decision: dict[str, Any]) -> str:
    """What the used store records: SHA-256 of the signed payload (unique by its nonce)."""
    return hashlib.sha256(decision_payload(decision)).hexdigest()


def sign_decision(
    approver_home: str,
    request: dict[str, Any],
    verdict: str,
    reason: str,
    ttl_s: float = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """A decision on `request` signed with the approver key of `approver_home` (cold).

    The digest is computed from the request's content; a "digest" field in it is ignored.
    """
    from shim.keys import approver_identity, sign

    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {sorted(VERDICTS)}")
    req = request_from_dict(request)
    now = time.time() if now is None else now
    ident = approver_identity(approver_home)
    body: dict[str, Any] = {
        "type": DECISION_TYPE,
        "id": req.id,
        "digest": req.digest,
        "verdict": verdict,
        "approver": ident.name,
        "key": ident.fingerprint,
        "time": iso(now),
        "expires": iso(now + ttl_s),
        "reason": reason,
        "nonce": os.urandom(16).hex(),
    }
    signer, sig = sign(approver_home, decision_payload(body))
    if signer.raw != ident.raw:
        raise KeyError_("the approver key changed while signing; try again")
    return {**body, "sig": sig}


def write_decision(spool: str, decision: dict[str, Any]) -> str:
    """Drop a signed decision into the spool (atomically); return its path."""
    rid, nonce = decision.get("id", ""), decision.get("nonce", "")
    if not is_request_id(rid) or not nonce or not all(c in "0123456789abcdef" for c in nonce):
        raise SpoolError("refusing to write a malformed decision")
    data = (canon.encode(decision) + "\n").encode("ascii")
    return _write_atomic(spool, "decisions", f"{rid}.{nonce}.json", data, True)


def _clip(value: object, n: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def verify_decision(
    decision: object,
    req: HeldRequest,
    trusted: dict[str, PublicKey],
    now: float,
    skew_s: float,
    used: set[str],
) -> tuple[bool, str]:
    """(True, "ok") when `decision` may decide `req`; else (False, why). Pure."""
    if not isinstance(decision, dict):
        return False, "decision is not a JSON object"
    keys = set(decision)
    if keys != DECISION_KEYS:
        missing = sorted(DECISION_KEYS - keys)
        unknown = sorted(keys - DECISION_KEYS)[:5]
        return False, f"decision has missing fields {missing} or unknown fields {unknown}"
    for key in sorted(DECISION_KEYS):
        if not isinstance(decision[key], str):
            return False, f"decision field {key!r} is not a string"
    if decision["type"] != DECISION_TYPE:
        return False, f"decision type is {_clip(decision['type'])}, not {DECISION_TYPE}"
    if decision["verdict"] not in VERDICTS:
        return False, f"decision verdict {_clip(decision['verdict'])} is not approve or deny"
    fp, approver = decision["key"], decision["approver"]
    if fp not in trusted:
        return False, (
            f"decision signed by an untrusted key (fp {_clip(fp, 40)}, approver {_clip(approver)})"
        )
    from shim.keys import verify_signature

    try:
        payload = decision_payload(decision)
    except (TypeError, UnicodeEncodeError):
        return False, "decision cannot be encoded canonically"
    pub = verify_signature(trusted, fp, payload, decision["sig"])
    if pub is None:
        return False, (
            f"decision signature does not verify with trusted key {fp} "
            "(edited after signing, or forged)"
        )
    if approver != pub.name:
        return False, f"decision names approver {_clip(approver)} but key {fp} is {pub.name!r}"
    if decision["id"] != req.id:
        return False, (
            f"decision is for request {_clip(decision['id'])}, not {req.id} "
            "(copied from another request)"
        )
    if decision["digest"] != req.digest:
        return False, (
            "decision digest does not match this request: the approver signed other content "
            "than the held call (was the spool copy of the request edited?)"
        )
    try:
        made, expires = parse_iso(decision["time"]), parse_iso(decision["expires"])
    except ValueError:
        return False, "decision time or expiry is malformed"
    if made > now + skew_s:
        return False, (
            f"decision time {decision['time']} is {made - now:.1f}s in the future, beyond the "
            f"clock-skew tolerance of {skew_s:g}s"
        )
    if now > expires + skew_s:
        return False, (
            f"decision expired at {decision['expires']} ({now - expires:.1f}s ago, clock-skew "
            f"tolerance {skew_s:g}s)"
        )
    if expires < made:
        return False, "decision expires before it was made"
    if decision_hash(decision) in used:
        return False, "decision was used before (replay)"
    if (
        req.extra.get("require_reason")
        and decision["verdict"] == "approve"
        and not str(decision.get("reason") or "").strip()
    ):
        return False, "this request needs a reason with its approval (a rule requires one)"
    return True, "ok"


# --- the used store --------------------------------------------------------------------------


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


def tty_login() -> str:
    """The login name of whoever sits at the terminal, for `tty:<login>`."""
    try:
        return os.getlogin()
    except OSError:
        pass
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "") or f"uid{os.getuid()}"


class _Wait:
    """The state of one hold: the spool watcher, the TTY prompt and the notify hook."""

    def __init__(
        self,
        req: HeldRequest,
        spool: str,
        trusted: dict[str, PublicKey],
        used_path: str,
        log: LogFn,
        clock_skew_s: float,
        poll_s: float,
    ) -> None:
        self.req = req
        self.spool = spool
        self.trusted = trusted
        self.used_path = used_path
        self.used = load_used(used_path)
        self.log = log
        self.skew = clock_skew_s
        self.poll_s = max(0.001, poll_s)
        self.decisions = _subdir(spool, "decisions")
        self.seen: dict[str, tuple[int, int, int]] = {}
        self.prompt: TtyPrompt | None = None
        self.hook: subprocess.Popen[bytes] | None = None
        self.closed = False

    # The loop ---------------------------------------------------------------------------------

    def run(self, deadline: float, caught: list[int]) -> Verdict:
        while True:
            if caught:
                return self.cancel(caught[0])
            left = deadline - time.monotonic()
            if left <= 0:
                return self.expire()  # fail closed: past the deadline nothing is read
            verdict = self.check_spool()
            if verdict:
                return verdict
            step = min(self.poll_s, left)
            if self.prompt is not None:
                verdict = self.check_tty(step)
                if verdict:
                    return verdict
            else:
                time.sleep(step)
            self.reap_hook()

    def check_spool(self) -> Verdict | None:
        try:
            names = os.listdir(self.decisions)
        except OSError:
            return None
        prefix = self.req.id + "."
        for name in sorted(names):
            if not name.startswith(prefix):
                continue
            path = os.path.join(self.decisions, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self.seen.get(name) == stamp:
                continue
            self.seen[name] = stamp
            try:
                decision = read_plain_json(path, MAX_DECISION_BYTES)
            except (OSError, ValueError) as exc:
                self.refuse(name, f"decision file {name!r} is unreadable or not JSON ({exc})")
                continue
            ok, why = verify_decision(
                decision, self.req, self.trusted, time.time(), self.skew, self.used
            )
            if not ok:
                self.refuse(name, why)
                continue
            assert isinstance(decision, dict)
            mark = decision_hash(decision)
            if not commit_used(self.used_path, mark):
                self.refuse(name, "decision was used before (replay)")
                continue
            self.used.add(mark)
            outcome = VERDICTS[decision["verdict"]]
            self.log(
                {
                    "event": outcome,
                    "request": self.req.id,
                    "approver": decision["approver"],
                    "reason": decision["reason"],
                    "channel": "spool",
                    "key": decision["key"],
                }
            )
            self.close(outcome)
            if self.prompt is not None:
                self.prompt.say(
                    f"{outcome} by {decision['approver']} (shield {decision['verdict']})"
                )
            return Verdict(outcome, decision["approver"], decision["reason"], None, "spool")
        return None

    def refuse(self, name: str, why: str) -> None:
        self.log({"event": "security", "request": self.req.id, "detail": why})
        stamp = int(time.time() * 1000)
        try:
            os.replace(
                os.path.join(self.decisions, name),
                os.path.join(_subdir(self.spool, "rejected"), f"{name}.{stamp}"),
            )
            self.seen.pop(name, None)
        except (OSError, SpoolError):
            pass  # left in place; `seen` keeps it from being read again while unchanged

    def check_tty(self, timeout: float) -> Verdict | None:
        assert self.prompt is not None
        answer = self.prompt.poll(timeout)
        if answer is None:
            return None
        who = "tty:" + tty_login()
        if answer.kind == "closed":
            self.prompt.close()
            self.prompt = None
            return None
        if answer.kind == "wrong":
            self.log(
                {
                    "event": "security",
                    "request": self.req.id,
                    "detail": f"wrong approval code typed at the TTY prompt ({_clip(answer.text)})"
                    f"; {answer.tries_left} tries left",
                }
            )
            if answer.tries_left > 0:
                return None
            return self.tty_verdict("denied", who, f"wrong code typed {TTY_TRIES} times")
        if answer.kind == "approve":
            return self.tty_verdict("approved", who, answer.text or "approved at the TTY")
        return self.tty_verdict("denied", who, answer.text or "denied at the TTY")

    def tty_verdict(self, outcome: str, who: str, reason: str) -> Verdict:
        self.log(
            {
                "event": outcome,
                "request": self.req.id,
                "approver": who,
                "reason": reason,
                "channel": "tty",
            }
        )
        self.close(outcome)
        if self.prompt is not None:
            self.prompt.say(f"{outcome} at this terminal")
        return Verdict(outcome, who, reason, None, "tty")

    def expire(self) -> Verdict:
        reason = f"no decision before {self.req.expires}"
        self.log({"event": "expired", "request": self.req.id, "reason": reason})
        self.close("expired")
        if self.prompt is not None:
            self.prompt.say(f"expired: {reason}")
        return Verdict("expired", None, reason, None, "")

    def cancel(self, signum: int) -> Verdict:
        import signal

        name = signal.Signals(signum).name
        reason = f"{name} while waiting for a decision"
        self.close("cancelled")
        self.log({"event": "cancelled", "request": self.req.id, "signal": signum, "reason": reason})
        if self.prompt is not None:
            self.prompt.say("cancelled")
        return Verdict("interrupted", None, reason, signum, "")

    # Side effects -----------------------------------------------------------------------------

    def close(self, status: str) -> None:
        """Move the request to <spool>/closed (our own copy) and clear its decision files."""
        self.closed = True
        record = to_dict(self.req)
        record["status"] = status
        record["closed"] = iso(time.time())
        try:
            data = (canon.encode(record) + "\n").encode("ascii")
            _write_atomic(self.spool, "closed", f"{self.req.id}.json", data)
        except SpoolError:
            pass
        try:
            os.unlink(request_path(self.spool, self.req.id))
        except OSError:
            pass
        try:
            names = os.listdir(self.decisions)
        except OSError:
            names = []
        for name in names:
            if name.startswith(self.req.id + "."):
                try:
                    os.unlink(os.path.join(self.decisions, name))
                except OSError:
                    pass

    def start_hook(self, notify: list[str]) -> None:
        """Run the notify command once, detached, with the request JSON on stdin."""
        import subprocess

        payload = (canon.encode(to_dict(self.req)) + "\n").encode("ascii")
        fd = -1
        try:
            tmp = os.path.join(_subdir(self.spool, "tmp"), f"notify.{random_string(10)}")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.unlink(tmp)
            os.write(fd, payload)
            os.lseek(fd, 0, os.SEEK_SET)
            env = dict(os.environ, SHIELD_REQUEST_ID=self.req.id)
            self.hook = subprocess.Popen(
                notify,
                stdin=fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        except (OSError, ValueError, SpoolError) as exc:
            self.log(
                {
                    "event": "notify-failed",
                    "request": self.req.id,
                    "detail": f"notify hook {_clip(notify[:1])} could not start: {exc}",
                }
            )
        finally:
            if fd >= 0:
                os.close(fd)

    def reap_hook(self) -> None:
        if self.hook is None:
            return
        code = self.hook.poll()
        if code is None:
            return
        self.hook = None
        if code != 0:
            self.log(
                {
                    "event": "notify-failed",
                    "request": self.req.id,
                    "detail": f"notify hook exited with status {code}",
                }
            )


def wait_for_decision(
    req: HeldRequest,
    *,
    spool: str,
    trusted: dict[str, PublicKey],
    used_path: str,
    log: LogFn,
    tty: bool,
    clock_skew_s: float = 30.0,
    poll_s: float = 0.02,
    notify: list[str] | str | None = None,
) -> Verdict:
    """Block until a valid decision (spool or TTY), the deadline, or SIGINT/SIGTERM.

    Refused decisions are logged as `security` events, moved aside, and the wait goes on.
    Exceptions from `log` propagate (the request is withdrawn first). `notify` (an argv, or a
    command line split with shlex) runs once, detached, with the request JSON on stdin.
    """
    import signal

    remaining = parse_iso(req.expires) - time.time()
    deadline = time.monotonic() + max(0.0, remaining)
    caught: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    except ValueError:
        pass  # not the main thread: the caller handles signals
    wait: _Wait | None = None
    try:
        wait = _Wait(req, spool, trusted, used_path, log, clock_skew_s, poll_s)
        if notify:
            if isinstance(notify, str):
                import shlex

                notify = shlex.split(notify)
            wait.start_hook(notify)
        if tty:
            from shim.prompt import open_prompt

            wait.prompt = open_prompt(req, tries=TTY_TRIES)
        return wait.run(deadline, caught)
    finally:
        if wait is not None:
            if not wait.closed:
                wait.close("cancelled")
            if wait.prompt is not None:
                wait.prompt.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
