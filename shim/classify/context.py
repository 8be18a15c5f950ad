"""Resolve the call's target: kube context/namespace, aws profile/region, terraform workspace (HOT).

Reads only small files (kubeconfig: shim.classify.kubeconfig, aws config, terraform's environment file) and never
imports yaml: kubeconfig is scanned by indentation, which covers what kubectl writes. What
cannot be resolved is "?": restrictive rules treat it as a match, allow rules as no match.
"""

from shim import fs
from shim.classify import ini
from shim.classify.files import UNREADABLE, expand_path, home_of, read_text
from shim.classify.invocation import Invocation
from shim.classify.kubeconfig import ALL, UNRESOLVED, resolve_kube

__all__ = ["ALL", "UNRESOLVED", "resolve_context"]


def resolve_aws(
    inv: Invocation, env: dict[str, str], spec: dict, read=read_text, major: int = 1
) -> dict[str, str]:
    out: dict[str, str] = {}
    profile = inv.flag("--profile")
    explicit = bool(profile)
    if not profile:
        order = (
            ("AWS_DEFAULT_PROFILE", "AWS_PROFILE")
            if major == 1
            else ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
        )
        for var in order:
            if env.get(var):
                profile = env[var]
                break
    out["profile"] = profile or "default"
    if not explicit and env.get("AWS_ACCESS_KEY_ID"):
        out["credentials"] = "env"
    region = inv.flag("--region")
    if not region:
        region_vars = (
            ("AWS_DEFAULT_REGION",) if major == 1 else ("AWS_REGION", "AWS_DEFAULT_REGION")
        )
        for var in region_vars:
            if env.get(var):
                region = env[var]
                break
    if not region:
        region = _aws_file_region(out["profile"], env, read)
    out["region"] = region or UNRESOLVED
    return out


def _aws_file_region(profile: str, env: dict[str, str], read) -> str | None:
    """The profile's region from the config and credentials files, as botocore reads them
    (paths expanded, configparser rules, `[profile NAME]` split like shell words, the
    credentials file's keys over the config's). None when a file does not parse."""
    home = home_of(env)
    texts = []
    for var, name in (
        ("AWS_CONFIG_FILE", "config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ):
        path = env.get(var) or fs.join(home, ".aws", name)
        text = read(expand_path(path, env))
        if text == UNREADABLE:
            return None
        parsed = ini.parse(text) if text else {}
        if parsed is None:
            return None  # botocore stops with a parse error: nothing to resolve
        texts.append(parsed)
    region = ini.aws_profiles(texts[0], texts[1]).get(profile, {}).get("region")
    return region or None


def resolve_terraform(
    inv: Invocation, env: dict[str, str], cwd: str, read=read_text
) -> dict[str, str]:
    chdir = inv.flag("-chdir")
    tfdir = fs.normpath(fs.join(cwd, chdir)) if chdir else cwd
    workspace = env.get("TF_WORKSPACE")
    if not workspace:
        data_dir = env.get("TF_DATA_DIR") or ".terraform"
        text = read(fs.join(tfdir, data_dir, "environment"))
        workspace = (text or "").strip() or "default"
    return {"workspace": workspace, "dir": tfdir}


def resolve_generic(inv: Invocation, env: dict[str, str], spec: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    keys = (
        set(spec.get("flags") or {}) | set(spec.get("env") or {}) | set(spec.get("defaults") or {})
    )
    for key in sorted(keys):
        value = None
        flag = (spec.get("flags") or {}).get(key)
        if flag:
            value = inv.flag(flag)
        if not value:
            for var in (spec.get("env") or {}).get(key, ()):
                if env.get(var):
                    value = env[var]
                    break
        if not value:
            value = (spec.get("defaults") or {}).get(key)
        out[key] = value or UNRESOLVED
    return out


def resolve_context(
    grammar: dict,
    inv: Invocation,
    env: dict[str, str],
    cwd: str,
    read=read_text,
    aws_major: int = 1,
) -> dict[str, str]:
    """The resolved target of `inv`, always with `cwd`."""
    spec = grammar.get("context") or {}
    resolver = spec.get("resolver", "none")
    if resolver == "kube":
        out = resolve_kube(inv, env, spec, read)
    elif resolver == "helm":
        out = resolve_kube(inv, env, spec, read, helm=True)
    elif resolver == "aws":
        out = resolve_aws(inv, env, spec, read, aws_major)
    elif resolver == "terraform":
        out = resolve_terraform(inv, env, cwd, read)
    elif resolver == "generic":
        out = resolve_generic(inv, env, spec)
    else:
        out = {}
    out["cwd"] = cwd
    return out
