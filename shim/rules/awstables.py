"""The installed aws CLI's own option tables, made from its botocore models (cold).

aws CLI v1 is a Python program: its interpreter imports botocore and the CLI's customizations.
`make_tables` starts the installed `aws` with `shim/rules/awsdump.py` as the `sitecustomize`
module on PYTHONPATH; before the aws script runs, that module builds each operation's argument
parser exactly as the CLI does and writes the tables. Here they become one marshal file per
service (`shim.classify.optables` loads only the service a call names) and an index entry that
records where they came from and the files they depend on (the aws program, the CLI's and
botocore's packages: a changed file makes them stale). botocore is never imported by shield.

When the CLI gives no tables (aws v2, a binary; an interpreter started with -I or -E; a timeout),
the entry says so and the aws parser keeps its conservative reading until the aws program
changes.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from shim import fs
from shim.classify.optables import INDEX, is_service_name, load_entry

TIMEOUT_S = 600  # every service, at install
SERVICE_TIMEOUT_S = 60  # one service, in a shim call
# what the aws program may see of the caller's environment (pyenv's shims need theirs)
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")


def tables_dir(compiled_dir: str) -> str:
    return os.path.join(compiled_dir, "aws-tables")


def _read_index(root: str) -> dict:
    try:
        data = marshal.loads(Path(root, INDEX).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _stamp(paths: list[str]) -> list[tuple[str, int, int]]:
    out = []
    for path in paths:
        st = os.stat(path)
        out.append((path, st.st_mtime_ns, st.st_size))
    return out


def is_aws_cli_script(real: str) -> bool:
    """True when `real` looks like the aws CLI v1's own entry script (it imports awscli)."""
    try:
        with open(real, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"awscli" in head


def _interpreter(real: str) -> list[str] | None:
    """The Python an aws CLI v1 script names on its #! line (`#!/usr/bin/env python3` looked
    up on PATH); None when `real` is not such a script (a pyenv shim, a wrapper, a binary)."""
    if not is_aws_cli_script(real):
        return None
    with open(real, "rb") as fh:
        line = fh.readline()[2:].decode("utf-8", "replace").split()
    if line and os.path.basename(line[0]) == "env":
        line = line[1:]
        found = shutil.which(line[0]) if line else None
        line = [found, *line[1:]] if found else []
    if not line or not os.path.basename(line[0]).startswith("python"):
        return None
    return [line[0]]


def dump(real: str, services: list[str] | None, timeout: float = TIMEOUT_S) -> dict | None:
    """The tables the aws CLI at `real` builds (all services, or only `services`); None when
    it gives none. The CLI's own interpreter runs awsdump.py; where `real` is not the CLI's
    script itself (a pyenv shim, a wrapper), `real` runs with awsdump.py as sitecustomize."""
    with tempfile.TemporaryDirectory(prefix="shield-aws-") as tmp:
        shutil.copyfile(
            Path(__file__).with_name("awsdump.py"), os.path.join(tmp, "sitecustomize.py")
        )
        os.mkdir(os.path.join(tmp, "home"))
        out = os.path.join(tmp, "tables.json")
        env = {k: v for k, v in os.environ.items() if k in _KEEP or k.startswith("PYENV_")}
        env.update(
            PYTHONPATH=tmp,
            PYTHONNOUSERSITE="1",
            PYTHONDONTWRITEBYTECODE="1",
            _SHIELD_AWS_DUMP=out,
            _SHIELD_AWS_HOME=os.path.join(tmp, "home"),
        )
        if services:
            env["_SHIELD_AWS_SERVICES"] = ",".join(services)
        python = _interpreter(real)
        argv = [*python, os.path.join(tmp, "sitecustomize.py")] if python else [real, "--version"]
        try:
            subprocess.run(
                argv,
                env=env,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
            with open(out) as fh:
                data = json.load(fh)
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return None
    return data


def _op(raw: Any) -> dict | None:
    if not isinstance(raw, dict):
        return None
    options = {
        opt: (e[0], e[1], e[2], tuple(e[3]) if e[3] is not None else None)
        for opt, e in raw["options"].items()
    }
    table = {
        "options": options,
        "required": tuple(raw.get("required") or ()),
        "overrides": tuple((name, skip) for name, skip in raw.get("overrides") or ()),
    }
    return table


def make_tables(
    root: str, real: str, services: list[str] | None = None, timeout: float = TIMEOUT_S
) -> bool:
    """Make the tables of `services` (default: every service) for the aws CLI at `real`;
    True when they are there. A failure is recorded, and not tried again while `real` is
    unchanged."""
    if services is not None and not all(is_service_name(s) for s in services):
        return False
    entry = load_entry(root, real)
    if entry is not None and not entry.get("ok"):
        return False  # this aws gave no tables, and has not changed since
    os.makedirs(root, exist_ok=True)
    data = dump(real, services, timeout)
    index = _read_index(root)
    if data is None:
        index[real] = {"dir": "", "stamp": _stamp([real]), "source": "none", "ok": False}
        _write(os.path.join(root, INDEX), marshal.dumps(index))
        return False
    info = data.get("info") or {}
    files = [real] + [f for f in (info.get("awscli_file"), info.get("botocore_file")) if f]
    if entry is None:
        entry = {
            "dir": f"t{time.time_ns()}",
            "stamp": _stamp(files),
            "source": (
                f"aws-cli {info.get('awscli')} (botocore {info.get('botocore')}, "
                f"Python {info.get('python')}) at {real}"
            ),
            "ok": True,
        }
    base = os.path.join(root, entry["dir"])
    os.makedirs(base, exist_ok=True)
    made = data["services"]
    for name in services or ():
        made.setdefault(name, {})  # a service this CLI does not have: no operation at all
    for name, ops in made.items():
        if is_service_name(name) and isinstance(ops, dict):
            _write_service(base, name, ops)
    index = _read_index(root)
    index[real] = entry
    _write(os.path.join(root, INDEX), marshal.dumps(index))
    return True


def _write_service(base: str, name: str, ops: dict) -> None:
    """One file per operation, in a directory that appears whole (renamed into place)."""
    final = os.path.join(base, name)
    if os.path.isdir(final):
        return  # made already (by another shim, or an earlier run)
    tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=base)
    for op, raw in ops.items():
        if is_service_name(op):
            with open(os.path.join(tmp, f"{op}.marshal"), "wb") as fh:
                fh.write(marshal.dumps(_op(raw)))
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process put it there first


def maker(root: str, real: str | None):
    """`make(service)` for shim.classify.classify.table_loader: the cold step of an aws call
    whose service has no table yet (only where the tables directory can be written)."""
    if not real or not fs.can_write(root):
        return None

    def make(service: str) -> bool:
        try:
            return make_tables(root, real, [service], SERVICE_TIMEOUT_S)
        except OSError:
            return False

    return make
