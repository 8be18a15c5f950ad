"""(Invocation, compiled rules, context) -> Decision (HOT, pure).

Every rule of every layer is tried; among the rules that match, the most restrictive decision
wins (deny > ask > allow); no match is ask. A rule matches only invocations of the kinds it
names (default: parsed, not help); so help, unknown verbs and parse errors fall through to the
rules written for them, or to ask.
"""

from shim.classify.glob import match
from shim.classify.invocation import Invocation

ALLOW = "allow"
ASK = "ask"
DENY = "deny"
RANK = {ALLOW: 0, ASK: 1, DENY: 2}
ENFORCE = "enforce"
WARN = "warn"
OBSERVE = "observe"
UNRESOLVED = ("", "?", "*", None)  # "*": every namespace (kubectl -A)


class Decision:
    __slots__ = (
        "require_reason",
        "mode",
        "policy",
        "policy_rule",
        "policy_reason",
        "grantable",
        "decision",
        "rule",
        "reason",
        "hint",
        "matched",
        "timeout",
        "invocation",
        "context",
    )

    def __init__(
        self,
        decision: str,
        rule: str | None,
        reason: str,
        hint: str,
        matched: list[dict[str, str]],
        timeout: int | None,
        invocation: Invocation,
        context: dict[str, str],
    ) -> None:
        self.decision = decision
        self.rule = rule
        self.reason = reason
        self.hint = hint
        self.matched = matched
        self.timeout = timeout
        self.invocation = invocation
        self.context = context
        self.require_reason = False  # an approval needs a reason (a matched rule says so)
        # a stricter decision of a rule in warn or observe mode (the call is not held or
        # refused for it, but the log keeps it); None when the enforced decision is the policy's
        self.policy: str | None = None
        self.policy_rule: str | None = None
        self.policy_reason = ""
        self.mode = ENFORCE  # that rule's mode
        self.grantable = True  # False when a matched restrictive rule says `grantable: false`

    def observed(self) -> dict[str, object]:
        """Log fields for a stricter rule in warn or observe mode ({} when there is none)."""
        if self.policy is None:
            return {}
        return {"policy": self.policy, "policy_rule": self.policy_rule, "mode": self.mode}

    def as_dict(self) -> dict[str, object]:
        inv = self.invocation
        return {
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "hint": self.hint,
            "tool": inv.tool,
            "verb": list(inv.verb),
            "kind": inv.kind,
            "dry_run": inv.dry_run,
            "context": dict(self.context),
            "matched": list(self.matched),
            "timeout": self.timeout,
            "require_reason": self.require_reason,
            "mode": self.mode,
            "policy": self.policy,
            "policy_rule": self.policy_rule,
            "grantable": self.grantable,
            "argv": list(inv.argv),
        }


def _any(patterns: tuple[str, ...], text: str) -> bool:
    for pat in patterns:  # noqa: SIM110 - hot path: a plain loop beats any() over a generator
        if match(pat, text):
            return True
    return False


def _contains_any(parts: tuple[str, ...], text: str) -> bool:
    for part in parts:  # noqa: SIM110 - hot path
        if part in text:
            return True
    return False


def _fold(text: str, ignore_case: bool) -> str:
    return text.lower() if ignore_case else text


def _words(inv: Invocation) -> list[str]:
    out: list[str] = []
    for w in inv.words:
        out.append(w)
        if "," in w:
            out.extend(p for p in w.split(",") if p)
    return out


