"""Render, refresh and remove shims (cold).

A shim is a small Python script run by the baked interpreter with `-I -S` (no site, no
environment, no user site: nothing in the agent's environment can change what it imports).
It puts the package's directory on sys.path itself and calls `shim.run.main` with a baked
configuration: tool, agent, home, rule layers, spool and, optionally, the pinned real binary.
"""

from __future__ import annotations

import os
import site
import stat
import sys
from pathlib import Path

from shim.compiled import defaults_dir
from shim.errors import ShieldError
from shim.home import compiled_dir, default_spool, log_dir
from shim.resolve import MARKER, is_shim

TEMPLATE = """#!{python} -IS
# {marker}
# Do not edit: re-run `shield install` to change it. Tool {tool!r}, agent {agent!r}.
import sys
sys.path[len(sys.path):] = {paths!r}
from shim.run import main
raise SystemExit(main({cfg!r}))
"""


def package_paths() -> list[str]:
    """Where `shim` and its cold-path dependencies (cryptography, ...) are importable from."""
    here = Path(__file__).resolve().parent.parent
    paths = [str(here)]
    for p in site.getsitepackages():
        if p not in paths and os.path.isdir(p):
            paths.append(p)
    return paths


def render_shim(
    tool: str, cfg: dict, python: str | None = None, paths: list[str] | None = None
) -> str:
    return TEMPLATE.format(
        python=python or sys.executable,
        marker=MARKER.decode(),
        tool=tool,
        agent=cfg.get("agent"),
        paths=paths if paths is not None else package_paths(),
        cfg=cfg,
    )


def shim_config(
    tool: str,
    *,
    home: str,
    agent: str,
    shim_dir: str,
    real: str | None = None,
    spool: str | None = None,
) -> dict:
    return {
        "tool": tool,
        "agent": agent,
        "home": os.path.abspath(home),
        "defaults": defaults_dir(),
        "shim_dirs": [os.path.abspath(shim_dir)],
        "real": os.path.abspath(real) if real else None,
        "spool": os.path.abspath(spool) if spool else default_spool(os.path.abspath(home)),
    }


def prepare_home(home: str) -> dict:
    """Create the agent side's home: dirs, the log and its first key. Returns init_log's result."""
    from shim import audit

    os.makedirs(home, mode=0o700, exist_ok=True)
    for sub in ("commands.d", "state", "trust", "log"):
        os.makedirs(os.path.join(home, sub), exist_ok=True)
    os.makedirs(default_spool(home), exist_ok=True)
    return audit.init_log(log_dir(home))


def install(
    shim_dir: str,
    tools: list[str],
    *,
    home: str,
    agent: str,
    real: dict[str, str] | None = None,
    spool: str | None = None,
    force: bool = False,
) -> dict:
    """Write shims for `tools` into `shim_dir`; compile the rules. Idempotent."""
    from shim.rules import compile_layers, write_compiled
    from shim.run import layers_for

    real = real or {}
    home = os.path.abspath(home)
    log_info = prepare_home(home)
    layers = layers_for(home, defaults_dir())
    compiled = compile_layers(layers)  # raises RulesError with file:line
    write_compiled(compiled, compiled_dir(home))
    if not tools:
        tools = sorted(compiled)
    unknown = [t for t in tools if t not in compiled]
    if unknown:
        raise ShieldError(
            f"no rules for {', '.join(unknown)}",
            f"tools with rules: {', '.join(sorted(compiled))}; add TOOL.yaml to {layers[-1]}",
        )
    os.makedirs(shim_dir, exist_ok=True)
    written = []
    for tool in tools:
        path = os.path.join(shim_dir, tool)
        if os.path.lexists(path) and not is_shim(path) and not force:
            raise ShieldError(
                f"{path} exists and is not a shield shim; refusing to overwrite it",
                "choose another --dir, or move that file away",
            )
        cfg = shim_config(
            tool, home=home, agent=agent, shim_dir=shim_dir, real=real.get(tool), spool=spool
        )
        text = render_shim(tool, cfg)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        written.append(path)
    return {"shims": written, "home": home, "tools": tools, "log": log_info}


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
    return removed
