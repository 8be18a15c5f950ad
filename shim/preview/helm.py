"""The helm-release preview: the release's history, and the manifest that upgrade, rollback or
uninstall would change, compared object by object with what is live."""

from __future__ import annotations

import json
import os

from shim.preview.bind import snap_filenames
from shim.preview.failure import clip_output, first_error
from shim.preview.flags import flag, flag_args, flag_args_argv, rewrite_flag_values
from shim.preview.job import Job
from shim.preview.kubectl import kube_where
from shim.preview.manifest import diff_manifests
from shim.preview.runner import Failed, Runner

_HELM_TARGET = (
    "--kube-context",
    "--kube-token",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-apiserver",
    "--kube-ca-file",
    "--kube-tls-server-name",
    "--kube-insecure-skip-tls-verify",
    "--namespace",
)
_HELM_RENDER = (
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--version",
    "--repo",
    "--devel",
    "--kube-version",
    "--api-versions",
    "--skip-crds",
)
_HELM_VALUE_SHORTS = frozenset(("-n", "-o", "-a", "-s", "-m", "-d", "-l", "-v"))
_HELM_BOOL_SHORTS = frozenset(("-i", "-A", "-q", "-g", "-r", "-h"))


def _render_flags(job: Job) -> list[str]:
    """The render flags for `helm template`, `--set-file` pointing at the sealed copies."""
    run_argv = job.pv.run_argv or []
    sealed = [a.split("=", 1)[1] for a in flag_args_argv(run_argv, "--set-file")]
    out = [a for a in flag_args(job.inv, _HELM_RENDER) if not a.startswith("--set-file=")]
    return out + [f"--set-file={v}" for v in sealed]


def _helm_history(run: Runner, release: str, target: list[str]) -> list[dict]:
    code, out, err = run.run(["history", release, *target, "-o", "json"], ok=(0, 1))
    if code != 0:
        if "not found" in err.lower():
            return []
        raise Failed(f"helm history exited {code}: {first_error(err, out)}", clip_output(err, out))
    try:
        data = json.loads(out or "[]")
    except ValueError as exc:
        raise Failed("helm history printed no JSON", clip_output(err, out)) from exc
    return [h for h in data if isinstance(h, dict)] if isinstance(data, list) else []


def _helm_rev(entry: dict) -> str:
    return (
        f"revision {entry.get('revision')} ({entry.get('chart') or '?'}, "
        f"{entry.get('status') or '?'})"
    )


def helm_release(job: Job) -> None:
    pv, inv, context, run = job.pv, job.inv, job.context, job.run
    verb = inv.verb[0]
    where = kube_where(inv, context)
    target = flag_args(inv, _HELM_TARGET)
    if not inv.args:
        raise Failed(f"helm {verb} without a release name")
    release = inv.args[0]
    chart_ref, values = _bind_upgrade(job) if verb == "upgrade" else (None, [])
    history = _helm_history(run, release, target)
    current = history[-1] if history else None
    counts: dict[str, int] = {"revision": int(current.get("revision") or 0)} if current else {}
    if current is None and verb != "upgrade":
        pv.counts = {"delete": 0}
        pv.summary = f"helm {verb} {release}: no such release ({where})"
        return
    if current is None:
        pv.line(f"release {release} does not exist yet: upgrade --install creates it")
    else:
        pv.line(f"release {release}: {_helm_rev(current)}")
    old_manifest: str | None = ""  # upgrade --install of a new release: nothing is live
    if current is not None:
        got = run.try_run(["get", "manifest", release, *target])
        old_manifest = got[1] if got else None
    if verb == "upgrade":
        head, new_manifest = _upgrade_manifest(job, release, chart_ref, values, target)
    elif verb == "rollback":
        head, new_manifest = _rollback_manifest(job, release, history, target, counts)
    else:  # uninstall
        head, new_manifest = f"helm uninstall {release}", ""
        counts["delete"] = 1
    if old_manifest is not None and new_manifest is not None:
        dcounts, dlines = diff_manifests(old_manifest, new_manifest)
        counts.update(dcounts)
        if verb == "uninstall":
            counts["delete"] = max(dcounts["delete"], 1)
        for ln in dlines:
            pv.line(ln)
        pv.summary = (
            f"{head} ({where}): {dcounts['create']} object(s) created, {dcounts['update']} "
            f"changed, {dcounts['delete']} deleted"
        )
    else:
        pv.summary = f"{head} ({where}): manifest diff not available"
    pv.counts = counts


