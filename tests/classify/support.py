"""Helpers for the classifier tests: the shipped rules, table rows, and the real CLIs.

The real CLIs are used only where nothing can be reached: kubectl talks to a kubeconfig whose
server is 127.0.0.1:1, and the aws CLI runs in process with every API call and every custom
command's `_run_main` replaced by a recorder (no client is ever created).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from shim.classify.argv import parse_argv
from shim.classify.decide import Decision, decide
from shim.classify.invocation import Invocation
from shim.rules.compile import compile_layers
from shim.rules.load import defaults_dir


@functools.cache
def shipped() -> dict[str, dict]:
    """The package's own commands.d, compiled (examples checked)."""
    return compile_layers([defaults_dir()])


def parse(tool: str, argv: list[str] | str, env: dict[str, str] | None = None) -> Invocation:
    args = shlex.split(argv) if isinstance(argv, str) else argv
    return parse_argv(shipped()[tool]["grammar"], args, env or {})


def classify(
    tool: str,
    argv: list[str] | str,
    env: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
    agent: str = "agent",
    compiled: dict[str, dict] | None = None,
) -> Decision:
    """Parse and decide with the shipped rules (or `compiled`), in a fixed, known context
    (HOME set unless `env` says otherwise: without it kubectl reads ./.kube and is held)."""
    tools = compiled or shipped()
    args = shlex.split(argv) if isinstance(argv, str) else argv
    env = {"HOME": "/home/agent"} if env is None else env
    inv = parse_argv(tools[tool]["grammar"], args, env)
    return decide(inv, tools[tool]["rules"], context or {}, agent, env)


class Row(NamedTuple):
    """One table row: the command line (without the tool), what shield must decide, the verb
    path it must find, the rule that must decide (None: no rule, the default ask), the
    environment, and where the command line comes from."""

    line: str
    decision: str
    verb: str
    rule: str | None = ""
    env: dict[str, str] | None = None
    source: str = ""


def rows_params(rows: list[Row]) -> list[Any]:
    return [pytest.param(r, id=r.line or "(empty)") for r in rows]


def check_row(tool: str, row: Row) -> Decision:
    d = classify(tool, row.line, env=row.env)
    inv = d.invocation
    got = (d.decision, " ".join(inv.verb))
    assert got == (row.decision, row.verb), (
        f"{tool} {row.line}: got {got} kind={inv.kind} note={inv.note!r} rule={d.rule} "
        f"matched={[m['id'] for m in d.matched]}"
    )
    if row.rule != "":
        assert d.rule == row.rule, f"{tool} {row.line}: decided by {d.rule}, not {row.rule}"
    return d


# --------------------------------------------------------------------------- kubectl


DEAD_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://127.0.0.1:1
  name: dead
contexts:
- context:
    cluster: dead
    user: u
    namespace: dev
  name: dead
current-context: dead
users:
- name: u
  user:
    token: not-a-token
