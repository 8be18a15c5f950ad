"""One rule of `rules:` -> the dict that shim.classify.decide matches (cold).

The match conditions (verb, flags, args, context, agent, env, kind, risk), the decision and
its reason, the preview a held call runs, the hold's timeout and a required reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shim.classify.invocation import ERROR, HELP, OK, UNKNOWN
from shim.errors import RulesError
from shim.rules.yamlfile import key_line, line_of, only

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
)
RISK_LEVELS = ("low", "medium", "high", "critical")  # shim.risk.LEVELS


def _is_star_literal_star(g: str) -> bool:
    mid = g[1:-1]
    return len(g) > 2 and g[0] == "*" and g[-1] == "*" and "*" not in mid and "?" not in mid


def _is_star_literal(g: str) -> bool:
    tail = g[1:]
    return len(g) > 1 and g[0] == "*" and "*" not in tail and "?" not in tail


def _globs(value: Any, where: tuple[str, int], what: str) -> tuple[str, ...]:
    if isinstance(value, (str, int, float, bool)) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return tuple(str(v) for v in value)
    raise RulesError(f"{what}: expected a string or a list of strings", *where)


def _condition(
    value: Any, where: tuple[str, int], what: str, allow_presence: bool
) -> tuple[str, tuple[str, ...]]:
    if allow_presence and value in ("present", "absent"):
        return str(value), ()
    if isinstance(value, dict):
        only(value, ("not", "any", "except", "present"), where)
        if "except" in value and "any" not in value:
            raise RulesError(f"{what}: 'except' goes with 'any'", *where)
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
    if isinstance(value, int):
        return value, value
    text = str(value).replace(" ", "")
    try:
        if text.startswith(">="):
            return int(text[2:]), -1
        if text.startswith("<="):
            return 0, int(text[2:])
        if "-" in text:
            lo, hi = text.split("-", 1)
            return int(lo), int(hi)
        return int(text), int(text)
    except ValueError as exc:
        raise RulesError(
            f"nargs: expected N, 'N-M', '>=N' or '<=N', got {value!r}", *where
        ) from exc


def compile_rule(raw: Any, tool: str, path: str, index: int) -> dict:
    line = line_of(raw)
    where = (path, line)
    if not isinstance(raw, dict):
        raise RulesError(f"rule #{index + 1} must be a mapping", *where)
    only(raw, _RULE_KEYS, where)
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RulesError("every rule needs an 'id' (for example kubectl/read)", *where)
    decision = raw.get("decision")
    if decision not in DECISIONS:
        where = (path, key_line(raw, "decision", line))
        raise RulesError(
            f"rule {rid}: decision must be one of allow, ask, deny (got {decision!r})", *where
        )
    if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
        raise RulesError(
            f"rule {rid}: a 'reason' is required (the agent and the approver read it)", *where
        )
    rule: dict[str, Any] = {
        "id": rid,
        "decision": decision,
        "reason": raw["reason"].strip(),
        "hint": str(raw.get("hint") or "").strip(),
        "source": f"{path}:{line}",
        "tool": tool,
    }
    if raw.get("timeout") is not None:
        try:
            rule["timeout"] = int(raw["timeout"])
        except (TypeError, ValueError) as exc:
            raise RulesError(f"rule {rid}: timeout must be whole seconds", *where) from exc
    if raw.get("preview") is not None:
        rule["preview"] = _preview_spec(raw["preview"], rid, (path, key_line(raw, "preview", line)))
    if raw.get("risk") is not None:
        if raw["risk"] not in RISK_LEVELS:
            raise RulesError(
                f"rule {rid}: risk must be one of {', '.join(RISK_LEVELS)} (got {raw['risk']!r})",
                path,
                key_line(raw, "risk", line),
            )
        rule["risk"] = raw["risk"]
    for key in ("require_reason", "grantable"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], bool):
                raise RulesError(
                    f"rule {rid}: {key} must be true or false", path, key_line(raw, key, line)
                )
            rule[key] = raw[key]
    if raw.get("mode") is not None:
        if raw["mode"] not in MODES:
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
    m = raw.get("match") or {}
    alts = m if isinstance(m, list) else [m]
    if not alts:
        raise RulesError(f"rule {rid}: match must not be an empty list", *where)
    rule["alts"] = tuple(_compile_match(a, rid, path, line) for a in alts)
    ex = raw.get("examples")
    rule["_examples"] = ex
    return rule


def _preview_spec(raw: Any, rid: str, where: tuple[str, int]) -> dict:
    """`preview: {kind: NAME, timeout: SECONDS}` (kinds: shim.preview.kinds())."""
    from shim.preview.kinds import MAX_TIMEOUT_S, kinds

    if not isinstance(raw, dict):
        raise RulesError(f"rule {rid}: preview must be a mapping {{kind, timeout}}", *where)
    only(raw, ("kind", "timeout"), where)
    kind = raw.get("kind")
    if kind not in kinds():
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
        text = str(item).replace(" ", "")
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
        raise RulesError(f"rule {rid}: match must be a mapping", *mwhere)
    only(m, _MATCH_KEYS, mwhere)
    if "risk" in m:
        rule["risk_in"] = _risk_levels(m["risk"], rid, mwhere)
    kinds = _globs(m.get("kind", "ok"), mwhere, "kind")
    for k in kinds:
        if k not in KINDS:
            raise RulesError(
                f"rule {rid}: kind must be among {', '.join(KINDS)} (got {k!r})", *mwhere
            )
    rule["kind"] = kinds
    if "verb" in m:
        rule.update(_verb_match(_globs(m["verb"], mwhere, "verb")))
    if "dry_run" in m:
        if not isinstance(m["dry_run"], bool):
            raise RulesError(f"rule {rid}: dry_run must be true or false", *mwhere)
        rule["dry_run"] = m["dry_run"]
    ic = m.get("ignore_case", False)
    if not isinstance(ic, bool):
        raise RulesError(f"rule {rid}: ignore_case must be true or false", *mwhere)
    rule["ignore_case"] = ic
    fold = (lambda pats: tuple(p.lower() for p in pats)) if ic else (lambda pats: pats)
    flags = []
    for name, cond in _mapping(m, "flags", rid, mwhere).items():
        op, pats = _condition(cond, mwhere, f"flag {name}", True)
        flags.append((str(name), op, fold(pats)))
    rule["flags"] = tuple(flags)
    args = []
    for idx, cond in _mapping(m, "args", rid, mwhere).items():
        if isinstance(idx, bool) or not isinstance(idx, (int, str)):
            raise RulesError(f"rule {rid}: args keys are positions (0, 1, -1)", *mwhere)
        try:
            i = int(idx)
        except ValueError as exc:
            raise RulesError(f"rule {rid}: args keys are positions (0, 1, -1)", *mwhere) from exc
        op, pats = _positional(cond, rid, mwhere, f"arg {idx}")
        args.append((i, op, fold(pats)))
    rule["args"] = tuple(args)
    if "nargs" in m:
        rule["nargs"] = _nargs(m["nargs"], mwhere)
    rule.update(_word_match(m, rid, mwhere, fold))
    ctx = []
    for key, cond in _mapping(m, "context", rid, mwhere).items():
        ctx.append((str(key), *_positional(cond, rid, mwhere, f"context {key}")))
    rule["context"] = tuple(ctx)
    if "agent" in m:
        rule["agent"] = _globs(m["agent"], mwhere, "agent")
    env: list[tuple[str, str, tuple[str, ...]]] = []
    for var, cond in _mapping(m, "env", rid, mwhere).items():
        if cond in ("present", "absent"):
            env.append((str(var), str(cond), ()))
        else:
            env.append((str(var), "glob", _globs(cond, mwhere, f"env {var}")))
    rule["env"] = tuple(env)
    return rule


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
        if key == "any_arg" and isinstance(raw, dict):
            # {any: [..], except: [..]}: some word matches `any` and none of `except`
            only(raw, ("any", "except"), where)
            if "any" not in raw:
                raise RulesError(f"rule {rid}: any_arg as a mapping needs 'any'", *where)
            out["any_arg_except"] = fold(_globs(raw.get("except", []), where, "any_arg except"))
            raw = raw["any"]
        out[key] = fold(_globs(raw, where, key))
    return out
