"""The spool: a directory that both sides can write, as a transport (cold).

Layout (one directory shared by the agent and the approver sides, e.g. a bind mount):

    <spool>/requests/<id>.json           a held request (`to_dict`), written by the shim
    <spool>/decisions/<id>.<nonce>.json  a signed decision, written by `shield approve/deny`
    <spool>/closed/<id>.json             the request once approved, denied, expired or cancelled
                                         (the shim's own copy, plus "status" and "closed")
    <spool>/rejected/<name>.<ms>         decision files the shim refused, moved aside
    <spool>/refused/<id>.<ms>.<rand>.json   a note from the shim on each refusal (why), for
                                         `shield pending` and `shield show` (the agent's words)
    <spool>/tmp/                         staging for atomic writes (write, then rename)

Everything in the spool is readable and writable by the other side, so nothing in it is
trusted: the shim keeps the request in memory and verifies every decision file against it;
the approver's commands re-derive what they show and sign from the request's content. Every
operation goes through directory fds that never follow a symlink.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from shim import canon, fs
from shim.approval.decision import MAX_DECISION_BYTES
from shim.approval.refusal import clean_note, refusal_note
from shim.approval.request import (
    MAX_REQUEST_BYTES,
    HeldRequest,
    is_request_id,
    random_string,
    request_from_dict,
    to_dict,
)
from shim.approval.review import closed_status
from shim.approval.transport import Delivery, Verdict
from shim.clock import now_iso, parse_iso
from shim.errors import SpoolError

# grants and revocations too: made at install, they belong to the agent's user like the rest;
# made later by an approver outside the agent's group, the agent could not even list them
# (2770, the approver's), and every grant would be silently ignored
SUBDIRS = (
    "requests", "decisions", "closed", "rejected", "refused", "tmp", "grants", "revocations"
)  # fmt: skip
# the agent only reads these; an approver outside the agent's group may be the one who makes
# them (a spool bind-mounted empty over the one install made), so they are made readable by
# "others" too: the spool itself (2770) still keeps everyone but the two sides out
AGENT_READS = ("grants", "revocations")
MAX_NOTE_BYTES = 16 << 10
MAX_NOTES = 500  # refusal notes read per listing (the newest), however many the spool holds
CLOSED_KEEP_S = 24 * 3600.0
REJECTED_KEEP_S = 7 * 24 * 3600.0


def _subdir(spool: str, name: str) -> str:
    """<spool>/<name>, created if missing; SpoolError when it is not a plain directory."""
    os.close(_subdir_fd(spool, name))
    return os.path.join(spool, name)


def _subdir_fd(spool: str, name: str, create: bool = True) -> int:
    """An open fd for <spool>/<name>, which must be a plain directory: the other side can
    write the spool, and a symlink it plants there must never lead this side's writes,
    renames or deletes elsewhere (the approver's keys, anchors, checkpoints). Every spool
    operation goes through such an fd (`dir_fd=`), so the check cannot be raced. A directory
    made here is shared like the spool itself (`_mkdir_shared`)."""
    path = os.path.join(spool, name)
    if create:
        try:
            os.makedirs(spool, exist_ok=True)
            _mkdir_shared(path, spool)
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


def _mkdir_shared(path: str, spool: str) -> None:
    """mkdir a spool subdirectory with the spool's group permissions (and no more access for
    others than the spool and the umask give). When the agent and the approver share the
    spool through a group, the side that creates `decisions/` or `tmp/` must leave it
    writable for the other: a setgid spool passes its group on, but the umask (022) strips
    the group write, and a chmod afterwards would drop the setgid bit for a user outside the
    group. So the mode is set at mkdir, under a zero umask. Where the spool is not setgid,
    the directory is handed to the spool's group when this user may (best effort)."""
    theirs = os.stat(spool).st_mode
    old = os.umask(0)
    try:
        mode = 0o700 | (theirs & 0o070) | (theirs & 0o007 & ~old)
        if os.path.basename(path) in AGENT_READS:
            mode |= 0o005
        os.mkdir(path, mode)
    finally:
        os.umask(old)
    try:
        gid = os.stat(spool).st_gid
        if os.lstat(path).st_gid != gid:
            os.chown(path, -1, gid, follow_symlinks=False)
    except OSError:
        pass


def prepare(spool: str) -> list[str]:
    """Create the spool and every subdirectory (at install, so that each is there, shared
    like the spool, before either side needs it); their paths."""
    made = []
    for name in SUBDIRS:
        os.close(_subdir_fd(spool, name))
        made.append(os.path.join(spool, name))
    return made


