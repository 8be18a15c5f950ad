"""What `shield install` baked into the shims, read back without running them (cold).

The `shield` command and the shims must work on one home: run by the agent's user, `shield
check` has to decide what the shim decides, and `shield doctor` or `shield log` have to look
where the shims write. A shim's home, agent name, rule layers, spool and pinned real binary are
baked into its file (shim/install.py), so when `SHIELD_HOME` is not set, the CLI takes them from
the first shim on PATH (`cli_home`).

A shim file holds its configuration as Python literals: the line `exec('<program>')`, whose
program ends with `raise SystemExit(main({...}))`. `read_shim_config` reads only regular files
that carry the shim marker, and parses both literals with `ast.literal_eval`: nothing in the
file is ever run, so a file that only looks like a shim runs nothing here.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from typing import Any

from shim import fs
from shim.real import MARKER

MAX_SHIM_BYTES = 1 << 20
CALL_PREFIX = "raise SystemExit(main("
STR_KEYS = ("tool", "agent", "home", "defaults", "spool")


@dataclass(frozen=True)
class CliHome:
    """The home the `shield` command works on, and why: `source` is "SHIELD_HOME", "shim"
    (baked into `shim`, whose configuration is `cfg`) or "default" (platformdirs)."""

    home: str
    source: str
    shim: str | None = None
    cfg: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.source == "SHIELD_HOME":
            return f"{self.home} (from SHIELD_HOME)"
        if self.source == "shim":
            return f"{self.home} (baked into {self.shim}, the first shim on PATH)"
        return f"{self.home} (the default: no SHIELD_HOME and no shim on PATH)"


def read_shim_config(path: str) -> dict[str, Any] | None:
    """The configuration baked into the shim at `path`; None when it is not a readable shim
    file of the expected shape."""
    try:
        data = fs.read_plain(os.path.realpath(path), MAX_SHIM_BYTES)
    except (OSError, ValueError):
        return None
    if MARKER not in data[:512]:
        return None
    try:
        lines = data.decode("utf-8").splitlines()
        program = next(
            ast.literal_eval(line[5:-1])
            for line in reversed(lines)
            if line.startswith("exec(") and line.endswith(")")
        )
        cfg = next(
            ast.literal_eval(line[len(CALL_PREFIX) : -2])
            for line in str(program).splitlines()
            if line.startswith(CALL_PREFIX) and line.endswith("))")
        )
    except (StopIteration, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return cfg if _well_formed(cfg) else None


def _well_formed(cfg: object) -> bool:
    if not isinstance(cfg, dict):
        return False
    if not all(isinstance(cfg.get(k), str) and cfg[k] for k in STR_KEYS):
        return False
    dirs = cfg.get("shim_dirs")
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        return False
    real = cfg.get("real")
    return (real is None or isinstance(real, str)) and os.path.isabs(cfg["home"])


def find_baked(path: str, tools: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The first shim of one of `tools` on `path` (absolute entries only) and its baked
    configuration, or None."""
    for entry in path.split(":"):
        if not os.path.isabs(entry):
            continue
        for tool in tools:
            candidate = os.path.join(entry, tool)
            if os.path.isfile(candidate):
                cfg = read_shim_config(candidate)
                if cfg is not None:
                    return candidate, cfg
    return None


def shim_tools() -> list[str]:
    """The tools shims are installed for by default: those with a rule file in the package."""
    from shim.rules.load import defaults_dir

    try:
        names = os.listdir(defaults_dir())
    except OSError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".yaml"))


def cli_home(env: dict[str, str] | None = None) -> CliHome:
    """`SHIELD_HOME`, else the home baked into the first shim on PATH, else platformdirs'
    config dir for `shield`."""
    env = dict(os.environ) if env is None else env
    if env.get("SHIELD_HOME"):
        return CliHome(os.path.abspath(env["SHIELD_HOME"]), "SHIELD_HOME")
    found = find_baked(env.get("PATH", ""), shim_tools())
    if found is not None:
        shim, cfg = found
        return CliHome(cfg["home"], "shim", shim, cfg)
    import platformdirs

    return CliHome(platformdirs.user_config_dir("shield"), "default")


def baked_for(
    home: str, env: dict[str, str] | None = None, tool: str | None = None
) -> dict[str, Any] | None:
    """The configuration of the first shim on PATH (of `tool`, when given) when it works on
    `home` (so the CLI uses that home's spool, agent name, layers and pinned binary as the
    shims do); else None."""
    env = dict(os.environ) if env is None else env
    found = find_baked(env.get("PATH", ""), [tool] if tool else shim_tools())
    if found is None or os.path.abspath(found[1]["home"]) != os.path.abspath(home):
        return None
    return found[1]


def shim_dir_of(home: str) -> str:
    """The shim dir of a home: that of the shims on PATH working on it, else <home>/bin."""
    dirs = (baked_for(home) or {}).get("shim_dirs") or []
    return dirs[0] if dirs else os.path.join(home, "bin")
