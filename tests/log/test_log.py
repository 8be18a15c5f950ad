"""The log library: entries, the MAC chain, appends, healing, torn tails, checkpoints."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import stat
import subprocess
import sys
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shim import fs
from shim.errors import LogDamage, LogError
from shim.keys import approver_trusted, init_approver
from shim.log.anchors import gather, import_anchor, sign_checkpoint
from shim.log.append import RESERVED, append_entry, hmac_sha256, init_log, next_key
from shim.log.storage import filesystem_type, is_network_filesystem, lock_works
from shim.log.verify import VerifyReport, read_entries, verify_log
from tests.conftest import REPO
from tests.log import support as audit_support
from tests.log.support import logfile

ROOT = str(REPO)


def fields(i: int = 0, **extra: object) -> dict[str, object]:
    return {
        "event": "call",
        "agent": "deploy-bot",
        "tool": "kubectl",
        "argv": ["kubectl", "get", "pods", f"p{i}"],
        "cwd": "/work",
        "context": {"namespace": "default"},
        "decision": "allow",
        "rule": "kubectl/read",
        "request": None,
        "approver": None,
        **extra,
    }


def new_log(tmp_path, n: int = 0) -> tuple[str, dict[str, object]]:
    return audit_support.new_log(tmp_path, fields, n)


def key_of(anchor: dict[str, object], seq: int) -> bytes:
    key = bytes.fromhex(str(anchor["k0"]))
    for _ in range(seq):
        key = hashlib.sha256(b"shield-log-key-advance-v1" + key).digest()
    return key


def key_file(d: str) -> list[str]:
    with open(os.path.join(d, "key")) as fh:
        return fh.read().split()


# --- crypto and format -----------------------------------------------------------------------


@given(st.binary(max_size=200), st.binary(max_size=500))
def test_hmac_sha256_equals_the_hmac_module(key: bytes, msg: bytes) -> None:
    assert hmac_sha256(key, msg) == hmac.new(key, msg, "sha256").digest()


def test_next_key_is_sha256_of_label_and_key() -> None:
    k = os.urandom(32)
    assert next_key(k) == hashlib.sha256(b"shield-log-key-advance-v1" + k).digest()


def test_importing_the_append_side_pulls_in_no_heavy_module() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import shim.log.append; "
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, ROOT], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = {"json", "re", "hashlib", "hmac", "datetime", "dataclasses", "typing", "inspect"}
    heavy |= {"typer", "rich", "yaml", "shim.cli", "shim.keys", "shim.log.verify", "cryptography"}
    heavy |= {"enum", "subprocess"}
    assert heavy.isdisjoint(out), heavy & set(out)


def test_init_log_writes_a_private_anchor_and_key_and_is_idempotent(tmp_path) -> None:
    d = str(tmp_path / "log")
    first = init_log(d)
    assert first["created"] is True and re.fullmatch(r"[0-9a-f]{16}", str(first["log"]))
    anchor_path = os.path.join(d, "anchor.json")
    assert first["anchor"] == anchor_path
    for name in ("anchor.json", "key"):
        assert stat.S_IMODE(os.stat(os.path.join(d, name)).st_mode) == 0o600
    with open(anchor_path) as fh:
        anchor = json.load(fh)
    assert anchor["log"] == first["log"] and re.fullmatch(r"[0-9a-f]{64}", anchor["k0"])
    append_entry(d, fields())
    again = init_log(d)
    assert again == {"log": first["log"], "anchor": anchor_path, "created": False}
    os.unlink(anchor_path)
    assert init_log(d)["anchor"] is None
    assert verify_log(logfile(d), anchor=anchor).entries == 1


def test_init_log_refuses_a_log_whose_key_file_is_gone(tmp_path) -> None:
    d, _ = new_log(tmp_path, 2)
    os.unlink(os.path.join(d, "key"))
    with pytest.raises(LogError, match="key file .* is missing"):
        init_log(d)


def test_append_entry_returns_the_entry_it_wrote(tmp_path) -> None:
    d, anchor = new_log(tmp_path)
    e0 = append_entry(d, fields(0, exit=0, duration_ms=12, detail={"k": [1, None]}))
    e1 = append_entry(d, {"event": "security", "agent": "a"})
    with open(logfile(d), "rb") as fh:
        lines = fh.read().split(b"\n")
    assert lines[2] == b"" and len(lines) == 3
    assert json.loads(lines[0]) == e0 and json.loads(lines[1]) == e1
    assert e0["seq"] == 0 and e1["seq"] == 1 and e0["log"] == anchor["log"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(e0["time"]))
    genesis = hashlib.sha256(b"shield-log-genesis-v1:" + str(anchor["log"]).encode()).hexdigest()
    assert e0["prev"] == genesis
    assert e1["prev"] == hashlib.sha256(lines[0]).hexdigest()
    # missing standard fields are filled in, so scripts can rely on every name
    assert e1["argv"] == [] and e1["context"] == {} and e1["decision"] is None
    for i, (line, e) in enumerate(((lines[0], e0), (lines[1], e1))):
        assert line == json.dumps(e, sort_keys=True, separators=(",", ":")).encode()
        body = {k: v for k, v in e.items() if k != "mac"}
        canon = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert e["mac"] == hmac.new(key_of(anchor, i), canon, "sha256").hexdigest()


def test_the_key_file_holds_only_the_next_key(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 3)
    parts = key_file(d)
    assert parts[2] == anchor["log"] and int(parts[3]) == 3
    assert int(parts[4]) == os.path.getsize(logfile(d))
    assert parts[6] == key_of(anchor, 3).hex()
    with open(os.path.join(d, "key"), "rb") as fh:
        raw = fh.read()
    for old in range(3):
        assert key_of(anchor, old).hex().encode() not in raw


@pytest.mark.parametrize("name", ["seq", "time", "log", "prev", "mac"])
def test_fields_the_log_sets_itself_are_refused(tmp_path, name: str) -> None:
    d, _ = new_log(tmp_path)
    with pytest.raises(LogError, match=name):
        append_entry(d, fields(**{name: 1}))
    assert os.path.getsize(logfile(d)) == 0


def test_a_float_is_refused_and_nothing_is_written(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 1)
    size = os.path.getsize(logfile(d))
    with pytest.raises(LogError, match="float"):
        append_entry(d, fields(duration=1.5))
    assert os.path.getsize(logfile(d)) == size
    assert append_entry(d, fields())["seq"] == 1
    assert verify_log(logfile(d), anchor=anchor).ok


def test_an_entry_without_an_event_is_refused(tmp_path) -> None:
    d, _ = new_log(tmp_path)
    with pytest.raises(LogError, match="event"):
        append_entry(d, {"agent": "a"})


def test_append_without_a_log_or_key_raises_log_error(tmp_path) -> None:
    with pytest.raises(LogError, match="no log"):
        append_entry(str(tmp_path / "nowhere"), fields())
    d, _ = new_log(tmp_path, 1)
    os.unlink(os.path.join(d, "key"))
    with pytest.raises(LogError, match="key file"):
        append_entry(d, fields())


def test_a_damaged_key_file_is_refused(tmp_path) -> None:
    d, _ = new_log(tmp_path, 1)
    kpath = os.path.join(d, "key")
    with open(kpath, "r+b") as fh:
        fh.seek(60)
        fh.write(b"0")
    with pytest.raises(LogError, match="damaged"):
        append_entry(d, fields())


def test_non_utf8_and_huge_argv_round_trip(tmp_path) -> None:
    d, anchor = new_log(tmp_path)
    weird = os.fsdecode(b"caf\xe9-\xff\x00")
    big = "x" * 1_000_000
    e = append_entry(d, fields(argv=["kubectl", weird, big, "\u2603", '\n\t"\\']))
    assert verify_log(logfile(d), anchor=anchor).ok
    (back,) = list(read_entries(logfile(d)))
    assert back == e and os.fsencode(back["argv"][1]) == b"caf\xe9-\xff\x00"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in RESERVED),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_any_json_fields_append_and_verify(tmp_path_factory, extra: dict[str, object]) -> None:
    d, anchor = new_log(tmp_path_factory.mktemp("p"))
    e = append_entry(d, {**extra, "event": "call"})
    append_entry(d, fields())
    assert verify_log(logfile(d), anchor=anchor).ok
    assert next(iter(read_entries(logfile(d)))) == e


# --- crash recovery --------------------------------------------------------------------------


class Died(BaseException):
    """Stands for the process dying at that instant (nothing after it runs)."""


def test_a_crash_between_the_write_and_the_key_advance_heals(tmp_path, monkeypatch) -> None:
    d, anchor = new_log(tmp_path, 2)
    real = fs.pwrite

    def die(*a: object) -> int:
        raise Died

    monkeypatch.setattr(fs, "pwrite", die)
    with pytest.raises(Died):
        append_entry(d, fields(2))
    monkeypatch.setattr(fs, "pwrite", real)
    assert int(key_file(d)[3]) == 2  # the log is one entry ahead of the key
    assert verify_log(logfile(d), anchor=anchor).entries == 3
    e = append_entry(d, fields(3))
    assert e["seq"] == 3
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.entries == 4 and not rep.torn
    assert key_file(d)[6] == key_of(anchor, 4).hex()


def write_raw(d: str, data: bytes) -> None:
    with open(logfile(d), "ab") as fh:
        fh.write(data)


def test_a_torn_tail_is_reported_then_recorded_never_cut(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 3)
    full = json.dumps(fields(9), sort_keys=True, separators=(",", ":")).encode()
    torn = full[:57]
    write_raw(d, torn)
    rep = verify_log(logfile(d), anchor=anchor)
    assert (rep.ok, rep.kind, rep.first_bad, rep.entries) == (False, "torn", 4, 3)
    assert list(read_entries(logfile(d)))[-1] == {"event": "torn", "line": 4, "bytes": 57}

    e = append_entry(d, fields(3))
    with open(logfile(d), "rb") as fh:
        lines = fh.read().split(b"\n")
    assert lines[3] == torn  # kept, byte for byte
    record = json.loads(lines[4])
    assert record["event"] == "security" and record["seq"] == 3
    assert record["detail"]["lines"] == [{"bytes": 57, "sha256": hashlib.sha256(torn).hexdigest()}]
    assert record["prev"] == hashlib.sha256(torn).hexdigest()
    assert e["seq"] == 4 and json.loads(lines[5]) == e
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.torn == (4,) and rep.entries == 5
    assert "torn lines recorded at 4" in rep.message


def test_a_torn_tail_ending_in_a_newline_is_recorded_too(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 1)
    write_raw(d, b'{"agent":"x","argv\n')
    assert verify_log(logfile(d), anchor=anchor).kind == "torn"
    append_entry(d, fields())
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.torn == (2,)


def test_two_torn_lines_are_recorded_together(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 1)
    write_raw(d, b'{"agent":"x"\n{"a')
    append_entry(d, fields())
    append_entry(d, fields())
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.torn == (2, 3) and rep.entries == 4


def test_a_torn_record_that_was_itself_interrupted_heals(tmp_path, monkeypatch) -> None:
    d, anchor = new_log(tmp_path, 1)
    write_raw(d, b'{"agent":"x"')
    real = fs.pwrite

    def die(*a: object) -> int:
        raise Died

    monkeypatch.setattr(fs, "pwrite", die)  # the record and the entry are written, not the key
    with pytest.raises(Died):
        append_entry(d, fields(1))
    monkeypatch.setattr(fs, "pwrite", real)
    e = append_entry(d, fields(2))
    assert e["seq"] == 3  # 0, record 1, entry 2, this 3
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.torn == (2,) and rep.entries == 4


def test_a_key_file_many_entries_behind_heals_and_says_how_far(tmp_path) -> None:
    # A power cut before the kernel wrote the key file back (the key advance is not fsynced)
    # leaves it behind the log by any number of entries. Each one stepped over must verify.
    d, anchor = new_log(tmp_path, 3)
    kpath = os.path.join(d, "key")
    with open(kpath, "rb") as fh:
        old = fh.read()
    for i in range(5):
        append_entry(d, fields(i))
    with open(kpath, "wb") as fh:
        fh.write(old)
    e = append_entry(d, fields(9))
    assert e["seq"] == 9  # 0-7 the entries, 8 the record of the heal
    note = list(read_entries(logfile(d)))[8]
    assert note["event"] == "security" and note["detail"] == {"kind": "key-behind", "entries": 5}
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.entries == 10, rep.message
    assert key_file(d)[6] == key_of(anchor, 10).hex()
    with open(kpath, "rb") as fh:
        raw = fh.read()
    assert all(key_of(anchor, n).hex().encode() not in raw for n in range(10))


def test_a_line_inserted_before_entries_the_key_file_has_not_covered_is_refused(tmp_path) -> None:
    # Otherwise the heal would record the authentic entries after it as torn lines.
    d, anchor = new_log(tmp_path, 2)
    kpath = os.path.join(d, "key")
    with open(kpath, "rb") as fh:
        old = fh.read()
    size = os.path.getsize(logfile(d))
    append_entry(d, fields(2))
    append_entry(d, fields(3))
    with open(logfile(d), "rb") as fh:
        data = fh.read()
    with open(logfile(d), "wb") as fh:
        fh.write(data[:size] + b'{"junk":1}\n' + data[size:])
    with open(kpath, "wb") as fh:
        fh.write(old)
    with pytest.raises(LogError, match="inserted"):
        append_entry(d, fields(4))
    assert verify_log(logfile(d), anchor=anchor).first_bad == 3


def test_a_key_file_rolled_back_by_one_entry_looks_like_a_crash_and_heals(tmp_path) -> None:
    # Documented: indistinguishable from a crash between write and key advance. Harmless: the
    # entry it steps over is authentic (its MAC verifies under the key it holds).
    d, anchor = new_log(tmp_path, 2)
    kpath = os.path.join(d, "key")
    with open(kpath, "rb") as fh:
        old = fh.read()
    append_entry(d, fields())
    with open(kpath, "wb") as fh:
        fh.write(old)
    assert append_entry(d, fields())["seq"] == 3
    assert verify_log(logfile(d), anchor=anchor).ok


def test_append_refuses_a_log_shorter_than_its_key_file(tmp_path) -> None:
    d, _ = new_log(tmp_path, 3)
    with open(logfile(d), "r+b") as fh:
        fh.truncate(os.path.getsize(logfile(d)) - 10)
    with pytest.raises(LogError, match="shorter"):
        append_entry(d, fields())


# --- verify report, checkpoints, anchors -----------------------------------------------------


def test_verify_report_is_frozen_and_complete(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 2)
    rep = verify_log(logfile(d), anchor=anchor)
    with pytest.raises(AttributeError):
        rep.ok = False  # type: ignore[misc]
    assert rep.as_dict()["entries"] == 2 and rep.macs_checked and rep.log == anchor["log"]
    assert rep == verify_log(logfile(d), anchor=anchor)
    assert not verify_log(logfile(d)).macs_checked


def approver(tmp_path) -> str:
    home = str(tmp_path / "alice")
    init_approver(home, "alice")
    return home


def test_a_checkpoint_is_signed_stored_copied_and_checked(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 5)
    home = approver(tmp_path)
    with pytest.raises(LogError, match="no anchor"):
        sign_checkpoint(home, logfile(d))
    src = str(tmp_path / "anchor-copy.json")
    with open(src, "w") as fh:
        json.dump(anchor, fh)
    stored_anchor = import_anchor(home, src)
    assert stat.S_IMODE(os.stat(stored_anchor).st_mode) == 0o600
    cp = sign_checkpoint(home, logfile(d))
    assert cp["size"] == 5 and cp["log"] == anchor["log"] and cp["name"] == "alice"
    assert cp["stored"] == os.path.join(home, "checkpoints", str(anchor["log"]), "001.json")
    assert cp["copied"] == os.path.join(d, "checkpoints", "001.json")
    with open(logfile(d), "rb") as fh:
        assert cp["head"] == hashlib.sha256(fh.read().splitlines()[-1]).hexdigest()
    append_entry(d, fields())
    cp2 = sign_checkpoint(home, logfile(d))
    assert cp2["size"] == 6 and str(cp2["stored"]).endswith("002.json")
    got_anchor, cps, _ = gather(home, logfile(d))
    assert got_anchor == anchor and len(cps) == 2
    rep = verify_log(logfile(d), anchor=got_anchor, checkpoints=cps, trusted=approver_trusted(home))
    assert rep.ok and rep.checkpoints == 2


def test_sign_checkpoint_refuses_a_damaged_log(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 3)
    home = approver(tmp_path)
    src = str(tmp_path / "a.json")
    with open(src, "w") as fh:
        json.dump(anchor, fh)
    import_anchor(home, src)
    with open(logfile(d), "r+b") as fh:
        fh.seek(30)
        fh.write(b"Z")
    with pytest.raises(LogDamage):
        sign_checkpoint(home, logfile(d))


def test_importing_a_different_anchor_for_the_same_log_is_refused(tmp_path) -> None:
    home = str(tmp_path / "alice")
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"log": "0123456789abcdef", "k0": "11" * 32}))
    import_anchor(home, str(a))
    import_anchor(home, str(a))  # the same one again is fine
    a.write_text(json.dumps({"log": "0123456789abcdef", "k0": "22" * 32}))
    with pytest.raises(LogError, match="different anchor"):
        import_anchor(home, str(a))
    a.write_text("{}")
    with pytest.raises(LogError, match="not a log anchor"):
        import_anchor(home, str(a))


# --- checks for `shield doctor` --------------------------------------------------------------


def test_lock_works_on_a_local_filesystem(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 1)
    assert lock_works(d)
    assert verify_log(logfile(d), anchor=anchor).ok  # the check leaves the log alone


def test_network_filesystems_are_recognised(tmp_path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "srv:/export /mnt/shared nfs4 rw 0 0\n"
        "tmpfs /mnt/shared/tmp tmpfs rw 0 0\n"
    )
    assert filesystem_type("/mnt/shared/agent/log", str(mounts)) == "nfs4"
    assert filesystem_type("/mnt/shared/tmp/x", str(mounts)) == "tmpfs"
    assert filesystem_type("/mnt/sharedx", str(mounts)) == "ext4"
    assert not is_network_filesystem(str(tmp_path))


def test_a_torn_very_first_line_is_recorded_against_the_genesis(tmp_path) -> None:
    d, anchor = new_log(tmp_path)
    write_raw(d, b'{"agent":"first')
    assert verify_log(logfile(d), anchor=anchor).first_bad == 1
    e = append_entry(d, fields())
    assert e["seq"] == 1  # the record took seq 0
    rep = verify_log(logfile(d), anchor=anchor)
    assert rep.ok and rep.torn == (1,) and rep.entries == 2


def test_verify_and_read_wait_out_an_append_in_progress(tmp_path) -> None:
    d, anchor = new_log(tmp_path, 2)
    path = logfile(d)
    size = os.path.getsize(path)
    with open(path, "ab") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # a writer mid-append ...
        fh.write(b'{"agent":"half-written')
        fh.flush()
        done: list[VerifyReport] = []
        t = threading.Thread(target=lambda: done.append(verify_log(path, anchor=anchor)))
        t.start()
        t.join(0.2)
        assert not done  # verify waits for the lock rather than report a torn line
        fh.truncate(size)  # ... that gives up cleanly (like a failed write undone)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    t.join(10)
    assert done and done[0].ok and done[0].entries == 2
    assert len(list(read_entries(path))) == 2
