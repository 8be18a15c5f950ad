"""kubectl previews: what a delete matches, what apply/replace/patch change (kubectl diff), and
the objects or nodes that scale, rollout, drain and cordon reach."""

from __future__ import annotations

import re
from typing import Any

from shim.preview.bind import KUBE_BOOL_SHORTS, KUBE_VALUE_SHORTS, snap_filenames
from shim.preview.failure import clip_output, first_error
from shim.preview.flags import flag, flag_args, rewrite_flag_values, truthy
from shim.preview.job import Job
from shim.preview.runner import Failed

KUBE_TARGET = (
    "--context",
    "--cluster",
    "--user",
    "--server",
    "--token",
    "--as",
    "--as-group",
    "--as-uid",
    "--certificate-authority",
    "--client-certificate",
    "--client-key",
    "--tls-server-name",
    "--insecure-skip-tls-verify",
    "--username",
    "--password",
    "--request-timeout",
    "--namespace",
)


def kube_target(inv: Any) -> list[str]:
    return flag_args(inv, KUBE_TARGET)


def replace_kustomize(argv: list[str], path: str) -> list[str] | None:
    """`argv` with its one `-k DIR` (any spelling) turned into `-f PATH`; None when it has
    several or a spelling this scan does not read (then nothing is rebound)."""
    out = list(argv)
    hits = []
    for i, tok in enumerate(out):
        if tok == "--":
            break
        if tok in ("-k", "--kustomize") and i + 1 < len(out):
            hits.append((i, ["-f", path]))
        elif (
            tok.startswith(("--kustomize=", "-k="))
            or tok.startswith("-k")
            and not tok.startswith("--")
        ):
            hits.append((i, [f"--filename={path}"]))
    if len(hits) != 1:
        return None
    i, new = hits[0]
    width = 2 if len(new) == 2 else 1
    return out[:i] + new + out[i + width :]


def render_kustomize(job: Job) -> list[str]:
    """`-k DIR`: render it once (`kubectl kustomize DIR`), seal the result, and make the
    approved run apply (or delete) exactly that with `-f`; the preview's args."""
    inv, pv = job.inv, job.pv
    kust = inv.flags.get("--kustomize") or []
    _, out, _ = job.run.run(["kustomize", kust[-1]])
    path = job.snap.seal(f"kubectl kustomize {kust[-1]}", out.encode()).path
    new = replace_kustomize(pv.run_argv or list(inv.argv), path)
    if len(kust) != 1 or new is None:
        raise Failed("could not bind -k to its rendered snapshot")
    pv.run_argv = new
    pv.line(f"(-k {kust[-1]} rendered once: the approved run applies those objects with -f)")
    return ["-f", path]


def kube_where(inv: Any, context: dict[str, str]) -> str:
    ctx = context.get("context") or "?"
    if truthy(flag(inv, "--all-namespaces")):
        return f"context {ctx}, all namespaces"
    return f"context {ctx}, namespace {context.get('namespace') or '?'}"


