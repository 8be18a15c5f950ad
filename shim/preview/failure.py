"""What a failed preview command's output means, in one line for a human (pure, cold).

A preview fails more often for a boring reason (the cluster is down, the endpoint is wrong,
there are no credentials) than for an interesting one, and the tools bury that reason under
retries and log prefixes: kubectl prints five klog lines before "The connection to the server
127.0.0.1:6443 was refused". `explain` turns the common cases into a short phrase
(`cluster unreachable (127.0.0.1:6443)`); `first_error` picks the first meaningful line
otherwise. The raw output is kept beside it (`clip_output`) for `shield show`.
"""

from __future__ import annotations

import re

MAX_OUTPUT = 16 << 10  # characters of a failed command's raw output kept for `shield show`

# klog's prefix: severity, MMDD, time, pid, file:line]  (kubectl's and helm's client-go)
_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]")
_REFUSED = re.compile(r"The connection to the server (\S+?) was refused")
_DIAL = re.compile(r"dial tcp(?: (\d[\d.]*:\d+)|: lookup (\S+?) on [^:]+:\d+): (.+?)\s*$")
_GET_URL = re.compile(r'Get "https?://([^/"]+)')
_UNABLE = re.compile(r"Unable to connect to the server: (.+?)\s*$")
_ENDPOINT = re.compile(r'Could not connect to the endpoint URL: "([^"]+)"')
_AWS_ERROR = re.compile(
    r"An error occurred \((\w+)\)(?: \(reached max retries: \d+\))? when calling the (\w+) "
    r"operation(?: \([^)]*\))?: (.*)$"
)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def meaningful_lines(text: str) -> list[str]:
    """The lines of a tool's output that say something: no klog prefixes, no terraform box
    drawing, no blank lines."""
    out = []
    for line in text.splitlines():
        line = line.strip().strip("│").strip()
        if not line or line.startswith(("╷", "╵")) or _KLOG.match(line):
            continue
        out.append(line)
    return out


def first_error(err: str, out: str = "") -> str:
    """The first meaningful line of stderr (else stdout), or "no output"."""
    for text in (err, out):
        lines = meaningful_lines(text)
        if lines:
            return one_line(lines[0])
    return "no output"


def explain(tool: str, err: str, out: str = "") -> str | None:
    """A short phrase for a failure everyone recognises, or None."""
    text = f"{err}\n{out}"
    if tool in ("kubectl", "helm"):
        m = _REFUSED.search(text)
        if m:
            return f"cluster unreachable ({m.group(1)})"
        for line in text.splitlines():
            d = _DIAL.search(line)
            if d is None:
                continue
            host = d.group(1) or d.group(2)
            url = _GET_URL.search(line)
            where = url.group(1) if url else host
            why = d.group(3)
            if "connection refused" in why:
                return f"cluster unreachable ({where})"
            if "no such host" in why:
                return f"cluster unreachable ({where}: no such host)"
            if "timeout" in why:
                return f"cluster unreachable ({where}: timed out)"
            return f"cluster unreachable ({where}: {one_line(why, 80)})"
        m = _UNABLE.search(text)
        if m:
            return f"cluster unreachable ({one_line(m.group(1), 120)})"
    if tool == "aws":
        m = _ENDPOINT.search(text)
        if m:
            return f"endpoint unreachable ({m.group(1)})"
        if "Unable to locate credentials" in text:
            return "no aws credentials"
        for line in meaningful_lines(text):
            a = _AWS_ERROR.search(line)
            if a:
                return f"{a.group(1)} on {a.group(2)}: {one_line(a.group(3), 120)}"
    return None


def describe(tool: str, verb: str, code: int, err: str, out: str = "") -> str:
    """One line for a preview command that exited `code`."""
    known = explain(tool, err, out)
    if known:
        return known
    return f"{tool} {verb} exited {code}: {first_error(err, out)}".replace("  ", " ")


def clip_output(err: str, out: str = "") -> str:
    """A failed command's stderr and stdout as kept for `shield show` (at most MAX_OUTPUT
    characters, the head and the tail when longer)."""
    text = err if not out.strip() else (f"{err.rstrip()}\n{out}" if err.strip() else out)
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n... ({cut} characters left out) ...\n{text[-half:]}"
