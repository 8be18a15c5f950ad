"""How a held request reads for a human: one escaped line per field (cold, stdlib only).

Everything the agent controls passes through `printable` before a human sees it, so escape
sequences and bidi overrides cannot disguise a command as another. Used by the TTY prompt, the
approver's commands and the web page alike, so every channel shows the same text.
"""

from __future__ import annotations

MAX_PREVIEW_LINES = 30


def printable(text: str) -> str:
    """`text` with control, format and other invisible characters escaped (`\\x1b`, `\\u202e`).

    Everything the agent controls goes through this before a human sees it, so escape
    sequences and bidi overrides cannot disguise a command as another.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
            continue
        o = ord(ch)
        out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out)


def command_line(argv: list[str] | tuple[str, ...]) -> str:
    """The argv as one shell-quoted, printable line."""
    import shlex

    return printable(shlex.join(argv))


def context_line(context: dict[str, str]) -> str:
    items = sorted((k, v) for k, v in context.items() if k != "cwd")
    return printable(" ".join(f"{k}={v}" for k, v in items)) or "(none)"


def duration(seconds: float) -> str:
    """`45s`, `9m05s`, `1h02m`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def extra_lines(extra: dict[str, object]) -> list[tuple[str, str]]:
    """(label, text) rows for preview/risk and other extra fields, each line printable."""
    from shim import canon

    rows: list[tuple[str, str]] = []
    first = {"risk": 0, "target": 1, "preview": 2, "inputs": 3}
    for key in sorted(extra, key=lambda k: (first.get(k, 2), k)):
        value = extra[key]
        if value is None:
            continue
        if key == "preview" and isinstance(value, dict):
            lines = render_lines(value)
        elif key == "run_argv" and isinstance(value, list):
            lines = [command_line([str(a) for a in value])]
        elif key == "snapshots" and isinstance(value, dict):
            lines = [snapshot_line(name, str(digest)) for name, digest in sorted(value.items())]
        elif key == "trusted_keys" and isinstance(value, dict):
            lines = [", ".join(f"{name} ({fp})" for fp, name in sorted(value.items())) or "none"]
        elif key in ("inputs", "sealed", "target", "run_env"):
            lines = pinned_lines(key, value)
        else:
            text = value if isinstance(value, str) else canon.encode(value)
            lines = text.splitlines() or [""]
        if len(lines) > MAX_PREVIEW_LINES:
            lines = lines[:MAX_PREVIEW_LINES] + [f"... ({len(lines) - MAX_PREVIEW_LINES} more)"]
        for i, line in enumerate(lines):
            rows.append((printable(key) if i == 0 else "", printable(line)))
    return rows


def snapshot_line(name: str, digest: str) -> str:
    """One snapshotted file: its hash prefix and name, or for a bound symlink (terraform's real
    state files, "link:" + the target) the whole target, which a hash column would cut."""
    if digest.startswith("link:"):
        return f"{'link':16}  {name} -> {digest[len('link:') :]}"
    return f"{digest[:16]}  {name}"


def pinned_lines(key: str, value: object) -> list[str]:
    """The pinned target, the run's variables, the sealed files and the inputs, one line each
    (the inputs' text itself is in the request, for `shield show`)."""
    if key == "inputs" and isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                note = f"; {item['note']}" if item.get("note") else ""
                sha = str(item.get("sha256") or "")[:16]
                out.append(
                    f"{item.get('source')} ({item.get('bytes')} bytes"
                    f"{f', sha256 {sha}' if sha else ''}{note})"
                )
        return out
    if key == "sealed" and isinstance(value, dict):
        return [
            f"{str(v.get('sha256'))[:16]}  {k}  {v.get('source')}"
            for k, v in sorted(value.items())
            if isinstance(v, dict)
        ]
    if isinstance(value, dict):
        from shim import canon

        return [
            f"{k}={v if isinstance(v, str) else canon.encode(v)}" for k, v in sorted(value.items())
        ]
    return [str(value)]


def render_lines(pv: dict) -> list[str]:
    """A preview as text for a human (the TTY panel, `shield pending`): the summary, a failure
    if any, the detail lines indented. Callers still escape it (printable)."""
    out = [str(pv.get("summary") or "")]
    if not pv.get("ok"):
        error = str(pv.get("error") or "unknown error")
        if error not in out[0]:
            out.append(f"preview FAILED: {error}")
    lines = pv.get("lines")
    out += [f"  {line}" for line in (lines if isinstance(lines, list) else ())]
    return out
