"""Shell-style wildcards, `*` and `?` only (HOT, pure; `fnmatch` would import `re`)."""


def match(pattern: str, text: str) -> bool:
    """True when `text` matches `pattern` in full. `*` is any run, `?` any one character."""
    if "*" not in pattern:
        if "?" not in pattern:
            return pattern == text
    elif "?" not in pattern:
        # `*` only: the head must start the text, the tail end it, and the pieces between
        # appear in order; taking each piece at its first place is always right
        parts = pattern.split("*")
        head, tail = parts[0], parts[-1]
        end = len(text) - len(tail)
        if end < len(head) or not text.startswith(head) or not text.endswith(tail):
            return False
        at = len(head)
        for piece in parts[1:-1]:
            if piece:
                at = text.find(piece, at, end)
                if at < 0:
                    return False
                at += len(piece)
        return True
    # iterative matcher with a single backtrack point (linear in practice)
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
