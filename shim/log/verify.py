"""The log's cold side: verify a log, read its entries (cold: json, hashlib, hmac).

`shim.log.append` (hot) writes the log; everything here runs from `shield log`, `shield
doctor` and the approver's checks. `verify_lines` checks every line (MACs with the anchor,
the chain, sequence, canonical form, torn-tail records) and every checkpoint (signature, then
size and head); `read_entries` reads a log tolerantly for display.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shim.canon import encode
from shim.errors import LogError
from shim.keys import PublicKey, verify_signature
from shim.log.append import (
    CHECKPOINT_LABEL,
    FIELDS,
    KEY_LABEL,
    RESERVED,
    genesis,
    mac_body,
)

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


def is_hex(value: object, length: int) -> bool:
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
    run = _Verify(anchor, checkpoints, trusted or {})
    for raw in lines:
        failed = run.line(raw)
        if failed is not None:
            return failed
    return run.finish()


class _Verify:
    """One verification: the state carried from line to line, and one method per step."""

    def __init__(
        self,
        anchor: dict[str, object] | None,
        checkpoints: Iterable[dict[str, object]],
        trusted: dict[str, PublicKey],
    ) -> None:
        ck = _Checker()
        self.sha, self.hmac_digest, self.scan, self.reencode = (
            ck.sha256,
            ck.hmac_digest,
            ck.scan,
            ck.encode,
        )
        self.anchored = anchor is not None
        self.key: bytes | None = None
        self.want_log: str | None = None
        if anchor is not None:
            self.want_log = str(anchor.get("log"))
            k0 = anchor.get("k0")
            if not is_hex(k0, 64):
                raise LogError("the anchor has no valid k0", "re-import the anchor file")
            self.key = bytes.fromhex(str(k0))
        self.good_cps: dict[int, list[dict[str, object]]] = {}
        self.bad_cps: list[dict[str, object]] = []
        self.cp_logs: set[str] = set()
        for cp in checkpoints:
            if verify_checkpoint(cp, trusted) is None:
                self.bad_cps.append(cp)
                continue
            size = cp["size"]
            assert isinstance(size, int)
            self.good_cps.setdefault(size, []).append(cp)
            self.cp_logs.add(str(cp["log"]))
        self.n_cps = sum(len(v) for v in self.good_cps.values())
        self.lineno = 0
        self.entries = 0
        self.good_lines = 0
        self.seq = 0
        self.head: str | None = None
        self.log_id: str | None = None
        self.torn_ok: list[int] = []
        self.garbage: list[tuple[int, bytes]] = []

    def report(self, ok: bool, first_bad: int | None, kind: str | None, msg: str) -> VerifyReport:
        return VerifyReport(
            ok,
            self.entries,
            first_bad,
            kind,
            msg,
            lines=self.good_lines,
            head=self.head,
            log=self.log_id or self.want_log,
            macs_checked=self.anchored,
            checkpoints=self.n_cps,
            torn=tuple(self.torn_ok),
        )

    def bad(self, where: int, kind: str, detail: str = "") -> VerifyReport:
        return self.report(False, where, kind, f"line {where}: {kind}: {detail or _EXPLAIN[kind]}")

    def line(self, raw: bytes) -> VerifyReport | None:
        """Check one line; a report when it is bad, None to go on."""
        self.lineno += 1
        lineno = self.lineno
        if not raw.endswith(b"\n"):
            self.garbage.append((lineno, raw))  # torn: judged once the log ends
            return None
        line = raw[:-1]
        for cp in self.good_cps.get(lineno, ()):
            if cp["head"] != self.sha(line).hexdigest():
                return self.bad(
                    lineno,
                    "fork",
                    f"differs from checkpoint {cp.get('time')} (size {lineno}, signed by "
                    f"{cp.get('name')}): history was rewritten",
                )
        try:
            text = line.decode("ascii")
            d, end = self.scan(text, 0)
        except (UnicodeDecodeError, ValueError, StopIteration, RecursionError):
            d = None
        if not isinstance(d, dict) or end != len(text):
            self.garbage.append((lineno, line))
            return None
        if self.reencode(d) != text:
            return self.bad(lineno, "canonical")
        problem = _entry_problem(d)
        if problem:
            return self.bad(lineno, "canonical", f"not a log entry: {problem}")
        return self.entry(lineno, line, d)

    def first_entry(self, lineno: int, d: dict[str, object]) -> VerifyReport | None:
        """The first entry names the log: it must be the anchored or checkpointed one."""
        log_id = self.log_id = str(d["log"])
        cp_logs = self.cp_logs
        expected = self.want_log or (next(iter(cp_logs)) if len(cp_logs) == 1 else None)
        if (expected is not None and log_id != expected) or (cp_logs - {log_id}):
            return self.bad(
                lineno,
                "replaced",
                f"log id {log_id} is not the anchored/checkpointed log "
                f"{expected or ', '.join(sorted(cp_logs - {log_id}))}: the log was replaced",
            )
        self.head = genesis(log_id)
        return None

    def entry(self, lineno: int, line: bytes, d: dict[str, object]) -> VerifyReport | None:
        """A well-formed entry: its place in the log (torn lines before it recorded, seq,
        chain) and its MAC; then the key moves on."""
        if self.log_id is None:
            failed = self.first_entry(lineno, d)
            if failed is not None:
                return failed
        prev = self.head
        garbage = self.garbage
        if garbage:
            if not _torn_record_matches(d, garbage, str(prev), self.sha):
                return self.bad(
                    garbage[0][0],
                    "canonical",
                    "not a log entry, and no torn-tail record follows it",
                )
            prev = self.sha(garbage[-1][1]).hexdigest()
        if d["seq"] != self.seq:
            return self.bad(
                lineno,
                "sequence",
                f"seq {d['seq']} where {self.seq} was expected: "
                + _EXPLAIN["sequence"].split(": ", 1)[1],
            )
        if d["log"] != self.log_id:
            return self.bad(lineno, "chain", f"entry of another log ({d['log']}): spliced in")
        if d["prev"] != prev:
            return self.bad(lineno, "chain")
        key = self.key
        if key is not None:
            mac = str(d["mac"])
            body = mac_body(line, mac)
            if body is None or self.hmac_digest(key, body, "sha256").hex() != mac:
                return self.bad(lineno, "mac")
            self.key = self.sha(KEY_LABEL + key).digest()
        if garbage:
            self.torn_ok.extend(n for n, _ in garbage)
            self.garbage = []
        self.head = self.sha(line).hexdigest()
        self.seq += 1
        self.entries += 1
        self.good_lines = lineno
        return None

    def finish(self) -> VerifyReport:
        """After the last line: cut tails, a torn end, bad checkpoints, else intact."""
        max_cp = max(self.good_cps, default=0)
        if max_cp > self.good_lines:
            return self.bad(
                self.good_lines + 1,
                "truncated",
                f"the log ends at line {self.good_lines} but a signed checkpoint covers "
                f"{max_cp} lines: entries were cut",
            )
        if self.garbage:
            return self.bad(self.garbage[0][0], "torn")
        if self.bad_cps:
            cp = self.bad_cps[0]
            where = cp.get("_file") or f"size {cp.get('size')}"
            return self.report(
                False,
                None,
                "checkpoint-signature",
                f"checkpoint {where}: checkpoint-signature: {_EXPLAIN['checkpoint-signature']}",
            )
        n = self.n_cps
        parts = [f"intact: {self.entries} entries"]
        parts.append("MACs checked" if self.anchored else "MACs not checked (no anchor)")
        parts.append(f"{n} checkpoint{'s' if n != 1 else ''}")
        if self.torn_ok:
            parts.append(f"torn lines recorded at {', '.join(map(str, self.torn_ok))}")
        return self.report(True, None, None, "; ".join(parts))


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


def checkpoint_message(cp: dict[str, object]) -> bytes:
    """The signed bytes of a checkpoint: a label and the canonical {head, log, size, time}."""
    body = {"head": cp["head"], "log": cp["log"], "size": cp["size"], "time": cp["time"]}
    return CHECKPOINT_LABEL + encode(body).encode("ascii")


def verify_checkpoint(cp: dict[str, object], trusted: dict[str, PublicKey]) -> PublicKey | None:
    """The trusted key that signed `cp`, or None (bad signature, unknown key, malformed)."""
    size = cp.get("size")
    if (
        type(size) is not int
        or size < 0
        or not is_hex(cp.get("head"), 64)
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
