"""Canonical JSON without importing `json` or `_json` (hot path).

`encode(obj)` is byte-identical to
`json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` for dicts with
str keys, lists, tuples, str, int, bool and None (floats are refused: canonical entries never
hold them). A property test keeps the two identical.
"""

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _quote(s: str) -> str:
    """A JSON string literal, ASCII only, escaped exactly like json.dumps(ensure_ascii=True)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        o = ord(ch)
        if 0x20 <= o < 0x7F:
            out.append(ch)
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            o -= 0x10000
            out.append(f"\\u{0xD800 | (o >> 10):04x}\\u{0xDC00 | (o & 0x3FF):04x}")
    return '"' + "".join(out) + '"'


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


_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NUMBER = frozenset("-0123456789")


def decode(text: str) -> object:
    """The value of a canonical JSON text (what `encode` writes); ValueError for anything else,
    whitespace, floats and non-canonical spellings included. For small signed statements read
    on the shim's ask path, where importing `json` would cost more than the whole call."""
    try:
        value, end = _decode(text, 0)
    except RecursionError:
        raise ValueError("nests too deep") from None
    if end != len(text) or encode(value) != text:
        raise ValueError("not canonical JSON")
    return value


def _decode(s: str, i: int) -> tuple[object, int]:
    ch = s[i : i + 1]
    if ch == '"':
        return _decode_string(s, i + 1)
    if ch == "{":
        out: dict[str, object] = {}
        i += 1
        if s[i : i + 1] == "}":
            return out, i + 1
        while True:
            if s[i : i + 1] != '"':
                raise ValueError(f"expected a key at {i}")
            key, i = _decode_string(s, i + 1)
            if s[i : i + 1] != ":":
                raise ValueError(f"expected ':' at {i}")
            out[key], i = _decode(s, i + 1)
            sep = s[i : i + 1]
            i += 1
            if sep == "}":
                return out, i
            if sep != ",":
                raise ValueError(f"expected ',' or '}}' at {i - 1}")
    if ch == "[":
        items: list[object] = []
        i += 1
        if s[i : i + 1] == "]":
            return items, i + 1
        while True:
            item, i = _decode(s, i)
            items.append(item)
            sep = s[i : i + 1]
            i += 1
            if sep == "]":
                return items, i
            if sep != ",":
                raise ValueError(f"expected ',' or ']' at {i - 1}")
    for word, value in (("null", None), ("true", True), ("false", False)):
        if s.startswith(word, i):
            return value, i + len(word)
    j = i
    while j < len(s) and s[j] in _NUMBER:
        j += 1
    if j == i:
        raise ValueError(f"unexpected {ch!r} at {i}")
    return int(s[i:j]), j


def _decode_string(s: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while True:
        j = s.find('"', i)
        k = s.find("\\", i)
        if j < 0:
            raise ValueError("unterminated string")
        if k < 0 or j < k:
            out.append(s[i:j])
            return "".join(out), j + 1
        out.append(s[i:k])
        esc = s[k + 1 : k + 2]
        if esc == "u":
            code = _hex4(s, k + 2)
            i = k + 6
            if 0xD800 <= code < 0xDC00 and s[i : i + 2] == "\\u":
                low = _hex4(s, i + 2)
                if 0xDC00 <= low < 0xE000:  # a pair is one character, as json.loads reads it
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            out.append(chr(code))
        elif esc in _UNESCAPE:
            out.append(_UNESCAPE[esc])
            i = k + 2
        else:
            raise ValueError(f"bad escape at {k}")


def _hex4(s: str, i: int) -> int:
    digits = s[i : i + 4]
    if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"bad \\u escape at {i - 2}")
    return int(digits, 16)
