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
from shim.preview.failure import one_line
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
from shim.preview.pin import Pin, Resolve, pin_target
from shim.preview.runner import (
    PREVIEW_ENV,
    Failed,
    Preview,
    ReadOnly,
    Runner,
    clip_lines,
)
from shim.preview.sealed import SealedSet, SealError
from shim.preview.snapshot import Snapper, check_snapshots, drop_unbound, stamp

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
    sealed: SealedSet | None = None,
    pin: Pin | None = None,
) -> dict:
    """Run the preview for a held call. Returns a plain dict (JSON-able, no floats):

      {"preview": {"kind", "ok", "summary", "lines", "counts", "error", "argv", "duration_ms"}
                  or None when `kind` does not apply to this call (nothing ran),
       "run_argv": argv to run instead of inv.argv on approval, or None,
       "run_env": variables set for the approved run (over the call's environment),
       "stdin_file": the sealed stdin (/proc/self/fd/N) to feed on approval, or None,
       "snapshots": {name under workdir: sha256 hex} (directory copies),
       "inputs": [{source, sha256, bytes, text, note}] what the run reads, for the approver}

    Single files are sealed into `sealed` (their descriptors stay open for the approved run);
    the preview commands run with the `pin`'s flags and variables. Never raises: a failing or
    slow preview comes back with ok=False and `error` set, and whatever it learned before
    failing. Every preview command is shown to `is_read_only` first and is not run unless it
    returns True."""
    start = time.monotonic()
    timeout_s = max(float(timeout_s), 0.0)
    deadline = start + timeout_s
    sealed = sealed if sealed is not None else SealedSet()
    if pin is None:
        pin = pin_target(inv, context, env, sealed, cwd=cwd)
    concrete = select_kind(kind, inv) if kind in KINDS else None
    if concrete is None:
        if kind in KINDS:
            return pinned(_nothing(), pin, inv)
        concrete = kind
    pv = Preview(concrete)
    pinned_files = len(sealed.files)
    penv = dict(env)
    penv[PREVIEW_ENV] = "1"  # lets a stand-in, a wrapper or a log tell preview runs apart
    if inv.tool == "aws":
        penv["AWS_PAGER"] = ""  # v2 would page its output otherwise
    penv.update(pin.env)
    runner = Runner(
        pv, inv.tool, real, penv, cwd, deadline, timeout_s, is_read_only, pin.args, sealed
    )
    job = Job(pv, inv, context, runner, Snapper(pv, workdir, cwd, sealed), stdin_fd, deadline)
    job.pin = pin
    error = _run_kind(job, concrete, kind, workdir)
    if error and not pv.summary:
        pv.summary = f"preview failed: {error}"
    if error and pv.run_argv is None:
        # Nothing was rebound, so the approved run reads the live files: listing the copies
        # made before the failure would tell the approver they are bound. Only consumed stdin
        # stays bound (the run gets exactly those bytes, or nothing runs).
        pv.snapshots = {}
        pv.run_env = {}
        pv.inputs = [i for i in pv.inputs if i["source"] == "stdin"]
        drop_unbound(workdir, pv.snapshots)
        sealed.drop_after(pinned_files, keep=pv.stdin_file)
    return pinned(_result(pv, error, start), pin, inv)


def _run_kind(job: Job, concrete: str, kind: str, workdir: str) -> str | None:
    """Run the kind's implementation; its error for the approver, or None."""
    try:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        impl = IMPLS.get(concrete)
        if impl is None:
            raise Failed(f"unknown preview kind {kind!r} (known: {', '.join(KINDS)})")
        impl(job)
    except Failed as exc:
        job.pv.output = exc.output
        return str(exc)
    except Exception as exc:  # a preview never breaks the request
        return f"{type(exc).__name__}: {exc}"
    return None


def _result(pv: Preview, error: str | None, start: float) -> dict:
    preview = {
        "kind": pv.kind,
        "ok": error is None,
        "summary": one_line(pv.summary),
        "lines": clip_lines(pv.lines),
        "counts": {k: int(v) for k, v in pv.counts.items()},
        "error": error,
        "argv": pv.argvs,
        "duration_ms": int((time.monotonic() - start) * 1000),
    }
    # for `shield show` only (held_fields keeps them out of the log)
    if pv.diff:
        preview["diff"] = pv.diff
    if pv.output:
        preview["output"] = pv.output
    return {
        "preview": preview,
        "run_argv": pv.run_argv,
        "run_env": dict(pv.run_env),
        "stdin_file": pv.stdin_file,
        "snapshots": dict(pv.snapshots),
        "inputs": list(pv.inputs),
        "write_back": pv.write_back if error is None else None,
        "stamps": dict(pv.stamps) if pv.snapshots else {},
        "created": list(pv.created),
    }


