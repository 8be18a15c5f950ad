"""aws previews: the objects that s3 rm, rb and sync --delete reach; the instances that
ec2 terminate-instances ends."""

from __future__ import annotations

import json
import re

from shim.preview.failure import clip_output
from shim.preview.flags import flag, flag_args, truthy
from shim.preview.job import Job
from shim.preview.runner import MAX_LINES, Failed, Runner

_AWS_TARGET = (
    "--profile",
    "--region",
    "--endpoint-url",
    "--ca-bundle",
    "--no-verify-ssl",
    "--no-sign-request",
    "--cli-read-timeout",
    "--cli-connect-timeout",
)
_S3_LS = re.compile(r"^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+(\d+) (.*)$")
_S3_DRY = re.compile(r"^\(dryrun\) (\w+): (.+)$")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _s3_bucket(path: str) -> str:
    return path[len("s3://") :].split("/", 1)[0]


def _s3_ls(run: Runner, path: str, target: list[str]) -> tuple[dict[str, int], int, int]:
    """{key: size}, total objects, total bytes of `aws s3 ls PATH --recursive --summarize`."""
    _, out, _ = run.run(["s3", "ls", path, "--recursive", "--summarize", *target])
    sizes: dict[str, int] = {}
    total_n = total_b = -1
    for line in out.splitlines():
        m = _S3_LS.match(line)
        if m:
            sizes[m.group(3)] = int(m.group(2))
            continue
        s = line.strip()
        if s.startswith("Total Objects:"):
            total_n = int(s.split(":", 1)[1].strip() or 0)
        elif s.startswith("Total Size:"):
            total_b = int(s.split(":", 1)[1].strip().split()[0] or 0)
    if total_n < 0:
        total_n = len(sizes)
    if total_b < 0:
        total_b = sum(sizes.values())
    return sizes, total_n, total_b


def aws_s3_objects(job: Job) -> None:
    pv, inv, context, run = job.pv, job.inv, job.context, job.run
    verb = inv.verb[1]
    target = flag_args(inv, _AWS_TARGET)
    where = f"profile {context.get('profile') or '?'}, region {context.get('region') or '?'}"
    if verb == "sync":
        _aws_s3_sync(job, target, where)
        return
    if not inv.args or not inv.args[0].startswith("s3://"):
        raise Failed(f"s3 {verb}: no s3:// path")
    path = inv.args[0]
    bucket = _s3_bucket(path)
    filtered = bool(inv.flags.get("--exclude") or inv.flags.get("--include"))
    recursive = truthy(flag(inv, "--recursive"))
    if verb == "rb":
        sizes, n, size = _s3_ls(run, f"s3://{bucket}", target)
        force = truthy(flag(inv, "--force"))
        pv.counts = {"objects": n, "bytes": size, "delete": n if force else 0, "buckets": 1}
        pv.summary = (
            f"s3 rb s3://{bucket}{' --force' if force else ''}: {n} object(s), {_human(size)} "
            f"({where})"
        )
        if n and not force:
            pv.line("(the bucket is not empty: rb without --force will fail)")
        for key in sorted(sizes)[:MAX_LINES]:
            pv.line(f"- s3://{bucket}/{key} ({sizes[key]} B)")
        return
    # `rm --recursive s3://b/logs` removes the "directory" logs/, while `ls s3://b/logs` lists
    # every key that starts with "logs" (logs2/, logs.txt): list the directory rm removes
    bucket_root = f"s3://{bucket}"
    listed = path if path.rstrip("/") == bucket_root or path.endswith("/") else path + "/"
    if not recursive:
        listed = path
    sizes, n, size = _s3_ls(run, listed, target)
    keys = sorted(sizes)
    if filtered or not recursive:
        # the exact set: rm's own dry run (same filters), sizes from the listing
        argv = job.pin.argv(list(inv.argv)) if job.pin is not None else list(inv.argv)
        _, out, _ = run.run([*argv, "--dryrun"])
        keys = [k for action, k in _s3_dry(out, bucket) if action == "delete"]
        n = len(keys)
        size = sum(sizes.get(k, 0) for k in keys)
    pv.counts = {"objects": n, "bytes": size, "delete": n}
    pv.summary = (
        f"s3 rm {path}{' --recursive' if recursive else ''}: {n} object(s), {_human(size)} "
        f"({where})"
    )
    for key in keys:
        pv.line(f"- s3://{bucket}/{key} ({sizes.get(key, 0)} B)")


def _s3_dry(out: str, bucket: str = "") -> list[tuple[str, str]]:
    """`--dryrun` lines -> [(action, what)]; with `bucket`, s3 paths in it become keys."""
    found: list[tuple[str, str]] = []
    prefix = f"s3://{bucket}/" if bucket else None
    for line in out.splitlines():
        m = _S3_DRY.match(line.strip())
        if not m:
            continue
        action, what = m.group(1), m.group(2)
        if prefix is not None:
            if not what.startswith(prefix):
                continue
            what = what[len(prefix) :]
        found.append((action, what))
    return found


