"""The terraform-plan preview: `terraform plan -out` into the snapshot; apply runs that plan."""

from __future__ import annotations

import json
import os
import re
import shlex

from shim.preview.failure import clip_output, first_error, one_line
from shim.preview.job import Job
from shim.preview.runner import Failed, Preview
from shim.preview.sealed import SealError, open_unsealed, seal_fd
from shim.preview.tfsnap import snapshot_tfdir

# Go `flag` options of apply/destroy that take a value (the rest are bools, `-x` or `-x=v`).
_TF_VALUE = frozenset(
    (
        "-var",
        "-var-file",
        "-target",
        "-replace",
        "-exclude",
        "-state",
        "-state-out",
        "-backup",
        "-lock-timeout",
        "-parallelism",
    )
)
# Options that shape the plan (they go to `plan`, and a saved plan ignores them on apply).
_TF_PLAN_ONLY = frozenset(
    (
        "-var",
        "-var-file",
        "-target",
        "-replace",
        "-exclude",
        "-refresh-only",
        "-destroy",
        "-refresh",
    )
)
# Options of the run itself (kept on `apply <plan>`; also given to plan where it knows them).
_TF_RUN = frozenset(
    ("-lock", "-lock-timeout", "-parallelism", "-no-color", "-compact-warnings", "-json")
)
_TF_BOTH = frozenset(("-state", "-lock", "-lock-timeout", "-parallelism"))
_TF_APPLY_ONLY = frozenset(("-state-out", "-backup"))
_TF_DROP = frozenset(("-auto-approve", "-input"))


