"""The target a held call was shown with, pinned for its preview and its approved run.

Every held call of kubectl, helm, aws and terraform gets a `Pin`, whether or not its rule
declares a preview:

- kubectl / helm: the kubeconfig it resolved, merged and flattened (shim.preview.kubepin) into a
  sealed file, given as `--kubeconfig=/proc/self/fd/N` (and `KUBECONFIG`) with an explicit
  `--context`/`--kube-context`; the namespace is the one the call named or its context's, read
  from that sealed file;
- aws: the config and credentials files it read, sealed, given through `AWS_CONFIG_FILE` and
  `AWS_SHARED_CREDENTIALS_FILE`, with the resolved profile and region in `AWS_PROFILE`,
  `AWS_DEFAULT_PROFILE`, `AWS_DEFAULT_REGION` and `AWS_REGION`;
- terraform: `TF_WORKSPACE` set to the shown workspace, and the directory's identity (device and
  inode of its real path), checked again just before the run.

`shown` (the request's `target` field, covered by the digest) says what was pinned. What cannot
be pinned is resolved again just before the run (`drift`), and a difference refuses the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from shim.preview.flags import flag_args, flag_args_argv, rewrite_flag_values
from shim.preview.kubepin import KubeconfigError, flatten, kube_files, server_of
from shim.preview.sealed import SealedSet, SealError

# the context keys that name a call's target; compared before the run
TARGET_KEYS = ("context", "namespace", "server", "profile", "region", "workspace", "dir")
UNRESOLVED = ("?", "*", "")
Resolve = Callable[[list[str], dict[str, str]], dict[str, str]]


class Pin:
    """A held call's pinned target: flags before its argv, variables in its environment."""

    def __init__(self, tool: str, context: dict[str, str]) -> None:
        self.tool = tool
        self.context = {k: v for k, v in context.items() if k in TARGET_KEYS}
        self.args: list[str] = []  # before the preview's and the run's argv (kubectl, helm)
        self.env: dict[str, str] = {}  # over the preview's and the run's environment
        self.shown: dict[str, Any] = {}
        self.notes: list[str] = []
        self.kubeconfig: str | None = None  # the sealed kubeconfig's path
        self.dir_id: str | None = None  # terraform: "dev:ino realpath" of the directory
        self.conflicts: list[str] = []  # the sealed target differs from the classified one
        self.rewrites: dict[str, str] = {}  # argv token -> token (aws file:// parameters)
        self.inputs: list[dict] = []  # sealed parameter files, shown to the approver

    @property
    def changes_argv(self) -> bool:
        return bool(self.args or self.rewrites or self.kubeconfig)

    def settle(self, resolve: Resolve | None, argv: list[str], env: dict[str, str]) -> None:
        """Resolve the target again from what was pinned: keys the classifier could not
        resolve take the pinned value; a key it resolved otherwise is a conflict (the files
        changed between the classifier's read and the seal: refuse)."""
        if resolve is None:
            return
        try:
            now = resolve(argv, env)
        except Exception as exc:
            self.conflicts.append(f"target: cannot resolve the pinned target ({exc})")
            return
        for key, shown in sorted(self.context.items()):
            got = now.get(key, "")
            if shown in UNRESOLVED and got:
                self.context[key] = got
            elif got != shown:
                self.conflicts.append(f"{key}: {shown} -> {got or '(none)'}")
        for key in ("context", "namespace", "profile", "region", "workspace"):
            if key in self.shown and key in self.context:
                self.shown[key] = self.context[key]

    def argv(self, argv: list[str]) -> list[str]:
        """`argv` as the approved run gives it: the pinned flags first, and any `--kubeconfig`
        of the call pointing at the sealed copy (the last value would win otherwise)."""
        out = [self.rewrites.get(a, a) for a in argv]
        if self.kubeconfig:
            given = [a.split("=", 1)[1] for a in flag_args_argv(out, "--kubeconfig")]
            if given:
                new = rewrite_flag_values(
                    out, "--kubeconfig", "--kubeconfig", given, [self.kubeconfig] * len(given)
                )
                if new is None:
                    raise SealError("could not point --kubeconfig at the sealed copy")
                out = new
        return [*self.args, *out] if self.args else out

    def drift(self, resolve: Resolve | None, argv: list[str], env: dict[str, str]) -> list[str]:
        """What differs now from the target the approver was shown: `name: shown -> now`.
        Call it just before the run, with the argv and environment that will run."""
        out: list[str] = []
        if resolve is not None:
            try:
                now = resolve(argv, env)
            except Exception as exc:  # a resolver failure is a difference
                return [f"target: cannot resolve it again ({type(exc).__name__})"]
            for key, shown in sorted(self.context.items()):
                if now.get(key, "") != shown:
                    out.append(f"{key}: {shown} -> {now.get(key, '(none)')}")
        if self.dir_id is not None:
            d = self.context.get("dir", "")
            now_id = dir_identity(d)
            if now_id != self.dir_id:
                out.append(f"directory {d}: {self.dir_id} -> {now_id or 'gone'}")
        return out


