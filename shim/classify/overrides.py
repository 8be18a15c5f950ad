"""Files that change what a tool does with an argv, so that no argv can be trusted (HOT).

The grammar's `overrides` (a kuberc, terraform dev_overrides, aws models or plugins) and its
`alias_file` (the aws CLI's alias file) are data in commands.d; this module checks them.
"""

from shim import fs
from shim.classify import ini
from shim.classify.files import UNREADABLE, expand_path, home_of, read_text


def _path(alternatives: tuple[str, ...], env: dict[str, str]) -> str | None:
    """The first of `$VAR` (when set), `~/path` (under $HOME) or a literal path."""
    for alt in alternatives:
        if alt.startswith("$"):
            if env.get(alt[1:]):
                return env[alt[1:]]
        elif alt.startswith("~/"):
            return fs.join(home_of(env), alt[2:])
        else:
            return alt
    return None


def override_note(grammar: dict, env: dict[str, str]) -> str:
    """Why a file in the grammar's `overrides` changes what the real tool does with an argv
    (a kuberc, terraform dev_overrides, aws models or plugins), so no argv can be trusted; ''."""
    for o in grammar.get("overrides") or ():
        if any(env.get(k, "").lower() == v for k, v in o["unless_env"].items()):
            continue
        path = _path(o["path"], env)
        if path is None:
            continue
        for one in _expand(path, env):
            if _holds(one, o["when"]):
                return o["reason"].replace("{path}", one)
    return ""


def _expand(path: str, env: dict[str, str]) -> list[str]:
    """`path`, or, when its last part is `*SUFFIX`, the files in that directory ending so."""
    if path.startswith("~") or "$" in path:
        # a path from the environment as botocore opens it (expandvars, expanduser), and the
        # literal one too: whichever the tool reads is checked
        wide = expand_path(path, env)
        return [path, *_expand(wide, env)] if wide != path else [path]
    head, _, last = path.rpartition(fs.SEP)
    if not last.startswith("*"):
        return [path]
    try:
        names = fs.listdir(head or fs.SEP)
    except (OSError, ValueError):
        return []
    return [fs.join(head, n) for n in sorted(names) if n.endswith(last[1:])]


def _holds(path: str, when: tuple[str, str]) -> bool:
    test, arg = when
    if test == "exists":
        return fs.exists(path)
    if test == "dir":
        return fs.isdir(path)
    text = read_text(path)
    if text is None:
        return False
    if text == UNREADABLE:
        return True  # there, but shield cannot read it the way the tool will
    if test == "contains":  # also when spelled with escapes (HCL and JSON allow them)
        return arg in text or ("\\" in text and arg in _unescape(text))
    # section: read as configparser reads it; a file it would refuse may hide one, so it counts
    sections = ini.parse(text)
    return sections is None or bool(ini.find(sections, arg))


def _unescape(text: str) -> str:
    """Decode the numeric escapes of Go strings (HCL) and JSON: `\\xHH`, `\\NNN` (octal),
    `\\uXXXX`, `\\UXXXXXXXX` (without `re` or `codecs`)."""
    out: list[str] = []
    i = 0
    while True:
        j = text.find("\\", i)
        if j < 0 or j + 1 >= len(text):
            out.append(text[i:])
            return "".join(out)
        kind = text[j + 1]
        if kind in "01234567":
            width, start, base = 3, j + 1, 8
        else:
            width, start, base = {"x": 2, "u": 4, "U": 8}.get(kind, 0), j + 2, 16
        digits = text[start : start + width]
        try:
            ch = chr(int(digits, base)) if width and len(digits) == width else None
        except ValueError:
            ch = None
        if ch is None:
            out.append(text[i : j + 2])
            i = j + 2
        else:
            out.append(text[i:j] + ch)
            i = start + width


def alias_note(grammar: dict, env: dict[str, str], word: str) -> str:
    """Why `word` is not the command it looks like: the tool's alias file defines it (read as
    configparser reads it, `[DEFAULT]` keys included), or the file is one the tool would
    refuse to read; ''."""
    spec = grammar.get("alias_file")
    path = _path(spec["path"], env) if spec else None
    text = read_text(path) if path else None
    if spec is None or text is None:
        return ""
    sections = ini.parse(text) if text != UNREADABLE else None
    if sections is None:
        return f"the alias file {path} cannot be read the way the tool reads it"
    if any(word.lower() in body for body in ini.find(sections, spec["section"])):
        return f"{word!r} is defined in the alias file {path}"
    return ""