def rule_matches(
    rule: dict,
    inv: Invocation,
    context: dict[str, str],
    agent: str,
    env: dict[str, str],
    risk: str | None = None,
) -> bool:
    """True when every condition of one of the rule's alternatives holds for this call.

    `risk` is known only for a held call after its preview; a risk condition never matches
    without it. The kind, dry-run and verb tests run here, in the loop: most alternatives fail
    one of them, and a call per alternative is what classification time goes to."""
    restrictive = rule["decision"] != ALLOW
    kind = inv.kind
    dry = inv.dry_run
    path = inv.memo.get("path")
    if path is None:
        path = inv.memo["path"] = " ".join(inv.verb)
    for cond in rule["alts"]:
        if kind not in cond.get("kind", _OK_ONLY):
            continue
        want_dry = cond.get("dry_run")
        if want_dry is not None and dry != want_dry:
            continue
        plain = cond.get("verb_set")
        if plain is not None:
            if path not in plain and not _verb_glob(cond, path):
                continue
        else:
            verbs = cond.get("verb")
            if verbs is not None and not _any(verbs, path):
                continue
        levels = cond.get("risk_in")
        if levels is not None and risk not in levels:
            continue
        if _cond_matches(cond, restrictive, inv, context, agent, env):
            return True
    return False


_OK_ONLY = ("ok",)


def _verb_glob(cond: dict, path: str) -> bool:
    """The glob part of a compiled `verb` list (the plain paths were a set lookup)."""
    by_first = cond.get("verb_globs_first")
    if by_first is None:  # compiled before the split
        return _any(cond["verb_globs"], path)
    return (
        _contains_any(cond["verb_contains"], path)
        or bool(cond["verb_suffixes"] and path.endswith(cond["verb_suffixes"]))
        or _any(by_first.get(path.partition(" ")[0], ()), path)
        or _any(cond["verb_globs_any"], path)
    )


def _flag_holds(op: str, pats: tuple[str, ...], vals: list[str] | None, ic: bool) -> bool:
    """One flag condition, given the flag's values in order (None: not given)."""
    if not vals:
        return op in ("absent", "not")
    if op == "last":
        return _any(pats, _fold(vals[-1], ic))
    if op == "any":
        return any(_any(pats, _fold(v, ic)) for v in vals)
    if op == "not" or op == "present_not":
        return not _any(pats, _fold(vals[-1], ic))
    if op == "any_except":
        cut = pats.index("\x00")
        keep, skip = pats[:cut], pats[cut + 1 :]
        return any(_any(keep, f) and not _any(skip, f) for f in (_fold(v, ic) for v in vals))
    return op != "absent"  # present


def _words_hold(rule: dict, inv: Invocation, ic: bool) -> bool:
    """`any_arg` (some word matches, none of `any_arg_except`) and `no_arg` (no word does)."""
    key = "words_lower" if ic else "words"
    words = inv.memo.get(key)
    if words is None:
        words = [_fold(w, ic) for w in _words(inv)]
        inv.memo[key] = words
    any_arg = rule.get("any_arg")
    skip = rule.get("any_arg_except") or ()
    if any_arg is not None and not any(
        _any(any_arg, w) and not (skip and _any(skip, w)) for w in words
    ):
        return False
    no_arg = rule.get("no_arg")
    return not (no_arg is not None and any(_any(no_arg, w) for w in words))


def _kinds_hold(patterns: tuple[str, ...], kinds: tuple[str, ...], restrictive: bool) -> bool:
    """`file_kinds`, read the worst way (like an unresolved context): a restrictive rule
    holds when some object from a file has a matching kind or one whose kind is unknown
    ("?"); an allow rule only when every object's kind is known and matches. A call that
    names no files holds neither."""
    if not kinds:
        return False
    for kind in kinds:
        hit = kind != "?" and _any(patterns, kind.lower())
        if restrictive and (hit or kind == "?"):
            return True
        if not restrictive and not hit:
            return False
    return not restrictive