def dir_identity(path: str) -> str | None:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino} {real}"


def pin_target(
    inv: Any,
    context: dict[str, str],
    env: dict[str, str],
    sealed: SealedSet,
    resolve: Resolve | None = None,
    cwd: str | None = None,
) -> Pin:
    """Pin what `inv` targets, and settle it against `resolve` (see Pin.settle). Never raises:
    what cannot be pinned is noted, and checked again before the run (`Pin.drift`)."""
    pin = Pin(inv.tool, context)
    try:
        if inv.tool in ("kubectl", "helm"):
            _pin_kube(pin, inv, context, env, sealed)
        elif inv.tool == "aws":
            _pin_aws(pin, context, env, sealed)
            _seal_aws_params(pin, inv, cwd or os.getcwd(), sealed)
        elif inv.tool == "terraform":
            _pin_terraform(pin, inv, context)
        pin.argv(list(inv.argv))  # an argv it cannot rewrite is not pinned
    except (KubeconfigError, SealError, OSError) as exc:
        pin.args = flag_args(inv, ("--kubeconfig",)) if inv.tool in ("kubectl", "helm") else []
        pin.env, pin.rewrites, pin.inputs = {}, {}, []
        pin.kubeconfig = None
        pin.notes.append(f"not pinned ({exc}): the target is resolved again before the run")
    pin.settle(resolve, pin.argv(list(inv.argv)), {**env, **pin.env})
    if pin.notes:
        pin.shown["notes"] = list(pin.notes)
    return pin


