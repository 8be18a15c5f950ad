"""Quorum: a rule's `approvals: N` needs N distinct trusted approvers' verified approvals of
the same digest; one denial denies (issue 11). In process, over the spool."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from shim import keys
from shim.approval.decision import sign_decision
from shim.approval.request import HeldRequest, to_dict
from shim.approval.spool import write_decision
from shim.approval.transport import Delivery, Verdict
from shim.approval.wait import approvals_needed, wait_for_decision
from shim.errors import RulesError
from shim.rules.rule import compile_rule
from shim.rules.yamlfile import load_yaml
from tests.approval.support import wait_held, write_held


class Homes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.agent = str(root / "agent")
        self.spool = str(root / "spool")
        self.events: list[dict[str, Any]] = []
        for name in ("alice", "bob", "carol"):
            keys.init_approver(self.home(name), name)
        for name in ("alice", "bob"):  # carol is not trusted
            keys.add_trusted(self.agent, keys.public_key_path(self.home(name)))

    def home(self, name: str) -> str:
        return str(self.root / name)

    def decide(self, name: str, req: HeldRequest, verdict: str = "approve") -> None:
        write_decision(self.spool, sign_decision(self.home(name), to_dict(req), verdict, ""))

    def wait(self, req: HeldRequest) -> Verdict:
        return wait_held(
            req,
            self.spool,
            trusted=keys.load_trusted(self.agent),
            used_path=os.path.join(self.agent, "used"),
            log=self.events.append,
        )

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


@pytest.fixture
def homes(tmp_path: Path) -> Homes:
    return Homes(tmp_path)


def test_two_distinct_approvers_approve(homes: Homes) -> None:
    req = write_held(homes.spool, 10, extra={"approvals": 2})
    homes.decide("alice", req)
    homes.decide("bob", req)
    verdict = homes.wait(req)
    assert verdict.outcome == "approved"
    assert sorted(verdict.approver.split(", ")) == ["alice", "bob"]  # in the order they came
    assert sorted(homes.named("approved")[0]["approvers"]) == ["alice", "bob"]
    assert [e["detail"] for e in homes.named("approval")] == ["1 of 2"]


def test_the_same_approver_twice_is_one_and_the_hold_expires(homes: Homes) -> None:
    req = write_held(homes.spool, 1.5, extra={"approvals": 2})
    homes.decide("alice", req)
    homes.decide("alice", req)
    verdict = homes.wait(req)
    assert verdict.outcome == "expired"
    assert "1 of 2 approvals" in verdict.reason
    assert homes.named("note")


def test_an_untrusted_approver_does_not_count(homes: Homes) -> None:
    req = write_held(homes.spool, 1.5, extra={"approvals": 2})
    homes.decide("alice", req)
    homes.decide("carol", req)
    assert homes.wait(req).outcome == "expired"
    assert any("untrusted key" in e["detail"] for e in homes.named("security"))


def test_one_denial_denies_even_after_an_approval(homes: Homes) -> None:
    req = write_held(homes.spool, 10, extra={"approvals": 3})
    homes.decide("alice", req)
    homes.decide("bob", req, "deny")
    verdict = homes.wait(req)
    assert (verdict.outcome, verdict.approver) == ("denied", "bob")


def test_without_approvals_one_approval_is_enough(homes: Homes) -> None:
    req = write_held(homes.spool, 10)
    homes.decide("bob", req)
    assert homes.wait(req).approver == "bob"


@pytest.mark.parametrize("value", [0, -1, 11, "2", True, 2.0, None])
def test_a_malformed_approvals_value_in_a_request_means_one(value: object, homes: Homes) -> None:
    req = write_held(homes.spool, 10)
    assert approvals_needed(dataclasses.replace(req, extra={"approvals": value})) == 1


class TypedCode:
    """A TTY prompt's typed approval (a verdict, not a signature)."""

    channel = "tty"
    blocking = False

    def __init__(self) -> None:
        self.rejected: list[str] = []
        self.sent = False

    def publish(self) -> None:
        pass

    def poll(self, timeout: float) -> list[Delivery]:
        if self.sent:
            return []
        self.sent = True
        return [Delivery("tty", "tty", verdict=Verdict("approved", "tty:root", "", None, "tty"))]

    def reject(self, delivery: Delivery, why: str) -> None:
        self.rejected.append(why)

    def close(self, verdict: Verdict) -> None:
        pass


def test_a_typed_code_is_not_one_of_a_quorum(homes: Homes) -> None:
    req = write_held(homes.spool, 1.0, extra={"approvals": 2})
    tty = TypedCode()
    verdict = wait_for_decision(
        req,
        [tty],
        trusted=keys.load_trusted(homes.agent),
        used_path=os.path.join(homes.agent, "u"),
        log=homes.events.append,
    )
    assert verdict.outcome == "expired"
    assert tty.rejected and "signed approvals" in tty.rejected[0]


def _rule(tmp_path: Path, extra: str) -> dict:
    path = tmp_path / "team.yaml"
    path.write_text(f"- id: t/r\n  decision: ask\n  reason: r\n{extra}  match: {{verb: delete}}\n")
    return compile_rule(load_yaml(str(path))[0], "kubectl", "team.yaml", 0)


def test_the_rule_compiler_takes_approvals_and_refuses_bad_values_with_file_and_line(
    tmp_path: Path,
) -> None:
    assert _rule(tmp_path, "  approvals: 2\n")["approvals"] == 2
    for bad in ("0", "11", "two", "true", "1.5"):
        with pytest.raises(RulesError) as info:
            _rule(tmp_path, f"  approvals: {bad}\n")
        assert info.value.path == "team.yaml" and info.value.line == 4
    with pytest.raises(RulesError, match="ask rules only"):
        compile_rule(
            {"id": "t/x", "decision": "allow", "reason": "r", "approvals": 2, "match": {}},
            "kubectl", "team.yaml", 0,
        )  # fmt: skip
