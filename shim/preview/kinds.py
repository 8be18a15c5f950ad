"""Which preview a held call gets: the kinds a rule may declare, and the one that applies (pure).

A rule says `preview: {kind: NAME, timeout: SECONDS}`; `auto` picks the kind from the tool and
the verb. Each kind is implemented by one module of this package (the table in
shim.preview.prepare).
"""

from __future__ import annotations

from typing import Any

TERRAFORM_PLAN = "terraform-plan"
KUBECTL_DELETE = "kubectl-delete"
KUBECTL_DIFF = "kubectl-diff"
KUBECTL_TARGETS = "kubectl-targets"
HELM_RELEASE = "helm-release"
AWS_S3_OBJECTS = "aws-s3-objects"
AWS_EC2_INSTANCES = "aws-ec2-instances"
AUTO = "auto"  # pick the kind from the tool and verb (one declaration for a broad rule)

KINDS = (
    TERRAFORM_PLAN,
    KUBECTL_DELETE,
    KUBECTL_DIFF,
    KUBECTL_TARGETS,
    HELM_RELEASE,
    AWS_S3_OBJECTS,
    AWS_EC2_INSTANCES,
    AUTO,
)


DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 600


def kinds() -> list[str]:
    """Every kind a rule may declare (`preview: {kind: ...}`)."""
    return list(KINDS)


# --------------------------------------------------------------------------- which kind applies

_KUBECTL_DIFF_VERBS = {("apply",), ("replace",), ("patch",)}
_KUBECTL_TARGET_VERBS = {
    ("scale",),
    ("drain",),
    ("cordon",),
    ("uncordon",),
    ("rollout", "restart"),
    ("rollout", "undo"),
    ("rollout", "pause"),
    ("rollout", "resume"),
}


def select_kind(kind: str, inv: Any) -> str | None:
    """The concrete kind to run for this call, or None when `kind` does not apply to it
    (for example `kubectl-delete` declared on a rule that also matches `kubectl label`).
    Pure: the caller may skip creating a workdir when it returns None."""
    tool = getattr(inv, "tool", "")
    verb = tuple(getattr(inv, "verb", ()) or ())
    if getattr(inv, "kind", "ok") != "ok" or getattr(inv, "dry_run", False):
        return None
    found: str | None = None
    if tool == "terraform" and verb in {("apply",), ("destroy",)}:
        found = TERRAFORM_PLAN
    elif tool == "kubectl":
        if verb == ("delete",):
            found = KUBECTL_DELETE
        elif verb in _KUBECTL_DIFF_VERBS or (verb == ("create",) and inv.flags.get("--filename")):
            found = KUBECTL_DIFF
        elif verb in _KUBECTL_TARGET_VERBS:
            found = KUBECTL_TARGETS
    elif tool == "helm" and verb in {("upgrade",), ("uninstall",), ("rollback",)}:
        found = HELM_RELEASE
    elif tool == "aws":
        if verb in {("s3", "rm"), ("s3", "rb"), ("s3", "sync")}:
            found = AWS_S3_OBJECTS
        elif verb == ("ec2", "terminate-instances"):
            found = AWS_EC2_INSTANCES
    if found is None or (kind != AUTO and kind != found):
        return None
    return found
