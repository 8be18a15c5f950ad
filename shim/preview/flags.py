"""A call's flags, read back and rewritten the way the real CLI spells them (pure)."""

from __future__ import annotations

import csv
import io
from typing import Any


def truthy(value: str | None) -> bool:
    return value is not None and value in ("1", "t", "T", "TRUE", "true", "True")


def flag(inv: Any, name: str) -> str | None:
    vals = inv.flags.get(name)
    return vals[-1] if vals else None


def flag_args(inv: Any, names: tuple[str, ...]) -> list[str]:
    """`--name=value` (or bare `--name` for a bool given without a value) for each flag that
    the call gave, in the order of `names`, every value kept."""
    out: list[str] = []
    for name in names:
        for value in inv.flags.get(name, ()):
            out.append(name if value == "true" else f"{name}={value}")
    return out


def split_list(value: str) -> list[str]:
    """pflag StringSlice: one value may hold several, comma-separated (CSV quoting)."""
    try:
        return next(csv.reader([value])) if value else [""]
    except (csv.Error, StopIteration):
        return [value]


def join_list(values: list[str]) -> str:
    if len(values) == 1 and "," not in values[0] and '"' not in values[0]:
        return values[0]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def rewrite_flag_values(
    argv: list[str] | tuple[str, ...],
    short: str,
    long: str,
    expected: list[str],
    new_values: list[str],
    value_shorts: frozenset[str] = frozenset(),
    bool_shorts: frozenset[str] = frozenset(),
) -> list[str] | None:
    """`argv` with the values of one flag (`-f`/`--filename`, in every pflag spelling)
    replaced, in order, by `new_values`. Returns None unless the values found are exactly
    `expected` (the parser's reading), so a spelling this scan misreads is never rewritten."""
    out = list(argv)
    where: list[tuple[int, str]] = []  # (token index, "next" | prefix to keep)
    letter = short[1:]
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--":
            break
        if tok in (long, short):
            where.append((i + 1, ""))
            i += 2
            continue
        if tok.startswith(long + "="):
            where.append((i, long + "="))
        elif tok.startswith("-") and not tok.startswith("--") and len(tok) > 2:
            body = tok[1:]
            k = 0
            while k < len(body) and ("-" + body[k]) in bool_shorts and body[k] != letter:
                k += 1
            if k < len(body) and body[k] == letter:
                rest = body[k + 1 :]
                if rest:
                    keep = "-" + body[: k + 1] + ("=" if rest.startswith("=") else "")
                    where.append((i, keep))
                else:
                    where.append((i + 1, ""))
                    i += 2
                    continue
        elif tok in value_shorts:
            i += 2
            continue
        i += 1
    found: list[str] = []
    for idx, keep in where:
        if idx >= len(out):
            return None
        found.append(out[idx][len(keep) :] if keep else out[idx])
    if found != list(expected) or len(new_values) != len(found):
        return None
    for (idx, keep), value in zip(where, new_values, strict=True):
        out[idx] = keep + value if keep else value
    return out


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def flag_args_argv(argv: list[str], name: str) -> list[str]:
    """`name=value` for every `name value` / `name=value` in argv (before `--`)."""
    out = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            break
        if tok == name and i + 1 < len(argv):
            out.append(f"{name}={argv[i + 1]}")
            i += 2
            continue
        if tok.startswith(name + "="):
            out.append(tok)
        i += 1
    return out
