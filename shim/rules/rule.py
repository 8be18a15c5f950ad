"""One rule of `rules:` -> the dict that shim.classify.decide matches (cold).

The match conditions (verb, flags, args, context, agent, env, kind, risk), the decision and
its reason, the preview a held call runs, the hold's timeout and a required reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN
from shim.errors import RulesError
from shim.rules.yamlfile import (
    at,
    key_line,
    line_of,
    only,
    type_name,
    want_bool,
    want_int,
    want_str,
)

DECISIONS = ("allow", "ask", "deny")
MODES = ("enforce", "warn", "observe")
KINDS = (OK, HELP, UNKNOWN, ERROR)

_MATCH_KEYS = (
    "kind",
    "verb",
    "dry_run",
    "flags",
    "args",
    "nargs",
    "any_arg",
    "no_arg",
    "ignore_case",
    "context",
    "agent",
    "env",
    "risk",
    "file_kinds",
)
_RULE_KEYS = (
    "id",
    "decision",
    "reason",
    "hint",
    "timeout",
    "match",
    "examples",
    "preview",
    "risk",
    "require_reason",
    "mode",
    "grantable",
    "approvals",
)
MAX_APPROVALS = 10  # shim.approval.wait.MAX_APPROVALS
RISK_LEVELS = ("low", "medium", "high", "critical")  # shim.risk.LEVELS


def _is_star_literal_star(g: str) -> bool:
    mid = g[1:-1]
    return len(g) > 2 and g[0] == "*" and g[-1] == "*" and "*" not in mid and "?" not in mid


def _is_star_literal(g: str) -> bool:
    tail = g[1:]
    return len(g) > 1 and g[0] == "*" and "*" not in tail and "?" not in tail


def _word(value: Any) -> str | None:
    """A pattern written as a YAML scalar: a bare true/false stands for the word."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _globs(value: Any, where: tuple[str, int], what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    words = [_word(v) for v in items]
    if not items or any(w is None for w in words):
        raise RulesError(
            f"{what}: expected a string or a list of strings, not {type_name(value)}", *where
        )
    return tuple(w for w in words if w is not None)


def _condition(
    value: Any, where: tuple[str, int], what: str, allow_presence: bool
) -> tuple[str, tuple[str, ...]]:
    if allow_presence and isinstance(value, str) and value in ("present", "absent"):
        return value, ()
    if isinstance(value, dict):
        where = (where[0], line_of(value, where[1]))
        only(value, ("not", "any", "except", "present"), where)
        if "except" in value and "any" not in value:
            raise RulesError(f"{what}: 'except' goes with 'any'", *where)
        if "present" in value:
            if not allow_presence:
                raise RulesError(f"{what}: 'present' works on flags only", *where)
            want_bool(value["present"], f"{what}: present", at(value, "present", where))
        if "not" in value and "any" in value:
            raise RulesError(f"{what}: use 'not' or 'any', not both", *where)
        if "not" in value:
            op = "present_not" if value.get("present") else "not"
            return op, _globs(value["not"], where, what)
        if "any" in value:
            if "except" in value:
                # some value matches `any` and none of `except`: kept as (any..., NUL,
                # except...); argv strings cannot hold a NUL, so no pattern is one
                keep = _globs(value["any"], where, what)
                skip = _globs(value["except"], where, what)
                return "any_except", keep + ("\x00",) + skip
            return "any", _globs(value["any"], where, what)
        if allow_presence and isinstance(value.get("present"), bool):
            return ("present" if value["present"] else "absent"), ()
        raise RulesError(f"{what}: a mapping condition needs 'not', 'any' or 'present'", *where)
    return "last" if allow_presence else "glob", _globs(value, where, what)


def _nargs(value: Any, where: tuple[str, int]) -> tuple[int, int]:
    bad = RulesError(f"nargs: expected N, 'N-M', '>=N' or '<=N', not {type_name(value)}", *where)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise bad
    if isinstance(value, int):
        if value < 0:
            raise bad
        return value, value
    text = value.replace(" ", "")
    try:
        if text.startswith(">="):
            lo, hi = int(text[2:]), -1
        elif text.startswith("<="):
            lo, hi = 0, int(text[2:])
        elif "-" in text[1:]:
            first, rest = text.split("-", 1) if text[0] != "-" else ("-", text[1:])
            lo, hi = int(first), int(rest)
        else:
            lo = hi = int(text)
    except ValueError as exc:
        raise bad from exc
    if lo < 0 or (hi != -1 and hi < lo):
        raise bad
    return lo, hi


