"""INI files read the way Python's configparser.RawConfigParser reads them (HOT, pure).

The aws CLI (v1, and botocore in v2) reads `~/.aws/config`, `~/.aws/credentials` and the alias
file with RawConfigParser, and `configparser` costs an import of `re` on every shim call. This is
the part of its reading that decides which sections and keys exist:

- a line's leading whitespace does not make it a section header or a key by itself: only a
  line indented deeper than the key before it continues that key's value;
- blank lines and `#` / `;` comment lines (after leading whitespace) are skipped and do not end
  a value; there are no inline comments;
- a header is `[` NAME `]` with anything after the last `]` (`[toplevel] junk` is `toplevel`);
- a key is everything before the first `=` or `:`, stripped and lowercased;
- what configparser refuses (a key before any header, a line with neither `=` nor `:`, a
  duplicate section, a duplicate key in a section) makes `parse` return None: the tool itself
  would stop with an error, and shield does not guess.
"""

from shim.classify.words import split_words


def parse(text: str) -> dict[str, dict[str, str]] | None:
    """{section: {key: value}} (sections in file order, each with the `[DEFAULT]` keys under
    its own, as configparser's items() gives them), or None where configparser raises. The
    result is shared between calls with the same text: do not change it."""
    if text in _PARSED:
        return _PARSED[text]
    got = _parse(text)
    if len(_PARSED) >= 16:
        _PARSED.clear()
    _PARSED[text] = got
    return got


_PARSED: dict[str, dict[str, dict[str, str]] | None] = {}


def _parse(text: str) -> dict[str, dict[str, str]] | None:
    sections: dict[str, dict[str, str]] = {}
    defaults: dict[str, str] = {}
    current: dict[str, str] | None = None
    key: str | None = None
    indent_level = 0
    # configparser reads a file's lines: they end at \n, \r\n or \r only (str.splitlines
    # would also break at \f, \v, \x1c..\x1e, \x85, \u2028 and \u2029, and hide what follows)
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        value = raw.strip()
        if not value:
            if current is not None and key is not None:
                current[key] += "\n"  # a blank line stays in a value that continues
            continue
        if value[0] in "#;":
            continue
        indent = len(raw) - len(raw.lstrip())
        if current is not None and key is not None and indent > indent_level:
            current[key] += "\n" + value
            continue
        indent_level = indent
        end = value.rfind("]")
        if value[0] == "[" and end > 1:
            name = value[1:end]
            if name == "DEFAULT":
                current = defaults  # may come back; its keys still may not repeat
            elif name in sections:
                return None  # DuplicateSectionError
            else:
                current = sections[name] = {}
            key = None
            continue
        if current is None:
            return None  # MissingSectionHeaderError
        cut = min((i for i in (value.find("="), value.find(":")) if i >= 0), default=-1)
        if cut < 0:
            return None  # ParsingError: no delimiter
        key = value[:cut].strip().lower()
        if not key or key in current:
            return None  # an empty key, or DuplicateOptionError
        current[key] = value[cut + 1 :].strip()
    return {
        name: {k: v.rstrip() for k, v in {**defaults, **body}.items()}
        for name, body in sections.items()
    }


def find(sections: dict[str, dict[str, str]], name: str) -> list[dict[str, str]]:
    """Every section whose name is `name` once stripped and lowercased (stricter than the
    tools, which compare names as written)."""
    want = name.strip().lower()
    return [body for sec, body in sections.items() if sec.strip().lower() == want]


def aws_profiles(
    config: dict[str, dict[str, str]] | None, credentials: dict[str, dict[str, str]] | None
) -> dict[str, dict[str, str]]:
    """botocore's profile map: `[default]` and `[profile NAME]` (the name split like a shell
    word, so `[profile  "prod"]` is prod; a later section of the same profile replaces an
    earlier one) from the config file, then each credentials-file section's keys over them."""
    profiles: dict[str, dict[str, str]] = {}
    for sec, body in (config or {}).items():
        if sec.startswith("profile"):
            parts = split_words(sec)
            if parts is not None and len(parts) == 2:
                profiles[parts[1]] = dict(body)
        elif sec == "default":
            profiles["default"] = dict(body)
    for sec, body in (credentials or {}).items():
        profiles.setdefault(sec, {}).update(body)
    return profiles