"""


def real_kubectl() -> str | None:
    """The real kubectl 1.32 binary (not the gcloud dispatcher, which parses flags itself)."""
    for cand in (
        os.environ.get("SHIELD_TEST_KUBECTL"),
        "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
    ):
        if cand and os.access(cand, os.X_OK):
            return cand
    found = shutil.which("kubectl")
    if not found:
        return None
    try:
        out = subprocess.run(
            [found, "version", "--client"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "v1.32." in out and "dispatcher" not in out:
        return found
    return None


def run_kubectl(binary: str, args: list[str], home: Path) -> str:
    """What the real kubectl made of `args`: help, unknown (command or plugin), error (flag
    parsing), or ran (it got past parsing; the only server it can try is 127.0.0.1:1)."""
    kubeconfig = home / "config"
    if not kubeconfig.exists():
        kubeconfig.write_text(DEAD_KUBECONFIG)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(home / "cache"),
    }
    proc = subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    err = proc.stderr
    if "unknown command" in err or "flags cannot be placed before plugin name" in err:
        return "unknown"
    if proc.returncode == 0 and proc.stdout.lstrip().startswith(("Usage:", "kubectl controls")):
        return "help"
    if proc.returncode == 0 and "\nUsage:\n" in proc.stdout:
        return "help"
    for mark in (
        "unknown flag",
        "unknown shorthand flag",
        "invalid argument",
        "flag needs an argument",
        "bad flag syntax",
        "Unexpected args",  # `kubectl create foo` without a kubectl-create-foo plugin
    ):
        if mark in err:
            return "error"
    return "ran"  # past parsing: done locally, refused by validation, or sent to 127.0.0.1:1


# --------------------------------------------------------------------------- aws (parse only)

AWS_CONFIG = """[default]
region = us-east-1
[profile prod]
region = eu-west-1
[profile p]
region = eu-west-1
[profile dev]
region = us-west-2
"""


class AwsOutcome(NamedTuple):
    what: str  # call | custom | help | version | error
    name: str  # "ec2 terminate-instances", "s3 rm"
    params: dict[str, Any]


class _NoNetwork(Exception):
    """Raised instead of any connection the aws CLI tries to open."""


@functools.lru_cache(maxsize=1)
def _aws_harness() -> Any:
    """Patch the aws CLI (v1, this venv) so that nothing is ever sent or run."""
    try:
        import awscli.clidriver as clidriver
        from awscli.botocore import xform_name
        from awscli.botocore.client import BaseClient
    except ImportError:  # pragma: no cover - the test extra installs awscli
        return None

    record: list[AwsOutcome] = []

    def invoke(self: Any, service_name: str, operation_name: str, parameters: Any, g: Any) -> int:
        record.append(
            AwsOutcome("call", f"{service_name} {xform_name(operation_name, '-')}", parameters)
        )
        return 0

    clidriver.CLIOperationCaller.invoke = invoke

    def api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        # a waiter or a custom command's own client: record it, send nothing
        service = self.meta.service_model.service_name
        record.append(
            AwsOutcome("call", f"{service} {xform_name(operation_name, '-')}", api_params)
        )
        raise _NoNetwork(operation_name)

    # awscli vendors botocore and also imports it as `botocore`: two copies of the client class.
    # Patched only while aws_outcome runs (_clients_patched): boto3 in other tests of the same
    # process (the e2e tests against moto) must reach their local server.
    import botocore.client

    clients = [(cls, cls._make_api_call) for cls in {BaseClient, botocore.client.BaseClient}]
    return clidriver, record, clients, api_call


@contextlib.contextmanager
def _clients_patched(clients: list[tuple[type, Any]], api_call: Any) -> Iterator[None]:
    for cls, _ in clients:
        cls._make_api_call = api_call  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for cls, original in clients:
            cls._make_api_call = original  # type: ignore[attr-defined]


_LOADER: list[Any] = []


def _share_loader(driver: Any) -> None:
    """One data loader (and its cache of service models) for every driver: loading the ec2
    model again for each call would cost a tenth of a second."""
    if _LOADER:
        driver.session.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(driver.session.get_component("data_loader"))


def _patch_commands(record: list[AwsOutcome]) -> None:
    """Custom commands and help pages are loaded with the driver: patch every class known now."""
    from awscli.customizations.commands import BasicCommand
    from awscli.help import HelpCommand

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    def show_help(self: Any, *args: Any, **kw: Any) -> int:
        record.append(AwsOutcome("help", "", {}))
        return 0

    for cls in [HelpCommand, *subclasses(HelpCommand)]:
        if "__call__" in cls.__dict__:
            cls.__call__ = show_help  # type: ignore[method-assign]

    def run_main(self: Any, parsed_args: Any, parsed_globals: Any) -> int:
        record.append(AwsOutcome("custom", " ".join(self.lineage_names), dict(vars(parsed_args))))
        return 0

    for cls in [BasicCommand, *subclasses(BasicCommand)]:
        if "_run_main" in cls.__dict__:
            cls._run_main = run_main  # type: ignore[attr-defined]


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """`--debug` adds stream handlers and DEBUG levels to these loggers: undo that after."""
    import logging

    names = ("botocore", "awscli", "s3transfer", "urllib3")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    try:
        yield
    finally:
        for name, (level, handlers) in saved.items():
            log = logging.getLogger(name)
            log.setLevel(level)
            log.handlers[:] = handlers


@contextlib.contextmanager
def _no_network() -> Iterator[None]:
    """Belt and braces: any connection other than loopback fails at once."""
    import socket

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost") and not isinstance(host, bytes):
            raise _NoNetwork(f"connection to {host!r} refused by the test harness")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            raise _NoNetwork(f"lookup of {host!r} refused by the test harness")
        return real_getaddrinfo(host, *args, **kw)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo


@contextlib.contextmanager
def _aws_env(home: Path) -> Iterator[None]:
    cfg = home / "aws-config"
    cfg.write_text(AWS_CONFIG)
    keep = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("AWS_") and key != "AWS_DATA_PATH":  # awscli/__init__ sets that one
            del os.environ[key]
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret",
            "AWS_CONFIG_FILE": str(cfg),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "HOME": str(home),
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(keep)


def aws_outcome(argv: list[str], home: Path) -> AwsOutcome | None:
    """What the real aws CLI (v1) does with `argv`, without sending or running anything.
    None when awscli is not importable."""
    harness = _aws_harness()
    if harness is None:
        return None
    clidriver, record, clients, api_call = harness
    record.clear()
    sink = io.StringIO()
    with (
        _clients_patched(clients, api_call),
        _quiet_loggers(),
        _aws_env(home),
        _no_network(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        driver = clidriver.create_clidriver()
        _share_loader(driver)
        _patch_commands(record)
        cwd = os.getcwd()
        os.chdir(home)  # file:// parameters are read relative to the working directory
        try:
            rc = driver.main(list(argv))
        except SystemExit as exc:
            rc = exc.code
        finally:
            os.chdir(cwd)
    if record:
        return record[0]
    if rc == 0:
        return AwsOutcome("version", "", {})  # --version printed and exited
    return AwsOutcome("error", "", {"rc": rc, "output": sink.getvalue()[-300:]})
