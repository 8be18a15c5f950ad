"""Canonical JSON without importing `json` (hot path).

`encode(obj)` is byte-identical to
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` for dicts with
str keys, lists, tuples, str, int, bool and None (floats are refused: canonical entries never
hold them). A property test keeps the two identical.
"""

from __future__ import annotations

from _json import encode_basestring_ascii as _quote  # type: ignore[import-not-found]


def encode(obj: object) -> str:
    parts: list[str] = []
    _encode(obj, parts)
    return "".join(parts)


def _encode(obj: object, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_quote(obj))
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key in sorted(obj):
            if not isinstance(key, str):
                raise TypeError("canonical JSON keys must be str")
            if not first:
                out.append(",")
            first = False
            out.append(_quote(key))
            out.append(":")
            _encode(obj[key], out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        first = True
        for item in obj:
            if not first:
                out.append(",")
            first = False
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"not canonical JSON: {type(obj).__name__}")
