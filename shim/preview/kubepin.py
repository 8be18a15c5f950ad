"""The kubeconfig a kubectl or helm call resolved, merged and flattened into one sealed file.

kubectl merges the files of `--kubeconfig` (only that one) or `$KUBECONFIG` (every existing one,
the first to set a name or `current-context` wins) or `~/.kube/config`, and resolves relative
paths against the file that named them. This module does the same once, inlines the files the
config points at (CA, client certificate and key, token file), and returns the result as JSON:
the approved run and the preview read that, sealed, so flipping `current-context`, swapping a
file in `$KUBECONFIG` or a client key after the hold changes nothing. What stays live is said in
`notes` (an `exec` or `auth-provider` credential plugin runs when the call runs).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

MAX_KUBECONFIG = 4 << 20

# per entry kind: (file field -> inlined data field)
_INLINE = {
    "cluster": (("certificate-authority", "certificate-authority-data"),),
    "user": (
        ("client-certificate", "client-certificate-data"),
        ("client-key", "client-key-data"),
        ("tokenFile", "token"),
    ),
}


class KubeconfigError(Exception):
    """The kubeconfig could not be read or parsed: the target is checked live instead."""


def kube_files(kc_flag: str | None, env: dict[str, str], home: str) -> tuple[list[str], bool]:
    """(the kubeconfig files kubectl would read, whether they were named explicitly)."""
    if kc_flag:
        return [kc_flag], True
    if env.get("KUBECONFIG"):
        return [p for p in env["KUBECONFIG"].split(":") if p], False
    return [os.path.join(home, ".kube", "config")], False


def _load(path: str) -> dict | None:
    """One kubeconfig file as a dict; None when it is not there."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KUBECONFIG + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KubeconfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_KUBECONFIG:
        raise KubeconfigError(f"{path} is larger than {MAX_KUBECONFIG} bytes")
    if not data.strip():
        return {}
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        doc = yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{path} does not parse: {type(exc).__name__}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{path} is not a kubeconfig mapping")
    return doc


def _entries(doc: dict, key: str) -> list[tuple[str, dict]]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise KubeconfigError(f"{key} is not a list")
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append((item["name"], item))
    return out


def _resolve(path: str, base: str) -> str:
    return path if not path or os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _inline(body: dict, kind: str, base: str, notes: list[str]) -> dict:
    """`body` with relative paths made absolute and the files it names read into it."""
    body = dict(body)
    for src, dst in _INLINE[kind]:
        ref = body.get(src)
        if not isinstance(ref, str) or not ref:
            continue
        full = _resolve(ref, base)
        try:
            with open(full, "rb") as fh:
                data = fh.read(MAX_KUBECONFIG)
        except OSError:
            body[src] = full  # kubectl fails the same way on the missing file
            continue
        del body[src]
        if dst == "token":
            body[dst] = data.decode("utf-8", "replace").strip()
        else:
            body[dst] = base64.b64encode(data).decode("ascii")
    if kind == "user":
        ex = body.get("exec")
        if isinstance(ex, dict):
            cmd = ex.get("command")
            if isinstance(cmd, str) and "/" in cmd and not os.path.isabs(cmd):
                body["exec"] = dict(ex, command=_resolve(cmd, base))
            notes.append(
                f"credentials come from the exec plugin {ex.get('command')!r} when it runs"
            )
        if body.get("auth-provider"):
            notes.append("credentials come from an auth-provider plugin when it runs")
    return body


def flatten(paths: list[str]) -> tuple[bytes | None, list[str], list[str]]:
    """(the merged, self-contained kubeconfig as JSON bytes, or None when no file exists;
    the files read; notes on what stays live). Raises KubeconfigError."""
    merged: dict[str, dict[str, Any]] = {"clusters": {}, "contexts": {}, "users": {}}
    current: str | None = None
    read: list[str] = []
    notes: list[str] = []
    for path in paths:
        doc = _load(path)
        if doc is None:
            continue
        read.append(path)
        base = os.path.dirname(os.path.abspath(path))
        if current is None and isinstance(doc.get("current-context"), str):
            current = doc["current-context"] or None
        for key, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for name, item in _entries(doc, key):
                if name in merged[key]:
                    continue  # the first file to name it wins
                body = item.get(inner)
                body = dict(body) if isinstance(body, dict) else {}
                if inner != "context":
                    body = _inline(body, inner, base, notes)
                merged[key][name] = {"name": name, inner: body}
    if not read:
        return None, read, notes
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current or "",
        "clusters": list(merged["clusters"].values()),
        "contexts": list(merged["contexts"].values()),
        "users": list(merged["users"].values()),
        "preferences": {},
    }
    return json.dumps(out, sort_keys=True, default=str).encode(), read, notes


def server_of(config: bytes, context: str) -> str | None:
    """The API server URL that `context` points at in a flattened config."""
    doc = json.loads(config)
    ctx = next((c for c in doc["contexts"] if c["name"] == context), None)
    if ctx is None:
        return None
    cluster = ctx["context"].get("cluster")
    found = next((c for c in doc["clusters"] if c["name"] == cluster), None)
    server = (found or {}).get("cluster", {}).get("server")
    return server if isinstance(server, str) else None