def kube_names(out: str) -> list[str]:
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def kubectl_delete(job: Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = kube_where(inv, context)
    if inv.flags.get("--raw"):
        raise Failed("delete --raw names an API path: no preview")
    files = snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    pv.run_argv = files.run_argv
    for note in files.notes:
        pv.line(f"({note})")
    kust = inv.flags.get("--kustomize")
    selectors_ = flag_args(inv, ("--selector", "--field-selector"))
    names = list(inv.args)
    if not (
        files.preview_args
        or kust
        or selectors_
        or truthy(flag(inv, "--all"))
        or len(names) >= 2
        or any("/" in a for a in names)
    ):
        if inv.flags.get("--filename"):
            raise Failed("nothing to preview: the -f input could not be read")
        pv.counts = {"delete": 0}
        pv.summary = f"delete names no object ({where}): kubectl will refuse it"
        return
    args = ["get", *names, *files.preview_args]
    if kust:
        args += render_kustomize(job)
    args += selectors_ + flag_args(inv, ("--all-namespaces", "--recursive"))
    args += kube_target(inv) + ["-o", "name"]
    _, out, _ = run.run(args)
    found = kube_names(out)
    pv.counts = {"delete": len(found)}
    pv.summary = f"delete {len(found)} object(s) ({where})"
    for name in found:
        pv.line(f"- {name}")


_DIFF_HEADER = re.compile(r"^diff -u -N \S*/(?:LIVE|MERGED)-\d+/(\S+) ")
_DIFF_NAME = re.compile(
    r"^(?:(?P<group>.+)\.)?(?P<version>v\d+(?:(?:alpha|beta)\d+)?)\.(?P<kind>[A-Z][A-Za-z0-9]*)"
    r"\.(?P<ns>[a-z0-9-]*)\.(?P<name>.+)$"
)


def _diff_object(base: str) -> str:
    m = _DIFF_NAME.match(base)
    if not m:
        return base
    ns = f"{m.group('ns')}/" if m.group("ns") else ""
    return f"{m.group('kind')} {ns}{m.group('name')}"


def parse_kubectl_diff(out: str) -> list[tuple[str, int, int, bool]]:
    """`kubectl diff` output -> [(object, lines added, lines removed, new object)]."""
    objs: list[list[Any]] = []
    for line in out.splitlines():
        m = _DIFF_HEADER.match(line)
        if m:
            objs.append([_diff_object(m.group(1)), 0, 0, False])
            continue
        if not objs:
            continue
        cur = objs[-1]
        if line.startswith("@@ -0,0 "):
            cur[3] = True
        elif line.startswith("+") and not line.startswith("+++"):
            cur[1] += 1
        elif line.startswith("-") and not line.startswith("---"):
            cur[2] += 1
    return [(str(o[0]), int(o[1]), int(o[2]), bool(o[3])) for o in objs]


_DIFF_TMP = re.compile(r"\S*/(LIVE|MERGED)-\d+/")
MAX_DIFF = 64 << 10  # characters of `kubectl diff` output carried for `shield show`


def clip_diff(out: str) -> str:
    """`kubectl diff` output for the approver: the temporary directories in its headers
    shortened, at most MAX_DIFF characters (a note says where it was cut)."""
    text = "\n".join(
        _DIFF_TMP.sub(r"\1/", line) if line.startswith(("diff ", "--- ", "+++ ")) else line
        for line in out.split("\n")
    )
    if len(text) <= MAX_DIFF:
        return text
    cut = text[:MAX_DIFF].rsplit("\n", 1)[0]
    return f"{cut}\n... (cut: the first {len(cut)} of {len(text)} characters shown)\n"


def kubectl_diff(job: Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = kube_where(inv, context)
    verb = inv.verb[0]
    files = snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    run_argv = files.run_argv
    if verb == "patch":
        patch_files = list(inv.flags.get("--patch-file", ()))
        if patch_files:
            copy = snap.path(patch_files[-1])
            run_argv = rewrite_flag_values(
                run_argv or inv.argv,
                "--patch-file",
                "--patch-file",
                patch_files,
                [copy] * len(patch_files),
                KUBE_VALUE_SHORTS,
                KUBE_BOOL_SHORTS,
            )
            if run_argv is None:
                raise Failed("could not bind --patch-file to its snapshot")
        pv.run_argv = run_argv
        for note in files.notes:
            pv.line(f"({note})")
        args = ["get", *inv.args, *files.preview_args, *kube_target(inv), "-o", "name"]
        _, out, _ = run.run(args)
        found = kube_names(out)
        pv.counts = {"objects": len(found)}
        how = flag(inv, "--type") or "strategic"
        pv.summary = f"patch ({how}) {len(found)} object(s) ({where})"
        for name in found:
            pv.line(f"~ {name}")
        return
    pv.run_argv = run_argv
    for note in files.notes:
        pv.line(f"({note})")
    kust = inv.flags.get("--kustomize")
    if not files.preview_args and not kust:
        raise Failed(f"kubectl {verb} without -f or -k: nothing to diff")
    args = ["diff", *files.preview_args]
    if kust:
        args += render_kustomize(job)
    args += flag_args(
        inv, ("--server-side", "--force-conflicts", "--field-manager", "--recursive", "--selector")
    )
    args += kube_target(inv)
    if verb == "replace":
        pv.line("(replace overwrites whole objects; kubectl diff shows an apply-style diff)")
        if truthy(flag(inv, "--force")):
            pv.line("(--force deletes and re-creates every object in the files)")
    if truthy(flag(inv, "--prune")):
        pv.line("(--prune also deletes objects that are not in the files: not shown here)")
    code, out, err = run.run(args, ok=(0, 1))
    objs = parse_kubectl_diff(out) if code == 1 else []
    if objs:
        pv.diff = clip_diff(out)
    if code == 1 and not objs and err.strip():
        # kubectl diff exits 1 for "differences"; errors exit 2 or more, but be sure
        raise Failed(
            f"kubectl diff exited 1 without a diff: {first_error(err)}", clip_output(err, out)
        )
    created = sum(1 for o in objs if o[3])
    pv.counts = {
        "objects": len(objs),
        "create": created,
        "lines_added": sum(o[1] for o in objs),
        "lines_removed": sum(o[2] for o in objs),
    }
    if not objs:
        pv.summary = f"kubectl diff: no changes ({where})"
    else:
        pv.summary = (
            f"kubectl diff: {len(objs)} object(s) change, {created} new "
            f"(+{pv.counts['lines_added']} -{pv.counts['lines_removed']} lines; {where})"
        )
    for name, plus, minus, new in objs:
        pv.line(f"{'+' if new else '~'} {name} (+{plus} -{minus})")


def kubectl_targets(job: Job) -> None:
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    where = kube_where(inv, context)
    verb = " ".join(inv.verb)
    target = kube_target(inv)
    sel = flag_args(inv, ("--selector",))
    if verb in ("drain", "cordon", "uncordon"):
        nodes = list(inv.args)
        _, out, _ = run.run(["get", "nodes", *nodes, *sel, *target, "-o", "wide"])
        rows = [ln for ln in out.splitlines() if ln.strip()]
        count = max(len(rows) - 1, 0)
        pv.counts = {"nodes": count}
        for row in rows:
            pv.line(row)
        if verb != "drain":
            pv.summary = f"{verb} {count} node(s) ({where})"
            return
        if not nodes:
            _, names, _ = run.run(["get", "nodes", *sel, *target, "-o", "name"])
            nodes = [n.split("/", 1)[-1] for n in kube_names(names)]
        pods: list[str] = []
        podsel = flag_args(inv, ("--pod-selector",))
        podsel = ["--selector=" + a.split("=", 1)[1] for a in podsel]
        for node in nodes[:10]:
            _, out, _ = run.run(
                [
                    "get",
                    "pods",
                    "--all-namespaces",
                    f"--field-selector=spec.nodeName={node}",
                    *podsel,
                    *target,
                    "-o",
                    "name",
                ]
            )
            pods += [f"{node}: {p}" for p in kube_names(out)]
        pv.counts["pods"] = len(pods)
        pv.summary = f"drain {count} node(s): {len(pods)} pod(s) evicted or deleted ({where})"
        for p in pods:
            pv.line(f"- {p}")
        return
    files = snap_filenames(pv, inv, snap, job.stdin_fd, job.deadline)
    pv.run_argv = files.run_argv
    args = ["get", *inv.args, *files.preview_args, *sel, *target, "-o", "wide"]
    _, out, _ = run.run(args)
    rows = [ln for ln in out.splitlines() if ln.strip()]
    count = max(len(rows) - 1, 0)
    pv.counts = {"objects": count}
    if verb == "scale":
        replicas = flag(inv, "--replicas")
        if replicas is not None and replicas.lstrip("-").isdigit():
            pv.counts["replicas"] = int(replicas)
        pv.summary = f"scale {count} object(s) to {replicas} replica(s) ({where})"
    else:
        pv.summary = f"{verb} {count} object(s) ({where})"
    for row in rows:
        pv.line(row)
