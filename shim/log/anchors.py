"""Anchors and checkpoints: how an approver verifies a log it does not hold (cold).

The anchor (`{"log": id, "k0": hex}`) is the log's first MAC key, handed to the approver at
install (`shield log anchor import`) and never kept on the agent side; with it, every MAC can
be checked. A checkpoint is the approver's Ed25519 signature over the log's size and head,
kept by the approver and copied beside the log; it catches a cut tail.
"""

from __future__ import annotations

import json
import os

from shim import fs
from shim.canon import encode
from shim.clock import now_iso
from shim.errors import LogDamage, LogError
from shim.keys import approver_trusted, sign
from shim.log.append import ANCHOR_NAME, CHECKPOINT_DIR, create_file
from shim.log.verify import checkpoint_message, is_hex, parse_line, verify_log


def _load_json(path: str) -> object:
    with open(path, "rb") as fh:
        return json.loads(fh.read().decode("utf-8"))


def _write_json(path: str, obj: object, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    create_file(path, (encode(obj) + "\n").encode("ascii"), mode)


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
    if not isinstance(obj, dict) or not is_hex(obj.get("k0"), 64) or not is_hex(obj.get("log"), 16):
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
            if name.endswith(suffix) and is_hex(name[: len(name) - len(suffix)], 16):
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
        if n.endswith(".json") and is_hex(n[:-5], 16)
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
                obj = json.loads(fs.read_plain(name, 1 << 20, dir_fd=dfd))
            except (OSError, ValueError, RecursionError):
                obj = None
            cp = dict(obj) if isinstance(obj, dict) else {}
            cp["_file"] = os.path.join(directory, name)
            out.append(cp)
    finally:
        os.close(dfd)
    return out


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
