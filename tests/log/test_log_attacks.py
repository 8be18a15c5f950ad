"""Attacks on the log, written as the agent would make them.

The agent holds the current log key (the `key` file) and can write every agent-side file: the
log, the key file and the checkpoint copies. The approver holds the anchor (log id and K0) and the
authoritative signed checkpoints. "full" is the approver's verify (anchor, its checkpoints);
"agent" is verify on the agent side (no anchor: chain, sequence, canonical, checkpoint copies).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil

import pytest

from shim.errors import LogError
from shim.keys import add_trusted, approver_trusted, init_approver, public_key_path
from shim.log.anchors import (
    approver_checkpoints_dir,
    gather,
    import_anchor,
    load_checkpoints,
    sign_checkpoint,
)
from shim.log.append import _key_record, _State, append_entry, genesis, init_log, next_key, seal
from shim.log.verify import VerifyReport, checkpoint_message, verify_lines, verify_log

N = 50


def fields(i: int, **extra: object) -> dict[str, object]:
    return {
        "event": "call",
        "agent": "deploy-bot",
        "tool": "kubectl",
        "argv": ["kubectl", "delete", "deployment", f"web-{i}"],
        "cwd": "/srv",
        "context": {"namespace": "prod"},
        "decision": "ask",
        "rule": "kubectl/delete",
        "request": f"r{i}",
        "approver": None,
        **extra,
    }


class World:
    """An agent home with a log of N entries; an approver home holding its anchor."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.agent_home = str(tmp_path / "agent")
        self.approver_home = str(tmp_path / "alice")
        self.dir = os.path.join(self.agent_home, "log")
        self.path = os.path.join(self.dir, "shield.log")
        init_approver(self.approver_home, "alice")
        add_trusted(self.agent_home, public_key_path(self.approver_home))
        init_log(self.dir)
        import_anchor(self.approver_home, os.path.join(self.dir, "anchor.json"))
        os.unlink(os.path.join(self.dir, "anchor.json"))  # what `anchor import` does
        for i in range(N):
            append_entry(self.dir, fields(i))

    def checkpoint(self) -> dict[str, object]:
        return sign_checkpoint(self.approver_home, self.path)

    def full(self) -> VerifyReport:
        anchor, cps, _ = gather(self.approver_home, self.path)
        assert anchor is not None
        trusted = approver_trusted(self.approver_home)
        return verify_log(self.path, anchor=anchor, checkpoints=cps, trusted=trusted)

    def agent(self) -> VerifyReport:
        anchor, cps, _ = gather(self.agent_home, self.path)
        assert anchor is None
        trusted = approver_trusted(self.agent_home)
        return verify_log(self.path, anchor=None, checkpoints=cps, trusted=trusted)

    # the attacker's tools
    def lines(self) -> list[bytes]:
        with open(self.path, "rb") as fh:
            return fh.read().split(b"\n")[:-1]

    def write(self, lines: list[bytes]) -> None:
        with open(self.path, "wb") as fh:
            fh.write(b"".join(line + b"\n" for line in lines))

    def current_key(self) -> bytes:
        with open(os.path.join(self.dir, "key")) as fh:
            return bytes.fromhex(fh.read().split()[6])