def compile_rule(raw: Any, tool: str, path: str, index: int, line: int = 1) -> dict:
    line = line_of(raw, line)
    where = (path, line)
    if not isinstance(raw, dict):
        raise RulesError(f"rule #{index + 1} must be a mapping, not {type_name(raw)}", *where)
    only(raw, _RULE_KEYS, where)
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RulesError("every rule needs an 'id' (for example kubectl/read)", *where)
    decision = raw.get("decision")
    if not isinstance(decision, str) or decision not in DECISIONS:
        where = (path, key_line(raw, "decision", line))
        raise RulesError(
            f"rule {rid}: decision must be one of allow, ask, deny (got {decision!r})", *where
        )
    if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
        raise RulesError(
            f"rule {rid}: a 'reason' is required (the agent and the approver read it)",
            *at(raw, "reason", where),
        )
    hint = raw.get("hint")
    if hint is not None:
        want_str(hint, f"rule {rid}: hint", at(raw, "hint", where))
    rule: dict[str, Any] = {
        "id": rid,
        "decision": decision,
        "reason": raw["reason"].strip(),
        "hint": (hint or "").strip(),
        "source": f"{path}:{line}",
        "tool": tool,
    }
    if raw.get("timeout") is not None:
        rule["timeout"] = want_int(
            raw["timeout"], f"rule {rid}: timeout (seconds)", at(raw, "timeout", where), low=1
        )
    if raw.get("preview") is not None:
        rule["preview"] = _preview_spec(raw["preview"], rid, (path, key_line(raw, "preview", line)))
    if raw.get("risk") is not None:
        if not isinstance(raw["risk"], str) or raw["risk"] not in RISK_LEVELS:
            raise RulesError(
                f"rule {rid}: risk must be one of {', '.join(RISK_LEVELS)} (got {raw['risk']!r})",
                path,
                key_line(raw, "risk", line),
            )
        rule["risk"] = raw["risk"]
    for key in ("require_reason", "grantable"):
        if raw.get(key) is not None:
            rule[key] = want_bool(raw[key], f"rule {rid}: {key}", at(raw, key, where))
    if raw.get("mode") is not None:
        if not isinstance(raw["mode"], str) or raw["mode"] not in MODES:
            raise RulesError(
                f"rule {rid}: mode must be one of {', '.join(MODES)} (got {raw['mode']!r})",
                path,
                key_line(raw, "mode", line),
            )
        if raw["mode"] != "enforce" and decision == "allow":
            raise RulesError(
                f"rule {rid}: mode applies to ask and deny rules (an allow rule only allows)",
                path,
                key_line(raw, "mode", line),
            )
        if raw["mode"] != "enforce":
            rule["mode"] = raw["mode"]
    if raw.get("approvals") is not None:
        rule["approvals"] = _approvals(raw, rid, decision, (path, key_line(raw, "approvals", line)))
    m = raw.get("match")
    mline = key_line(raw, "match", line)
    if m is None:
        m = {}
    if not isinstance(m, (dict, list)):
        raise RulesError(
            f"rule {rid}: match must be a mapping or a list of them, not {type_name(m)}",
            path,
            mline,
        )
    alts = m if isinstance(m, list) else [m]
    if not alts:
        raise RulesError(f"rule {rid}: match must not be an empty list", path, mline)
    lines = getattr(m, "item_lines", None) or []
    rule["alts"] = tuple(
        _compile_match(a, rid, path, lines[k] if k < len(lines) else mline)
        for k, a in enumerate(alts)
    )
    ex = raw.get("examples")
    rule["_examples"] = ex
    return rule


def _approvals(raw: dict, rid: str, decision: str, where: tuple[str, int]) -> int:
    """`approvals: N`: how many distinct approvers must sign a held call (ask rules only)."""
    value = raw["approvals"]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_APPROVALS:
        raise RulesError(
            f"rule {rid}: approvals must be a whole number from 1 to {MAX_APPROVALS} "
            f"(got {value!r})",
            *where,
        )
    if decision != "ask":
        raise RulesError(f"rule {rid}: approvals applies to ask rules only", *where)
    return value


