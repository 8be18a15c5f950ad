"""The aws CLI's own option tables, one service at a time (HOT: small reads, marshal).

`shim/rules/awstables.py` (cold) has the installed aws CLI build every operation's argument
parser from botocore's service models and its own customizations, and stores one file per
service under `<home>/state/compiled/aws-tables/`. An aws call loads only the file of the service
it calls, and only when the index says it was made from the aws binary this call runs (by path,
and by the size and time of the CLI's and botocore's files). Anything else: no table, and the
aws parser falls back to its conservative reading.

The index (`index.marshal`): {real aws path: {"dir", "stamp": [(path, mtime_ns, size)],
"source", "ok"}}. A service is a directory `<dir>/<service>/` with one file per operation
(`<operation>.marshal`, about a kilobyte: a call reads only its own), holding the operation's
table, or None for a hand-written command. An operation's table: {"options": {spelling: (canonical, nargs, const,
choices)}, "required": (canonical, ...), "overrides": ((option, unless_next), ...)}; nargs is 0
(store_true), -1 (store_false), 1, "?", "*" or "+".
"""

import marshal

from shim import fs

INDEX = "index.marshal"
MISSING = "missing"  # no table for this service yet: the cold side can make one


def _fresh(entry: dict) -> bool:
    for path, mtime, size in entry.get("stamp") or ():
        try:
            st = fs.stat(path)
        except (OSError, ValueError):
            return False
        if st.st_mtime_ns != mtime or st.st_size != size:
            return False
    return True


def load_entry(root: str, real: str | None) -> dict | None:
    """The index entry for `real` when it is fresh; None otherwise."""
    if not real or not root:
        return None
    try:
        index = marshal.loads(fs.read_file(fs.join(root, INDEX), 4 << 20))
        entry = index.get(real) if isinstance(index, dict) else None
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(entry, dict) or not _fresh(entry):
        return None
    return entry


def is_service_name(name: str) -> bool:
    """A file name a service word may become (never a path)."""
    return bool(name) and name[0] != "." and "/" not in name and "\x00" not in name


def service_table(root: str, real: str | None, service: str) -> str | None:
    """The directory of `service`'s tables; MISSING when the cold side could make it (no
    fresh entry, or not made yet); None when it cannot (the CLI gave no tables)."""
    if not is_service_name(service):
        return None
    entry = load_entry(root, real)
    if entry is None:
        return MISSING
    if not entry.get("ok") or not isinstance(entry.get("dir"), str):
        return None
    path = fs.join(root, entry["dir"], service)
    return path if fs.isdir(path) else MISSING


def op_table(service_dir: str, op: str) -> dict | str | None:
    """An operation's table; MISSING when the CLI has no such operation (an invalid choice);
    None for a hand-written command, which the aws parser reads conservatively."""
    if not is_service_name(op):
        return None
    try:
        table = marshal.loads(fs.read_file(fs.join(service_dir, op + ".marshal"), 4 << 20))
    except FileNotFoundError:
        return MISSING
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return table if isinstance(table, dict) else None
