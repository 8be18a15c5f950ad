"""The kinds of the objects a call takes from files (`kubectl describe -f x.yaml`) (HOT).

Rules can ask what a call's `-f` files hold (`file_kinds:`): `describe -f secret.yaml` prints
a service-account token like `describe secret` does. The files are found the way kubectl's
resource builder finds them (comma-separated `-f` values, relative to the working directory,
directories by extension, `-R` for subdirectories) and each document's top-level `kind` is read
by a small scanner: no yaml, json or re on the hot path. What cannot be known for certain is the
kind "?": `-f -`, URLs, `-k` (kustomize builds objects of its own), globs, a missing, unreadable,
oversized or special file, too many files, a List or anything with `items` (kubectl visits the
items), and YAML or JSON the scanner does not read whole.
"""

from shim import fs

UNKNOWN = "?"
EXTENSIONS = (".json", ".yaml", ".yml")  # what kubectl reads from a directory
MAX_FILES = 64
MAX_BYTES = 4 << 20  # per file
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


class _Unsure(Exception):
    """A file or document whose kinds cannot be known for certain."""


def file_kinds(spec: dict, flags: dict[str, list[str]], verb: str, cwd: str) -> tuple[str, ...]:
    """The kinds of the objects the call takes from files: () when it names none; UNKNOWN
    for each source that cannot be read for certain. `spec` is the grammar's `file_objects`."""
    kinds: list[str] = []
    if flags.get(spec.get("kustomize") or "--kustomize"):
        kinds.append(UNKNOWN)  # kustomize builds the objects (generators: Secrets)
    values = flags.get(spec.get("filename") or "--filename") or []
    if not values:
        return tuple(kinds)
    recursive = verb in (spec.get("recursive_default") or ())
    rflag = flags.get(spec.get("recursive") or "--recursive")
    if rflag:
        recursive = rflag[-1] in ("true", "1", "t", "T", "TRUE", "True")
    budget = [MAX_FILES]
    for value in values:
        for name in _split_csv(value):
            try:
                kinds.extend(_path_kinds(name, cwd, recursive, budget))
            except (_Unsure, OSError, ValueError, UnicodeDecodeError, RecursionError):
                kinds.append(UNKNOWN)
    return tuple(dict.fromkeys(kinds))


def _split_csv(value: str) -> list[str]:
    """pflag reads a string-slice flag as one CSV record: quotes and line breaks are not
    followed here (UNKNOWN), an empty value names no file (which kubectl refuses)."""
    if '"' in value or "\n" in value or "\r" in value or not value:
        return [""]
    return value.split(",")


def _path_kinds(name: str, cwd: str, recursive: bool, budget: list[int]) -> list[str]:
    if not name or name == "-" or "://" in name:
        raise _Unsure  # stdin, a URL, or nothing
    if not fs.isabs(name):
        if cwd == "?" or not fs.isabs(cwd):
            raise _Unsure
        name = fs.join(cwd, name)
    try:
        st = fs.lstat(name)
    except FileNotFoundError:
        raise _Unsure from None  # kubectl expands a glob, or fails: not read here
    mode = st.st_mode & _S_IFMT
    if mode == _S_IFDIR:
        return _dir_kinds(name, recursive, budget)
    return _file_kinds(name, budget)


def _dir_kinds(path: str, recursive: bool, budget: list[int]) -> list[str]:
    """filepath.Walk as kubectl's builder does: files with the known extensions, in
    subdirectories only with -R; a symlink is not followed into a directory."""
    kinds: list[str] = []
    for entry in sorted(fs.listdir(path)):
        full = fs.join(path, entry)
        mode = fs.lstat(full).st_mode & _S_IFMT
        if mode == _S_IFDIR:
            if recursive:
                kinds.extend(_dir_kinds(full, recursive, budget))
            continue
        if entry.endswith(EXTENSIONS):
            kinds.extend(_file_kinds(full, budget))
    return kinds


def _file_kinds(path: str, budget: list[int]) -> list[str]:
    budget[0] -= 1
    if budget[0] < 0:
        raise _Unsure  # more files than shield reads on a call
    if (fs.stat(path).st_mode & _S_IFMT) != _S_IFREG:
        raise _Unsure  # a directory behind a symlink, a FIFO, a device
    data = fs.read_config(path, MAX_BYTES)
    if b"\x00" in data:
        raise _Unsure
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]  # kubectl skips a byte-order mark
    return scan_kinds(text)


def scan_kinds(text: str) -> list[str]:
    """The `kind` of each object in a manifest (YAML documents or a JSON stream); raises
    _Unsure where the text is not read for certain."""
    head = text.lstrip()
    if head.startswith("{"):
        return _json_kinds(text)
    if head.startswith("["):
        raise _Unsure
    kinds: list[str] = []
    for doc in _documents(text):
        kinds.extend(_yaml_kinds(doc))
    return kinds


def _documents(text: str) -> list[list[str]]:
    """Split as kubectl's YAML reader does: at lines that start with `---` followed by
    nothing but spaces or a comment."""
    if "\r" in text.replace("\r\n", "\n"):
        raise _Unsure  # a lone CR: YAML breaks lines there, the reader does not
    docs: list[list[str]] = [[]]
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("---"):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                raise _Unsure  # kubectl: "invalid Yaml document separator"
            docs.append([])
            continue
        docs[-1].append(line)
    return docs


