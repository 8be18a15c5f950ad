"""Previews: what a held call would do, worked out by read-only calls before a human sees it (cold).

Imported only on the ask path. `prepare()` runs the preview that a rule declares
(`preview: {kind: NAME, timeout: SECONDS}`), returns a plain JSON-able dict for the held request,
and, where the call reads a file (a plan, a manifest, piped stdin, a values file, a chart
directory), snapshots it into the request's private `workdir` so that what runs on approval is
exactly what was previewed:

- `run_argv`: the argv to run instead of the agent's (the same call with its files pointing at
  the snapshots, or `terraform apply <saved plan>`), or None to run the agent's argv unchanged;
- `stdin_file`: the snapshot of piped stdin (`kubectl apply -f -`) to feed the approved command;
- `snapshots`: `{name under workdir: sha256 hex}`, to be bound into the request's digest and
  checked again (`check_snapshots`) just before the approved command runs.

Every preview command runs the real binary (never the shim) with the call's own environment,
cwd and target flags, stdin from /dev/null, one deadline for the whole preview, and output caps;
and only after the shim's own classifier (`is_read_only`) has said that the exact argv is
allowed. A preview that fails or times out comes back with `ok: False` and an `error`; it never
raises and never blocks the request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from shim.preview import aws, helm, kubectl, terraform
from shim.preview.job import Job
from shim.preview.kinds import (
    AUTO,
    AWS_EC2_INSTANCES,
    AWS_S3_OBJECTS,
    DEFAULT_TIMEOUT_S,
    HELM_RELEASE,
    KINDS,
    KUBECTL_DELETE,
    KUBECTL_DIFF,
    KUBECTL_TARGETS,
    MAX_TIMEOUT_S,
    TERRAFORM_PLAN,
    select_kind,
)
from shim.preview.runner import (
    PREVIEW_ENV,
    Failed,
    Preview,
    ReadOnly,
    Runner,
    clip_lines,
    one_line,
)
from shim.preview.snapshot import Snapper, check_snapshots, drop_unbound

# One table: the implementation of each kind (one module per tool, as commands.d has one file
# per tool).
IMPLS: dict[str, Callable[[Job], None]] = {
    TERRAFORM_PLAN: terraform.terraform_plan,
    KUBECTL_DELETE: kubectl.kubectl_delete,
    KUBECTL_DIFF: kubectl.kubectl_diff,
    KUBECTL_TARGETS: kubectl.kubectl_targets,
    HELM_RELEASE: helm.helm_release,
    AWS_S3_OBJECTS: aws.aws_s3_objects,
    AWS_EC2_INSTANCES: aws.aws_ec2_instances,
}


def prepare(
    kind: str,
    inv: Any,
    context: dict[str, str],
    *,
    real: str,
    env: dict[str, str],
    cwd: str,
    workdir: str,
    timeout_s: float,
    is_read_only: ReadOnly,
    stdin_fd: int | None = 0,
) -> dict:
    """Run the preview for a held call. Returns a plain dict (JSON-able, no floats):

      {"preview": {"kind", "ok", "summary", "lines", "counts", "error", "argv", "duration_ms"}
                  or None when `kind` does not apply to this call (nothing ran),
       "run_argv": argv to run instead of inv.argv on approval, or None,
       "stdin_file": a snapshot to feed as stdin on approval, or None,
       "snapshots": {name under workdir: sha256 hex}}

    Never raises: a failing or slow preview comes back with ok=False and `error` set, and
    whatever it learned before failing. Every preview command is shown to `is_read_only`
    first and is not run unless it returns True."""
    start = time.monotonic()
    timeout_s = max(float(timeout_s), 0.0)
    deadline = start + timeout_s
    concrete = select_kind(kind, inv) if kind in KINDS else None
    if concrete is None:
        if kind in KINDS:
            return {"preview": None, "run_argv": None, "stdin_file": None, "snapshots": {}}
        concrete = kind
    pv = Preview(concrete)
    error: str | None = None
    try:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        penv = dict(env)
        penv[PREVIEW_ENV] = "1"  # lets a stand-in, a wrapper or a log tell preview runs apart
        if inv.tool == "aws":
            penv["AWS_PAGER"] = ""  # v2 would page its output otherwise
        runner = Runner(pv, inv.tool, real, penv, cwd, deadline, timeout_s, is_read_only)
        snap = Snapper(pv, workdir, cwd)
        impl = IMPLS.get(concrete)
        if impl is None:
            raise Failed(f"unknown preview kind {kind!r} (known: {', '.join(KINDS)})")
        impl(Job(pv, inv, context, runner, snap, stdin_fd, deadline))
    except Failed as exc:
        error = str(exc)
    except Exception as exc:  # a preview never breaks the request
        error = f"preview failed: {type(exc).__name__}: {exc}"
    if error and not pv.summary:
        pv.summary = f"preview failed: {error}"
    if error and pv.run_argv is None:
        # Nothing was rebound, so the approved run reads the live files: listing the copies
        # made before the failure would tell the approver they are bound. Only consumed stdin
        # stays bound (the run gets exactly those bytes, or nothing runs).
        pv.snapshots = {k: v for k, v in pv.snapshots.items() if k == "stdin.yaml"}
        drop_unbound(workdir, pv.snapshots)
    preview = {
        "kind": concrete,
        "ok": error is None,
        "summary": one_line(pv.summary),
        "lines": clip_lines(pv.lines),
        "counts": {k: int(v) for k, v in pv.counts.items()},
        "error": error,
        "argv": pv.argvs,
        "duration_ms": int((time.monotonic() - start) * 1000),
    }
    return {
        "preview": preview,
        "run_argv": pv.run_argv,
        "stdin_file": pv.stdin_file,
        "snapshots": dict(pv.snapshots),
    }


# --------------------------------------------------------------------------- the hold path


class Bound:
    """A held call's preview, ready for the request and for the approved run.

    `extra` goes into `hold.new_request(extra=...)` (so the digest, and with it the approver's
    signature, covers the preview, the risk, `run_argv`, `stdin_file` and every snapshot hash).
    `command(argv)` is what the approved run executes; `cleanup()` removes the snapshots."""

    def __init__(self, extra: dict, workdir: str | None) -> None:
        self.extra = extra
        self.workdir = workdir

    @property
    def preview(self) -> dict | None:
        pv = self.extra.get("preview")
        return pv if isinstance(pv, dict) else None

    def held_fields(self) -> dict:
        """Fields for the log's `held` entry."""
        keys = ("risk", "preview", "run_argv", "stdin_file", "snapshots")
        return {k: self.extra[k] for k in keys if k in self.extra}

    def agent_lines(self) -> str:
        """Lines for the agent's `held` message (stderr)."""
        pv = self.preview
        text = f"  preview: {pv['summary']}\n" if pv else ""
        return text + f"  risk: {self.extra.get('risk', 'medium')}\n"

    def command(self, argv: list[str]) -> tuple[list[str], str | None, list[str], dict]:
        """(argv to run, stdin file or None, snapshots that changed, fields for the log's
        `executed` entry). Run nothing when the third item is not empty."""
        snaps = self.extra.get("snapshots") or {}
        bad = check_snapshots(self.workdir, snaps) if snaps and self.workdir else []
        run_argv = self.extra.get("run_argv")
        out = list(run_argv) if run_argv is not None else list(argv)
        fields: dict = {}
        if run_argv is not None:
            fields["ran"] = out
        if snaps:
            fields["snapshots"] = sorted(snaps)
        stdin = self.extra.get("stdin_file") or None
        if stdin:
            fields["stdin"] = "snapshot"
        return out, stdin, bad, fields

    def cleanup(self) -> None:
        if self.workdir:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)