def _home(env: dict[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def _pin_kube(
    pin: Pin, inv: Any, context: dict[str, str], env: dict[str, str], sealed: SealedSet
) -> None:
    helm = inv.tool == "helm"
    paths, _ = kube_files(inv.flag("--kubeconfig"), env, _home(env))
    data, read, notes = flatten(paths)
    pin.notes += notes
    if data is None:
        pin.args = flag_args(inv, ("--kubeconfig",))
        pin.notes.append("no kubeconfig file: in-cluster or built-in defaults, resolved again")
        return
    item = sealed.seal("kubeconfig " + ":".join(read), data)
    pin.kubeconfig = item.path
    pin.args = [f"--kubeconfig={item.path}"]
    pin.env["KUBECONFIG"] = item.path
    ctx = context.get("context", "?")
    if ctx in UNRESOLVED and "server" not in context:
        import json

        ctx = json.loads(data).get("current-context") or "?"
    if ctx not in UNRESOLVED:
        pin.args.append(f"--kube-context={ctx}" if helm else f"--context={ctx}")
        pin.context["context"] = ctx
    pin.shown.update(
        {
            "kubeconfig": {"files": read, "sha256": item.sha256},
            "context": ctx,
            "namespace": context.get("namespace", "?"),
        }
    )
    server = context.get("server") or (server_of(data, ctx) if ctx not in UNRESOLVED else None)
    if server:
        pin.shown["server"] = server


def _expand(path: str, env: dict[str, str]) -> str:
    """botocore's expandvars then expanduser, over the call's environment (not the shim's)."""
    import re

    def var(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, m.group(0))

    path = re.sub(r"\$(?:(\w+)|\{([^}]*)\})", var, path)
    if path == "~" or path.startswith("~/"):
        return _home(env) + path[1:]
    return os.path.expanduser(path)


def _read_or_empty(path: str) -> tuple[bytes, bool]:
    try:
        with open(path, "rb") as fh:
            data = fh.read((4 << 20) + 1)
    except (FileNotFoundError, NotADirectoryError):
        return b"", False
    if len(data) > 4 << 20:
        raise SealError(f"{path} is larger than 4 MiB")
    return data, True


def _pin_aws(pin: Pin, context: dict[str, str], env: dict[str, str], sealed: SealedSet) -> None:
    files = {}
    config = b""
    for var, name in (
        ("AWS_CONFIG_FILE", "config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ):
        path = _expand(env.get(var) or f"~/.aws/{name}", env)
        data, there = _read_or_empty(path)
        item = sealed.seal(f"aws {name} {path}" if there else f"aws {name} (none)", data)
        pin.env[var] = item.path
        files[name] = {"file": path if there else None, "sha256": item.sha256}
        config = data if name == "config" else config
    profile = context.get("profile", "?")
    region = context.get("region", "?")
    if profile not in UNRESOLVED and profile != "default":
        # (botocore refuses a `default` named explicitly when no file defines it)
        pin.env["AWS_PROFILE"] = pin.env["AWS_DEFAULT_PROFILE"] = profile
    if region not in UNRESOLVED:
        pin.env["AWS_DEFAULT_REGION"] = pin.env["AWS_REGION"] = region
    pin.shown.update({"profile": profile, "region": region, **files})
    endpoint = _aws_endpoint(env, profile, config)
    if endpoint:
        pin.shown["endpoint"] = endpoint


def _aws_endpoint(env: dict[str, str], profile: str, config: bytes) -> str | None:
    """The endpoint the environment or the sealed config names (shown, not needed to pin)."""
    if env.get("AWS_ENDPOINT_URL"):
        return env["AWS_ENDPOINT_URL"]
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(config.decode("utf-8", "replace"))
    except configparser.Error:
        return None
    section = "default" if profile == "default" else f"profile {profile}"
    if parser.has_option(section, "endpoint_url"):
        return parser.get(section, "endpoint_url")
    return None


def _pin_terraform(pin: Pin, inv: Any, context: dict[str, str]) -> None:
    ws = context.get("workspace", "default")
    d = context.get("dir", "")
    if tuple(inv.verb[:1]) != ("workspace",) and ws not in UNRESOLVED:
        pin.env["TF_WORKSPACE"] = ws  # a workspace command refuses an overriding TF_WORKSPACE
    pin.dir_id = dir_identity(d)
    pin.shown.update({"workspace": ws, "dir": d})
    if pin.dir_id is not None:
        pin.shown["dir_id"] = pin.dir_id


_PARAM_PREFIXES = ("file://", "fileb://")
MAX_PARAM_FILE = 16 << 20
MAX_PARAM_TEXT = 64 << 10


def _seal_aws_params(pin: Pin, inv: Any, cwd: str, sealed: SealedSet) -> None:
    """Every `file://` and `fileb://` parameter (`--cli-input-json file://...` too): read once,
    sealed, the argv token pointing at the sealed copy; the text shown to the approver."""
    for tok in inv.argv:
        head, eq, value = tok.partition("=") if tok.startswith("--") else ("", "", tok)
        prefix = next((p for p in _PARAM_PREFIXES if value.startswith(p)), None)
        if prefix is None or tok in pin.rewrites:
            continue
        path = os.path.expanduser(value[len(prefix) :])
        full = os.path.join(cwd, path)
        try:
            with open(full, "rb") as fh:
                data = fh.read(MAX_PARAM_FILE + 1)
        except OSError:
            continue  # the CLI fails the same way on the missing file
        if len(data) > MAX_PARAM_FILE:
            raise SealError(f"{path} is larger than {MAX_PARAM_FILE} bytes")
        item = sealed.seal(value, data)
        pin.rewrites[tok] = f"{head}{eq}{prefix}{item.path}"
        entry: dict[str, Any] = {"source": value, "sha256": item.sha256, "bytes": len(data)}
        try:
            if prefix != "file://" or len(data) > MAX_PARAM_TEXT:
                raise ValueError
            entry["text"] = data.decode("utf-8")  # strict: what is shown is every byte
        except ValueError:
            entry["note"] = "binary, not UTF-8 or larger than 64 KiB: not shown"
        pin.inputs.append(entry)
