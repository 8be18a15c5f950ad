"""A rule's `examples:`, checked every time the rules are compiled (cold).

A rule that does not match its own `match` examples, or matches one of its `no_match`
examples, is refused like a syntax error (file:line).
"""

from __future__ import annotations

import shlex
from typing import Any

from shim.classify.argv import parse_argv
from shim.classify.decide import rule_matches
from shim.errors import RulesError
from shim.rules.yamlfile import key_line, line_of, only


class Example:
    """One example call of a rule: argv plus the world it is checked in."""

    def __init__(self, raw: Any, where: tuple[str, int]) -> None:
        if isinstance(raw, str):
            raw = {"argv": raw}
        if not isinstance(raw, dict) or "argv" not in raw:
            raise RulesError(
                "an example is a command line string or {argv:, context:, env:, agent:}", *where
            )
        only(raw, ("argv", "context", "env", "agent", "risk"), where)
        argv = raw["argv"]
        try:
            self.argv = shlex.split(argv) if isinstance(argv, str) else [str(a) for a in argv]
        except ValueError as exc:
            raise RulesError(f"example does not split like a shell line: {argv!r}", *where) from exc
        self.context = {str(k): str(v) for k, v in (raw.get("context") or {}).items()}
        self.env = {str(k): str(v) for k, v in (raw.get("env") or {}).items()}
        self.agent = str(raw.get("agent", "agent"))
        self.risk = str(raw["risk"]) if raw.get("risk") is not None else None
        self.line = line_of(raw, where[1])


def _examples_of(ex: dict, key: str, path: str, line: int) -> list[Example]:
    items = ex.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RulesError(f"examples: {key} must be a list", path, key_line(ex, key, line))
    lines = getattr(items, "item_lines", None) or []
    out = []
    for k, item in enumerate(items):
        at = lines[k] if k < len(lines) else key_line(ex, key, line)
        out.append(Example(item, (path, at)))
    return out


def rule_examples(rule: dict, path: str) -> tuple[list[Example], list[Example]]:
    ex = rule.get("_examples")
    line = int(rule["source"].rsplit(":", 1)[1])
    if ex is None:
        raise RulesError(
            f"rule {rule['id']}: 'examples' with 'match' (and ideally 'no_match') are required",
            path,
            line,
        )
    if not isinstance(ex, dict):
        raise RulesError(
            f"rule {rule['id']}: examples must be a mapping with match/no_match", path, line
        )
    only(ex, ("match", "no_match"), (path, line_of(ex, line)))
    pos = _examples_of(ex, "match", path, line)
    neg = _examples_of(ex, "no_match", path, line)
    if not pos:
        raise RulesError(
            f"rule {rule['id']}: at least one 'match' example is required", path, line_of(ex, line)
        )
    return pos, neg


def check_examples(tool: str, grammar: dict, rules: list[dict]) -> None:
    """Every example must (not) match its rule, or the layer is refused with file:line."""
    for rule in rules:
        path = rule["source"].rsplit(":", 1)[0]
        pos, neg = rule_examples(rule, path)
        for want, examples in ((True, pos), (False, neg)):
            for ex in examples:
                inv = parse_argv(grammar, ex.argv, ex.env)
                got = rule_matches(rule, inv, ex.context, ex.agent, ex.env, ex.risk)
                if got != want:
                    how = "should match but does not" if want else "should not match but does"
                    raise RulesError(
                        f"rule {rule['id']}: example {' '.join(ex.argv)!r} {how} "
                        f"(parsed as verb {' '.join(inv.verb) or '-'}, kind {inv.kind}"
                        f"{', ' + inv.note if inv.note else ''})",
                        path,
                        ex.line,
                    )