def _preview_spec(raw: Any, rid: str, where: tuple[str, int]) -> dict:
    """`preview: {kind: NAME, timeout: SECONDS}` (kinds: shim.preview.kinds())."""
    from shim.preview.kinds import MAX_TIMEOUT_S, kinds

    if not isinstance(raw, dict):
        raise RulesError(f"rule {rid}: preview must be a mapping {{kind, timeout}}", *where)
    only(raw, ("kind", "timeout"), where)
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in kinds():
        raise RulesError(
            f"rule {rid}: preview kind must be one of {', '.join(kinds())} (got {kind!r})", *where
        )
    spec: dict[str, Any] = {"kind": kind}
    if raw.get("timeout") is not None:
        timeout = raw["timeout"]
        if (
            not isinstance(timeout, int)
            or isinstance(timeout, bool)
            or not 1 <= timeout <= MAX_TIMEOUT_S
        ):
            raise RulesError(
                f"rule {rid}: preview timeout must be whole seconds, 1 to {MAX_TIMEOUT_S}", *where
            )
        spec["timeout"] = timeout
    return spec


def _risk_levels(value: Any, rid: str, where: tuple[str, int]) -> tuple[str, ...]:
    """`risk: ">=high"`, `risk: critical` or `risk: [high, critical]` -> the levels that match.

    Risk exists only for held calls, once their preview ran: a rule with a risk condition is
    decided again then (shim/ask.py) and never matches before."""
    levels = RISK_LEVELS
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            break
        text = item.replace(" ", "")
        if text.startswith(">="):
            name = text[2:]
            if name not in levels:
                break
            out.extend(levels[levels.index(name) :])
        elif text in levels:
            out.append(text)
        else:
            break
    else:
        return tuple(dict.fromkeys(out))
    raise RulesError(
        f"rule {rid}: risk must be a level ({', '.join(levels)}), '>=LEVEL', or a list of levels",
        *where,
    )


def _compile_match(m: Any, rid: str, path: str, line: int) -> dict:
    """One alternative of a rule's `match`: every condition in it must hold."""
    rule: dict[str, Any] = {}
    mwhere = (path, line_of(m, line))
    if not isinstance(m, dict):
        raise RulesError(f"rule {rid}: match must be a mapping, not {type_name(m)}", *mwhere)
    only(m, _MATCH_KEYS, mwhere)
    if "risk" in m:
        rule["risk_in"] = _risk_levels(m["risk"], rid, at(m, "risk", mwhere))
    kinds = _globs(m.get("kind", "ok"), at(m, "kind", mwhere), "kind")
    for k in kinds:
        if k not in KINDS:
            raise RulesError(
                f"rule {rid}: kind must be among {', '.join(KINDS)} (got {k!r})",
                *at(m, "kind", mwhere),
            )
    rule["kind"] = kinds
    if "verb" in m:
        rule.update(_verb_match(_globs(m["verb"], at(m, "verb", mwhere), "verb")))
    if "dry_run" in m:
        rule["dry_run"] = want_bool(m["dry_run"], f"rule {rid}: dry_run", at(m, "dry_run", mwhere))
    ic = m.get("ignore_case", False)
    want_bool(ic, f"rule {rid}: ignore_case", at(m, "ignore_case", mwhere))
    rule["ignore_case"] = ic
    fold = (lambda pats: tuple(p.lower() for p in pats)) if ic else (lambda pats: pats)
    flags = []
    table = _mapping(m, "flags", rid, mwhere)
    for name, cond in table.items():
        fwhere = at(table, name, mwhere)
        if not isinstance(name, str) or not name.startswith("-"):
            raise RulesError(f"rule {rid}: a flag name starts with '-', got {name!r}", *fwhere)
        op, pats = _condition(cond, fwhere, f"flag {name}", True)
        flags.append((name, op, fold(pats)))
    rule["flags"] = tuple(flags)
    args = []
    table = _mapping(m, "args", rid, mwhere)
    for idx, cond in table.items():
        awhere = at(table, idx, mwhere)
        i = _position(idx)
        if i is None:
            raise RulesError(
                f"rule {rid}: args keys are positions (0, 1, -1), got {idx!r}", *awhere
            )
        op, pats = _positional(cond, rid, awhere, f"arg {idx}")
        args.append((i, op, fold(pats)))
    rule["args"] = tuple(args)
    if "nargs" in m:
        rule["nargs"] = _nargs(m["nargs"], at(m, "nargs", mwhere))
    rule.update(_word_match(m, rid, mwhere, fold))
    ctx = []
    table = _mapping(m, "context", rid, mwhere)
    for key, cond in table.items():
        cwhere = at(table, key, mwhere)
        want_str(key, f"rule {rid}: a context key", cwhere, empty=False)
        ctx.append((key, *_positional(cond, rid, cwhere, f"context {key}")))
    rule["context"] = tuple(ctx)
    if "agent" in m:
        rule["agent"] = _globs(m["agent"], at(m, "agent", mwhere), "agent")
    if "file_kinds" in m:
        # kinds compare without case, as kubectl's decoder matches `kind` keys
        pats = _globs(m["file_kinds"], at(m, "file_kinds", mwhere), "file_kinds")
        rule["file_kinds"] = tuple(p.lower() for p in pats)
    env: list[tuple[str, str, tuple[str, ...]]] = []
    table = _mapping(m, "env", rid, mwhere)
    for var, cond in table.items():
        ewhere = at(table, var, mwhere)
        want_str(var, f"rule {rid}: an env variable name", ewhere, empty=False)
        if isinstance(cond, str) and cond in ("present", "absent"):
            env.append((var, cond, ()))
        else:
            env.append((var, "glob", _globs(cond, ewhere, f"env {var}")))
    rule["env"] = tuple(env)
    return rule


