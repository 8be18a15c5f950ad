"""Render, refresh and remove shims (cold).

A shim is a small Python script run by the baked interpreter with `-I -S` (no site, no
environment, no user site: nothing in the agent's environment can change what it imports).
It puts the package's directory on sys.path itself and calls `shim.run.main` with a baked
configuration: tool, agent, home, rule layers, spool and, optionally, the pinned real binary.
"""

from __future__ import annotations

import contextlib
import os
import site
import stat
import sys
from pathlib import Path

from shim.errors import ShieldError
from shim.home import compiled_dir, default_layers, default_spool, log_dir
from shim.real import MARKER, is_shim
from shim.rules.load import defaults_dir
from shim.rules.rule import MODES

TEMPLATE = """#!{python} -IS
# {marker}
# Do not edit: re-run `shield install` to change it. Tool {tool!r}, agent {agent!r}.
import sys
if sys.hexversion >> 16 == {pyver}:
    import marshal
    exec(marshal.loads({blob!r}))
exec({program!r})
"""

# What a shim runs. The template above carries it twice: precompiled (marshal, for the
# interpreter it was installed with: compiling even this much source costs ~0.4 ms per call)
# and as source, used if the interpreter was upgraded in place.
PROGRAM = """import sys, gc
gc.disable()  # a call lives milliseconds: no cyclic collections (a hold turns them back on)
sys.path[len(sys.path):] = {paths!r}
{loader}
from shim.run import main
raise SystemExit(main({cfg!r}))
"""

# The hot modules, in dependency order. `shield install` compiles them into one marshal bundle
# beside the shims; loading it costs one read instead of ~14 imports (~1 ms of a ~9 ms start).
HOT_MODULES = (
    "shim",
    "shim.fs",
    "shim.errors",
    "shim.canon",
    "shim.clock",
    "shim.home",
    "shim.log",
    "shim.log.append",
    "shim.call",
    "shim.classify",
    "shim.classify.glob",
    "shim.classify.words",
    "shim.classify.invocation",
    "shim.classify.cobra",
    "shim.classify.aws",
    "shim.classify.terraform",
    "shim.classify.argv",
    "shim.classify.files",
    "shim.classify.optables",
    "shim.classify.ini",
    "shim.classify.kubeconfig",
    "shim.classify.context",
    "shim.classify.overrides",
    "shim.classify.decide",
    "shim.classify.classify",
    "shim.rules",
    "shim.rules.load",
    "shim.real",
    "shim.run",
)
BUNDLE_NAME = ".shield-hot.bundle"
BUNDLE_FORMAT = 1

# Runs inside the shim before `from shim.run import main`. It uses only what a `-I -S`
# interpreter has loaded already (marshal and posix are built in). Any mismatch (another
# Python, a changed source file, a damaged bundle) falls back to ordinary imports.
LOADER = """def _load(path, magic):
    import marshal, posix
    try:
        fd = posix.open(path, posix.O_RDONLY)
        try:
            data = b""
            while True:
                chunk = posix.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            posix.close(fd)
        b = marshal.loads(data)
        if b["format"] != 1 or b["magic"] != magic:
            return
        for name, file, is_pkg, mtime, size, code in b["modules"]:
            st = posix.stat(file)
            if st.st_mtime_ns != mtime or st.st_size != size:
                return
    except Exception:
        return
    made = []
    try:
        for name, file, is_pkg, mtime, size, code in b["modules"]:
            mod = type(sys)(name)
            mod.__file__ = file
            parent, _, leaf = name.rpartition(".")
            if is_pkg:
                mod.__path__ = [file.rpartition("/")[0]]
                mod.__package__ = name
            else:
                mod.__package__ = parent
            sys.modules[name] = mod
            made.append(name)
            exec(code, mod.__dict__)
            if parent:
                setattr(sys.modules[parent], leaf, mod)
    except Exception:
        for name in made:
            sys.modules.pop(name, None)
_load({bundle!r}, {magic!r})
del _load"""


def python_magic() -> str:
    """Identifies the interpreter a bundle was compiled for."""
    import importlib.util

    return importlib.util.MAGIC_NUMBER.hex() + ":" + sys.implementation.cache_tag


