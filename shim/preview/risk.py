"""A risk level for a held request, from its rule, its target and its preview (pure).

Rules of thumb (docs/previews.md has the table):

1. The base is the rule's `risk:` key when it sets one, else `base` (medium). Reading secrets
   is medium; the rules that delete say `risk: high` where a team wants that up front.
2. A preview that counts anything destroyed, deleted or terminated raises the level to high.
3. In a production target (the kube context or namespace, the aws profile or the terraform
   workspace matches `*prod*`, case-insensitively) such a count makes it critical.
4. A preview that failed or timed out never lowers the level. For a kind that can destroy
   (terraform plans, kubectl delete, helm releases, s3 deletes, ec2 terminations) the blast
   radius is unknown, so it counts as at least high, and critical in production.

The level only ever goes up from the base: a preview showing nothing to delete does not make
a rule's `risk: high` medium.
"""

from __future__ import annotations

import fnmatch

LEVELS = ("low", "medium", "high", "critical")
RANK = {level: i for i, level in enumerate(LEVELS)}

PROD_PATTERNS = ("*prod*",)
PROD_KEYS = ("context", "namespace", "profile", "workspace")
# Counts (in a preview's "counts") that mean something is removed for good.
DESTRUCTIVE_COUNTS = ("destroy", "delete", "terminate")
# Kinds whose call can remove things: a failed preview of one of them is an unknown blast radius.
DESTRUCTIVE_KINDS = frozenset(
    (
        "terraform-plan",
        "kubectl-delete",
        "helm-release",
        "aws-s3-objects",
        "aws-ec2-instances",
    )
)


def rank(level: str) -> int:
    """0 (low) .. 3 (critical); an unknown level ranks as medium."""
    return RANK.get(level, RANK["medium"])


def at_least(level: str, threshold: str) -> bool:
    """`risk >= threshold`, for rules such as `when: risk >= high`."""
    return rank(level) >= rank(threshold)


def raise_to(level: str, floor: str) -> str:
    return level if rank(level) >= rank(floor) else floor


def is_prod(context: dict[str, str], patterns: tuple[str, ...] = PROD_PATTERNS) -> bool:
    """True when any target name in `context` matches a production pattern (case-insensitive)."""
    for key in PROD_KEYS:
        value = context.get(key)
        if not value or value == "?":
            continue
        low = value.lower()
        if any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns):
            return True
    return False


def destroyed(preview: dict | None) -> int:
    """How many things the preview says are destroyed, deleted or terminated."""
    if not preview:
        return 0
    counts = preview.get("counts") or {}
    total = 0
    for key in DESTRUCTIVE_COUNTS:
        value = counts.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total


def assess(
    decision_rule: dict | None,
    context: dict[str, str],
    preview: dict | None,
    base: str = "medium",
    prod_patterns: tuple[str, ...] = PROD_PATTERNS,
) -> str:
    """The request's level, one of LEVELS (see the module docstring for the rules)."""
    declared = (decision_rule or {}).get("risk")
    level = declared if declared in RANK else (base if base in RANK else "medium")
    if not preview:
        return level
    prod = is_prod(context, prod_patterns)
    if destroyed(preview) > 0:
        level = raise_to(level, "critical" if prod else "high")
    if not preview.get("ok", False) and preview.get("kind") in DESTRUCTIVE_KINDS:
        level = raise_to(level, "critical" if prod else "high")
    return level