def _position(idx: Any) -> int | None:
    """An `args:` key: a position (0, 1, -1), also written as a string."""
    if isinstance(idx, bool):
        return None
    if isinstance(idx, int):
        return idx
    if isinstance(idx, str):
        try:
            return int(idx)
        except ValueError:
            return None
    return None


def _mapping(m: dict, key: str, rid: str, where: tuple[str, int]) -> dict:
    """`m[key]` when it is a mapping (or absent: {}); a file:line error otherwise."""
    value = m.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(
            f"rule {rid}: {key} must be a mapping (for example {key}: {{NAME: PATTERN}}), "
            f"not {type(value).__name__}",
            where[0],
            key_line(m, key, where[1]),
        )
    return value


def _positional(
    cond: Any, rid: str, where: tuple[str, int], what: str
) -> tuple[str, tuple[str, ...]]:
    """A condition on one value (an argument, a context key): globs, `not`, or `any`."""
    op, pats = _condition(cond, where, what, False)
    if op == "any_except":
        raise RulesError(f"rule {rid}: 'except' works on flags and any_arg", *where)
    return ("glob" if op == "any" else op), pats


def _verb_match(verbs: tuple[str, ...]) -> dict[str, Any]:
    """The verb globs, and the same split for speed: plain verb paths are a set lookup, globs
    whose first word is literal are tried only on calls with that word, `*MID*` is "MID
    occurs" and `*TAIL` is "ends with TAIL" (aws: `* create-*`)."""
    globs = tuple(v for v in verbs if "*" in v or "?" in v)
    first: dict[str, list[str]] = {}
    anywhere: list[str] = []
    for g in globs:
        head, sep, _ = g.partition(" ")
        if sep and "*" not in head and "?" not in head:
            first.setdefault(head, []).append(g)
        else:
            anywhere.append(g)
    return {
        "verb": verbs,
        "verb_set": frozenset(v for v in verbs if "*" not in v and "?" not in v),
        "verb_globs": globs,
        "verb_globs_first": {k: tuple(v) for k, v in first.items()},
        "verb_contains": tuple(g[1:-1] for g in anywhere if _is_star_literal_star(g)),
        "verb_suffixes": tuple(g[1:] for g in anywhere if _is_star_literal(g)),
        "verb_globs_any": tuple(
            g for g in anywhere if not _is_star_literal_star(g) and not _is_star_literal(g)
        ),
    }


def _word_match(
    m: dict, rid: str, where: tuple[str, int], fold: Callable[[tuple[str, ...]], tuple[str, ...]]
) -> dict[str, Any]:
    """`any_arg` (some word matches; `{any, except}` as a mapping) and `no_arg`."""
    out: dict[str, Any] = {}
    for key in ("any_arg", "no_arg"):
        if key not in m:
            continue
        raw = m[key]
        kwhere = at(m, key, where)
        if key == "any_arg" and isinstance(raw, dict):
            # {any: [..], except: [..]}: some word matches `any` and none of `except`
            only(raw, ("any", "except"), kwhere)
            if "any" not in raw:
                raise RulesError(f"rule {rid}: any_arg as a mapping needs 'any'", *kwhere)
            skip = raw.get("except")
            skip = [] if skip is None or skip == [] else _globs(skip, kwhere, "any_arg except")
            out["any_arg_except"] = fold(tuple(skip))
            raw = raw["any"]
        out[key] = fold(_globs(raw, kwhere, key))
    return out
