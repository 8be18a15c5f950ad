"""Risk levels from rule, target and preview: one row per rule of thumb."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.preview.risk import LEVELS, assess, at_least, destroyed, is_prod


def pv(kind: str = "kubectl-delete", ok: bool = True, **counts: int) -> dict:
    return {"kind": kind, "ok": ok, "counts": counts, "error": None if ok else "timed out"}


DEV = {"context": "kind-dev", "namespace": "default"}
PROD_NS = {"context": "kind-dev", "namespace": "shop-prod"}


@pytest.mark.parametrize(
    ("rule", "context", "preview", "want"),
    [
        # the base: the rule's risk, else medium
        (None, DEV, None, "medium"),
        ({"id": "kubectl/secret-read"}, DEV, None, "medium"),
        ({"id": "x", "risk": "low"}, DEV, None, "low"),
        ({"id": "x", "risk": "high"}, DEV, None, "high"),
        ({"id": "x", "risk": "bogus"}, DEV, None, "medium"),
        # something destroyed: high; in production: critical
        (None, DEV, pv(delete=0), "medium"),
        (None, DEV, pv(delete=2), "high"),
        (None, PROD_NS, pv(delete=2), "critical"),
        (None, {"context": "PROD-eu"}, pv(delete=1), "critical"),
        (None, {"profile": "prod"}, pv("aws-s3-objects", delete=10, objects=10), "critical"),
        (None, {"workspace": "production"}, pv("terraform-plan", destroy=1, add=1), "critical"),
        (None, {"workspace": "staging"}, pv("terraform-plan", destroy=1), "high"),
        (None, {"profile": "prod"}, pv("aws-ec2-instances", terminate=1), "critical"),
        # production without anything destroyed keeps the base
        (None, PROD_NS, pv("kubectl-diff", objects=3), "medium"),
        (None, {"workspace": "prod"}, pv("terraform-plan", add=3, destroy=0), "medium"),
        # a failed preview never lowers, and for a destructive kind counts as high / critical
        ({"id": "x", "risk": "high"}, DEV, pv(ok=False), "high"),
        (None, DEV, pv("terraform-plan", ok=False), "high"),
        (None, {"workspace": "prod"}, pv("terraform-plan", ok=False), "critical"),
        (None, DEV, pv("kubectl-diff", ok=False), "medium"),
        ({"id": "x", "risk": "low"}, DEV, pv("kubectl-targets", ok=False), "low"),
        # an unresolved target is not production
        (None, {"context": "?", "namespace": "?"}, pv(delete=1), "high"),
    ],
)
def test_assess_rules_of_thumb(rule, context, preview, want) -> None:
    assert assess(rule, context, preview) == want


def test_base_argument_is_used_when_the_rule_sets_no_risk() -> None:
    assert assess({"id": "x"}, DEV, None, base="high") == "high"
    assert assess(None, DEV, pv(delete=1), base="low") == "high"


def test_prod_patterns_can_be_changed() -> None:
    assert is_prod({"context": "live-eu"}, ("live-*",))
    assert not is_prod({"context": "live-eu"})
    assert assess(None, {"context": "live-eu"}, pv(delete=1), prod_patterns=("live-*",)) == (
        "critical"
    )


def test_at_least_compares_levels() -> None:
    assert at_least("critical", "high")
    assert at_least("high", "high")
    assert not at_least("medium", "high")


def test_destroyed_ignores_non_destructive_and_bogus_counts() -> None:
    assert destroyed(pv(add=5, change=2)) == 0
    assert destroyed({"counts": {"delete": True, "destroy": -1}}) == 0
    assert destroyed(pv("terraform-plan", destroy=2, replace=1)) == 2


_counts = st.dictionaries(
    st.sampled_from(["add", "change", "destroy", "delete", "terminate", "objects"]),
    st.integers(min_value=0, max_value=5),
)


@given(
    base=st.sampled_from(LEVELS),
    ok=st.booleans(),
    kind=st.sampled_from(["terraform-plan", "kubectl-delete", "kubectl-diff", "helm-release"]),
    counts=_counts,
    ctx=st.sampled_from([DEV, PROD_NS, {}]),
)
def test_assess_never_goes_below_the_base(base, ok, kind, counts, ctx) -> None:
    got = assess({"id": "r", "risk": base}, ctx, {"kind": kind, "ok": ok, "counts": counts})
    assert got in LEVELS
    assert LEVELS.index(got) >= LEVELS.index(base)
