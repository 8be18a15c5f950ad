"""Passkey decisions (issue 12): every check the shim makes on a WebAuthn assertion, one by
one, with a software authenticator; the trust store holding both kinds of approver; the wait
accepting, refusing and counting them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from shim import canon, keys
from shim.approval.decision import sign_decision
from shim.approval.passkey import (
    DECISION_TYPE,
    add_trusted_passkeys,
    b64url,
    b64url_decode,
    challenge_of,
    decision_body,
    load_passkeys,
    parse_passkey,
    verify_passkey_decision,
)
from shim.approval.request import HeldRequest, new_request, to_dict
from shim.approval.spool import write_decision
from shim.approval.used import commit_sign_count, load_sign_counts
from shim.errors import KeyError_
from tests.approval.softauthn import UP, UV, SoftPasskey
from tests.approval.support import SAMPLE, wait_held, write_held


def held(**extra: Any) -> HeldRequest:
    return new_request(**SAMPLE, timeout_s=600, extra=extra)


@pytest.fixture
def alice() -> SoftPasskey:
    return SoftPasskey("alice")


def verify(decision: object, req: HeldRequest, *pks: SoftPasskey, **kw: Any):
    trusted = {p.passkey.credential_id: p.passkey for p in pks}
    args: dict[str, Any] = {"now": time.time(), "skew_s": 30.0, "used": set(), "counts": {}}
    args.update(kw)
    return verify_passkey_decision(decision, req, trusted, **args)


def test_an_assertion_over_the_decision_by_a_trusted_passkey_verifies(alice: SoftPasskey) -> None:
    req = held()
    decision = alice.decide(req, reason="planned")
    ok, why, got = verify(decision, req, alice)
    assert (ok, why) == (True, "ok")
    assert got is not None and got.passkey.approver == "alice"
    assert got.mark == challenge_of(decision).hex()
    assert got.sign_count == 1


def test_the_challenge_is_the_sha256_of_the_canonical_decision_without_its_assertion(
    alice: SoftPasskey,
) -> None:
    decision = alice.decide(held())
    body = decision_body(decision)
    assert set(body) == {
        "type",
        "id",
        "digest",
        "verdict",
        "approver",
        "time",
        "expires",
        "reason",
        "nonce",
    }
    import hashlib

    want = hashlib.sha256(canon.encode(body).encode()).digest()
    assert challenge_of(decision) == want
    client = json.loads(b64url_decode(decision["client_data_json"]))
    assert client["challenge"] == b64url(want)


def test_a_deny_is_signed_and_verified_the_same_way(alice: SoftPasskey) -> None:
    req = held()
    ok, _, _ = verify(alice.decide(req, "deny", "not now"), req, alice)
    assert ok


def test_an_untrusted_passkey_is_refused(alice: SoftPasskey) -> None:
    mallory = SoftPasskey("alice")  # same name, another key
    req = held()
    ok, why, _ = verify(mallory.decide(req), req, alice)
    assert not ok and "untrusted passkey" in why


def test_a_decision_naming_another_approver_than_the_passkeys_is_refused(
    alice: SoftPasskey,
) -> None:
    req = held()
    body = {**decision_body(alice.decide(req)), "approver": "bob"}
    decision = {**body, **alice.assertion(challenge_of(body))}
    ok, why, _ = verify(decision, req, alice)
    assert not ok and "names approver 'bob' but the passkey is 'alice'" in why


def test_an_assertion_made_for_another_request_is_refused(alice: SoftPasskey) -> None:
    a, b = held(), held()
    for_a = alice.decide(a)
    # the assertion over A's decision, under a decision that names B: the challenge differs
    moved = {**for_a, "id": b.id, "digest": b.digest}
    ok, why, _ = verify(moved, b, alice)
    assert not ok and "challenge" in why
    # A's whole decision delivered for B: the signature holds, the request does not
    ok, why, _ = verify(for_a, b, alice)
    assert not ok and f"decision is for request '{a.id}', not {b.id}" in why


def test_a_decision_over_other_content_than_the_held_call_is_refused(alice: SoftPasskey) -> None:
    req = held()
    other = held()
    body = {**decision_body(alice.decide(req)), "digest": other.digest}
    ok, why, _ = verify({**body, **alice.assertion(challenge_of(body))}, req, alice)
    assert not ok and "digest does not match this request" in why


def test_an_edited_decision_no_longer_matches_its_challenge(alice: SoftPasskey) -> None:
    req = held()
    decision = alice.decide(req, "deny", "no")
    ok, why, _ = verify({**decision, "verdict": "approve"}, req, alice)
    assert not ok and "challenge" in why


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ({"origin": "http://localhost:9999"}, "not at 'http://localhost:8421'"),
        ({"origin": "https://evil.example"}, "look-alike"),
        ({"rp_id": "evil.example"}, "Unexpected RP ID hash"),
        ({"flags": UP}, "User verification is required"),
        ({"flags": UV}, "User was not present"),
        ({"kind": "webauthn.create"}, "Unexpected client data type"),
        ({"client_extra": {"crossOrigin": True}}, "embedded in another site"),
        ({"client_extra": {"topOrigin": "https://evil.example"}}, "embedded in another site"),
    ],
)
def test_each_assertion_check_refuses_on_its_own(
    alice: SoftPasskey, assertion: dict[str, Any], message: str
) -> None:
    req = held()
    ok, why, _ = verify(alice.decide(req, **assertion), req, alice)
    assert not ok
    assert message in why


def test_a_forged_signature_is_refused(alice: SoftPasskey) -> None:
    req = held()
    decision = alice.decide(req)
    other = SoftPasskey("alice").decide(req)
    ok, why, _ = verify({**decision, "signature": other["signature"]}, req, alice)
    assert not ok and "Could not verify authentication signature" in why


@pytest.mark.parametrize(
    "field", ["authenticator_data", "client_data_json", "signature", "credential"]
)
def test_malformed_assertion_fields_are_refused_not_raised(alice: SoftPasskey, field: str) -> None:
    req = held()
    for junk in ("", "!!!", "AAAA", b64url(os.urandom(7))):
        ok, why, _ = verify({**alice.decide(req), field: junk}, req, alice)
        assert not ok, (field, junk)
        assert why


@pytest.mark.parametrize(
    "decision",
    [None, [], "x", {}, {"type": DECISION_TYPE}],
)
def test_junk_is_refused(alice: SoftPasskey, decision: object) -> None:
    ok, _, _ = verify(decision, held(), alice)
    assert not ok


def test_expired_and_future_decisions_are_refused(alice: SoftPasskey) -> None:
    req = held()
    old = alice.decide(req, ttl_s=60, now=time.time() - 600)
    ok, why, _ = verify(old, req, alice)
    assert not ok and "expired" in why
    future = alice.decide(req, now=time.time() + 3600)
    ok, why, _ = verify(future, req, alice)
    assert not ok and "in the future" in why


def test_a_used_decision_is_a_replay(alice: SoftPasskey) -> None:
    req = held()
    decision = alice.decide(req)
    ok, why, _ = verify(decision, req, alice, used={challenge_of(decision).hex()})
    assert not ok and "replay" in why


def test_a_sign_count_that_does_not_go_up_is_refused(alice: SoftPasskey) -> None:
    req = held()
    fp = alice.passkey.fingerprint
    ok, why, _ = verify(alice.decide(req, count=5), req, alice, counts={fp: 5})
    assert not ok and "sign count" in why
    ok, _, got = verify(alice.decide(req, count=6), req, alice, counts={fp: 5})
    assert ok and got is not None and got.sign_count == 6
    # an authenticator that keeps no count (synced passkeys) signs 0 every time
    ok, _, _ = verify(alice.decide(req, count=0), req, alice, counts={})
    assert ok


def test_the_sign_count_store_keeps_the_highest_count_per_passkey(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "passkey-counts")
    assert commit_sign_count(path, "aa", 3)
    assert not commit_sign_count(path, "aa", 3)
    assert not commit_sign_count(path, "aa", 2)
    assert commit_sign_count(path, "bb", 1)
    assert commit_sign_count(path, "aa", 7)
    assert commit_sign_count(path, "cc", 0) and commit_sign_count(path, "cc", 0)
    assert load_sign_counts(path) == {"aa": 7, "bb": 1, "cc": 0}


def test_a_reason_is_required_where_the_rule_says_so(alice: SoftPasskey) -> None:
    req = held(require_reason=True)
    ok, why, _ = verify(alice.decide(req), req, alice)
    assert not ok and "needs a reason" in why
    ok, _, _ = verify(alice.decide(req, reason="ticket 42"), req, alice)
    assert ok


# --- the credential file and the trust store --------------------------------------------------
def test_a_credential_file_round_trips_through_the_trust_store(tmp_path: Path) -> None:
    alice, bob = SoftPasskey("alice"), SoftPasskey("bob")
    home = str(tmp_path / "agent")
    text = alice.passkey.to_line() + bob.passkey.to_line()
    added = add_trusted_passkeys(home, text, "alice.passkey")
    assert [pk.approver for pk, _ in added] == ["alice", "bob"]
    assert os.path.basename(added[0][1]) == f"alice-{alice.passkey.fingerprint}.passkey"
    loaded = load_passkeys(home)
    assert loaded == {p.passkey.credential_id: p.passkey for p in (alice, bob)}
    # Ed25519 keys live beside them; each loader reads its own kind
    keys.init_approver(str(tmp_path / "carol"), "carol")
    keys.add_trusted(home, keys.public_key_path(str(tmp_path / "carol")))
    assert [k.name for k in keys.load_trusted(home).values()] == ["carol"]
    assert len(load_passkeys(home)) == 2


def test_a_broken_file_in_the_trust_store_is_skipped(tmp_path: Path, alice: SoftPasskey) -> None:
    home = str(tmp_path / "agent")
    add_trusted_passkeys(home, alice.passkey.to_line(), "alice.passkey")
    (Path(home) / "trust" / "junk.passkey").write_text("{not json\n")
    assert list(load_passkeys(home)) == [alice.passkey.credential_id]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"origin": "http://shield.example"}, "does not belong"),
        ({"origin": "https://shield.example/path"}, "does not belong"),
        ({"rp_id": "other.example"}, "does not belong"),
        ({"approver": "two words"}, "one printable word"),
        ({"credential_id": "a+b/"}, "base64url"),
        ({"extra": "x"}, "not a shield passkey"),
        ({"type": "shield.passkey/9"}, "not a shield.passkey/1"),
    ],
)
def test_malformed_credentials_are_refused(change: dict[str, str], message: str) -> None:
    data = json.loads(SoftPasskey("alice").passkey.to_line())
    data.update(change)
    with pytest.raises(KeyError_, match=message):
        parse_passkey(data)


def test_a_public_key_no_shim_could_use_is_refused_when_trusted(tmp_path: Path) -> None:
    data = json.loads(SoftPasskey("alice").passkey.to_line())
    data["public_key"] = b64url(b"\xa1\x01\x02" + os.urandom(20))
    with pytest.raises(KeyError_, match="unusable"):
        add_trusted_passkeys(str(tmp_path), json.dumps(data), "x.passkey")


def test_origins_on_subdomains_of_the_relying_party_are_accepted() -> None:
    data = json.loads(SoftPasskey("alice").passkey.to_line())
    data.update(origin="https://shield.corp.example:8421", rp_id="corp.example")
    assert parse_passkey(data).rp_id == "corp.example"


# --- the wait ---------------------------------------------------------------------------------
class Side:
    def __init__(self, root: Path) -> None:
        self.agent = str(root / "agent")
        self.spool = str(root / "spool")
        self.events: list[dict[str, Any]] = []

    def wait(self, req: HeldRequest):
        return wait_held(
            req,
            self.spool,
            trusted=keys.load_trusted(self.agent),
            passkeys=load_passkeys(self.agent),
            used_path=os.path.join(self.agent, "state", "used-decisions"),
            log=self.events.append,
        )

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


def test_the_wait_accepts_a_passkey_approval_and_logs_the_passkey(
    tmp_path: Path, alice: SoftPasskey
) -> None:
    side = Side(tmp_path)
    add_trusted_passkeys(side.agent, alice.passkey.to_line(), "alice.passkey")
    req = write_held(side.spool, 10)
    write_decision(side.spool, alice.decide(req, reason="ok"))
    verdict = side.wait(req)
    assert (verdict.outcome, verdict.approver, verdict.channel) == ("approved", "alice", "spool")
    entry = side.named("approved")[0]
    assert entry["signer"] == "passkey"
    assert entry["key"] == alice.passkey.fingerprint
    assert load_sign_counts(os.path.join(side.agent, "state", "passkey-counts")) == {
        alice.passkey.fingerprint: 1
    }


def test_the_wait_refuses_a_bad_assertion_logs_it_and_keeps_waiting(
    tmp_path: Path, alice: SoftPasskey
) -> None:
    side = Side(tmp_path)
    add_trusted_passkeys(side.agent, alice.passkey.to_line(), "alice.passkey")
    req = write_held(side.spool, 1.5)
    write_decision(side.spool, alice.decide(req, flags=UP))
    assert side.wait(req).outcome == "expired"
    assert any("User verification" in e["detail"] for e in side.named("security"))
    req = write_held(side.spool, 10)
    write_decision(side.spool, alice.decide(req, "deny", "no"))
    verdict = side.wait(req)
    assert (verdict.outcome, verdict.reason, verdict.approver) == ("denied", "no", "alice")


def test_a_stale_sign_count_is_refused_by_the_wait(tmp_path: Path, alice: SoftPasskey) -> None:
    side = Side(tmp_path)
    add_trusted_passkeys(side.agent, alice.passkey.to_line(), "alice.passkey")
    commit_sign_count(
        os.path.join(side.agent, "state", "passkey-counts"), alice.passkey.fingerprint, 50
    )
    req = write_held(side.spool, 1.5)
    write_decision(side.spool, alice.decide(req, count=9))
    verdict = side.wait(req)
    assert verdict.outcome == "expired"
    assert any("sign count" in e["detail"] for e in side.named("security"))


def test_a_quorum_counts_a_passkey_approver_and_an_ed25519_one_by_name(
    tmp_path: Path, alice: SoftPasskey
) -> None:
    side = Side(tmp_path)
    add_trusted_passkeys(side.agent, alice.passkey.to_line(), "alice.passkey")
    for name in ("alice", "bob"):
        keys.init_approver(str(tmp_path / name), name)
        keys.add_trusted(side.agent, keys.public_key_path(str(tmp_path / name)))
    # alice's Ed25519 key is alice too: one person, one vote
    req = write_held(side.spool, 2, extra={"approvals": 2})
    write_decision(side.spool, alice.decide(req))
    write_decision(side.spool, sign_decision(str(tmp_path / "alice"), to_dict(req), "approve", ""))
    verdict = side.wait(req)
    assert verdict.outcome == "expired" and "1 of 2 approvals" in verdict.reason
    assert side.named("note")[0]["detail"] == "alice approved already"
    # alice's passkey and bob's key are two people
    req = write_held(side.spool, 10, extra={"approvals": 2})
    write_decision(side.spool, alice.decide(req))
    write_decision(side.spool, sign_decision(str(tmp_path / "bob"), to_dict(req), "approve", ""))
    verdict = side.wait(req)
    assert verdict.outcome == "approved"
    assert sorted(side.named("approved")[0]["approvers"]) == ["alice", "bob"]
