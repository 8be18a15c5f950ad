"""Grants and revocations as signed statements, and the shim-side check (find_grant)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from shim import canon, keys
from shim.approval import grant as statement
from shim.approval.grants import find_grant, may_grant
from shim.approval.spool import write_statement
from shim.classify.classify import classify
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir

NOW = time.time()
KIND = {"context": "kind-dev", "namespace": "web", "cwd": "/w"}


@pytest.fixture(scope="module")
def compiled() -> dict:
    return compile_layers([defaults_dir()])["kubectl"]


class Homes:
    def __init__(self, root: Path) -> None:
        self.approver = str(root / "approver")
        self.other = str(root / "mallory")
        self.agent = str(root / "agent")
        self.spool = str(root / "spool")
        keys.init_approver(self.approver, "alice")
        keys.init_approver(self.other, "mallory")
        keys.add_trusted(self.agent, keys.public_key_path(self.approver))
        (root / "agent" / "state").mkdir(parents=True)
        self.events: list[dict] = []
        self.env = {"HOME": str(root)}

    def grant(self, home: str | None = None, **kw: Any) -> dict:
        fields: dict[str, Any] = {
            "agent": "deploy-bot",
            "tool": "kubectl",
            "rules": ["kubectl/mutate"],
            "verbs": [],
            "target": {"context": "kind-dev", "namespace": "web"},
            "argv": [],
            "span_s": 900,
            "reason": "deploy window",
            "now": NOW,
        }
        fields.update(kw)
        st = statement.make_grant(home or self.approver, **fields)
        write_statement(self.spool, "grants", st)
        return st

    def find(self, compiled: dict, argv: list[str], context: dict | None = None, **kw: Any):
        d = classify(compiled, argv, self.env, "/w", "deploy-bot")
        d.context = dict(context or KIND)
        if not may_grant(d, compiled, "deploy-bot", self.env):
            return None
        return find_grant(
            d,
            compiled,
            home=self.agent,
            agent=kw.get("agent", "deploy-bot"),
            log=self.events.append,
            spool=self.spool,
            now=kw.get("now", NOW),
        )

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


@pytest.fixture
def homes(tmp_path: Path) -> Homes:
    return Homes(tmp_path)


RESTART = ["rollout", "restart", "deploy/api"]


def test_a_grant_covers_a_matching_call_and_counts_each_use(homes: Homes, compiled) -> None:
    g = homes.grant(max_uses=2)
    first = homes.find(compiled, RESTART)
    assert first is not None and first["id"] == g["id"] and first["use"] == 1
    assert homes.find(compiled, ["scale", "deploy/api", "--replicas=2"])["use"] == 2
    assert homes.find(compiled, RESTART) is None  # out of uses: held as usual
    assert homes.kinds() == ["grant"]  # the issue is logged once


@pytest.mark.parametrize(
    ("change", "context"),
    [
        ("namespace", {"context": "kind-dev", "namespace": "payments"}),
        ("context", {"context": "prod-eu", "namespace": "web"}),
        ("unresolved", {"context": "?", "namespace": "web"}),
        ("every namespace", {"context": "kind-dev", "namespace": "*"}),
    ],
)
def test_a_target_the_grant_does_not_pin_is_held(homes: Homes, compiled, change, context) -> None:
    homes.grant()
    assert homes.find(compiled, RESTART, context) is None


def test_a_grant_for_another_agent_or_tool_or_rule_is_not_used(homes: Homes, compiled) -> None:
    homes.grant(agent="other-bot")
    homes.grant(tool="helm", rules=["helm/mutate"])
    homes.grant(rules=["kubectl/exec"])
    assert homes.find(compiled, RESTART) is None


def test_verb_globs_and_argv_globs_narrow_a_grant(homes: Homes, compiled) -> None:
    homes.grant(rules=[], verbs=["rollout *"], argv=["rollout restart deploy/api"])
    assert homes.find(compiled, RESTART) is not None
    assert homes.find(compiled, ["rollout", "restart", "deploy/web"]) is None
    assert homes.find(compiled, ["scale", "deploy/api", "--replicas=1"]) is None


def test_expired_and_not_yet_valid_grants_are_not_used(homes: Homes, compiled) -> None:
    homes.grant(now=NOW - 3600, span_s=600)
    homes.grant(not_before=NOW + 3600)
    assert homes.find(compiled, RESTART) is None
    assert "grant-expired" in homes.kinds()


@pytest.mark.parametrize("how", ["id", "agent", "all"])
def test_a_revoked_grant_is_not_used_and_the_revocation_is_logged(
    homes: Homes, compiled, how
) -> None:
    g = homes.grant()
    assert homes.find(compiled, RESTART) is not None
    rev = statement.make_revocation(
        homes.approver,
        grants=[g["id"]] if how == "id" else [],
        agent="deploy-bot" if how == "agent" else None,
        everything=how == "all",
        reason="done",
    )
    write_statement(homes.spool, "revocations", rev)
    assert homes.find(compiled, RESTART) is None
    assert homes.kinds().count("grant-revoked") == 1
    homes.find(compiled, RESTART)
    assert homes.kinds().count("grant-revoked") == 1  # once


def test_a_revocation_by_agent_does_not_end_grants_issued_after_it(homes: Homes, compiled) -> None:
    rev = statement.make_revocation(
        homes.approver, grants=[], agent="deploy-bot", everything=False, reason="done"
    )
    write_statement(homes.spool, "revocations", rev)
    time.sleep(0.002)  # a later signing time (milliseconds)
    homes.grant()
    assert homes.find(compiled, RESTART) is not None


def test_a_grant_signed_by_an_untrusted_key_is_ignored_and_logged_once(
    homes: Homes, compiled
) -> None:
    homes.grant(home=homes.other)
    assert homes.find(compiled, RESTART) is None
    assert homes.find(compiled, RESTART) is None
    security = [e for e in homes.events if e["event"] == "security"]
    assert len(security) == 1 and "untrusted key" in security[0]["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("namespace", "payments"),
        ("agent", "other-bot"),
        ("expires", "2099-01-01T00:00:00.000Z"),
        ("max_uses", None),
    ],
)
def test_an_edited_grant_fails_its_signature(
    homes: Homes, compiled, tmp_path: Path, field: str, value: Any
) -> None:
    g = homes.grant(max_uses=1)
    path = Path(homes.spool) / "grants" / f"{g['id']}.json"
    edited = dict(g)
    if field == "namespace":
        edited["target"] = {"context": "kind-dev", "namespace": value}
    else:
        edited[field] = value
    path.chmod(0o644)
    path.write_text(canon.encode(edited) + "\n")
    context = {**KIND, "namespace": value} if field == "namespace" else KIND
    assert homes.find(compiled, RESTART, context) is None
    security = [str(e["detail"]) for e in homes.events if e["event"] == "security"]
    assert len(security) == 1 and f"grants/{g['id']}.json ignored" in security[0]


def test_a_file_that_is_not_a_statement_is_refused(homes: Homes, compiled) -> None:
    (Path(homes.spool) / "grants").mkdir(parents=True)
    (Path(homes.spool) / "grants" / "gx.json").write_text(json.dumps({"type": "x"}, indent=1))
    (Path(homes.spool) / "grants" / "gy.json").write_text("\x00\xff")
    assert homes.find(compiled, RESTART) is None
    assert sum(e["event"] == "security" for e in homes.events) == 2


def test_a_grant_never_widens_a_deny_nor_a_rule_marked_not_grantable(
    homes: Homes, tmp_path: Path
) -> None:
    layer = tmp_path / "team"
    layer.mkdir()
    (layer / "team.yaml").write_text(
        "tool: kubectl\n"
        "rules:\n"
        "  - id: team/no-prod-ns-delete\n"
        "    decision: deny\n"
        "    reason: not by agents\n"
        "    match: {verb: delete, any_arg: [namespace], context: {namespace: web}}\n"
        "    examples: {match: [{argv: delete namespace x, context: {namespace: web}}]}\n"
        "  - id: team/secrets-by-hand\n"
        "    decision: ask\n"
        "    reason: secrets are changed by hand\n"
        "    grantable: false\n"
        "    match: {verb: [create, delete], any_arg: [secret]}\n"
        "    examples: {match: [delete secret db]}\n"
        "  - id: team/critical-is-denied\n"
        "    decision: deny\n"
        "    reason: too big for an agent\n"
        "    match: {verb: scale, risk: '>=critical'}\n"
        "    examples: {match: [{argv: scale deploy/x --replicas=0, risk: critical}]}\n"
    )
    compiled = compile_layers([defaults_dir(), str(layer)])["kubectl"]
    homes.grant(rules=[], verbs=["*"])
    assert homes.find(compiled, ["delete", "namespace", "web"]) is None
    assert homes.find(compiled, ["delete", "secret", "db"]) is None
    # a rule that denies at some risk the preview could find: the grant does not skip it
    assert homes.find(compiled, ["scale", "deploy/api", "--replicas=0"]) is None
    assert homes.find(compiled, RESTART) is not None


def test_a_grant_must_pin_a_target_cover_something_and_last_at_most_8_hours(
    homes: Homes,
) -> None:
    with pytest.raises(ValueError, match="pins its target"):
        homes.grant(target={})
    with pytest.raises(ValueError, match="covers named rules"):
        homes.grant(rules=[], verbs=[])
    with pytest.raises(ValueError, match="8 hours"):
        homes.grant(span_s=8 * 3600 + 1)


def test_a_grant_with_a_hand_made_long_window_is_refused(homes: Homes) -> None:
    g = homes.grant()
    long = {**g, "expires": "2099-01-01T00:00:00.000Z"}
    long.pop("sig")
    resigned = statement.sign_statement(homes.approver, long)
    trusted = keys.load_trusted(homes.agent)
    assert "longer than 8 hours" in statement.check_grant(resigned, trusted)


def test_a_grant_state_file_the_agent_cannot_write_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    """The agent's user must own <home>/state/grant-uses and grants-seen (install.sh hands them
    over); when it cannot write them, the shim says so in one line and exits 125."""
    from shim.approval.grants import _State
    from shim.errors import ShieldError

    state = _State(str(tmp_path / "no-such-home"), "grant-uses")
    with pytest.raises(ShieldError) as caught:
        state.add("g1")
    assert "cannot record a grant in" in caught.value.message
    assert "the call did not run" in caught.value.message
    assert caught.value.shim_code == 125


def passkey_grant(pk: Any, **over: Any) -> dict:
    """A grant as the web page makes it: the passkey's assertion over its canonical JSON."""
    import hashlib

    now = time.time()
    body = {
        "type": statement.GRANT_TYPE, "id": "gpasskey", "agent": "deploy-bot",
        "tool": "kubectl", "rules": ["kubectl/mutate"], "verbs": [],
        "target": {"namespace": "web"}, "argv": [],
        "not_before": canon_time(now), "expires": canon_time(now + 900), "max_uses": None,
        "reason": "deploy", "approver": pk.approver, "time": canon_time(now), "nonce": "n1",
        **over,
    }  # fmt: skip
    challenge = hashlib.sha256(canon.encode(body).encode("ascii")).digest()
    return {**body, **pk.assertion(challenge)}