def build_bundle(dest: str) -> str:
    """Compile the hot modules into one marshal file at `dest` (atomically)."""
    import importlib.util
    import marshal

    modules = []
    for name in HOT_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ShieldError(f"cannot find the module {name} to bundle")
        path = spec.origin
        with open(path, "rb") as fh:
            source = fh.read()
        st = os.stat(path)
        # optimize=2 drops docstrings (the hot modules hold no asserts; a test keeps it so)
        code = compile(source, path, "exec", dont_inherit=True, optimize=2)
        is_pkg = path.endswith("__init__.py")
        modules.append((name, path, is_pkg, st.st_mtime_ns, st.st_size, code))
    data = marshal.dumps({"format": BUNDLE_FORMAT, "magic": python_magic(), "modules": modules})
    tmp = f"{dest}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return dest


def package_paths() -> list[str]:
    """Where `shim` and its cold-path dependencies (cryptography, ...) are importable from."""
    here = Path(__file__).resolve().parent.parent
    paths = [str(here)]
    for p in site.getsitepackages():
        if p not in paths and os.path.isdir(p):
            paths.append(p)
    return paths


def render_shim(
    tool: str,
    cfg: dict,
    python: str | None = None,
    paths: list[str] | None = None,
    bundle: str | None = None,
) -> str:
    import marshal

    loader = LOADER.format(bundle=bundle, magic=python_magic()) if bundle else ""
    program = PROGRAM.format(
        paths=paths if paths is not None else package_paths(), loader=loader, cfg=cfg
    )
    code = compile(program, f"<shield shim {tool}>", "exec", dont_inherit=True, optimize=2)
    return TEMPLATE.format(
        python=python or sys.executable,
        marker=MARKER.decode(),
        tool=tool,
        agent=cfg.get("agent"),
        pyver=hex(sys.hexversion >> 16),
        blob=marshal.dumps(code),
        program=program,
    )


def shim_config(
    tool: str,
    *,
    home: str,
    agent: str,
    shim_dir: str,
    real: str | None = None,
    spool: str | None = None,
    mode: str = "enforce",
    server: dict | None = None,
) -> dict:
    if mode not in MODES:
        raise ShieldError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    cfg: dict = {
        "mode": mode,
        "tool": tool,
        "agent": agent,
        "home": os.path.abspath(home),
        "defaults": defaults_dir(),
        "shim_dirs": [os.path.abspath(shim_dir)],
        "real": os.path.abspath(real) if real else None,
        "spool": os.path.abspath(spool) if spool else default_spool(os.path.abspath(home)),
    }
    if server:
        cfg["server"] = server
    return cfg


SERVER_FILE = "server.json"
TOKEN_FILE = "server-token"
CA_FILE = "server-ca.pem"


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def set_server(
    home: str, url: str | None, token_file: str | None, cacert: str | None = None
) -> dict | None:
    """Copy the relay's URL, the agent's token and a CA file into the agent home, where the
    shims read them (baked: nothing in the agent's environment moves them). With `url` None,
    the settings a previous install left (a re-install keeps its server); "" removes them.
    Returns the settings the shims get, or None."""
    import json

    from shim.approval.client import check_url, read_token

    path = os.path.join(home, SERVER_FILE)
    if url is None:
        try:
            with open(path, encoding="utf-8") as fh:
                kept = json.load(fh)
        except (OSError, ValueError):
            return None
        return kept if isinstance(kept, dict) and kept.get("url") else None
    if url == "":
        for name in (SERVER_FILE, TOKEN_FILE, CA_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(home, name))
        return None
    url = check_url(url)
    if not token_file:
        raise ShieldError("--server needs --token-file F", "shield serve agent add NAME prints one")
    token = read_token(token_file)
    ca_path = None
    if cacert:
        try:
            with open(cacert, "rb") as fh:
                pem = fh.read(1 << 20)
        except OSError as exc:
            raise ShieldError(f"cannot read --cacert {cacert}: {exc.strerror}") from None
        ca_path = os.path.join(home, CA_FILE)
        _write(ca_path, pem, 0o644)
    # the agent's user must read the token (chgrp it to the agent's group when that is
    # another user); nobody else needs to
    token_path = os.path.join(home, TOKEN_FILE)
    _write(token_path, (token + "\n").encode("ascii"), 0o640)
    settings = {"url": url, "token_file": token_path, "cacert": ca_path}
    _write(path, (json.dumps(settings, indent=2) + "\n").encode(), 0o644)
    return settings


