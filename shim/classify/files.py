"""The tools' own config files, found and read the way the tools find and read them (HOT).

`home_of` (the home the tools use), `expand_path` (botocore's expandvars + expanduser) and
`read_text` (a whole config file, or UNREADABLE when it is there but cannot be judged).
"""

from shim import fs


def _user_home() -> str:
    """$HOME is passed in env; this is the fallback when it is unset (cold)."""
    import os

    return os.path.expanduser("~")


def home_of(env: dict[str, str]) -> str:
    """The home the tools use: $HOME, else the user's entry in the passwd database (what
    kubectl, the aws CLI and terraform fall back to), never `/`."""
    return env.get("HOME") or _user_home()


# What `read_text` returns for a file that is there but cannot be judged (not a regular file, too
# large, unreadable): its context is unresolved, never taken from the next file instead.
UNREADABLE = "\x00unreadable\x00"


def read_text(path: str) -> str | None:
    """A config file's text; None when it is not there; UNREADABLE when it is there but cannot
    be judged (not a regular file, too large, unreadable)."""
    try:
        return fs.read_config(path).decode("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return UNREADABLE


def expand_path(path: str, env: dict[str, str]) -> str:
    """os.path.expandvars, then os.path.expanduser, over `env` (as botocore opens its files)."""
    out: list[str] = []
    i = 0
    while i < len(path):
        if path[i] == "$":
            j = i + 1
            if path[j : j + 1] == "{":
                k = path.find("}", j)
                name, end = (path[j + 1 : k], k + 1) if k > 0 else ("", j)
            else:
                k = j
                while k < len(path) and path[k] in _VAR_CHARS:
                    k += 1
                name, end = path[j:k], k
            if name and name in env:
                out.append(env[name])
                i = end
                continue
        out.append(path[i])
        i += 1
    text = "".join(out)
    if text == "~" or text.startswith("~/"):
        text = home_of(env) + text[1:]
    elif text.startswith("~"):
        user, sep, rest = text[1:].partition("/")
        try:
            import pwd

            text = pwd.getpwnam(user).pw_dir + sep + rest
        except (ImportError, KeyError):
            pass  # expanduser leaves an unknown user's ~name as it is
    return text


# os.path.expandvars reads $NAME with ASCII word characters only
_VAR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
