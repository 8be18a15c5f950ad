"""One held request in full, as rich renderables: the panel, and what will actually run (cold).

`shield show` prints these; `shield approve` shows a short block per request before it asks.
Everything in a request is the agent's words: each line goes through `printable` (escape
sequences and bidi overrides are shown escaped, never interpreted) and into `rich.text.Text`
(never parsed as markup).
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from shim.approval.request import HeldRequest
from shim.approval.review import short_digest
from shim.approval.show import command_line, context_line, duration, extra_lines, printable
from shim.clock import parse_iso
from shim.commands.queue import refusal_line

RISK_STYLE = {
    "low": "green",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}
MODIFIED = (
    "this file was edited after the call was held (its digest field does not match its "
    "content); approve refuses it"
)
# extra fields shown below the panel in full, not as a line each inside it
IN_FULL = ("inputs",)


def request_panel(
    req: HeldRequest, now: float, *, modified: bool = False, status: str = "pending"
) -> Panel:
    """The held request as a panel: command, why, target, agent, age, digest, then the
    preview, risk, target, run and inputs lines (what the TTY prompt shows too)."""
    created, expires = parse_iso(req.created), parse_iso(req.expires)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rule = printable(req.rule) if req.rule else "(no rule matched)"
    held = f"{duration(now - created)} ago, expires in {duration(expires - now)}"
    if status != "pending":
        held = f"{duration(now - created)} ago; {printable(status)} (as the agent's side reports)"
    rows = [
        ("command", Text(command_line([req.tool, *req.argv]), style="bold")),
        ("why", Text(f"{printable(req.reason)}  [{rule}]")),
        ("context", Text(context_line(req.context))),
        ("agent", Text(printable(req.agent))),
        ("cwd", Text(printable(req.cwd))),
        ("held", Text(held)),
        ("digest", Text(short_digest(req.digest))),
    ]
    if modified:
        rows.append(("WARNING", Text(MODIFIED, style="bold red")))
    rows += [
        (label, Text(text, style=RISK_STYLE.get(text, "") if label == "risk" else ""))
        for label, text in extra_lines(req.extra)
    ]
    for label, value in rows:
        grid.add_row(label, value)
    pin = short_digest(req.digest)
    hint = Text(
        f"shield approve {req.id} --digest {pin}\nshield deny {req.id} --reason ...",
        style="dim",
    )
    return Panel(
        Group(grid, Text(""), hint),
        title=Text(f"held request {req.id}", style="bold yellow"),
        title_align="left",
        expand=False,
    )


def warnings(
    req: HeldRequest, notes: list[dict[str, str]], own_key: str | None
) -> list[RenderableType]:
    """What the approver must know before signing: a failed preview, decisions the agent's
    shim refused (its words), and a key the agent does not list as trusted."""
    out: list[RenderableType] = []
    pv = req.extra.get("preview")
    if isinstance(pv, dict) and not pv.get("ok"):
        error = printable(str(pv.get("error") or "unknown error"))
        out.append(Text(f"! preview failed: {error}", style="bold red"))
    if notes:
        out.append(Text(f"! {refusal_line(notes)}", style="bold red"))
        for note in notes:
            who = printable(note.get("approver") or "?")
            out.append(
                Text(
                    f"    {printable(note.get('time', '?'))}  {who}  "
                    f"{printable(' '.join(note['why'].split()))}",
                    style="dim",
                )
            )
        out.append(Text("    (the agent's shim reports these; shield log on its side has them)"))
    untrusted = untrusted_warning(req, own_key)
    if untrusted:
        out.append(Text(f"! {untrusted}", style="bold yellow"))
    return out


def untrusted_warning(req: HeldRequest, own_key: str | None) -> str | None:
    """When the request lists the keys its shim trusts and this home's key is not one of
    them: what that means. None otherwise (or when this home has no key)."""
    listed = req.extra.get("trusted_keys")
    if own_key is None or not isinstance(listed, dict) or own_key in listed:
        return None
    names = ", ".join(sorted(printable(str(n)) for n in listed.values())) or "no key at all"
    return (
        f"the agent's shim does not trust this home's key ({own_key}); it trusts: {names}. "
        "The agent's side decides which keys count: a decision signed here will be refused "
        "until it trusts this key (shield trust add on its side)"
    )


def heading(text: str) -> Rule:
    return Rule(Text(text, style="bold"), align="left", style="dim")


def _chomp(line: str) -> str:
    for end in ("\r\n", "\n"):
        if line.endswith(end):
            return line[: -len(end)]
    return line


def body(text: str, coloured: bool = False) -> Text:
    """Multi-line text from the request, each line escaped; `coloured`: diff-like lines
    (+ - ~ -/+) in green, red and yellow."""
    out = Text()
    # split where YAML readers break lines too (\r, \x85, \u2028...), but show every such
    # break but \n (and \r\n) escaped at the end of its line: JSON readers do not break there
    lines = [_chomp(raw) for raw in text.splitlines(keepends=True)] or [""]
    for i, raw in enumerate(lines):
        line = printable(raw.expandtabs(8))
        style = ""
        if coloured:
            mark = line.lstrip()[:3]
            if mark.startswith(("-/+", "+/-")):
                style = "yellow"
            elif mark.startswith("+") and not mark.startswith("+++"):
                style = "green"
            elif mark.startswith("-") and not mark.startswith("---"):
                style = "red"
            elif mark.startswith("~"):
                style = "yellow"
        out.append(line, style=style)
        if i < len(lines) - 1:
            out.append("\n")
    return out


def what_runs(req: HeldRequest) -> list[RenderableType]:
    """What the approved command will read and change, in full: the preview's diff against
    the live objects, every input's text (snapshotted manifests, piped stdin, values, the
    saved plan's `terraform show`), a failed preview command's raw output."""
    out: list[RenderableType] = []
    run = req.extra.get("run_argv")
    argv = [str(a) for a in run] if isinstance(run, list) else list(req.argv)
    out += [heading("what will run"), Text(command_line([req.tool, *argv]))]
    env = req.extra.get("run_env")
    if isinstance(env, dict) and env:
        out.append(Text(printable(" ".join(f"{k}={v}" for k, v in sorted(env.items())))))
    pv = req.extra.get("preview")
    if isinstance(pv, dict) and isinstance(pv.get("diff"), str):
        out += [heading("kubectl diff against the live objects"), body(pv["diff"], True)]
    inputs = req.extra.get("inputs")
    for item in inputs if isinstance(inputs, list) else ():
        if isinstance(item, dict):
            out += input_block(item)
    if isinstance(pv, dict) and isinstance(pv.get("output"), str) and pv["output"].strip():
        out += [heading("the failed preview command's output"), body(pv["output"])]
    return out


def input_block(item: dict[str, Any]) -> list[RenderableType]:
    source = printable(str(item.get("source") or "?"))
    size = item.get("bytes")
    sha = printable(str(item.get("sha256") or ""))[:16]
    note = f"; {printable(str(item['note']))}" if item.get("note") else ""
    title = f"{source} ({size} bytes{f', sha256 {sha}' if sha else ''}{note})"
    text = item.get("text")
    if not isinstance(text, str):
        return [heading(title), Text("(not shown)", style="dim")]
    plan = source.startswith("terraform show")
    return [heading(title), body(text, coloured=plan)]


def summary_block(
    req: HeldRequest, now: float, notes: list[dict[str, str]], own_key: str | None
) -> list[RenderableType]:
    """A few lines per request for `shield approve`'s confirmation: id, risk, agent and
    command; the target; the preview's summary; warnings."""
    risk = req.extra.get("risk")
    risk_text = printable(str(risk)) if isinstance(risk, str) else "-"
    expires = duration(parse_iso(req.expires) - now)
    head = Text()
    head.append(f"{req.id}  ")
    head.append(f"{risk_text:<8}", style=RISK_STYLE.get(risk_text, ""))
    head.append(f"  {printable(req.agent)}  ")
    head.append(command_line([req.tool, *req.argv]), style="bold")
    lines: list[RenderableType] = [head]
    lines.append(Text(f"        target   {context_line(req.context)}  (expires in {expires})"))
    pv = req.extra.get("preview")
    if isinstance(pv, dict) and pv.get("ok"):
        summary = printable(" ".join(str(pv.get("summary") or "").split()))
        lines.append(Text(f"        preview  {summary}"))
    lines += [
        Text("        ").append_text(w)
        for w in warnings(req, notes, own_key)
        if isinstance(w, Text)
    ]
    return lines