def _tf_walk(tokens: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Go flag parsing of a subcommand's tokens: ([(name, token as -name=value)], positionals)."""
    flags: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            return flags, tokens[i + 1 :]
        if not tok.startswith("-") or tok == "-":
            return flags, tokens[i:]
        name, eq, value = tok.partition("=")
        if name.startswith("--"):
            name = name[1:]
        if eq:
            flags.append((name, f"{name}={value}"))
        elif name in _TF_VALUE and i + 1 < len(tokens):
            flags.append((name, f"{name}={tokens[i + 1]}"))
            i += 1
        else:
            flags.append((name, name))
        i += 1
    return flags, []


# path-valued options, made absolute against the real directory (the plan runs in a copy)
_TF_PATHS = frozenset(("-var-file", "-state", "-state-out", "-backup"))


def _absolute(flags: list[tuple[str, str]], tfdir: str) -> list[tuple[str, str]]:
    out = []
    for name, tok in flags:
        if name in _TF_PATHS and "=" in tok:
            value = tok.split("=", 1)[1]
            if value and value != "-" and not os.path.isabs(value):
                tok = f"{name}={os.path.join(tfdir, value)}"
        out.append((name, tok))
    return out


def terraform_plan(job: Job) -> None:
    """Snapshot the working directory, make (or seal) the saved plan, show it from the sealed
    bytes; the approved run applies that plan in that snapshot, on the real state."""
    pv, inv, context, run, snap = job.pv, job.inv, job.context, job.run, job.snap
    argv = list(inv.argv)
    k = 0
    while k < len(argv) and argv[k].startswith("-"):
        k += 1
    pre = [t for t in argv[:k] if t.startswith("-chdir=")]
    verb = inv.verb[0]
    injected: list[str] = []
    extra = run.env.get("TF_CLI_ARGS_" + verb)
    if extra:
        try:
            injected = shlex.split(extra)
        except ValueError as exc:
            raise Failed(f"TF_CLI_ARGS_{verb} does not parse: {exc}") from exc
    chdir = pre[-1].split("=", 1)[1] if pre else ""
    tfdir = os.path.normpath(os.path.join(run.cwd, chdir)) if chdir else run.cwd
    flags, positionals = _tf_walk(argv[k + 1 :])
    flags = _absolute(flags, tfdir)
    inj_flags = _absolute(_tf_walk(injected)[0], tfdir)
    ws = context.get("workspace") or run.env.get("TF_WORKSPACE") or "default"
    apply_flags = [t for n, t in flags if n in _TF_RUN or n in _TF_APPLY_ONLY or n == "-state"]
    if verb == "destroy":  # TF_CLI_ARGS_destroy would not reach `apply <plan>`
        apply_flags = [
            t for n, t in inj_flags if n in _TF_RUN or n in _TF_APPLY_ONLY or n == "-state"
        ] + apply_flags
    if positionals and (verb != "apply" or len(positionals) != 1):
        raise Failed(f"terraform {verb} {' '.join(positionals)}: not a single saved plan")
    copy, data_dir = snapshot_tfdir(snap, tfdir, run.env.get("TF_DATA_DIR") or ".terraform")
    pre = [f"-chdir={copy}"]
    pv.run_env["TF_DATA_DIR"] = data_dir
    run.env["TF_DATA_DIR"] = data_dir
    if positionals:
        # apply PLANFILE: seal its bytes (terraform reads it relative to -chdir)
        plan = snap.file(positionals[0], base=tfdir, show=False)
    else:
        plan = _make_plan(job, pre, verb, flags, inj_flags)
    pv.run_argv = [*pre, "apply", "-input=false", *apply_flags, plan]
    pv.write_back = {"from": copy, "to": os.path.realpath(tfdir)}
    _, out, _ = run.run([*pre, "show", "-no-color", plan])
    snap.show("terraform show of the saved plan", out.encode(), "")
    _tf_summarise_text(pv, out, ws)
    if positionals:
        pv.summary += " (saved plan)"


def _make_plan(
    job: Job,
    pre: list[str],
    verb: str,
    flags: list[tuple[str, str]],
    inj_flags: list[tuple[str, str]],
) -> str:
    """`terraform plan -out` into an unsealed memfd, sealed once plan has exited; its path.
    The plan command's own output is used for its errors only: the summary is taken from the
    sealed bytes."""
    run, snap = job.run, job.snap
    plan_flags = [t for n, t in inj_flags + flags if n in _TF_PLAN_ONLY or n in _TF_BOTH]
    plan_flags += [
        t
        for n, t in flags
        if n not in _TF_PLAN_ONLY | _TF_RUN | _TF_APPLY_ONLY | _TF_DROP | _TF_BOTH
    ]
    if verb == "destroy":
        plan_flags.insert(0, "-destroy")
    try:
        fd = open_unsealed("plan.tfplan")
    except SealError as exc:
        raise Failed(str(exc)) from exc
    try:
        run.extra_fds = (fd,)
        try:
            code, out, err = run.run(
                [*pre, "plan", "-input=false", "-json", f"-out=/proc/self/fd/{fd}", *plan_flags],
                ok=(0, 1),
            )
        finally:
            run.extra_fds = ()
        if code != 0 or os.fstat(fd).st_size == 0:
            events = _tf_events(out)
            raise Failed(
                f"terraform plan failed (exit {code}): {_tf_diag(events) or first_error(err)}",
                clip_output(err, _tf_text(events) or out),
            )
        item = snap.sealed.add(seal_fd(fd, "plan.tfplan"))
    except BaseException:
        os.close(fd)
        raise
    return item.path


def _tf_events(out: str) -> list[dict]:
    events = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            events.append(ev)
    return events


def _tf_text(events: list[dict]) -> str:
    """The human messages of `plan -json`'s events (diagnostics with their detail), for
    `shield show` when the plan failed."""
    lines = []
    for ev in events:
        d = ev.get("diagnostic") if ev.get("type") == "diagnostic" else None
        if isinstance(d, dict):
            lines.append(f"{str(d.get('severity', '')).capitalize()}: {d.get('summary', '')}")
            if d.get("detail"):
                lines.append(f"  {d['detail']}")
        elif ev.get("@message"):
            lines.append(str(ev["@message"]))
    return "\n".join(lines)


def _tf_diag(events: list[dict]) -> str:
    for ev in events:
        if ev.get("type") == "diagnostic" and ev.get("@level") == "error":
            d = ev.get("diagnostic") or {}
            text = d.get("summary") or ev.get("@message") or ""
            if d.get("detail"):
                text += f": {d['detail']}"
            return one_line(str(text))
    return ""


_TF_SYMBOL = {
    "delete": "-",
    "replace": "-/+",
    "create": "+",
    "update": "~",
    "read": "<=",
    "move": "->",
    "remove": "forget",
    "import": "import",
}
_TF_ORDER = ("delete", "replace", "remove", "update", "create", "move", "import", "read")


def _tf_list(pv: Preview, changes: list[tuple[str, str, str]]) -> None:
    """Detail lines: destroyed and replaced resources first."""
    rank = {a: i for i, a in enumerate(_TF_ORDER)}
    for action, addr, why in sorted(changes, key=lambda c: (rank.get(c[0], 99), c[1])):
        note = f" ({why})" if why else ""
        pv.line(f"{_TF_SYMBOL.get(action, action)} {addr}{note}")


def _tf_sentence(counts: dict[str, int], ws: str, refresh: bool = False) -> str:
    if refresh:
        return f"terraform refresh-only plan (workspace {ws}): {counts.get('drift', 0)} drifted"
    text = (
        f"terraform plan (workspace {ws}): {counts['add']} to add, {counts['change']} to change, "
        f"{counts['destroy']} to destroy"
    )
    if counts.get("replace"):
        text += f" ({counts['replace']} replaced)"
    if counts.get("import"):
        text += f", {counts['import']} to import"
    return text


_TF_COMMENT = re.compile(
    r"^\s*# (?P<addr>.+?) (?P<what>will be destroyed|must be replaced|is tainted, so must be "
    r"replaced|will be replaced.*|will be created|will be updated in-place|will be read during "
    r"apply|will be imported|has moved to .+|will no longer be managed by Terraform)$"
)
# objects changed outside terraform, as `terraform show` lists them in a refresh-only plan
_TF_DRIFT = re.compile(r"^\s*# \S+ has (?:changed|been deleted)$", re.M)
_TF_PLAN_LINE = re.compile(
    r"^Plan: (?:(?P<imp>\d+) to import, )?(?P<add>\d+) to add, (?P<chg>\d+) to change, "
    r"(?P<des>\d+) to destroy"
)


def _tf_summarise_text(pv: Preview, out: str, ws: str) -> None:
    """`terraform show PLAN` of the sealed plan (the human form: the JSON form prints
    sensitive values, which the default policy holds for a human)."""
    changes: list[tuple[str, str, str]] = []
    counts: dict[str, int] | None = None
    for line in out.splitlines():
        m = _TF_COMMENT.match(line)
        if m:
            what = m.group("what")
            if "replace" in what:
                action = "replace"
            elif "destroyed" in what:
                action = "delete"
            elif "created" in what:
                action = "create"
            elif "updated" in what:
                action = "update"
            elif "read" in what:
                action = "read"
            elif "imported" in what:
                action = "import"
            elif "moved" in what:
                action = "move"
            else:
                action = "remove"
            changes.append((action, m.group("addr"), ""))
            continue
        why = line.strip()
        if changes and why.startswith("# (because ") and why.endswith(")"):
            action, addr, _ = changes[-1]
            changes[-1] = (action, addr, why[3:-1])
            continue
        p = _TF_PLAN_LINE.match(line.strip())
        if p:
            counts = {
                "add": int(p.group("add")),
                "change": int(p.group("chg")),
                "destroy": int(p.group("des")),
            }
            if p.group("imp"):
                counts["import"] = int(p.group("imp"))
    refresh = "refresh-only plan" in out
    if counts is None:
        if "No changes." in out or refresh:
            counts = {"add": 0, "change": 0, "destroy": 0}
        else:
            raise Failed("terraform show printed no 'Plan:' line for this plan file")
    counts["replace"] = sum(1 for c in changes if c[0] == "replace")
    if refresh:
        counts["drift"] = len(_TF_DRIFT.findall(out))
    pv.counts = counts
    pv.summary = _tf_sentence(counts, ws, refresh)
    _tf_list(pv, changes)