def canon(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def reseal(obj: dict[str, object], key: bytes) -> bytes:
    body = {k: v for k, v in obj.items() if k != "mac"}
    return seal(body, key)


def rechain(lines: list[bytes], start: int, key: bytes | None = None) -> list[bytes]:
    """Recompute prev (and, with `key`, the MAC) of every line from `start` on."""
    out = list(lines)
    for i in range(start, len(out)):
        obj = json.loads(out[i])
        obj["prev"] = hashlib.sha256(out[i - 1]).hexdigest() if i else genesis(obj["log"])
        out[i] = reseal(obj, key) if key is not None else canon(obj)
    return out


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def test_the_untouched_log_verifies_on_both_sides(world: World) -> None:
    world.checkpoint()
    assert world.full().ok and world.full().macs_checked and world.full().entries == N
    rep = world.agent()
    assert rep.ok and not rep.macs_checked and rep.checkpoints == 1


def test_every_single_byte_flip_is_detected(world: World) -> None:
    world.checkpoint()
    with open(world.path, "rb") as fh:
        data = fh.read()
    anchor, cps, _ = gather(world.approver_home, world.path)
    agent_cps = gather(world.agent_home, world.path)[1]
    trusted = approver_trusted(world.approver_home)
    missed = []
    for pos in range(len(data)):
        for mask in (0x01, 0x20) if pos % 4 == 0 else (0x01,):
            bad = bytearray(data)
            bad[pos] ^= mask
            blob = bytes(bad)
            full = verify_lines(io.BytesIO(blob), anchor=anchor, checkpoints=cps, trusted=trusted)
            if full.ok:
                missed.append((pos, mask, "full"))
            if mask == 0x01:
                # the agent side, without the anchor, catches it through the checkpoint copy
                agent = verify_lines(io.BytesIO(blob), checkpoints=agent_cps, trusted=trusted)
                if agent.ok:
                    missed.append((pos, mask, "agent"))
    assert not missed, missed[:10]


def test_editing_an_old_entry_and_recomputing_the_chain_is_detected(world: World) -> None:
    world.checkpoint()
    lines = world.lines()
    obj = json.loads(lines[10])
    obj["argv"] = ["kubectl", "get", "pods"]  # hide what really ran
    obj["decision"] = "allow"
    lines[10] = reseal(obj, world.current_key())  # the only key the agent has
    world.write(rechain(lines, 11, world.current_key()))
    full = world.full()
    assert (full.ok, full.kind, full.first_bad) == (False, "mac", 11)
    agent = world.agent()  # no MACs on the agent side: the signed checkpoint catches it
    assert (agent.ok, agent.kind, agent.first_bad) == (False, "fork", N)


@pytest.mark.parametrize("renumber", [False, True])
def test_inserting_an_entry_is_detected(world: World, renumber: bool) -> None:
    world.checkpoint()
    lines = world.lines()
    forged = json.loads(lines[20])
    forged["argv"] = ["kubectl", "get", "pods"]
    lines.insert(21, reseal(forged, world.current_key()))
    if renumber:
        for i in range(21, len(lines)):
            obj = json.loads(lines[i])
            obj["seq"] = i
            lines[i] = canon(obj)
        lines = rechain(lines, 21, world.current_key())
    world.write(lines)
    rep = world.full()
    assert (rep.ok, rep.first_bad) == (False, 22)
    assert rep.kind == ("mac" if renumber else "sequence")
    agent = world.agent()
    assert (agent.ok, agent.kind) == (False, "fork" if renumber else "sequence")


@pytest.mark.parametrize("renumber", [False, True])
def test_deleting_an_entry_is_detected(world: World, renumber: bool) -> None:
    lines = world.lines()
    del lines[20]
    if renumber:
        for i in range(20, len(lines)):
            obj = json.loads(lines[i])
            obj["seq"] = i
            lines[i] = canon(obj)
        lines = rechain(lines, 20)
    world.write(lines)
    rep = world.full()
    assert (rep.ok, rep.first_bad) == (False, 21)
    assert rep.kind == ("mac" if renumber else "sequence")


def test_swapping_two_entries_is_detected(world: World) -> None:
    lines = world.lines()
    lines[20], lines[21] = lines[21], lines[20]
    world.write(lines)
    assert (world.full().kind, world.full().first_bad) == ("sequence", 21)
    assert world.agent().kind == "sequence"


def test_swapping_and_renumbering_with_a_recomputed_chain_is_detected(world: World) -> None:
    world.checkpoint()
    lines = world.lines()
    a, b = json.loads(lines[20]), json.loads(lines[21])
    a["seq"], b["seq"] = 21, 20
    lines[20], lines[21] = canon(b), canon(a)
    world.write(rechain(lines, 20, world.current_key()))
    assert (world.full().kind, world.full().first_bad) == ("mac", 21)
    assert world.agent().kind == "fork"


def test_truncating_below_a_checkpoint_is_detected(world: World) -> None:
    world.checkpoint()
    world.write(world.lines()[:30])
    for rep in (world.full(), world.agent()):
        assert (rep.ok, rep.kind, rep.first_bad) == (False, "truncated", 31)
    # deleting the agent-side copy does not help: the approver keeps its own
    shutil.rmtree(os.path.join(world.dir, "checkpoints"))
    assert world.full().kind == "truncated"


def test_truncating_and_continuing_with_the_current_key_is_detected(world: World) -> None:
    lines = world.lines()[:30]
    world.write(lines)
    with pytest.raises(LogError, match="shorter"):
        append_entry(world.dir, fields(99))  # the shim itself refuses to continue
    # the agent continues by hand: seq 30 onwards, MACed with the only key it has (K50)
    key = world.current_key()
    prev = hashlib.sha256(lines[-1]).hexdigest()
    for i in range(30, 35):
        entry = {**fields(i), "seq": i, "log": json.loads(lines[0])["log"], "prev": prev}
        entry["time"] = "2030-01-01T00:00:00.000Z"
        line = seal(entry, key)
        lines.append(line)
        prev = hashlib.sha256(line).hexdigest()
    world.write(lines)
    assert (world.full().kind, world.full().first_bad) == ("mac", 31)


def test_truncating_and_rewriting_the_key_file_to_continue_is_detected(world: World) -> None:
    lines = world.lines()[:30]
    world.write(lines)
    kpath = os.path.join(world.dir, "key")
    with open(kpath) as fh:
        parts = fh.read().split()
    # make the key file agree with the cut log, keeping the current key (all it has)
    state = _State(parts[2], 30, os.path.getsize(world.path), "", world.current_key())
    state.head = hashlib.sha256(lines[-1]).hexdigest()
    with open(kpath, "wb") as fh:
        fh.write(_key_record(state))
    append_entry(world.dir, fields(30))
    assert (world.full().kind, world.full().first_bad) == ("mac", 31)


def test_a_line_spliced_from_another_log_is_detected(world: World, tmp_path) -> None:
    other = str(tmp_path / "other")
    init_log(other)
    for i in range(N):
        append_entry(other, fields(i))
    with open(os.path.join(other, "shield.log"), "rb") as fh:
        foreign = fh.read().split(b"\n")[20]
    lines = world.lines()
    lines[20] = foreign
    world.write(lines)
    assert (world.full().kind, world.full().first_bad) == ("chain", 21)
    # even with its chain and seq made to fit, its log id and MAC give it away
    obj = json.loads(foreign)
    obj["prev"] = hashlib.sha256(lines[19]).hexdigest()
    lines[20] = canon(obj)
    world.write(lines)
    assert (world.full().kind, world.full().first_bad) == ("chain", 21)
    assert "another log" in world.full().message


def test_replacing_the_whole_log_and_key_is_detected(world: World, tmp_path) -> None:
    old_id = str(world.checkpoint()["log"])
    fresh = str(tmp_path / "fresh")
    init_log(fresh)
    for i in range(N):
        append_entry(fresh, fields(i, decision="allow"))
    shutil.rmtree(world.dir)
    shutil.copytree(fresh, world.dir)  # new log, new key, new anchor, no checkpoints
    full = world.full()
    assert (full.ok, full.kind, full.first_bad) == (False, "replaced", 1)
    # the agent-side view trusts only what is on the agent side: nothing to compare with
    assert world.agent().ok
    # the approver's checkpoint alone (without the anchor) shows it too
    assert full.log != old_id
    cps = load_checkpoints(approver_checkpoints_dir(world.approver_home, old_id))
    rep = verify_log(world.path, checkpoints=cps, trusted=approver_trusted(world.approver_home))
    assert rep.kind == "replaced"


def test_replacing_the_log_but_keeping_its_id_fails_the_macs(world: World) -> None:
    lines = world.lines()
    key = os.urandom(32)  # the agent never had K0
    forged = []
    for i, line in enumerate(lines):
        obj = json.loads(line)
        obj["decision"] = "allow"
        obj["prev"] = hashlib.sha256(forged[-1]).hexdigest() if i else genesis(obj["log"])
        forged.append(reseal(obj, key))
        key = next_key(key)
    world.write(forged)
    assert (world.full().kind, world.full().first_bad) == ("mac", 1)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda o: json.dumps(o, sort_keys=True).encode(),  # spaces
        lambda o: json.dumps(o, separators=(",", ":")).encode(),  # key order
        lambda o: (
            json.dumps(o, sort_keys=True, separators=(",", ":"), indent=None)
            .replace('"seq":', '"seq": ')
            .encode()
        ),
        lambda o: (
            json.dumps(o, sort_keys=True, separators=(",", ":"))
            .replace('"kubectl"', '"\\u006bubectl"', 1)
            .encode()
        ),  # escaped letter
        lambda o: (
            json.dumps(o, sort_keys=True, separators=(",", ":"))
            .replace('"seq":20', '"seq":20.0')
            .encode()
        ),  # a float
        lambda o: b" " + json.dumps(o, sort_keys=True, separators=(",", ":")).encode(),
        lambda o: (
            json.dumps(o, sort_keys=True, separators=(",", ":")).encode()[:-1] + b',"seq":20}'
        ),  # duplicate key
    ],
)
def test_non_canonical_json_is_detected_even_with_a_valid_mac(world: World, spelling) -> None:
    lines = world.lines()
    obj = json.loads(lines[20])
    if list(obj) == sorted(obj):  # make the key-order variant differ from sorted order
        obj = dict(reversed(list(obj.items())))
    lines[20] = spelling(obj)
    world.write(lines)
    full = world.full()
    assert (full.ok, full.first_bad) == (False, 21)
    assert full.kind in ("canonical", "sequence")


