"""`shield grant`, `shield grants` and `shield revoke`: time-bounded, scoped, signed grants.

A grant lets one agent run calls that would otherwise be held, within a scope (tool, rules or
verb paths, the pinned target, optionally argv globs), for a while (default 15 minutes, at most
8 hours), optionally a number of times. It is signed with this home's approver key and
delivered like a decision; the shim checks it on the ask path only, and never for a call a
rule denies or marks `grantable: false`.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console

from shim.approval import grant as statement
from shim.approval.inbox import Inbox
from shim.approval.passkey import load_passkeys
from shim.approval.show import duration, printable
from shim.clock import parse_duration, parse_iso
from shim.commands.common import SpoolOpt
from shim.commands.inbox_opts import CacertOpt, ServerOpt, TokenFileOpt, inbox
from shim.commands.table import Column, render
from shim.errors import ShieldError
from shim.home import home_dir, log_path
from shim.keys import approver_trusted

ForOpt = Annotated[
    str, typer.Option("--for", metavar="DURATION", help="How long: 15m, 2h, 1h30m (max 8h).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def span_seconds(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None
    if not 0 < seconds <= statement.MAX_SPAN_S:
        raise typer.BadParameter("a grant lasts at most 8 hours (--for 8h)", param_hint="--for")
    return seconds


def issue(home: str, box: Inbox, target: dict[str, str], span_s: int, **scope: object) -> dict:
    """Sign a grant and leave it in the spool or on the approval server (also what
    `shield approve --for` does)."""
    try:
        st = statement.make_grant(home, target=target, span_s=span_s, now=time.time(), **scope)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ShieldError(str(exc), "see: shield grant --help") from None
    box.post_statement(st)
    return st


def grant(
    agent: Annotated[str, typer.Option("--agent", help="The agent the grant is for.")],
    tool: Annotated[str, typer.Option("--tool", help="kubectl, aws, terraform, helm, ...")] = "",
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="A rule id the grant covers (repeat).")
    ] = None,
    verb: Annotated[
        list[str] | None,
        typer.Option("--verb", help="A verb path glob it covers, e.g. 'rollout restart'."),
    ] = None,
    context: Annotated[str, typer.Option("--context", help="Pinned kube context.")] = "",
    namespace: Annotated[str, typer.Option("--namespace", help="Pinned namespace.")] = "",
    profile: Annotated[str, typer.Option("--profile", help="Pinned aws profile.")] = "",
    region: Annotated[str, typer.Option("--region", help="Pinned aws region.")] = "",
    workspace: Annotated[str, typer.Option("--workspace", help="Pinned terraform workspace.")] = "",
    directory: Annotated[str, typer.Option("--dir", help="Pinned terraform directory.")] = "",
    argv: Annotated[
        list[str] | None,
        typer.Option("--argv", metavar="GLOB", help="A glob the command line must match."),
    ] = None,
    for_: ForOpt = "15m",
    uses: Annotated[
        int | None, typer.Option("--uses", metavar="N", help="At most this many calls.")
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; the agent and the log see it.")
    ] = "",
    spool: SpoolOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let an agent run matching calls without a hold, for a while. Signed with your key.

    The tool is taken from the rule ids (kubectl/mutate is kubectl) unless --tool is given.

    Example: shield grant --agent deploy-bot --rule kubectl/mutate --context kind-dev --namespace web --for 30m --reason "deploy window"
    """
    rules = list(rule or ())
    tool = tool or (rules[0].split("/", 1)[0] if rules else "")
    if not tool:
        raise typer.BadParameter("name the tool (--tool) or a rule (--rule kubectl/mutate)")
    home = home_dir()
    target = {
        "context": context,
        "namespace": namespace,
        "profile": profile,
        "region": region,
        "workspace": workspace,
        "dir": directory,
    }
    st = issue(
        home,
        inbox(spool, server, token_file, cacert),
        target,
        span_seconds(for_),
        agent=agent,
        tool=tool,
        rules=rules,
        verbs=list(verb or ()),
        argv=list(argv or ()),
        reason=reason,
        max_uses=uses,
    )
    if as_json:
        typer.echo(json.dumps(st))
        return
    typer.echo(describe(st))


def describe(st: dict) -> str:
    scope = ", ".join([*st["rules"], *(f"verb {v}" for v in st["verbs"])])
    where = " ".join(f"{k}={v}" for k, v in sorted(st["target"].items()))
    uses = f", {st['max_uses']} use(s)" if st["max_uses"] else ""
    return printable(
        f"granted {st['id']}: {st['agent']} may run {st['tool']} {scope} on {where} "
        f"until {st['expires']}{uses} (signed by {st['approver']})"
    )