def _bind_sync_source(job: Job) -> list[str]:
    """`s3 sync DIR s3://...`: the local source directory copied whole (listing, content and
    mtimes, which sync compares); the argv with DIR pointing at the copy."""
    inv, snap = job.inv, job.snap
    argv = job.pin.argv(list(inv.argv)) if job.pin is not None else list(inv.argv)
    src = inv.args[0] if inv.args else ""
    if not src or src.startswith("s3://"):
        return argv  # a download: the local side is the destination, not an input
    follow = not truthy(flag(inv, "--no-follow-symlinks"))
    copy = snap.tree(src, follow=follow)
    hits = [i for i, t in enumerate(argv) if t == src]
    if len(hits) != 1:
        raise Failed(f"could not bind the sync source {src} to its snapshot")
    argv[hits[0]] = copy
    job.pv.run_argv = argv
    job.pv.line(f"(source {src} snapshotted: {snap.files} file(s), the run uploads those)")
    return argv


def _aws_s3_sync(job: Job, target: list[str], where: str) -> None:
    """The sync's own dry run (every filter and option kept), on the snapshot of its local
    source, lists what it would do."""
    pv, inv, run = job.pv, job.inv, job.run
    argv = _bind_sync_source(job)
    _, out, _ = run.run([*argv, "--dryrun"])
    acts: dict[str, list[str]] = {}
    for action, what in _s3_dry(out):
        acts.setdefault(action, []).append(what)
    deleted = acts.get("delete", [])
    counts = {a: len(v) for a, v in acts.items()}
    counts["delete"] = len(deleted)
    size = 0
    dest = inv.args[1] if len(inv.args) > 1 else ""
    if deleted and dest.startswith("s3://"):
        sizes, _, _ = _s3_ls(run, dest, target)
        bucket = _s3_bucket(dest)
        for d in deleted:
            size += sizes.get(d[len(f"s3://{bucket}/") :], 0) if d.startswith("s3://") else 0
        counts["bytes"] = size
    pv.counts = counts
    moved = ", ".join(f"{len(v)} to {a}" for a, v in sorted(acts.items()) if a != "delete")
    pv.summary = (
        f"s3 sync: {len(deleted)} object(s) deleted"
        + (f" ({_human(size)})" if size else "")
        + (f", {moved}" if moved else "")
        + f" ({where})"
    )
    for d in deleted:
        pv.line(f"- {d}")
    for a, v in sorted(acts.items()):
        if a != "delete":
            for item in v:
                pv.line(f"{a}: {item}")


def aws_ec2_instances(job: Job) -> None:
    pv, inv, context, run = job.pv, job.inv, job.context, job.run
    if inv.flags.get("--cli-input-json") or inv.flags.get("--cli-input-yaml"):
        raise Failed("the instance ids come from --cli-input-json/yaml: not previewed")
    ids: list[str] = []
    for name, vals in inv.flags.items():
        if len(name) >= 6 and "--instance-ids".startswith(name):
            for v in vals:
                ids += [i for i in re.split(r"[,\s]+", v) if i and v != "true"]
    if not ids:
        raise Failed("no --instance-ids on the command line")
    where = f"profile {context.get('profile') or '?'}, region {context.get('region') or '?'}"
    args = ["ec2", "describe-instances", "--instance-ids", *ids, "--output", "json"]
    _, out, err = run.run([*args, *flag_args(inv, _AWS_TARGET)])
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise Failed("describe-instances printed no JSON", clip_output(err, out)) from exc
    found: dict[str, tuple[str, str, str]] = {}
    for res in data.get("Reservations") or ():
        for inst in res.get("Instances") or ():
            tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags") or ()}
            found[str(inst.get("InstanceId"))] = (
                str(tags.get("Name") or "-"),
                str((inst.get("State") or {}).get("Name") or "?"),
                str(inst.get("InstanceType") or "?"),
            )
    live = [i for i, f in found.items() if f[1] not in ("terminated", "shutting-down")]
    running = [i for i, f in found.items() if f[1] == "running"]
    pv.counts = {"instances": len(found), "terminate": len(live), "running": len(running)}
    pv.summary = f"terminate {len(live)} instance(s), {len(running)} running ({where})" + (
        f"; {len(ids) - len(found)} id(s) not found" if len(found) < len(ids) else ""
    )
    for iid in ids:
        name, state, itype = found.get(iid, ("?", "not found", "?"))
        pv.line(f"- {iid} {name} ({state}, {itype})")
