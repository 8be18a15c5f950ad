"""Shell-style wildcards, `*` and `?` only (HOT, pure; `fnmatch` would import `re`)."""

from __future__ import annotations


def match(pattern: str, text: str) -> bool:
    """True when `text` matches `pattern` in full. `*` is any run, `?` any one character."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == text
    if "?" not in pattern:
        parts = pattern.split("*")
        if len(parts) == 2:
            head, tail = parts
            return len(text) >= len(head) + len(tail) and text.startswith(head) and text.endswith(tail)
    # iterative matcher with single backtrack point (linear in practice)
    p = t = 0
    star = -1
    mark = 0
    plen, tlen = len(pattern), len(text)
    while t < tlen:
        if p < plen and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < plen and pattern[p] == "*":
            star = p
            mark = t
            p += 1
        elif star != -1:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    while p < plen and pattern[p] == "*":
        p += 1
    return p == plen