def hold_preview(
    rule: dict | None,
    inv: Any,
    context: dict[str, str],
    *,
    real: str | None,
    env: dict[str, str],
    cwd: str,
    home: str,
    is_read_only: ReadOnly,
    run: bool = True,
    limit_s: float | None = None,
    stdin_fd: int | None = 0,
) -> Bound:
    """The preview a held call's rule declares (`preview: {kind, timeout}`), run in a fresh
    0700 dir under `<home>/state/previews/`, plus the request's risk level. With `run` False
    (a zero hold timeout) or no declaration, only the risk is computed. `limit_s` caps the
    rule's timeout (the hold's own deadline: a preview never waits longer than a human would
    be given). Never raises."""
    from shim.preview import risk

    spec = (rule or {}).get("preview")
    res: dict | None = None
    workdir: str | None = None
    if run and isinstance(spec, dict) and real:
        kind = str(spec.get("kind") or AUTO)
        try:
            timeout_s = min(float(spec.get("timeout") or DEFAULT_TIMEOUT_S), MAX_TIMEOUT_S)
        except (TypeError, ValueError):
            timeout_s = float(DEFAULT_TIMEOUT_S)
        if limit_s is not None:
            timeout_s = max(min(timeout_s, limit_s), 0.0)
        if kind not in KINDS or select_kind(kind, inv) is not None:
            workdir = os.path.join(home, "state", "previews", os.urandom(8).hex())
            try:
                os.makedirs(os.path.dirname(workdir), mode=0o700, exist_ok=True)
                os.mkdir(workdir, 0o700)
            except OSError as exc:
                # the concrete kind, so that a destructive call's unknown blast radius raises
                # its risk (kubectl delete is `auto` in the rule)
                concrete = select_kind(kind, inv) if kind in KINDS else kind
                res = _failed(concrete or kind, f"cannot create {workdir}: {exc.strerror}")
                workdir = None
            else:
                res = prepare(
                    kind,
                    inv,
                    context,
                    real=real,
                    env=env,
                    cwd=cwd,
                    workdir=workdir,
                    timeout_s=timeout_s,
                    is_read_only=is_read_only,
                    stdin_fd=stdin_fd,
                )
    extra: dict = {}
    pv = res.get("preview") if res else None
    if pv is not None:
        extra["preview"] = pv
    if res and (res["run_argv"] is not None or res["stdin_file"] or res["snapshots"]):
        extra["run_argv"] = res["run_argv"]
        extra["stdin_file"] = res["stdin_file"]
        extra["snapshots"] = dict(res["snapshots"])
        extra["workdir"] = workdir
    extra["risk"] = risk.assess(rule, context, pv)
    return Bound(extra, workdir)


def _failed(kind: str, error: str) -> dict:
    pv = {
        "kind": kind,
        "ok": False,
        "summary": f"preview failed: {error}",
        "lines": [],
        "counts": {},
        "error": error,
        "argv": [],
        "duration_ms": 0,
    }
    return {"preview": pv, "run_argv": None, "stdin_file": None, "snapshots": {}}