def canon_time(t: float) -> str:
    from shim.clock import now_iso

    return now_iso(t)


def test_a_grant_signed_by_a_trusted_passkey_checks_and_any_edit_or_stranger_does_not() -> None:
    from tests.approval.softauthn import UP, SoftPasskey

    alice, mallory = SoftPasskey("alice"), SoftPasskey("mallory")
    trusted = {alice.passkey.credential_id: alice.passkey}
    good = passkey_grant(alice)
    assert statement.check_grant(good, {}, trusted) == ""
    moved = {**good, "target": {"namespace": "payments"}}
    assert statement.check_grant(moved, {}, trusted).startswith("passkey assertion refused")
    assert "untrusted passkey" in statement.check_grant(passkey_grant(mallory), {}, trusted)
    renamed = passkey_grant(alice, approver="bob")
    assert "names approver 'bob'" in statement.check_grant(renamed, {}, trusted)
    # user verification is required for a grant as for a decision
    unverified = passkey_grant(alice)
    body = {k: v for k, v in unverified.items() if k not in statement.PASSKEY_ASSERTION}
    import hashlib

    challenge = hashlib.sha256(canon.encode(body).encode("ascii")).digest()
    unverified.update(alice.assertion(challenge, flags=UP))
    assert statement.check_grant(unverified, {}, trusted) != ""
    # an Ed25519-style field beside the assertion is not a grant of either kind
    assert statement.check_grant({**good, "sig": "x"}, {}, trusted).startswith("not a ")
    # and without the trusted passkeys, nothing checks
    assert "untrusted passkey" in statement.check_grant(good, {}, None)
