"""One spelling of time for log entries, requests and decisions (HOT: no datetime).

`now_iso` writes ISO-8601 UTC with milliseconds and `Z`; `parse_iso` reads it back.
"""

import time


def now_iso(t: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and `Z` (`2025-01-31T12:00:00.250Z`) of `t`, else of now;
    without importing datetime."""
    ms = int(round((time.time() if t is None else t) * 1000))
    secs, frac = divmod(ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(secs))}.{frac:03d}Z"


def parse_iso(text: str) -> float:
    """Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.fff]Z`; ValueError otherwise."""
    if not isinstance(text, str) or len(text) < 20 or not text.endswith("Z"):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    body = text[:-1]
    frac = 0.0
    if len(body) > 19:
        tail = body[19:]
        if tail[0] != "." or not tail[1:].isdigit() or not tail[1:].isascii():
            raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
        frac = int(tail[1:]) / 10 ** (len(tail) - 1)
    parts = (body[0:4], body[5:7], body[8:10], body[11:13], body[14:16], body[17:19])
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    y, mo, d, h, mi, s = (int(p) for p in parts)
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError(f"not an ISO-8601 UTC time: {text!r}")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + frac


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in `90s`, `15m`, `2h`, `1d`, `1w` or a sum such as `1h30m` (units required);
    ValueError otherwise."""
    total = 0
    number = ""
    body = text.strip().lower().replace(" ", "")
    if not body:
        raise ValueError("an empty duration")
    for ch in body:
        if ch.isdigit() and ch.isascii():
            number += ch
        elif ch in _UNITS and number:
            total += int(number) * _UNITS[ch]
            number = ""
        else:
            raise ValueError(f"{text!r} is not a duration (examples: 90s, 15m, 2h, 1h30m, 1d)")
    if number:
        raise ValueError(f"{text!r} is not a duration: a unit (s, m, h, d, w) is missing")
    return total
