"""A terraform working directory, snapshotted for the plan and the approved apply.

terraform reads more than the saved plan when it applies it: provisioners (`local-exec`
scripts, `file()` in a connection or provisioner) and local modules are read from the working
directory when the apply runs. So the plan and the approved apply both run in a copy:

- the directory's files (config, scripts, `.terraform.lock.hcl`, variable files), and the
  local modules outside it that `.terraform/modules/modules.json` names (`../modules/x`), at
  the same relative places;
- `.terraform/` rebuilt: the backend configuration and the downloaded modules copied, the
  provider cache linked (terraform checks each provider against the copied lock file);
- the state linked, never copied: `terraform.tfstate`, its backup, `terraform.tfstate.d` and a
  local backend's own `path`/`workspace_dir` are symlinks to the real ones, so the apply
  reads and writes the real state (terraform writes it in place, through the link).

Every copied file and every link is bound (`snapshots`) and checked before the apply.
After the run, files the apply wrote in the copy are written back (`write_back`).
"""

from __future__ import annotations

import json
import os

from shim.preview.runner import Failed
from shim.preview.snapshot import LINK, Snapper, stamp

STATE_NAMES = ("terraform.tfstate", "terraform.tfstate.backup", "terraform.tfstate.d")
SKIP = frozenset(
    (*STATE_NAMES, ".terraform", ".terraform.tfstate.lock.info", ".git", ".terragrunt-cache")
)


def _link(snap: Snapper, link: str, target: str) -> None:
    os.makedirs(os.path.dirname(link), mode=0o700, exist_ok=True)
    os.symlink(target, link)
    name = os.path.relpath(link, snap.workdir)
    snap.pv.snapshots[name] = LINK + target
    snap.stamps[name] = stamp(link)


def _module_dirs(data_dir: str, tfdir: str) -> list[str]:
    """Local module directories (absolute) outside `tfdir` that modules.json names."""
    try:
        with open(os.path.join(data_dir, "modules", "modules.json"), "rb") as fh:
            doc = json.loads(fh.read(4 << 20))
    except (OSError, ValueError):
        return []
    out = []
    for mod in doc.get("Modules") or ():
        d = mod.get("Dir") if isinstance(mod, dict) else None
        if not isinstance(d, str) or not d or d == ".":
            continue
        full = os.path.normpath(os.path.join(tfdir, d))
        inside = full == tfdir or full.startswith(tfdir + os.sep)
        if not inside and full not in out:
            out.append(full)
    return out


def _backend_paths(data_dir: str) -> list[str]:
    """A local backend's own relative `path` and `workspace_dir`, if it sets them."""
    try:
        with open(os.path.join(data_dir, "terraform.tfstate"), "rb") as fh:
            doc = json.loads(fh.read(4 << 20))
    except (OSError, ValueError):
        return []
    backend = doc.get("backend") if isinstance(doc, dict) else None
    if not isinstance(backend, dict) or backend.get("type") != "local":
        return []
    config = backend.get("config") or {}
    out = []
    for key in ("path", "workspace_dir"):
        v = config.get(key)
        if isinstance(v, str) and v and not os.path.isabs(v):
            out.append(os.path.normpath(v))
    return out


def snapshot_tfdir(snap: Snapper, tfdir: str, data_dir_name: str) -> tuple[str, str]:
    """Copy `tfdir` for the plan and the apply; (the copy's directory, its data dir)."""
    real = os.path.realpath(tfdir)
    data_dir = os.path.normpath(os.path.join(real, data_dir_name))
    mods = _module_dirs(data_dir, real)
    root = os.path.commonpath([real, *mods]) if mods else real
    if root in ("/", ""):
        raise Failed("the configuration's local modules have no common directory to snapshot")
    base = os.path.join(snap.workdir, "tf")
    copy = os.path.normpath(os.path.join(base, os.path.relpath(real, root)))
    snap.tree(real, skip=SKIP | {data_dir_name.split("/")[0]}, dest=copy)
    for mod in mods:
        snap.tree(mod, skip=SKIP, dest=os.path.join(base, os.path.relpath(mod, root)))
    backend = _backend_paths(data_dir)
    state = [*STATE_NAMES, *backend]
    default_state = os.path.join(real, "terraform.tfstate")
    if not backend and not os.path.lexists(default_state):
        # terraform removes a state file it created and left empty: through the link, that
        # would remove the link, and the apply would write its state into the copy. An empty
        # file it did not create is left alone (and read as "no state").
        with open(default_state, "xb"):
            pass
        snap.pv.created.append(default_state)
    for name in dict.fromkeys(state):
        if name.split(os.sep)[0] in (".terraform", ".."):
            continue
        _link(snap, os.path.join(copy, name), os.path.join(real, name))
    copy_data = os.path.join(copy, ".terraform")
    os.makedirs(copy_data, mode=0o700, exist_ok=True)
    if os.path.isdir(data_dir):
        for entry in sorted(os.listdir(data_dir)):
            src = os.path.join(data_dir, entry)
            if entry in ("modules",) and os.path.isdir(src):
                snap.tree(src, dest=os.path.join(copy_data, entry))
            elif entry in ("terraform.tfstate", "environment") and os.path.isfile(src):
                snap.tree_file(src, os.path.join(copy_data, entry))
            else:
                _link(snap, os.path.join(copy_data, entry), src)  # providers, plugins
    return copy, copy_data


def write_back(copy: str, real: str, bound: dict[str, str], workdir: str) -> list[str]:
    """Copy the files the apply created or changed in `copy` back to `real` (a `local_file`,
    a provisioner's output), never through a link, never into `.terraform`; the names."""
    done: list[str] = []
    for root, dirs, names in os.walk(copy):
        dirs[:] = [
            d for d in dirs if d != ".terraform" and not os.path.islink(os.path.join(root, d))
        ]
        for n in names:
            src = os.path.join(root, n)
            if os.path.islink(src) or not os.path.isfile(src):
                continue
            rel = os.path.relpath(src, copy)
            key = os.path.relpath(src, workdir)
            from shim.preview.snapshot import sha256_file

            if key in bound and bound[key] == sha256_file(src):
                continue
            if n.endswith(".lock.info"):
                continue
            dest = os.path.join(real, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(src, "rb") as fh:
                data = fh.read()
            tmp = f"{dest}.shield-{os.getpid()}"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, dest)
            done.append(rel)
    return sorted(done)
