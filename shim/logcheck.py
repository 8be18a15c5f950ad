"""The log's cold side: verification, reading, anchors, checkpoints, environment checks.

`shim.audit` (hot) writes the log; everything here runs only from `shield log`, `shield doctor`
or through the thin wrappers `audit.verify_log`, `audit.read_entries`, `audit.sign_checkpoint`,
which import this module lazily. So json, hashlib, hmac and the keys module are free to use.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from shim import fs
from shim.audit import (
    ANCHOR_NAME,
    CHECKPOINT_DIR,
    CHECKPOINT_LABEL,
    FIELDS,
    KEY_LABEL,
    LOG_NAME,
    RESERVED,
    VerifyReport,
    _create_file,
    genesis,
    mac_body,
    now_iso,
)
from shim.canon import encode
from shim.errors import LogDamage, LogError
from shim.hold import read_plain_json

if TYPE_CHECKING:
    from shim.keys import PublicKey

_HEX = frozenset("0123456789abcdef")

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
    """Verify the log file at `path` (see `verify_lines`). Raises LogError when unreadable.

    Reads the complete appends present when it starts (see `settled_lines`), so a line being
    written by a live shim is not mistaken for a torn one.
    """
    try:
        with open(path, "rb", buffering=1 << 20) as fh:
            lines = settled_lines(fh)
            return verify_lines(
                lines, anchor=anchor, checkpoints=list(checkpoints), trusted=trusted
            )
    except OSError as exc:
        raise LogError(f"cannot read {path}: {exc.strerror}", "check --path") from exc


def settled_lines(fh: Any) -> Iterator[bytes]:
    """The lines of an open log up to its size at a moment when no append is in progress.

    Writers hold an exclusive `flock` for the whole append, so taking the shared lock for an
    instant (it waits for at most one append) and noting the size gives a prefix made of whole
    appends; the file is then read without holding the lock. Bytes a crashed writer left behind
    are part of that prefix, and show as torn.
    """
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            remaining = os.fstat(fh.fileno()).st_size
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except OSError:  # no locking here (some network filesystems): read what is there
        remaining = os.fstat(fh.fileno()).st_size
    for raw in fh:
        if len(raw) >= remaining:
            if remaining:
                yield raw[:remaining]
            return
        remaining -= len(raw)
        yield raw


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
            for lineno, raw in enumerate(settled_lines(fh), 1):
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


def _write_beside_log(log_path: str, name: str, obj: object) -> str:
    """Write a checkpoint copy into `<log dir>/checkpoints/` as the approver, where the agent
    owns the directories: the subdirectory must be a plain one (opened O_NOFOLLOW), the file
    is created O_EXCL|O_NOFOLLOW under a fresh name and renamed into place, all relative to
    directory fds. So a symlink the agent plants can never make the approver truncate or
    chmod one of its own files (its key, an anchor)."""
    data = (encode(obj) + "\n").encode("ascii")
    log_dir = os.path.dirname(os.path.abspath(log_path))
    lfd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.mkdir(CHECKPOINT_DIR, 0o755, dir_fd=lfd)
        except FileExistsError:
            pass
        cfd = os.open(
            CHECKPOINT_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=lfd
        )
        try:
            tmp = f".{name}.{os.urandom(6).hex()}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644, dir_fd=cfd)
            try:
                os.fchmod(fd, 0o644)
                fs.write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=cfd, dst_dir_fd=cfd)
        finally:
            os.close(cfd)
    finally:
        os.close(lfd)
    return os.path.join(log_dir, CHECKPOINT_DIR, name)


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


def anchor_problem(home: str, log_path: str) -> str | None:
    """Why this home's verify of `log_path` must fail instead of skipping the MACs: it holds
    checkpoints for the log but no anchor (deleted?), or it anchors only other logs (the log
    was replaced, or its anchor was never imported). None on a home that anchors nothing (the
    agent side) or that holds this log's anchor."""
    log_id = first_log_id(log_path)
    if log_id is None:
        return None  # no entries yet (or not a log at all): verify says what it is
    anchored = [
        n[:-5]
        for n in (os.listdir(anchors_dir(home)) if os.path.isdir(anchors_dir(home)) else [])
        if n.endswith(".json") and _is_hex(n[:-5], 16)
    ]
    if log_id in anchored:
        return None
    if log_id and os.path.isdir(approver_checkpoints_dir(home, log_id)):
        return (
            f"this home signed checkpoints of log {log_id} but holds no anchor for it "
            f"(was {anchors_dir(home)}/{log_id}.json deleted?)"
        )
    if anchored:
        return (
            f"this home anchors {', '.join(sorted(anchored))} but not log {log_id or '?'}: "
            "the log was replaced, or its anchor was never imported (import it, or pass "
            "--anchor)"
        )
    return None


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
        # a plain directory only: the agent could link its copies' dir at the approver's files
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return out
    except OSError:
        return [{"_file": directory}]  # reported as a bad checkpoint, never followed
    try:
        names = sorted(n for n in os.listdir(dfd) if n.endswith(".json"))
        for name in names:
            try:
                obj = read_plain_json(name, 1 << 20, dir_fd=dfd)
            except (OSError, ValueError):
                obj = None
            cp = dict(obj) if isinstance(obj, dict) else {}
            cp["_file"] = os.path.join(directory, name)
            out.append(cp)
    finally:
        os.close(dfd)
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
    copied: str | None
    try:
        copied = _write_beside_log(log_path, name, cp)
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