def test_rolling_the_key_file_back_forges_nothing_and_is_recorded(world: World) -> None:
    kpath = os.path.join(world.dir, "key")
    with open(kpath, "rb") as fh:
        old = fh.read()  # the agent saves K50 ...
    for i in range(N, N + 10):
        append_entry(world.dir, fields(i))
    before = world.lines()
    with open(kpath, "wb") as fh:
        fh.write(old)  # ... and later puts it back, hoping to append as entry 50 again
    e = append_entry(world.dir, fields(99))
    after = world.lines()
    assert after[: N + 10] == before  # nothing rewritten
    note = json.loads(after[N + 10])
    assert note["detail"] == {"kind": "key-behind", "entries": 10} and note["seq"] == N + 10
    assert e["seq"] == N + 11  # the shim stepped over the ten entries it could verify
    rep = world.full()
    assert rep.ok and rep.entries == N + 12, rep.message
    assert world.current_key() != bytes.fromhex(old.split()[6].decode())


def test_a_rolled_back_key_file_cannot_pass_entries_off_as_torn(world: World) -> None:
    kpath = os.path.join(world.dir, "key")
    with open(kpath, "rb") as fh:
        old = fh.read()
    for i in range(N, N + 5):
        append_entry(world.dir, fields(i))
    lines = world.lines()
    world.write(lines[:N] + [b'{"agent":"x"'] + lines[N:])  # a fake torn line before them
    with open(kpath, "wb") as fh:
        fh.write(old)
    with pytest.raises(LogError, match="inserted"):
        append_entry(world.dir, fields(99))
    rep = world.full()
    assert (rep.ok, rep.first_bad) == (False, N + 1)


