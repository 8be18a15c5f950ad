"""Rendered Kubernetes manifests, split by object and compared (pure)."""

from __future__ import annotations

import difflib
import re


def split_manifest(text: str) -> dict[str, str]:
    """A rendered manifest -> {"Kind/name": document}. Documents without a kind keep their
    `# Source:` comment (or position) as the key."""
    docs: dict[str, str] = {}
    cur: list[str] = []

    def flush() -> None:
        body = "\n".join(cur).strip("\n")
        cur.clear()
        if not body.strip():
            return
        kind = name = source = ""
        in_meta = False
        for ln in body.splitlines():
            if ln.startswith("# Source:"):
                source = ln[len("# Source:") :].strip()
            elif ln.startswith("kind:"):
                kind = ln[5:].strip().strip("'\"")
            elif ln.startswith("metadata:"):
                in_meta = True
            elif in_meta and ln[:1] not in (" ", "\t", "") and not ln.startswith("#"):
                in_meta = False
            elif in_meta and not name:
                m = re.match(r"^(\s+)name:\s*(.+)$", ln)
                if m and len(m.group(1)) <= 4:
                    name = m.group(2).strip().strip("'\"")
        key = f"{kind}/{name}" if kind else (source or f"document {len(docs) + 1}")
        while key in docs:
            key += "'"
        docs[key] = "\n".join(ln for ln in body.splitlines() if not ln.startswith("# Source:"))

    for line in text.splitlines():
        if line.rstrip() == "---":
            flush()
        else:
            cur.append(line)
    flush()
    return docs


def diff_manifests(old: str, new: str) -> tuple[dict[str, int], list[str]]:
    """Object-level diff of two rendered manifests: counts and one line per object."""
    a, b = split_manifest(old), split_manifest(new)
    counts = {"create": 0, "update": 0, "delete": 0, "lines_added": 0, "lines_removed": 0}
    lines: list[str] = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key), b.get(key)
        if before == after:
            continue
        plus = minus = 0
        for d in difflib.unified_diff(
            (before or "").splitlines(), (after or "").splitlines(), lineterm="", n=0
        ):
            if d.startswith("+") and not d.startswith("+++"):
                plus += 1
            elif d.startswith("-") and not d.startswith("---"):
                minus += 1
        counts["lines_added"] += plus
        counts["lines_removed"] += minus
        if before is None:
            counts["create"] += 1
            lines.append(f"+ {key} (+{plus})")
        elif after is None:
            counts["delete"] += 1
            lines.append(f"- {key} (-{minus})")
        else:
            counts["update"] += 1
            lines.append(f"~ {key} (+{plus} -{minus})")
    return counts, lines
