"""Load a tool's compiled rules without YAML; notice stale sources (HOT).

The compiled form is a marshal file per tool in `<home>/state/compiled/`. It records the
mtime/size of every layer dir and effective file; if any changed, `load_cached` returns None
and the caller compiles the layers again (`shim.rules.compile.compile_tool`, cold: yaml),
where an invalid layer raises RulesError.
"""

import marshal

from shim import fs

FORMAT = 2


def defaults_dir() -> str:
    """The package's own commands.d: the source tree's, else the installed copy (cold)."""
    import os

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../shim
    src = os.path.join(os.path.dirname(package), "commands.d")
    if os.path.isfile(os.path.join(src, "kubectl.yaml")):
        return src
    return os.path.join(package, "defaults")


def is_fresh(data: dict, layers: list[str]) -> bool:
    if data.get("format") != FORMAT or data.get("layers") != list(layers):
        return False
    for path, mtime, size in data["stamp"]:
        try:
            st = fs.stat(path)
        except (OSError, ValueError):
            if mtime != -1:
                return False
            continue
        if st.st_mtime_ns != mtime or (size != -2 and st.st_size != size):
            return False
    # a new file in a layer changes the layer dir's mtime, which the stamp holds
    return True


def load_cached(tool: str, layers: list[str], cache_dir: str | None) -> dict | None:
    """The compiled rules for `tool` when the cache is fresh for these layers; else None."""
    if not cache_dir:
        return None
    path = fs.join(cache_dir, tool + ".marshal")
    try:
        data = marshal.loads(fs.read_file(path, 64 << 20))
    except (OSError, ValueError, EOFError, TypeError):
        return None
    try:
        if isinstance(data, dict) and is_fresh(data, layers):
            return data
    except (KeyError, TypeError, ValueError):
        pass
    return None