def _cond_matches(
    rule: dict,
    restrictive: bool,
    inv: Invocation,
    context: dict[str, str],
    agent: str,
    env: dict[str, str],
) -> bool:
    """The conditions of one alternative past kind, dry run and verb (rule_matches tests those)."""
    ic = rule.get("ignore_case", False)
    for name, op, pats in rule.get("flags", ()):
        if not _flag_holds(op, pats, inv.flags.get(name), ic):
            return False
    nargs = rule.get("nargs")
    if nargs is not None:
        lo, hi = nargs
        if len(inv.args) < lo or (hi >= 0 and len(inv.args) > hi):
            return False
    for idx, op, pats in rule.get("args", ()):
        if idx >= len(inv.args) or -idx > len(inv.args):
            if op == "glob":
                return False
            continue
        hit = _any(pats, _fold(inv.args[idx], ic))
        if (op == "glob") != hit:
            return False
    if ("any_arg" in rule or "no_arg" in rule) and not _words_hold(rule, inv, ic):
        return False
    for key, op, pats in rule.get("context", ()):
        value = context.get(key)
        if value in UNRESOLVED:
            # an unknown target: restrictive rules assume the worst, allow rules do not apply
            if not restrictive:
                return False
            continue
        hit = _any(pats, str(value))
        if (op == "glob") != hit:
            return False
    file_kinds = rule.get("file_kinds")
    if file_kinds is not None and not _kinds_hold(file_kinds, inv.kinds, restrictive):
        return False
    agents = rule.get("agent")
    if agents is not None and not _any(agents, agent):
        return False
    for var, op, pats in rule.get("env", ()):
        val = env.get(var)
        if op == "present":
            if not val:
                return False
        elif op == "absent":
            if val:
                return False
        elif val is None or not _any(pats, val):
            return False
    return True


def decide(
    inv: Invocation,
    rules: list[dict] | tuple[dict, ...],
    context: dict[str, str] | None = None,
    agent: str = "",
    env: dict[str, str] | None = None,
    risk: str | None = None,
) -> Decision:
    """The decision for one call: the most restrictive matching rule, else ask.

    Rules in warn or observe mode (`mode:` on an ask or deny rule) do not take part in the
    decision; when one of them is stricter than it, the Decision carries it as `policy`."""
    context = context or {}
    env = env or {}
    best: dict | None = None  # among enforcing rules
    lenient: dict | None = None  # among rules in warn or observe mode
    matched: list[dict[str, str]] = []
    need_reason = False
    grantable = True
    for rule in rules:
        if rule_matches(rule, inv, context, agent, env, risk):
            matched.append({"id": rule["id"], "decision": rule["decision"]})
            if "mode" in rule:
                if lenient is None or RANK[rule["decision"]] > RANK[lenient["decision"]]:
                    lenient = rule
                continue
            need_reason = need_reason or bool(rule.get("require_reason"))
            if rule.get("grantable") is False and rule["decision"] != ALLOW:
                grantable = False
            if best is None or RANK[rule["decision"]] > RANK[best["decision"]]:
                best = rule
    if best is None:
        d = Decision(
            ASK, None, _no_match_reason(inv), _no_match_hint(inv), matched, None, inv, context
        )
    else:
        d = Decision(
            best["decision"],
            best["id"],
            best.get("reason", ""),
            best.get("hint", ""),
            matched,
            best.get("timeout"),
            inv,
            context,
        )
    d.require_reason = need_reason
    d.grantable = grantable
    if lenient is not None and RANK[lenient["decision"]] > RANK[d.decision]:
        d.policy = lenient["decision"]
        d.policy_rule = lenient["id"]
        d.policy_reason = lenient.get("reason", "")
        d.mode = lenient["mode"]
    return d


def _no_match_reason(inv: Invocation) -> str:
    if inv.kind == "unknown":
        return f"{inv.note}: shield cannot tell what it does, so a human decides"
    if inv.kind == "error":
        return f"the command line does not parse ({inv.note}), so a human decides"
    return f"no rule covers '{inv.tool} {' '.join(inv.verb)}', so a human decides"


def _no_match_hint(inv: Invocation) -> str:
    return "wait for the decision; do not retry with another spelling"