def _top_lines(doc: list[str]) -> list[tuple[str, bool]]:
    """The lines of a document at its top indentation (its top-level keys), each with whether
    more-indented lines follow it (a nested value, or a plain scalar running on); raises
    _Unsure for a top level the scanner does not read whole."""
    top = -1
    out: list[tuple[str, bool]] = []
    for line in doc:
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        if body[0] == "\t" or not line.isprintable():
            raise _Unsure  # tabs, form feeds, line separators
        indent = len(line) - len(body)
        if top < 0:
            top = indent
        if indent < top:
            raise _Unsure
        if indent == top:
            out.append((body, False))
        elif out:
            out[-1] = (out[-1][0], True)
    return out


def _yaml_kinds(doc: list[str]) -> list[str]:
    lines = _top_lines(doc)
    if not lines:
        return []  # an empty document: kubectl skips it
    kinds: list[str] = []
    for body, nested in lines:
        key, value = _key_value(body)
        low = key.lower()
        if low == "kind":
            if nested:
                raise _Unsure  # `kind: Sec` with ` ret` on the next line is `Sec ret`
            kinds.append(_kind_word(value))
        elif low == "items" or key == "<<":
            raise _Unsure  # kubectl visits the items of anything with `items`
    if not kinds:
        raise _Unsure  # no kind: kubectl refuses it, or reads it in a way not followed here
    return kinds


def _key_value(body: str) -> tuple[str, str]:
    """A top-level `key: value` line: an unquoted or simply quoted key, and a value that ends
    on this line (no flow collection or quoted scalar left open)."""
    if body[0] in "\"'":
        q = body[0]
        end = body.find(q, 1)
        key, rest = body[1:end], body[end + 1 :]
        if end < 0 or "\\" in key or not rest.startswith(":"):
            raise _Unsure
        rest = rest[1:]
    else:
        if body[0] in "-?&*!|>%@`{[]},":
            raise _Unsure  # a list, a complex key, an anchor, a tag, a flow collection
        key, sep, rest = body.partition(": ")
        if not sep:
            if not body.endswith(":"):
                raise _Unsure  # not a mapping line (or a plain scalar running on)
            key, rest = body[:-1], ""
        key = key.rstrip(" ")  # `kind : Secret` is the key `kind`
    if not key.isascii() or "#" in key:
        raise _Unsure  # keys that fold to `kind` or `items` in Go's JSON decoding
    value = rest.strip(" ")
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end < 0 or "\\" in value[:end]:
            raise _Unsure  # a quoted scalar running on to the next line, or escapes
        tail = value[end + 1 :].strip()
        if tail and not tail.startswith("#"):
            raise _Unsure
    elif value[:1] in ("{", "["):
        closing = "}" if value[0] == "{" else "]"
        if value.count(value[0]) != value.count(closing) or '"' in value or "'" in value:
            raise _Unsure  # a flow collection running on to the next line
    return key, value


def _kind_word(value: str) -> str:
    """The kind: a plain or simply quoted word on the line; _Unsure for anything else."""
    word = value.split(" #", 1)[0].strip()
    if word[:1] in ("'", '"') and len(word) > 1 and word[-1] == word[0]:
        word = word[1:-1]
    if not word or not (word.replace("-", "").replace(".", "").replace("_", "")).isalnum():
        raise _Unsure
    if not word.isascii() or word.endswith("List"):
        raise _Unsure  # a List: kubectl visits its items
    return word


def _json_kinds(text: str) -> list[str]:
    """Each top-level object of a JSON stream: its `kind`; _Unsure for anything else."""
    kinds: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return kinds
        if text[i] != "{":
            raise _Unsure  # an array, a scalar, or YAML after the JSON
        i, found = _json_object(text, i)
        kinds.extend(found)


def _json_object(text: str, i: int) -> tuple[int, list[str]]:
    """The object at text[i] ("{"): (the index after it, the kinds among its keys)."""
    kinds: list[str] = []
    i = _skip_ws(text, i + 1)
    if text[i : i + 1] == "}":
        raise _Unsure  # an object without a kind
    while True:
        if text[i : i + 1] != '"':
            raise _Unsure
        end = _string_end(text, i)
        key = text[i + 1 : end]
        i = _skip_ws(text, end + 1)
        if text[i : i + 1] != ":" or "\\" in key or not key.isascii():
            raise _Unsure
        i = _skip_ws(text, i + 1)
        low = key.lower()
        if low == "items":
            raise _Unsure
        if low == "kind":
            if text[i : i + 1] != '"':
                raise _Unsure
            end = _string_end(text, i)
            kinds.append(_kind_word(text[i + 1 : end]))
            i = end + 1
        else:
            i = _skip_value(text, i)
        i = _skip_ws(text, i)
        c = text[i : i + 1]
        if c == "}":
            if not kinds:
                raise _Unsure
            return i + 1, kinds
        if c != ",":
            raise _Unsure
        i = _skip_ws(text, i + 1)


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """The index of the quote closing the JSON string that starts at text[i]."""
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j
        j += 1
    raise _Unsure


def _skip_value(text: str, i: int) -> int:
    """The index after the JSON value at text[i] (strings, nesting; scalars by their end)."""
    depth = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _string_end(text, i) + 1
            if depth == 0:
                return i
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == "," and depth == 0:
            return i
        i += 1
    raise _Unsure
