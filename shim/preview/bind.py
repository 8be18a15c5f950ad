"""Bind a call's `-f` files and piped stdin to snapshots, and point its argv at them."""

from __future__ import annotations

import os
from typing import Any

from shim.preview.flags import is_url, join_list, rewrite_flag_values, split_list
from shim.preview.runner import Failed, Preview
from shim.preview.snapshot import Snapper, read_stdin

KUBE_VALUE_SHORTS = frozenset(("-n", "-l", "-o", "-c", "-p", "-k", "-e", "-s", "-v", "-L", "-r"))
KUBE_BOOL_SHORTS = frozenset(("-R", "-A", "-i", "-t", "-q", "-w", "-h"))
KUBE_DIR_EXTS = (".json", ".yaml", ".yml")


class Files:
    """The call's `-f` values, snapshotted; the preview's `-f` args; the rewritten argv."""

    def __init__(self) -> None:
        self.preview_args: list[str] = []
        self.run_argv: list[str] | None = None
        self.notes: list[str] = []


def snap_filenames(
    pv: Preview,
    inv: Any,
    snap: Snapper,
    stdin_fd: int | None,
    deadline: float,
    short: str = "-f",
    long: str = "--filename",
    exts: tuple[str, ...] = KUBE_DIR_EXTS,
    value_shorts: frozenset[str] = KUBE_VALUE_SHORTS,
    bool_shorts: frozenset[str] = KUBE_BOOL_SHORTS,
) -> Files:
    """Snapshot every file, directory and piped stdin named by `-f`; rewrite the argv so that
    the approved command reads the snapshots (stdin: `pv.stdin_file`)."""
    res = Files()
    values = list(inv.flags.get(long, ()))
    if not values:
        return res
    new_values: list[str] = []
    stdin_snap: str | None = None
    for value in values:
        items = split_list(value)
        mapped: list[str] = []
        for item in items:
            if item == "-":
                if stdin_snap is None:
                    stdin_snap = snap_stdin(pv, snap, stdin_fd, deadline)
                mapped.append("-")
                if stdin_snap:
                    res.preview_args += [short, stdin_snap]
                continue
            if is_url(item):
                res.notes.append(
                    f"{item} is a URL: not snapshotted, it is fetched again on approval"
                )
                mapped.append(item)
                res.preview_args += [short, item]
                continue
            if exts and os.path.isdir(snap.full(item)):
                # a directory of manifests: each one sealed, in the order kubectl reads them
                recursive = any(v == "true" for v in inv.flags.get("--recursive", ()))
                copies = snap.dir_files(item, exts, recursive)
            else:
                copies = [snap.path(item, exts=exts)]
            mapped += copies
            for copy in copies:
                res.preview_args += [short, copy]
        new_values.append(join_list(mapped))
    if new_values != values:
        res.run_argv = rewrite_flag_values(
            inv.argv, short, long, values, new_values, value_shorts, bool_shorts
        )
        if res.run_argv is None:
            raise Failed(f"could not bind the {long} files of this command line to their snapshots")
    return res


def snap_stdin(pv: Preview, snap: Snapper, stdin_fd: int | None, deadline: float) -> str | None:
    """Read piped stdin to EOF once into a sealed file (`pv.stdin_file`); its path, or None
    when there is no stdin to bind (a terminal, or none given to the preview)."""
    if stdin_fd is None:
        pv.line("(stdin is not available to the preview: -f - is not bound)")
        return None
    try:
        if os.isatty(stdin_fd):
            pv.line("(stdin is a terminal: -f - is not snapshotted)")
            return None
    except OSError:
        return None
    data, problem = read_stdin(stdin_fd, deadline)
    # stdin is consumed now: the approved run gets these sealed bytes, or it must not run at all
    try:
        sealed = snap.seal("stdin", data, capped=False)
    except Failed as exc:
        pv.stdin_file = "/proc/self/fd/-1"  # nothing to open: the approved run cannot start
        raise Failed(f"cannot seal stdin: {exc}") from exc
    pv.stdin_file = sealed.path
    if problem:
        raise Failed(
            f"{problem}; only the {len(data)} bytes read are bound, and approving runs "
            "exactly those"
        )
    return sealed.path
