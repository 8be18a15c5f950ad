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
from shim.rules.yamlfile import at, key_line, line_of, only, type_name, want_map, want_str


class Example:
    """One example call of a rule: argv plus the world it is checked in."""

    def __init__(self, raw: Any, where: tuple[str, int]) -> None:
        if isinstance(raw, str):
            raw = {"argv": raw}
        if not isinstance(raw, dict) or "argv" not in raw:
            raise RulesError(
                "an example is a command line string or {argv:, context:, env:, agent:}", *where
            )
        where = (where[0], line_of(raw, where[1]))
        only(raw, ("argv", "context", "env", "agent", "risk", "kinds"), where)
        argv = raw["argv"]
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            self.argv = list(argv)
        elif isinstance(argv, str):
            try:
                self.argv = shlex.split(argv)
            except ValueError as exc:
                raise RulesError(
                    f"example does not split like a shell line: {argv!r}", *where
                ) from exc
        else:
            raise RulesError(
                f"an example's argv is a command line or a list of words, not {type_name(argv)}",
                *at(raw, "argv", where),
            )
        self.context = _words(raw, "context", where)
        self.env = _words(raw, "env", where)
        self.agent = want_str(
            raw.get("agent", "agent"), "an example's agent", at(raw, "agent", where)
        )
        risk = raw.get("risk")
        self.risk = want_str(risk, "an example's risk", at(raw, "risk", where)) if risk else None
        self.line = where[1]
        # what the call's -f files hold (the compiler reads no files): "?" when not given
        kinds = raw.get("kinds")
        self.kinds: tuple[str, ...] | None = None
        if kinds is not None:
            items = [kinds] if isinstance(kinds, str) else kinds
            if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
                raise RulesError(
                    f"an example's kinds are the kinds its files hold, not {type_name(kinds)}",
                    *at(raw, "kinds", where),
                )
            self.kinds = tuple(items)


def _words(raw: dict, key: str, where: tuple[str, int]) -> dict[str, str]:
    """An example's `context:` or `env:`: names to words (numbers read as words)."""
    table = want_map(raw, key, f"an example's {key}", where)
    out: dict[str, str] = {}
    for name, value in table.items():
        kwhere = at(table, name, where)
        want_str(name, f"a name in an example's {key}", kwhere, empty=False)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        out[name] = want_str(value, f"example {key} {name}", kwhere)
    return out


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
                if ex.kinds is not None and inv.kinds:
                    inv.kinds = ex.kinds
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