def prepare_home(home: str, spool: str | None = None) -> dict:
    """Create the agent side's home: dirs, the spool and its subdirectories, the log and its
    first key. Returns init_log's result."""
    from shim.approval.spool import prepare
    from shim.log.append import init_log

    # 0755: the agent's user (often not the owner) must reach the rules, log and spool
    os.makedirs(home, mode=0o755, exist_ok=True)
    for sub in ("commands.d", "state", "trust", "log"):
        os.makedirs(os.path.join(home, sub), exist_ok=True)
    prepare(spool or default_spool(home))
    # held calls snapshot the files they read here (the agent's user must own it)
    os.makedirs(os.path.join(home, "state", "previews"), mode=0o700, exist_ok=True)
    # the state files the agent writes besides the log and the spool: decisions used once,
    # and the grants it has seen and used (made here, so install.sh hands them to its user)
    for name in ("used-decisions", "grants-seen", "grant-uses"):
        path = os.path.join(home, "state", name)
        if not os.path.exists(path):
            with open(path, "a"):
                pass
    return init_log(log_dir(home))


def install(
    shim_dir: str,
    tools: list[str],
    *,
    home: str,
    agent: str,
    real: dict[str, str] | None = None,
    spool: str | None = None,
    force: bool = False,
    mode: str = "enforce",
    server: dict | None = None,
) -> dict:
    """Write shims for `tools` into `shim_dir`; compile the rules. Idempotent. `server`: the
    relay settings from `set_server`, baked into every shim."""
    from shim.rules.compile import compile_layers, write_compiled

    real = real or {}
    home = os.path.abspath(home)
    log_info = prepare_home(home, os.path.abspath(spool) if spool else None)
    layers = default_layers(home, defaults_dir())
    compiled = compile_layers(layers)  # raises RulesError with file:line
    write_compiled(compiled, compiled_dir(home))
    _aws_tables(compiled, home, real)
    if not tools:
        tools = sorted(compiled)
    unknown = [t for t in tools if t not in compiled]
    if unknown:
        raise ShieldError(
            f"no rules for {', '.join(unknown)}",
            f"tools with rules: {', '.join(sorted(compiled))}; add TOOL.yaml to {layers[-1]}",
        )
    os.makedirs(shim_dir, exist_ok=True)
    bundle = build_bundle(os.path.join(shim_dir, BUNDLE_NAME))
    written = []
    for tool in tools:
        path = os.path.join(shim_dir, tool)
        if os.path.lexists(path) and not is_shim(path) and not force:
            raise ShieldError(
                f"{path} exists and is not a shield shim; refusing to overwrite it",
                "choose another --dir, or move that file away",
            )
        cfg = shim_config(
            tool,
            home=home,
            agent=agent,
            shim_dir=shim_dir,
            real=real.get(tool),
            spool=spool,
            mode=mode,
            server=server,
        )
        text = render_shim(tool, cfg, bundle=bundle)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        written.append(path)
    return {"shims": written, "home": home, "tools": tools, "log": log_info, "server": server}


def _aws_tables(compiled: dict, home: str, real: dict[str, str]) -> None:
    """A pinned aws CLI gets its option tables now, every service (cold, tens of seconds):
    shims that cannot write the home make none of their own (shim/rules/awstables.py)."""
    aws = compiled.get("aws")
    if not aws or not aws.get("tables") or not real.get("aws"):
        return
    from shim.rules.awstables import is_aws_cli_script, make_tables

    if is_aws_cli_script(real["aws"]):  # the CLI's own script, not a wrapper or a stand-in
        make_tables(aws["tables"], os.path.abspath(real["aws"]))


def uninstall(shim_dir: str) -> list[str]:
    """Remove only our own shims from `shim_dir`."""
    removed: list[str] = []
    try:
        names = sorted(os.listdir(shim_dir))
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(shim_dir, name)
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and is_shim(path):
            os.unlink(path)
            removed.append(path)
    bundle = os.path.join(shim_dir, BUNDLE_NAME)
    if os.path.exists(bundle):
        os.unlink(bundle)
    return removed


def baked_config(shim_path: str) -> dict | None:
    """The configuration `shield install` baked into a shim (read, never run); None when the
    file is not a shim or does not hold one. The one reader is shim.baked.read_shim_config."""
    from shim.baked import read_shim_config

    return read_shim_config(shim_path)