def sharing_problems(spool: str) -> list[str]:
    """Why the other side could not write this spool although it is shared through its group
    (group-writable): a subdirectory with another group, without group write, or not a plain
    directory. [] for a spool that is not group-writable (one user) or is sound."""
    st = os.stat(spool)
    if not st.st_mode & 0o020:
        return []
    problems = []
    for name in SUBDIRS:
        path = os.path.join(spool, name)
        try:
            sub = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(sub.st_mode):
            problems.append(f"{path} is not a plain directory")
        elif sub.st_gid != st.st_gid:
            problems.append(
                f"{path} belongs to group {group_name(sub.st_gid)}, not the spool's {group_name(st.st_gid)}"
            )
        elif sub.st_mode & 0o070 != 0o070:
            problems.append(
                f"{path} is {stat.filemode(sub.st_mode)}: not writable by the group "
                f"{group_name(st.st_gid)}, so the other side gets Permission denied"
            )
    return problems


def group_name(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except (KeyError, ImportError):
        return str(gid)


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
            os.fchmod(fd, 0o644)  # readable by the other side whatever this side's umask
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


def read_json(path: str, limit: int, dir_fd: int | None = None) -> object:
    """Parse a file the other side can write (see fs.read_plain). ValueError for JSON nested
    too deep for the parser too: a few KiB of `[` must not crash the reader."""
    data = fs.read_plain(path, limit, dir_fd)
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nests too deep") from None


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
    """Well-formed, unexpired requests in the spool, oldest first, each in the JSON shape
    rebuilt from its content: `digest` recomputed (never the file's), and `status` "pending",
    or "modified" when the file's own digest field disagrees (edited after the hold; approve
    refuses it). A file whose request id is not its name is skipped. Prunes old leftovers.
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
                data = read_json(name, MAX_REQUEST_BYTES, dir_fd=rfd)
                req = request_from_dict(data)
            except (OSError, ValueError, SpoolError):
                continue
            assert isinstance(data, dict)  # request_from_dict refuses anything else
            if req.id != rid or parse_iso(req.expires) <= now:
                continue
            item = to_dict(req)
            item["status"] = "pending" if data.get("digest") == req.digest else "modified"
            items.append((parse_iso(req.created), rid, item))
    finally:
        os.close(rfd)
    _prune(spool, now)
    return [d for _, _, d in sorted(items, key=lambda t: (t[0], t[1]))]


def lookup(spool: str, rid: str) -> tuple[str, dict[str, Any] | None]:
    """("pending", data) from `requests/`, (how it ended, data) from `closed/`, or ("unknown",
    None). `data` is the file's content under that name, the agent's words: its own id may
    be another (shim.approval.review checks it), and nothing in `closed/` is ever pending."""
    if not is_request_id(rid):
        return "unknown", None
    for sub, status in (("requests", "pending"), ("closed", "")):
        path = os.path.join(spool, sub, f"{rid}.json")
        dfd = _existing_fd(spool, sub)
        if dfd is None:
            continue
        try:
            data = read_json(f"{rid}.json", MAX_REQUEST_BYTES, dir_fd=dfd)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise SpoolError(f"cannot read {path}: {exc}") from exc
        finally:
            os.close(dfd)
        if not isinstance(data, dict):
            raise SpoolError(f"{path}: not a JSON object")
        return status or closed_status(data), data
    return "unknown", None


def _prune(spool: str, now: float) -> None:
    """Best effort: drop closed requests after a day, rejected decisions after a week. Only
    entries of plain spool directories, removed relative to their fd: a symlinked
    subdirectory is skipped, never followed."""
    for sub, keep in (
        ("closed", CLOSED_KEEP_S),
        ("rejected", REJECTED_KEEP_S),
        ("refused", CLOSED_KEEP_S),
        ("tmp", 3600.0),
    ):
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


def write_decision(spool: str, decision: dict[str, Any]) -> str:
    """Drop a signed decision into the spool (atomically); return its path."""
    rid, nonce = decision.get("id", ""), decision.get("nonce", "")
    if not is_request_id(rid) or not nonce or not all(c in "0123456789abcdef" for c in nonce):
        raise SpoolError("refusing to write a malformed decision")
    data = (canon.encode(decision) + "\n").encode("ascii")
    return _write_atomic(spool, "decisions", f"{rid}.{nonce}.json", data, True)


class SpoolTransport:
    """The spool as a transport: the request is a file, decisions are files beside it."""

    channel = "spool"
    blocking = False

    def __init__(self, spool: str, req: HeldRequest) -> None:
        self.spool = spool
        self.req = req
        self.seen: dict[str, tuple[int, int, int]] = {}

    def publish(self) -> None:
        write_request(self.spool, self.req)

    def poll(self, timeout: float) -> list[Delivery]:
        """New or changed decision files for this request (each read once while unchanged)."""
        try:
            dfd = _subdir_fd(self.spool, "decisions", create=False)
        except SpoolError:
            return []
        out: list[Delivery] = []
        prefix = self.req.id + "."
        try:
            for name in sorted(os.listdir(dfd)):
                if not name.startswith(prefix):
                    continue
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if self.seen.get(name) == stamp:
                    continue
                self.seen[name] = stamp
                try:
                    decision = read_json(name, MAX_DECISION_BYTES, dir_fd=dfd)
                except (OSError, ValueError) as exc:
                    why = f"decision file {name!r} is unreadable or not JSON ({exc})"
                    out.append(Delivery(self.channel, name, error=why))
                    continue
                out.append(Delivery(self.channel, name, decision=decision))
        finally:
            os.close(dfd)
        return out

    def reject(self, delivery: Delivery, why: str) -> None:
        """Move a refused decision file to <spool>/rejected (kept a week), and leave a note on
        why in <spool>/refused, for the approver's `shield pending` and `shield show`."""
        stamp = int(time.time() * 1000)
        try:
            note = refusal_note(delivery.decision, why, self.channel, now_iso(stamp / 1000))
            write_refusal(self.spool, self.req.id, note)
        except (SpoolError, OSError):
            pass
        try:
            dfd = _subdir_fd(self.spool, "decisions", create=False)
            rfd = _subdir_fd(self.spool, "rejected")
        except SpoolError:
            return  # left in place; `seen` keeps it from being read again while unchanged
        try:
            os.rename(delivery.ref, f"{delivery.ref}.{stamp}", src_dir_fd=dfd, dst_dir_fd=rfd)
            self.seen.pop(delivery.ref, None)
        except OSError:
            pass
        finally:
            os.close(dfd)
            os.close(rfd)

    def close(self, verdict: Verdict) -> None:
        """Move the request to <spool>/closed (our own copy) and clear its decision files."""
        status = "cancelled" if verdict.outcome == "interrupted" else verdict.outcome
        record = to_dict(self.req)
        record["status"] = status
        record["closed"] = now_iso()
        try:
            data = (canon.encode(record) + "\n").encode("ascii")
            _write_atomic(self.spool, "closed", f"{self.req.id}.json", data)
        except SpoolError:
            pass
        rid = self.req.id
        _remove(self.spool, "requests", lambda name: name == f"{rid}.json")
        _remove(self.spool, "decisions", lambda name: name.startswith(rid + "."))


# --- refusal notes ---------------------------------------------------------------------------


def write_refusal(spool: str, rid: str, note: dict[str, str]) -> str:
    """Drop a refusal note for request `rid` into <spool>/refused."""
    if not is_request_id(rid):
        raise SpoolError("refusing to write a note for a malformed request id")
    data = (canon.encode({"id": rid, **note}) + "\n").encode("ascii")
    name = f"{rid}.{int(time.time() * 1000)}.{random_string(6)}.json"
    return _write_atomic(spool, "refused", name, data, True)


def list_refusals(spool: str) -> dict[str, list[dict[str, str]]]:
    """The refusal notes in the spool by request id, oldest first: each {"why", ...} with
    string fields only, clipped. The agent's words: the shim writes them, and so can anything
    that writes the spool. At most MAX_NOTES files are read (the newest)."""
    try:
        dfd = _existing_fd(spool, "refused")
    except SpoolError:
        return {}
    if dfd is None:
        return {}
    out: dict[str, list[dict[str, str]]] = {}
    try:
        names = sorted(
            (n for n in os.listdir(dfd) if n.endswith(".json")),
            key=lambda n: (n.split(".")[1:2], n),
        )
        for name in names[-MAX_NOTES:]:
            rid = name.split(".", 1)[0]
            if not is_request_id(rid):
                continue
            try:
                data = read_json(name, MAX_NOTE_BYTES, dir_fd=dfd)
            except (OSError, ValueError):
                continue
            note = clean_note(data)
            if note is not None and isinstance(data, dict) and data.get("id") == rid:
                out.setdefault(rid, []).append(note)
    finally:
        os.close(dfd)
    return out


def _remove(spool: str, sub: str, chosen: Callable[[str], bool]) -> None:
    """Best effort: unlink the chosen entries of a plain <spool>/<sub>."""
    try:
        dfd = _subdir_fd(spool, sub, create=False)
    except SpoolError:
        return
    try:
        for name in os.listdir(dfd):
            if chosen(name):
                try:
                    os.unlink(name, dir_fd=dfd)
                except OSError:
                    pass
    finally:
        os.close(dfd)


def write_statement(spool: str, sub: str, st: dict[str, Any]) -> str:
    """Drop a signed grant (`grants`) or revocation (`revocations`) into the spool."""
    sid = str(st.get("id", ""))
    if sub not in ("grants", "revocations") or not sid.isalnum():
        raise SpoolError("refusing to write a malformed statement")
    data = (canon.encode(st) + "\n").encode("ascii")
    return _write_atomic(spool, sub, f"{sid}.json", data, True)
