"""A new log with n entries, as the audit tests build one (each test file brings its `fields`)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from shim.log.append import append_entry, init_log


def new_log(
    tmp_path, fields: Callable[[int], dict[str, object]], n: int = 0
) -> tuple[str, dict[str, object]]:
    """Create a log under tmp_path/log, append n entries made by `fields`; return (dir, anchor)."""
    d = str(tmp_path / "log")
    init_log(d)
    with open(os.path.join(d, "anchor.json")) as fh:
        anchor = json.load(fh)
    for i in range(n):
        append_entry(d, fields(i))
    return d, anchor


def logfile(d: str) -> str:
    return os.path.join(d, "shield.log")
