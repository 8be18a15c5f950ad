"""Dump every aws CLI v1 operation's option table, from inside the CLI's own interpreter.

Not imported by shield: `shim/rules/awstables.py` copies this file as `sitecustomize.py` into a
temporary directory on PYTHONPATH and starts the installed `aws`. Python imports it before the
aws script runs; it builds each operation's argument parser the way the CLI does (botocore's
service models, then the CLI's own customizations), writes the tables as JSON to the file named
by `_SHIELD_AWS_DUMP`, and exits. Without that variable it does nothing. Only the standard
library and the CLI's own packages are used: the interpreter is the aws CLI's, not shield's.
"""

import json
import os
import sys


def _action_entry(action, positives):
    """(canonical option, nargs code, const, choices) for one argparse action."""
    kind = type(action).__name__
    nargs: object
    if kind == "_StoreTrueAction":
        nargs = 0
    elif kind == "_StoreFalseAction":
        nargs = -1
    elif kind == "_StoreConstAction":
        nargs = 0
    elif action.nargs is None:
        nargs = 1
    elif action.nargs in ("?", "*", "+"):
        nargs = {"?": "?", "*": "*", "+": "+"}[action.nargs]
    elif isinstance(action.nargs, int):
        nargs = action.nargs
    else:
        return None  # REMAINDER, PARSER: not read by shield
    canon = positives.get(action.dest, action.option_strings[0])
    const = action.const if isinstance(action.const, str) else None
    choices = list(action.choices) if action.choices is not None else None
    if choices is not None and not all(isinstance(c, str) for c in choices):
        choices = None
    return [canon, nargs, const, choices]


def _operation(cmd, lineage):
    from awscli.argparser import ArgTableArgParser

    try:
        from awscli.customizations.arguments import OverrideRequiredArgsArgument
    except ImportError:  # pragma: no cover - older CLIs
        OverrideRequiredArgsArgument = ()

    table = cmd.arg_table
    parser = ArgTableArgParser(table)
    positives = {}
    for action in parser._actions:
        if type(action).__name__ == "_StoreTrueAction" and action.option_strings:
            positives[action.dest] = action.option_strings[0]
    options = {}
    required = []
    for action in parser._actions:
        if not action.option_strings:
            return None  # a positional of its own: not read by shield
        entry = _action_entry(action, positives)
        if entry is None:
            return None
        for opt in action.option_strings:
            options[opt] = entry
        if action.required:
            required.append(entry[0])
    overrides = []
    for name, arg in table.items():
        if OverrideRequiredArgsArgument and isinstance(arg, OverrideRequiredArgsArgument):
            skip = "output" if name == "generate-cli-skeleton" else None
            overrides.append(["--" + name, skip])
    return {"options": options, "required": required, "overrides": overrides}


def dump(path, only=None):
    from awscli.clidriver import ServiceOperation, create_clidriver

    driver = create_clidriver()
    services = {}
    for name, svc in driver._get_command_table().items():
        if only is not None and name not in only:
            continue
        get_table = getattr(svc, "_get_command_table", None)
        if get_table is None:
            continue
        try:
            ops = get_table()
        except Exception:  # noqa: BLE001 - a service the CLI cannot load: no table
            continue
        out = {}
        for op_name, op in ops.items():
            entry = None  # a hand-written command (s3 cp, eks update-kubeconfig): not read
            if isinstance(op, ServiceOperation):
                try:
                    entry = _operation(op, (name, op_name))
                except Exception:  # noqa: BLE001 - an operation the CLI cannot build
                    entry = None
            out[op_name] = entry
        services[name] = out
    import awscli

    botocore = sys.modules.get("botocore")
    info = {
        "awscli": getattr(awscli, "__version__", "?"),
        "botocore": getattr(botocore, "__version__", "?"),
        "botocore_file": getattr(botocore, "__file__", None),
        "awscli_file": awscli.__file__,
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "executable": sys.executable,
    }
    with open(path, "w") as fh:
        json.dump({"info": info, "services": services}, fh)


def _main():
    path = os.environ.get("_SHIELD_AWS_DUMP")
    if not path:
        return
    # the CLI's own files only: no models or plugins from a home, a config or the environment
    empty = os.environ.get("_SHIELD_AWS_HOME") or "/nonexistent"
    for key in list(os.environ):
        if key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update({"HOME": empty, "AWS_CONFIG_FILE": os.devnull})
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    code = 0
    only = os.environ.get("_SHIELD_AWS_SERVICES")
    try:
        dump(path, set(only.split(",")) if only else None)
    except Exception as exc:  # noqa: BLE001 - reported to shield, which falls back
        sys.stderr.write("shield: aws tables: " + type(exc).__name__ + ": " + str(exc) + "\n")
        code = 1
    sys.stdout.flush()
    os._exit(code)


_main()
