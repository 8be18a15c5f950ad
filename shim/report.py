"""Replay logged calls through a rule set: what it would allow, ask and deny (cold, pure).

`replay(entries, compiled)` takes the log's entries (as `shim.log.verify.read_entries` yields
them) and the compiled rules per tool, and decides every logged call again with the argv,
agent and resolved context the log recorded. The environment is not logged, so rules on
environment variables are replayed as if only HOME were set (the call's own environment is
not known); the context is taken from the log, not resolved again, so a kubeconfig edited
since changes nothing.

A call's recorded decision is what the policy decided at the time (`policy` for calls that ran
under warn or observe mode or under a grant, else `decision`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from shim.classify.argv import parse_argv
from shim.classify.decide import ASK, decide
from shim.clock import parse_iso

CALL_EVENTS = ("call", "granted")
GRANT_WINDOW_S = 15 * 60
DECISIONS = ("allow", "ask", "deny")
REPLAY_ENV = {"HOME": "/nonexistent"}


def recorded(entry: dict) -> str:
    return str(entry.get("policy") or entry.get("decision") or "")


def replay(entries: list[dict], compiled: dict[str, dict]) -> dict[str, Any]:
    """The report as a plain dict (the JSON shape of `shield report --json`)."""
    by_rule: dict[str, Counter] = defaultdict(Counter)
    by_agent: dict[str, Counter] = defaultdict(Counter)
    prompts: Counter = Counter()
    changed: list[dict] = []
    asks: list[tuple[float, str, str, str]] = []  # (time, agent, rule, target) for grants
    times: list[float] = []
    skipped = 0
    for e in entries:
        if e.get("event") not in CALL_EVENTS:
            continue
        tool, argv = str(e.get("tool") or ""), e.get("argv")
        if tool not in compiled or not isinstance(argv, list):
            skipped += 1
            continue
        context = e.get("context") if isinstance(e.get("context"), dict) else {}
        agent = str(e.get("agent") or "")
        inv = parse_argv(compiled[tool]["grammar"], [str(a) for a in argv], REPLAY_ENV)
        d = decide(inv, compiled[tool]["rules"], dict(context or {}), agent, REPLAY_ENV)
        rule = d.rule or "(no rule)"
        by_rule[rule][d.decision] += 1
        by_agent[agent][d.decision] += 1
        try:
            when = parse_iso(str(e.get("time")))
        except ValueError:
            when = 0.0
        times.append(when)
        line = " ".join([tool, *(str(a) for a in argv)])
        if d.decision == ASK:
            prompts[line] += 1
            target = " ".join(f"{k}={v}" for k, v in sorted((context or {}).items()) if k != "cwd")
            asks.append((when, agent, rule, target))
        was = recorded(e)
        if was != d.decision:
            changed.append(
                {
                    "seq": e.get("seq"),
                    "time": e.get("time"),
                    "agent": agent,
                    "command": line,
                    "was": was,
                    "now": d.decision,
                    "rule": d.rule,
                }
            )
    days = max((max(times) - min(times)) / 86400, 1.0) if times else 1.0
    total_asks = sum(c[ASK] for c in by_agent.values())
    return {
        "calls": sum(sum(c.values()) for c in by_agent.values()),
        "skipped": skipped,
        "days": round(days, 2),
        "prompts_per_day": round(total_asks / days, 1),
        "by_rule": _table(by_rule, days),
        "by_agent": _table(by_agent, days),
        "changed": changed,
        "top_prompts": [{"command": c, "prompts": n} for c, n in prompts.most_common(10)],
        "grant_savings": grant_savings(asks),
    }


def _table(counts: dict[str, Counter], days: float) -> list[dict]:
    rows = []
    for name, c in sorted(counts.items(), key=lambda kv: (-kv[1][ASK], kv[0])):
        row: dict[str, Any] = {"name": name, **{k: c[k] for k in DECISIONS}}
        row["prompts_per_day"] = round(c[ASK] / days, 1)
        rows.append(row)
    return rows


def grant_savings(asks: list[tuple[float, str, str, str]]) -> dict[str, int]:
    """How many prompts a 15-minute grant per agent, rule and target, issued at the first
    prompt of each window, would have saved."""
    last_grant: dict[tuple[str, str, str], float] = {}
    needed = 0
    for when, agent, rule, target in sorted(asks):
        key = (agent, rule, target)
        start = last_grant.get(key)
        if start is None or when - start >= GRANT_WINDOW_S:
            last_grant[key] = when
            needed += 1
    return {"prompts": len(asks), "with_15m_grants": needed, "saved": len(asks) - needed}