def grants(
    spool: SpoolOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also expired and revoked ones.")] = False,
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            metavar="PATH",
            help="The agent's log, to count each grant's uses (default: this home's log).",
        ),
    ] = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the live grants in the spool: who may run what, where, until when, used how often.

    Signatures are checked against this home's trust store and own key; a statement that does
    not verify is listed as such. Uses are counted from the log's `granted` entries: a grant
    used more often than its --uses (an agent that reset its own counter) is marked overused.

    Example: shield grants --json --log /opt/shield/home/log/shield.log
    """
    home = home_dir()
    box = inbox(spool, server, token_file, cacert)
    where = box.where
    rows = grant_rows(home, box, time.time(), count_uses(log or log_path(home)))
    if not show_all:
        rows = [r for r in rows if r["status"] == "live"]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console(highlight=False)
    if not rows:
        console.print(f"no live grants in {where}")
        return
    for line in grant_lines(rows, time.time(), console.width):
        console.print(line, markup=False)
    console.print(f"{len(rows)} grant(s) in {where}", style="dim")


GRANT_COLUMNS = [
    Column("id", min=8, max=8, keep=9),
    Column("agent", max=20, keep=5),
    Column("covers", max=30, keep=7, flex=True),
    Column("target", min=10, max=48, keep=6, flex=True),
    Column("left", min=6, max=7, keep=8),
    Column("used", max=7, keep=4, right=True),
    Column("status", min=6, max=40, keep=9, flex=True),
]


def grant_lines(rows: list[dict], now: float, width: int) -> list[str]:
    """One line per grant; cells are cut with an ellipsis, never wrapped."""
    cells = []
    for r in rows:
        covers = ", ".join([*r["rules"], *(f"{r.get('tool', '')} {v}" for v in r["verbs"])])
        target = " ".join(f"{k}={v}" for k, v in sorted(r.get("target", {}).items()))
        live = r["status"] == "live"
        cells.append(
            [
                printable(str(x))
                for x in (
                    r["id"],
                    r.get("agent", "?"),
                    covers,
                    target,
                    duration(parse_iso(r["expires"]) - now) if live else "-",
                    f"{r['used']}/{r['max_uses']}" if r.get("max_uses") else str(r["used"]),
                    r["status"],
                )
            ]
        )
    return render(GRANT_COLUMNS, cells, width)


def count_uses(path: str) -> dict[str, int]:
    """Grant id -> `granted` entries in the log at `path` ({} when there is none)."""
    import os

    from shim.log.verify import read_entries

    if not os.path.exists(path):
        return {}
    out: dict[str, int] = {}
    for e in read_entries(path):
        if e.get("event") == "granted":
            gid = str(e.get("grant"))
            out[gid] = out.get(gid, 0) + 1
    return out


def grant_rows(home: str, box: Inbox, now: float, used: dict[str, int]) -> list[dict]:
    """Every grant in the spool with its status: live, expired, not yet valid, revoked,
    overused (the log shows more uses than it allows), or why its signature is refused."""
    trusted = approver_trusted(home)
    grants, revocations = box.statements()
    revs = [
        st
        for st in revocations
        if isinstance(st, dict) and not statement.check_revocation(st, trusted)
    ]
    passkeys = load_passkeys(home)
    rows = []
    for st in grants:
        why = statement.check_grant(st, trusted, passkeys)
        if why.startswith("signed by an untrusted passkey") and not passkeys:
            why = ""  # an approver's home trusts no passkeys: the agents' shims check it
        if why or not isinstance(st, dict):
            sid = str(st.get("id", "?")) if isinstance(st, dict) else "?"
            refused = {"id": sid, "status": f"refused: {why}", "rules": [], "verbs": []}
            rows.append({**refused, "used": used.get(sid, 0)})
            continue
        n = used.get(st["id"], 0)
        status = "revoked" if any(statement.revokes(r, st) for r in revs) else ""
        if st["max_uses"] is not None and n > st["max_uses"]:
            status = f"overused: {n} uses logged, {st['max_uses']} allowed"
        status = status or statement.in_time(st, now, 0) or "live"
        rows.append({**{k: v for k, v in st.items() if k != "sig"}, "used": n, "status": status})
    return sorted(rows, key=lambda r: (r["status"] != "live", str(r.get("expires", ""))))


def revoke(
    grant_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[GRANT_ID]...", help="Grants to end.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="End every grant of it.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="End every grant.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the log.")] = "",
    spool: SpoolOpt = None,
    server: ServerOpt = None,
    token_file: TokenFileOpt = None,
    cacert: CacertOpt = None,
) -> None:
    """End grants now: the next call they would have covered is held as usual.

    Example: shield revoke --agent deploy-bot --reason "deploy finished"
    """
    home = home_dir()
    try:
        st = statement.make_revocation(
            home, grants=list(grant_ids or ()), agent=agent, everything=everything, reason=reason
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    inbox(spool, server, token_file, cacert).post_statement(st)
    what = ", ".join(st["grants"]) or (f"every grant of {agent}" if agent else "every grant")
    typer.echo(printable(f"revoked {what} (signed by {st['approver']}, {st['id']})"))


def register(app: typer.Typer) -> None:
    app.command("grant")(grant)
    app.command("grants")(grants)
    app.command("revoke")(revoke)
