"""Load a tool's compiled rules without YAML; notice stale sources (HOT).

The compiled form is a marshal file per tool in `<home>/state/compiled/`. It records the
mtime/size of every layer dir and effective file; if any changed, the layers are compiled
again (cold: imports shim.rules and yaml), and an invalid layer raises RulesError.
"""

import marshal

from shim import fs

FORMAT = 2


def defaults_dir() -> str:
    """The package's own commands.d: the source tree's, else the installed copy (cold)."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(os.path.dirname(here), "commands.d")
    if os.path.isfile(os.path.join(src, "kubectl.yaml")):
        return src
    return os.path.join(here, "defaults")


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


def load_tool(tool: str, layers: list[str], cache_dir: str | None) -> dict:
    """The compiled rules for `tool`; recompiles when a source changed. Raises RulesError."""
    if cache_dir:
        path = fs.join(cache_dir, tool + ".marshal")
        try:
            data = marshal.loads(fs.read_file(path, 64 << 20))
            if isinstance(data, dict) and is_fresh(data, layers):
                return data
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            pass
    from shim.rules import compile_tool

    return compile_tool(tool, layers, cache_dir)
