"""Where each side keeps its files (hot: stdlib only; platformdirs imported lazily).

One home holds everything for one side: rule layer, keys, trust store, state, log, spool.
`SHIELD_HOME` selects it for the CLI; a shim has its home baked in at install.
"""

from shim import fs

ETC_LAYER = "/etc/shield/commands.d"


def home_dir(env: dict[str, str] | None = None) -> str:
    """The CLI's home: `SHIELD_HOME`, else the home baked into the first shim on PATH (so the
    agent's `shield` works where its shims do), else platformdirs' config dir (cold; see
    shim.baked.cli_home)."""
    from shim.baked import cli_home

    return cli_home(env).home


def layer_dir(home: str) -> str:
    return fs.join(home, "commands.d")


def compiled_dir(home: str) -> str:
    return fs.join(home, "state", "compiled")


def log_dir(home: str) -> str:
    return fs.join(home, "log")


def log_path(home: str) -> str:
    return fs.join(home, "log", "shield.log")


def keys_dir(home: str) -> str:
    return fs.join(home, "keys")


def trust_dir(home: str) -> str:
    return fs.join(home, "trust")


def default_spool(home: str) -> str:
    return fs.join(home, "state", "spool")


def spool_dir(home: str, env: dict[str, str] | None = None, flag: str | None = None) -> str:
    """`--spool` beats `SHIELD_SPOOL` beats the spool baked into the shims on PATH that work
    on `home` beats `<home>/state/spool`: the shim's own order (cold)."""
    import os

    from shim.baked import baked_for

    env = dict(os.environ) if env is None else env
    if flag:
        return os.path.abspath(flag)
    if env.get("SHIELD_SPOOL"):
        return os.path.abspath(env["SHIELD_SPOOL"])
    cfg = baked_for(home, env)
    return cfg["spool"] if cfg else default_spool(home)


def default_layers(home: str, package_defaults: str) -> list[str]:
    """Rule layers, lowest first: package defaults, /etc/shield, the home's own."""
    return [package_defaults, ETC_LAYER, layer_dir(home)]


def load_config(home: str) -> dict:
    """The home's `config.json` (hold timeout, TTY prompt, notify hook, clock skew); {} when
    there is none. ShieldError when it is not JSON (cold: imports json)."""
    from shim.errors import ShieldError

    path = fs.join(home, "config.json")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {}
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ShieldError(f"{path} is not valid JSON: {exc}", "fix or remove the file") from exc
    return data if isinstance(data, dict) else {}