def test_a_saved_old_key_rewrites_history_only_up_to_the_next_checkpoint(world: World) -> None:
    # An agent that copied the key file at entry 50 was compromised from then on: it can rewrite
    # entries 50.. (documented limit). A checkpoint signed after that catches the rewrite.
    saved = world.current_key()
    for i in range(N, N + 10):
        append_entry(world.dir, fields(i))
    world.checkpoint()
    lines = world.lines()
    key = saved
    for i in range(N, N + 10):
        obj = json.loads(lines[i])
        obj["argv"] = ["kubectl", "get", "pods"]
        obj["prev"] = hashlib.sha256(lines[i - 1]).hexdigest()
        lines[i] = reseal(obj, key)
        key = next_key(key)
    world.write(lines)
    rep = world.full()
    assert (rep.ok, rep.kind, rep.first_bad) == (False, "fork", N + 10)


def test_a_forged_or_altered_checkpoint_is_detected(world: World, tmp_path) -> None:
    cp = world.checkpoint()
    copy = str(cp["copied"])
    with open(copy) as fh:
        altered = json.load(fh)
    altered["size"] = 10  # claim the log was shorter when signed
    with open(copy, "w") as fh:
        json.dump(altered, fh)
    rep = world.agent()
    assert (rep.ok, rep.kind) == (False, "checkpoint-signature")
    # the agent's own key pair is not trusted
    mallory = str(tmp_path / "mallory")
    init_approver(mallory, "alice")
    forged = {k: cp[k] for k in ("head", "log", "size", "time")}
    from shim.keys import sign

    ident, sig = sign(mallory, checkpoint_message(forged))
    forged.update(signer=ident.fingerprint, name="alice", sig=sig)
    with open(copy, "w") as fh:
        json.dump(forged, fh)
    assert world.agent().kind == "checkpoint-signature"


def test_limit_a_tail_cut_after_the_last_checkpoint_is_not_detected(world: World) -> None:
    """DOCUMENTED LIMIT (docs/log.md, "Honest limits"): entries written after the last signed
    checkpoint can be cut from the end without detection, as long as nothing is appended after
    the cut (appending needs the erased keys). Sign checkpoints often."""
    world.checkpoint()  # covers all 50 lines
    for i in range(N, N + 10):
        append_entry(world.dir, fields(i))
    world.write(world.lines()[: N + 4])  # cut the last 6 entries
    rep = world.full()
    assert rep.ok and rep.entries == N + 4  # NOT detected: this is the limit
    assert world.agent().ok


def test_a_checkpoint_copy_nested_too_deep_is_reported_not_a_crash(tmp_path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (cp,) = load_checkpoints(str(tmp_path))
    assert cp == {"_file": str(tmp_path / "deep.json")}