def _bind_upgrade(job: Job) -> tuple[str | None, list[str]]:
    """Snapshot an upgrade's values files and local chart, point its argv at the copies;
    (the chart to render, the `-f` args for `helm template`)."""
    pv, inv, run, snap = job.pv, job.inv, job.run, job.snap
    chart_ref = inv.args[1] if len(inv.args) > 1 else None
    files = snap_filenames(
        pv,
        inv,
        snap,
        None,
        job.deadline,
        "-f",
        "--values",
        (),
        _HELM_VALUE_SHORTS,
        _HELM_BOOL_SHORTS,
    )
    run_argv = files.run_argv
    for note in files.notes:
        pv.line(f"({note})")
    run_argv = _bind_set_files(job, run_argv or list(inv.argv))
    if chart_ref and os.path.exists(os.path.join(run.cwd, chart_ref)):
        copy = snap.path(chart_ref)
        base = list(run_argv or inv.argv)
        hits = [i for i, t in enumerate(base) if t == chart_ref]
        if len(hits) != 1:
            raise Failed(f"could not bind the chart {chart_ref} to its snapshot")
        base[hits[0]] = copy
        run_argv = base
        chart_ref = copy
    elif chart_ref:
        pv.line(f"(chart {chart_ref} is fetched again on approval: not snapshotted)")
    pv.run_argv = run_argv
    return chart_ref, files.preview_args


def _bind_set_files(job: Job, argv: list[str]) -> list[str]:
    """`--set-file key=PATH[,key2=PATH2]`: each file sealed, the argv pointing at the copies."""
    values = list(job.inv.flags.get("--set-file", ()))
    if not values:
        return argv
    new_values = []
    for value in values:
        parts = []
        for pair in value.split(","):
            key, eq, path = pair.partition("=")
            if eq and path:
                path = job.snap.file(path)
            parts.append(f"{key}{eq}{path}")
        new_values.append(",".join(parts))
    out = rewrite_flag_values(
        argv, "--set-file", "--set-file", values, new_values, _HELM_VALUE_SHORTS, _HELM_BOOL_SHORTS
    )
    if out is None:
        raise Failed("could not bind the --set-file files to their snapshots")
    return out


def _upgrade_manifest(
    job: Job, release: str, chart_ref: str | None, values: list[str], target: list[str]
) -> tuple[str, str | None]:
    """(headline, the manifest the upgrade would install, or None when it cannot be rendered)."""
    inv = job.inv
    if chart_ref is None:
        raise Failed("helm upgrade without a chart")
    render = ["template", release, chart_ref, *values, *_render_flags(job), *target]
    got = job.run.try_run([*render, "--is-upgrade", "--no-hooks"])
    if flag(inv, "--reuse-values") or flag(inv, "--reset-then-reuse-values"):
        job.pv.line("(--reuse-values: the diff renders only the values given on this command line)")
    head = f"helm upgrade {release} to {inv.args[1] if len(inv.args) > 1 else '?'}"
    return head, got[1] if got else None


def _rollback_manifest(
    job: Job, release: str, history: list[dict], target: list[str], counts: dict[str, int]
) -> tuple[str, str | None]:
    """(headline, the manifest of the revision rolled back to, or None)."""
    args = job.inv.args
    to = args[1] if len(args) > 1 and args[1] != "0" else None
    if to is None and len(history) >= 2:
        to = str(history[-2].get("revision"))
    entry = next((h for h in history if str(h.get("revision")) == to), None)
    if entry is not None:
        job.pv.line(f"back to: {_helm_rev(entry)}")
    manifest = None
    if to is not None:
        counts["to_revision"] = int(to) if to.isdigit() else 0
        got = job.run.try_run(["get", "manifest", release, f"--revision={to}", *target])
        manifest = got[1] if got else None
    return f"helm rollback {release} to revision {to or '?'}", manifest