def pinned(res: dict, pin: Pin, inv: Any) -> dict:
    """`res` with the pinned target in the run: its flags before `run_argv` (the call's argv
    when the preview bound nothing), its variables under the preview's own `run_env`."""
    res = dict(res)
    if pin.changes_argv:
        base = res["run_argv"] if res["run_argv"] is not None else list(inv.argv)
        try:
            res["run_argv"] = pin.argv(base)
        except SealError:
            res["run_argv"] = None
    res["run_env"] = {**pin.env, **res["run_env"]}
    return res


def _nothing() -> dict:
    return {
        "preview": None,
        "run_argv": None,
        "run_env": {},
        "stdin_file": None,
        "snapshots": {},
        "inputs": [],
        "write_back": None,
        "stamps": {},
        "created": [],
    }


# --------------------------------------------------------------------------- the hold path


class Launch:
    """What the approved run starts: argv, environment overrides, stdin, the sealed
    descriptors it inherits, and the problems that forbid it (run nothing unless empty)."""

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.stdin: str | None = None
        self.pass_fds: tuple[int, ...] = ()
        self.problems: list[str] = []
        self.fields: dict = {}


class Bound:
    """A held call's preview and pinned target, ready for the request and the approved run.

    `extra` goes into `hold.new_request(extra=...)` (so the digest, and with it the approver's
    signature, covers the preview, the risk, the target, `run_argv`, `run_env`, `stdin_file`,
    every sealed file's and snapshot's hash, and the inputs' text). `launch()` is what the
    approved run executes, checked just before; `cleanup()` closes and removes the snapshots."""

    def __init__(
        self,
        extra: dict,
        workdir: str | None,
        sealed: SealedSet | None = None,
        pin: Pin | None = None,
        stamps: dict[str, str] | None = None,
    ) -> None:
        self.extra = extra
        self.stamps = stamps
        self.created: list[str] = []  # empty files made for the run: removed if still empty
        self.workdir = workdir
        self.sealed = sealed or SealedSet()
        self.pin = pin

    @property
    def preview(self) -> dict | None:
        pv = self.extra.get("preview")
        return pv if isinstance(pv, dict) else None

    @property
    def conflicts(self) -> list[str]:
        """The pinned target differs from the classified one (refuse, never hold)."""
        return list(self.pin.conflicts) if self.pin is not None else []

    def held_fields(self) -> dict:
        """Fields for the log's `held` entry (the inputs' text, the preview's diff and a
        failed command's output stay in the request)."""
        keys = (
            "risk",
            "preview",
            "target",
            "run_argv",
            "run_env",
            "stdin_file",
            "snapshots",
            "sealed",
        )
        out = {k: self.extra[k] for k in keys if k in self.extra}
        pv = out.get("preview")
        if isinstance(pv, dict) and ("diff" in pv or "output" in pv):
            out["preview"] = {k: v for k, v in pv.items() if k not in ("diff", "output")}
        return out

    def agent_lines(self) -> str:
        """Lines for the agent's `held` message (stderr): a failed preview in one line."""
        pv = self.preview
        text = ""
        if pv and not pv.get("ok"):
            text = f"  preview failed: {pv.get('error') or 'unknown error'}\n"
        elif pv:
            text = f"  preview: {pv['summary']}\n"
        return text + f"  risk: {self.extra.get('risk', 'medium')}\n"

    def launch(self, argv: list[str], resolve: Resolve | None = None) -> Launch:
        """The approved run, checked now: every sealed file intact, every directory snapshot
        unchanged (nothing added), the target resolved again equal to the one shown."""
        out = Launch()
        snaps = self.extra.get("snapshots") or {}
        if snaps and self.workdir:
            out.problems += check_snapshots(self.workdir, snaps, self.stamps)
        out.problems += self.sealed.broken()
        run_argv = self.extra.get("run_argv")
        out.argv = list(run_argv) if run_argv is not None else list(argv)
        out.env = dict(self.extra.get("run_env") or {})
        if self.pin is not None:
            drift = self.pin.drift(resolve, self.pin.argv(list(argv)), out.env)
            out.problems += [f"target {d}" for d in drift]
        out.pass_fds = self.sealed.fds
        if run_argv is not None:
            out.fields["ran"] = out.argv
        if out.env:
            out.fields["env"] = sorted(out.env)
        if snaps or self.sealed.files:
            out.fields["snapshots"] = sorted(snaps) + sorted(self.sealed.digests())
        stdin = self.extra.get("stdin_file") or None
        if stdin:
            out.stdin = stdin
            out.fields["stdin"] = "snapshot"
        return out

    def finish(self) -> dict:
        """After the approved run: write back what a terraform apply wrote in its snapshot of
        the directory, and name any bound file that changed while the command ran (the
        same-user window: logged, it cannot be undone); fields for the `executed` entry."""
        out: dict = {}
        if self.stamps and self.workdir:
            touched = []
            for name, before in sorted(self.stamps.items()):
                try:
                    now = stamp(os.path.join(self.workdir, name))
                except OSError:
                    now = None
                if now != before:
                    touched.append(name)
            if touched:
                out["changed_while_running"] = touched
        wb = self.extra.get("write_back")
        if not isinstance(wb, dict) or not self.workdir:
            return out
        from shim.preview.tfsnap import write_back

        try:
            done = write_back(wb["from"], wb["to"], self.extra.get("snapshots") or {}, self.workdir)
        except OSError as exc:
            out["write_back_error"] = f"{exc.filename}: {exc.strerror}"
            return out
        if done:
            out["wrote_back"] = done
        return out

    def cleanup(self) -> None:
        self.sealed.close()
        for path in self.created:
            try:
                if os.stat(path).st_size == 0:
                    os.unlink(path)
            except OSError:
                pass
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
    resolve: Resolve | None = None,
) -> Bound:
    """Pin the held call's target (always), run the preview its rule declares
    (`preview: {kind, timeout}`) in a fresh 0700 dir under `<home>/state/previews/`, and work
    out the request's risk level. With `run` False (a zero hold timeout) or no declaration,
    only the target and the risk. `limit_s` caps the rule's timeout (the hold's own deadline:
    a preview never waits longer than a human would be given). Never raises."""
    from shim.preview import risk

    sealed = SealedSet()
    pin = pin_target(inv, context, env, sealed, resolve, cwd)
    spec = (rule or {}).get("preview")
    res: dict | None = None
    workdir: str | None = None
    if run and isinstance(spec, dict) and real and not pin.conflicts:
        res, workdir = _run_declared(
            spec, inv, context, real, env, cwd, home, is_read_only, limit_s, stdin_fd, sealed, pin
        )
    if res is None or workdir is None:  # prepare() did not run: pin the call as it is
        res = pinned(res or _nothing(), pin, inv)
    extra: dict = {"target": pin.shown} if pin.shown else {}
    pv = res.get("preview")
    if pv is not None:
        extra["preview"] = pv
    if res["run_argv"] is not None or res["run_env"] or sealed.files or res["snapshots"]:
        extra["run_argv"] = res["run_argv"]
        extra["run_env"] = res["run_env"]
        extra["stdin_file"] = res["stdin_file"]
        extra["snapshots"] = dict(res["snapshots"])
        extra["sealed"] = sealed.digests()
        extra["workdir"] = workdir
    inputs = [*pin.inputs, *res["inputs"]]
    if inputs:
        extra["inputs"] = inputs
    if res["write_back"]:
        extra["write_back"] = res["write_back"]
    extra["risk"] = risk.assess(rule, context, pv)
    bound = Bound(extra, workdir, sealed, pin, res.get("stamps") or None)
    bound.created = list(res.get("created") or ())
    return bound


