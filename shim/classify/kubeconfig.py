"""kubeconfig: current-context and each context's namespace, without yaml (HOT).

kubeconfig is scanned by indentation, which covers what kubectl writes. YAML the scanner does
not read faithfully (anchors, escapes, block scalars, several documents, ...) leaves the
context unresolved ("?"), never guessed.
"""

from shim import fs
from shim.classify.files import UNREADABLE, home_of, read_text
from shim.classify.invocation import Invocation

UNRESOLVED = "?"
ALL = "*"  # every namespace (-A); rules treat it like "?": restrictive ones match, allow do not


class _Unsure(Exception):
    """The kubeconfig uses YAML the indentation scanner does not read (anchors, escapes, block
    scalars, several documents, ...): its context and namespace are unresolved, never guessed."""


# YAML 1.1 as client-go reads it (sigs.k8s.io/yaml, go-yaml v2): these plain words are null
# (the field is unset, so the next file on KUBECONFIG decides) or a boolean (kubectl refuses
# the file: "cannot unmarshal bool into ... of type string")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = frozenset(
    [
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
    ]
)


def _scalar(text: str) -> str | None:
    """A plain or simply quoted YAML scalar on one line, as a string field of client-go's
    kubeconfig reads it: None for null; _Unsure for anything it reads as no string (a
    boolean, a number, .inf, a tag) or that this scanner does not read (escapes, anchors)."""
    text = text.strip(" \t")
    text = text.replace("\t#", " #")  # a comment starts after a space or a tab
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip(" \t")
    if text in _NULLS:
        return None
    if text in _BOOLS or text[0] in "+-.0123456789":
        raise _Unsure  # a boolean, or what may be a number: never a string to kubectl
    q = text[0]
    if q == '"':
        if len(text) < 2 or text[-1] != '"' or "\\" in text or '"' in text[1:-1]:
            raise _Unsure
        return text[1:-1]
    if q == "'":
        inner = text[1:-1]
        if len(text) < 2 or text[-1] != "'" or "'" in inner.replace("''", ""):
            raise _Unsure
        return inner.replace("''", "'")
    if q in "&*!|>%@`{[]}," or text.startswith(("- ", "? ")):
        raise _Unsure
    return text


# characters after which a line needs the careful reading below
_PLAIN_YAML = frozenset("\"'&*!|>%@`?<[{#\\")


def _check_line(line: str) -> bool:
    """_Unsure unless `line` is one the scanner reads for what it is: `key: value`, `key:`,
    `- item` or `- key: value` with an unquoted key, any quoted value closed on the same line,
    and no anchors, aliases, tags, merge or complex keys, block scalars or control characters.
    Returns False for a line that continues a plain scalar from the line before (it holds no
    `: `, so it is no key; whether that is harmless depends on the scalar it continues)."""
    if not line.isprintable() and not line.replace("\t", " ").isprintable():
        raise _Unsure  # form feeds, NEL, line separators: YAML and str disagree on lines
    if _PLAIN_YAML.isdisjoint(line):  # the common line: nothing but a key and a plain value
        return ": " in line or line[-1] == ":" or line[:2] == "- " or line == "-"
    body = line
    while body.startswith("- ") or body == "-":
        body = body[2:].lstrip()
    if not body:
        return True
    if body[0] in "\"'":
        if _quoted_end(body) < 0:
            raise _Unsure
        rest = body[_quoted_end(body) + 1 :].lstrip()
        if rest.startswith(":"):
            raise _Unsure  # a quoted key ("current-context": x): never a key kubectl writes
        if rest and not rest.startswith("#"):
            raise _Unsure
        return True
    if body[0] in "&*!|>%@`?<[{":
        if not (body[0] == "{" and line.endswith("}")) and not (
            body[0] == "[" and line.endswith("]")
        ):
            raise _Unsure
        return True
    key, sep, value = body.partition(": ")
    if not sep:
        # `key:`, or a plain list item (exec args, ...); else a plain scalar running on
        return body.endswith(":") or line.startswith("- ")
    value = value.strip()
    if not value or value.startswith("#"):
        return True
    if value[0] in "\"'":
        end = _quoted_end(value)
        if end < 0 or (value[end + 1 :].strip() and not value[end + 1 :].strip().startswith("#")):
            raise _Unsure
        return True
    if value[0] in "&*!%@`" or key.startswith("<<"):
        raise _Unsure
    return True