def _run_declared(
    spec: dict,
    inv: Any,
    context: dict[str, str],
    real: str,
    env: dict[str, str],
    cwd: str,
    home: str,
    is_read_only: ReadOnly,
    limit_s: float | None,
    stdin_fd: int | None,
    sealed: SealedSet,
    pin: Pin,
) -> tuple[dict | None, str | None]:
    """The declared preview, in a fresh workdir: (prepare's result or None, the workdir)."""
    kind = str(spec.get("kind") or AUTO)
    try:
        timeout_s = min(float(spec.get("timeout") or DEFAULT_TIMEOUT_S), MAX_TIMEOUT_S)
    except (TypeError, ValueError):
        timeout_s = float(DEFAULT_TIMEOUT_S)
    if limit_s is not None:
        timeout_s = max(min(timeout_s, limit_s), 0.0)
    if kind in KINDS and select_kind(kind, inv) is None:
        return None, None
    workdir = os.path.join(home, "state", "previews", os.urandom(8).hex())
    try:
        os.makedirs(os.path.dirname(workdir), mode=0o700, exist_ok=True)
        os.mkdir(workdir, 0o700)
    except OSError as exc:
        # the concrete kind, so that a destructive call's unknown blast radius raises its risk
        # (kubectl delete is `auto` in the rule)
        concrete = select_kind(kind, inv) if kind in KINDS else kind
        return _failed(concrete or kind, f"cannot create {workdir}: {exc.strerror}"), None
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
        sealed=sealed,
        pin=pin,
    )
    return res, workdir


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
    return {**_nothing(), "preview": pv}