def _quoted_end(text: str) -> int:
    """The index of the quote that closes the quoted scalar `text` starts with, or -1."""
    q = text[0]
    i = 1
    while i < len(text):
        c = text[i]
        if q == '"' and c == "\\":
            i += 2
            continue
        if c == q:
            if q == "'" and text[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return -1


def scan_kubeconfig(text: str) -> tuple[str | None, dict[str, str]]:
    """(current-context, {context name: namespace}) from a kubeconfig's text (YAML or JSON).

    YAML is read by indentation, which covers what kubectl writes; a file using YAML the
    scanner does not read gives ("?", {}): unresolved, so context rules cannot be fooled."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _scan_json(stripped)
    hit = _SCANNED.get(text)
    if hit is None:
        try:
            hit = _scan_yaml(text)
        except _Unsure:
            hit = (UNRESOLVED, {})
        if len(_SCANNED) >= 16:
            _SCANNED.clear()
        _SCANNED[text] = hit
    return hit[0], dict(hit[1])


def _scan_json(text: str) -> tuple[str | None, dict[str, str]]:
    """A JSON kubeconfig, held to the types client-go decodes it into: a field of another
    type makes kubectl refuse the file, so it leaves the context unresolved."""
    import json

    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return UNRESOLVED, {}  # YAML flow style, or garbage: not guessed
    if not isinstance(doc, dict) or doc.get("kind") not in (None, "Config"):
        return UNRESOLVED, {}
    cur = doc.get("current-context")
    items = doc.get("contexts")
    if doc.get("apiVersion") not in (None, "v1") or not isinstance(cur, (str, type(None))):
        return UNRESOLVED, {}
    if not isinstance(items, (list, type(None))):
        return UNRESOLVED, {}
    found: dict[str, str] = {}
    for item in items or ():
        if not isinstance(item, dict):
            return UNRESOLVED, {}
        name, body = item.get("name") or "", item.get("context")
        ns = body.get("namespace") if isinstance(body, dict) else None
        if not isinstance(name, str) or not isinstance(body, (dict, type(None))):
            return UNRESOLVED, {}
        if not isinstance(ns, (str, type(None))) or name in found:
            return UNRESOLVED, {}  # another type, or a duplicate name: kubectl refuses it
        found[name] = ns or ""
    return cur or None, found


# kubeconfig texts already scanned in this process (a held call's previews classify their own
# commands, and `shield check` or a long-lived caller reads the same file again and again)
_SCANNED: dict[str, tuple[str | None, dict[str, str]]] = {}


def _scan_yaml(text: str) -> tuple[str | None, dict[str, str]]:
    scan = _Scanner()
    # YAML breaks lines at \n, \r\n and \r only (not at \f or \u2028 as str.splitlines does)
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        scan.feed(raw)
    return scan.finish()


class _Scanner:
    """The indentation scanner's state: the top-level section, and inside `contexts:` the
    list item being read (its name, its `context:` mapping's namespace)."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.namespaces: dict[str, str] = {}
        self.section = ""
        self.item_name: str | None = None
        self.item_ns = ""
        self.item_indent = -1
        self.in_context = False  # inside the item's `context:` mapping
        self.child_indent = -1  # the indent of that mapping's own keys
        self.seen = False
        self.read_last = False  # the line before held a value the scanner keeps
        self.contexts_seen = False

    def flush(self) -> None:
        if self.item_name is not None:
            if self.item_name in self.namespaces:
                raise _Unsure  # kubectl refuses the file: "duplicate name in list"
            self.namespaces[self.item_name] = self.item_ns
        self.item_name, self.item_ns, self.item_indent = None, "", -1

    def finish(self) -> tuple[str | None, dict[str, str]]:
        if self.section == "contexts":
            self.flush()
        return self.current, self.namespaces

    def feed(self, raw: str) -> None:
        line = raw.strip(" \t")
        if not line or line[0] == "#":
            return
        indent = len(raw) - len(raw.lstrip())
        if "\t" in raw[:indent]:
            raise _Unsure  # tabs in indentation: not YAML kubectl reads the same way
        if indent == 0 and line.split(" #")[0].rstrip() in ("---", "..."):
            if self.seen:
                raise _Unsure  # several documents
            return
        self.seen = True
        if not _check_line(line):
            # a plain scalar continued: harmless, unless it continues a value read here
            if self.read_last:
                raise _Unsure
            return
        self.read_last = False
        if indent == 0 and not line.startswith("- "):
            self.top_key(line)
            return
        if self.section not in ("contexts", "clusters", "users", "preferences", "extensions"):
            raise _Unsure  # an indented line under a scalar: it continues that scalar
        if self.section == "contexts":
            self.context_line(line, indent)

    def top_key(self, line: str) -> None:
        if self.section == "contexts":
            self.flush()
        key, _, value = line.partition(":")
        self.section = key.strip()
        if self.section == "current-context":
            self.current = _scalar(value) or None
            self.read_last = True
        elif self.section in ("kind", "apiVersion"):
            # kubectl refuses a kubeconfig of another kind or version
            if _scalar(value) not in (None, "Config" if self.section == "kind" else "v1"):
                raise _Unsure
        elif self.section == "contexts":
            if self.contexts_seen:
                raise _Unsure  # the second list replaces the first
            self.contexts_seen = True
            if _scalar(value.replace("[]", "", 1) if value.strip().startswith("[]") else value):
                raise _Unsure  # a flow list or a scalar: not read here

    def context_line(self, line: str, indent: int) -> None:
        """A line inside `contexts:`: a new item, a key of the item, or a key of its context."""
        if line.startswith("- ") and (self.item_indent < 0 or indent <= self.item_indent):
            self.flush()
            self.item_indent = indent
            self.in_context, self.child_indent = False, -1
            line = line[2:].strip()
            indent += 2
        key, _, value = line.partition(":")
        key = key.strip()
        if indent == self.item_indent + 2:  # a key of the list item itself
            self.item_key(key, value)
        elif self.in_context and indent > self.item_indent + 2:
            if self.child_indent < 0:
                self.child_indent = indent
            if indent == self.child_indent and key == "namespace":
                self.item_ns = _scalar(value) or ""
                self.read_last = True

    def item_key(self, key: str, value: str) -> None:
        self.in_context = False
        if key == "name":
            self.item_name = _scalar(value) or ""
            self.read_last = True
        elif key == "context":
            self.item_ns = ""  # a second `context:` replaces the first
            flow = value.strip()
            if flow.startswith("{"):
                # flow style: `context: {cluster: c, namespace: team-a, user: u}`
                if not flow.endswith("}") or "{" in flow[1:] or '"' in flow or "'" in flow:
                    raise _Unsure
                for pair in flow[1:-1].split(","):
                    k, _, v = pair.partition(":")
                    if k.strip() == "namespace":
                        self.item_ns = _scalar(v) or ""
            elif flow and not flow.startswith("#") and _scalar(flow) is not None:
                raise _Unsure
            else:
                self.in_context = True


def resolve_kube(
    inv: Invocation, env: dict[str, str], spec: dict, read=read_text, helm: bool = False
) -> dict[str, str]:
    flags = spec.get("flags") or {}
    ctx_flag = inv.flag(flags.get("context", "--context"))
    ns_flag = inv.flag(flags.get("namespace", "--namespace"))
    kc_flag = inv.flag(flags.get("kubeconfig", "--kubeconfig"))
    out: dict[str, str] = {}
    if kc_flag:
        files = [kc_flag]
    elif env.get("KUBECONFIG"):
        files = [p for p in env["KUBECONFIG"].split(":") if p]
    else:
        files = [fs.join(home_of(env), ".kube", "config")]
    current: str | None = None
    namespaces: dict[str, str] = {}
    found_any = False
    unsure = False
    for path in files:
        text = read(path)
        if text is None:
            continue
        found_any = True
        cur, nss = scan_kubeconfig(text) if text != UNREADABLE else (UNRESOLVED, {})
        if cur == UNRESOLVED:
            unsure = True
            break  # kubectl merges every file: one that cannot be read leaves it all unknown
        if current is None and cur:
            current = cur
        for name, ns in nss.items():
            namespaces.setdefault(name, ns)
    if unsure:
        current = UNRESOLVED
        namespaces = {}
    context = ctx_flag
    if ctx_flag is None and helm:  # an empty flag still wins over the env: current context
        context = env.get("HELM_KUBECONTEXT") or None
    if not context:
        context = current
    if not context and not found_any and env.get("KUBERNETES_SERVICE_HOST"):
        context = "in-cluster"
    out["context"] = context or UNRESOLVED
    # A flag (or helm env) that points the call at another API server or cluster keeps the
    # context's name but not its target: the context no longer says where the call goes.
    override = inv.flag("--server") or inv.flag("--cluster")
    if helm:
        override = override or inv.flag("--kube-apiserver") or env.get("HELM_KUBEAPISERVER")
    if override:
        out["context"] = UNRESOLVED
        out["server"] = override
    namespace = ns_flag
    if ns_flag is None and helm:  # an empty flag wins too: the context's namespace
        namespace = env.get("HELM_NAMESPACE") or None
    if not namespace and context == "in-cluster":
        namespace = (
            env.get("POD_NAMESPACE")
            or (read("/var/run/secrets/kubernetes.io/serviceaccount/namespace") or "").strip()
        )
    if not namespace and context and context in namespaces:
        namespace = namespaces[context] or "default"
    if not namespace:
        namespace = "default" if context and not unsure else UNRESOLVED
    if inv.flag("--all-namespaces") in ("true", "1", "t", "T", "TRUE", "True"):
        namespace = ALL  # -A beats -n: the call covers every namespace
    out["namespace"] = namespace
    return out
