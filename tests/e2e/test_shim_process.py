"""End to end: real shim processes in front of stand-in binaries (issue 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shim.log.append import _EIO, _ENOSPC
from tests.conftest import PY, World, shield, write_standin


def test_allowed_call_passes_argv_byte_exact(world: World) -> None:
    args = [
        b"-n",
        b"prod",
        b"get",
        b"pods",
        b"",
        b"a b",
        b"caf\xc3\xa9",
        b"\xff\xfe-not-utf8",
        b"--field-selector=x=y",
    ]
    proc = world.run("kubectl", *args)
    assert proc.returncode == 0, proc.stderr
    assert world.argvs() == [args]


@pytest.mark.parametrize("code", [0, 1, 2, 255])
def test_allowed_call_returns_the_real_exit_code(world: World, code: int) -> None:
    proc = world.run("kubectl", "get", "pods", env=world.env(STANDIN_EXIT=str(code)))
    assert proc.returncode == code
    assert len(world.records()) == 1


def test_allowed_call_dies_of_the_same_signal(world: World) -> None:
    proc = world.run(
        "kubectl", "get", "pods", env=world.env(STANDIN_SIGNAL=str(int(signal.SIGTERM)))
    )
    assert proc.returncode == -signal.SIGTERM


def test_stdin_reaches_the_real_binary_untouched(world: World) -> None:
    manifest = b"apiVersion: v1\nkind: ConfigMap\n\xff binary tail\n"
    proc = world.run(
        "kubectl", "get", "-f", "-", input=manifest, stdin=None, env=world.env(STANDIN_STDIN="1")
    )
    assert proc.returncode == 0, proc.stderr
    assert bytes.fromhex(world.records()[0]["stdin"]) == manifest


def test_stdout_and_stderr_are_the_real_tools(world: World) -> None:
    proc = world.run("aws", "s3", "ls")
    assert proc.stdout == b"standin aws: s3 ls\n"
    assert proc.stderr == b""


def test_every_call_is_logged_with_agent_context_and_rule(world: World) -> None:
    world.run("kubectl", "--context", "kind-dev", "-n", "web", "get", "pods")
    entry = world.log()[-1]
    assert entry["event"] == "call"
    assert entry["agent"] == "test-bot"
    assert entry["tool"] == "kubectl"
    assert entry["argv"] == ["--context", "kind-dev", "-n", "web", "get", "pods"]
    assert entry["decision"] == "allow"
    assert entry["rule"] == "kubectl/read"
    assert entry["context"]["context"] == "kind-dev"
    assert entry["context"]["namespace"] == "web"


def test_a_deleted_working_directory_is_logged_as_unknown_not_as_pwd(
    world: World, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    code = f"import os, subprocess, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
    code += "sys.exit(subprocess.call(['kubectl', 'get', 'pods']))"
    env = world.env(PWD="/srv/prod/infra")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    entry = world.log()[-1]
    assert entry["cwd"] == "?" and entry["context"]["cwd"] == "?"


def test_held_call_does_not_run_when_the_deadline_is_zero(world: World) -> None:
    proc = world.run("kubectl", "delete", "pod", "web", env=world.env(SHIELD_HOLD_TIMEOUT="0"))
    assert proc.returncode == 124
    assert world.records() == []
    assert b"held" in proc.stderr and b"request" in proc.stderr
    events = [e["event"] for e in world.log()]
    assert events[-2:] == ["call", "expired"]
    assert world.log()[-2]["decision"] == "ask"


def test_deny_rule_in_the_home_layer_refuses_with_126(world: World) -> None:
    (world.home / "commands.d" / "team.yaml").write_text(
        """
tool: kubectl
rules:
  - id: team/no-prod-namespace-delete
    decision: deny
    reason: namespaces in prod are deleted by the platform team only
    hint: open a ticket with the platform team
    match:
      verb: delete
      any_arg: [ns, namespace, namespaces]
      context: {context: "*prod*"}
    examples:
      match: [{argv: "delete ns web", context: {context: prod-eu}}]
      no_match: [{argv: "delete ns web", context: {context: kind-dev}}]
"""
    )
    proc = world.run("kubectl", "--context", "prod-eu", "delete", "ns", "web")
    assert proc.returncode == 126
    assert world.records() == []
    assert b"team/no-prod-namespace-delete" in proc.stderr
    assert b"hint: open a ticket" in proc.stderr
    assert world.log()[-1]["decision"] == "deny"


def test_environment_cannot_relax_the_policy(world: World, tmp_path: Path) -> None:
    # a permissive home and rules dir offered through the environment
    evil = tmp_path / "evil-home"
    (evil / "commands.d").mkdir(parents=True)
    (evil / "commands.d" / "kubectl.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "commands.d" / "kubectl.yaml")
        .read_text()
        .replace("decision: ask", "decision: allow")
    )
    env = world.env(
        SHIELD_HOME=str(evil),
        SHIELD_RULES=str(evil / "commands.d"),
        SHIELD_HOLD_TIMEOUT="0",
        PYTHONPATH=str(evil),
    )
    proc = world.run("kubectl", "delete", "pod", "web", env=env)
    assert proc.returncode == 124
    assert world.records() == []
    assert not (evil / "log").exists()


def test_hold_timeout_env_only_shortens(world: World) -> None:
    from shim.held import hold_timeout

    assert hold_timeout(600, {}, {"SHIELD_HOLD_TIMEOUT": "5"}) == 5
    assert hold_timeout(60, {}, {"SHIELD_HOLD_TIMEOUT": "99999"}) == 60
    assert hold_timeout(None, {"hold_timeout": 30}, {"SHIELD_HOLD_TIMEOUT": "junk"}) == 30


def test_real_binary_missing_exits_127(world: World) -> None:
    (world.real / "helm").unlink()
    proc = world.run("helm", "list", env=world.env(path=f"{world.bin}:{world.real}"))
    assert proc.returncode == 127
    assert b"not found" in proc.stderr


def test_shim_dir_listed_twice_and_symlinked_is_skipped(world: World, tmp_path: Path) -> None:
    link = tmp_path / "shims-link"
    link.symlink_to(world.bin)
    path = f"{world.bin}:{link}:{world.bin}:{world.real}"
    proc = world.run("kubectl", "get", "pods", env=world.env(path=path))
    assert proc.returncode == 0, proc.stderr
    assert len(world.records()) == 1


def test_relative_and_empty_path_entries_pointing_at_the_shim_dir_are_skipped(world: World) -> None:
    path = f"{world.bin}::shims:{world.real}"
    proc = world.run("kubectl", "get", "pods", env=world.env(path=path), cwd=world.root)
    assert proc.returncode == 0, proc.stderr
    assert len(world.records()) == 1


def test_a_copy_of_a_shim_elsewhere_on_path_is_skipped_by_its_marker(
    world: World, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "kubectl").write_bytes((world.bin / "kubectl").read_bytes())
    (other / "kubectl").chmod(0o755)
    proc = world.run(
        "kubectl", "get", "pods", env=world.env(path=f"{world.bin}:{other}:{world.real}")
    )
    assert proc.returncode == 0, proc.stderr
    assert len(world.records()) == 1


def test_wrapper_that_calls_the_tool_again_is_stopped_with_125(
    world: World, tmp_path: Path
) -> None:
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    (wrap / "kubectl").write_text('#!/bin/sh\nexec kubectl "$@"\n')
    (wrap / "kubectl").chmod(0o755)
    proc = world.run(
        "kubectl", "get", "pods", env=world.env(path=f"{world.bin}:{wrap}:{world.real}")
    )
    assert proc.returncode == 125
    assert b"loop" in proc.stderr


def test_pinned_real_binary_wins_over_path(world: World, tmp_path: Path) -> None:
    pinned = write_standin(tmp_path / "pinned", "kubectl")
    world.install("--real", f"kubectl={pinned}")
    proc = world.run("kubectl", "get", "pods", env=world.env(path=f"{world.bin}:/usr/bin:/bin"))
    assert proc.returncode == 0, proc.stderr
    assert len(world.records()) == 1


def test_invalid_rules_fail_closed_with_125(world: World) -> None:
    (world.home / "commands.d" / "kubectl.yaml").write_text(
        "tool: kubectl\ngrammar:\n  style: cobra\nrules:\n  - id: x\n    decision: maybe\n"
    )
    proc = world.run("kubectl", "get", "pods")
    assert proc.returncode == 125
    assert world.records() == []
    assert b"kubectl.yaml:6: rule x: decision must be one of" in proc.stderr


def test_unwritable_log_fails_closed_with_125(world: World) -> None:
    if os.geteuid() == 0:
        # root ignores permissions: make the log path a directory instead
        log = world.home / "log" / "shield.log"
        log.rename(world.home / "log" / "moved.log")
        log.mkdir()
    else:  # pragma: no cover
        (world.home / "log").chmod(0o500)
    proc = world.run("kubectl", "get", "pods")
    assert proc.returncode == 125
    assert world.records() == []


def test_missing_home_fails_closed_with_125(world: World) -> None:
    import shutil

    shutil.rmtree(world.home)
    proc = world.run("kubectl", "get", "pods")
    assert proc.returncode == 125
    assert world.records() == []
    assert b"install" in proc.stderr


def test_install_is_idempotent_and_uninstall_removes_only_shims(world: World) -> None:
    before = sorted(p.name for p in world.bin.iterdir())
    world.install()
    assert sorted(p.name for p in world.bin.iterdir()) == before
    (world.bin / "notes.txt").write_text("mine")
    shield("uninstall", "--dir", str(world.bin), home=world.home)
    assert [p.name for p in world.bin.iterdir()] == ["notes.txt"]


def test_install_refuses_to_overwrite_a_foreign_file(world: World, tmp_path: Path) -> None:
    d = tmp_path / "bin2"
    d.mkdir()
    (d / "kubectl").write_text("#!/bin/sh\necho mine\n")
    proc = shield("install", "--dir", str(d), "kubectl", home=world.home, check=False)
    assert proc.returncode == 1
    assert "not a shield shim" in proc.stderr
    assert (d / "kubectl").read_text() == "#!/bin/sh\necho mine\n"


PROBE = """
import posix, sys
def fake_execve(path, argv, env):
    mods = sorted(sys.modules)
    posix.write(1, repr((path, mods)).encode())
    posix._exit(0)
posix.execve = fake_execve
shim = sys.argv[1]
sys.argv = [shim] + sys.argv[2:]
code = compile(open(shim).read(), shim, "exec")
exec(code, {"__name__": "__main__"})
"""


def modules_at_exec(
    world: World, *argv: str, tool: str = "kubectl", env: dict[str, str] | None = None
) -> tuple[str, list[str]]:
    """Run a shim exactly as installed, stop it at execve, return (real path, loaded modules)."""
    proc = subprocess.run(
        [PY, "-IS", "-c", PROBE, str(world.bin / tool), *argv],
        env=env or world.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    import ast

    path, mods = ast.literal_eval(proc.stdout)
    return path, mods


def test_allowed_call_imports_no_cli_or_heavy_modules(world: World) -> None:
    path, mods = modules_at_exec(world, "get", "pods")
    assert path == str(world.real / "kubectl")
    assert "shim.run" in mods
    banned = {"typer", "rich", "yaml", "click", "shim.cli", "shim.rules.compile", "shim.held"}
    banned |= {"shim.approval", "shim.preview", "shim.log.verify", "shim.commands"}
    banned |= {"json", "re", "hashlib", "dataclasses", "subprocess", "os", "typing", "enum"}
    assert banned.isdisjoint(mods), sorted(banned & set(mods))


@pytest.mark.parametrize(
    ("tool", "argv", "extra"),
    [
        ("terraform", ["plan"], {"TF_CLI_ARGS": "-input=false", "TF_CLI_ARGS_plan": "-lock=false"}),
        ("aws", ["s3", "ls"], {}),
        ("helm", ["list", "-n", "web"], {}),
    ],
)
def test_every_tools_allowed_call_stays_off_the_heavy_modules(
    world: World, tool: str, argv: list[str], extra: dict[str, str]
) -> None:
    path, mods = modules_at_exec(world, *argv, tool=tool, env=world.env(**extra))
    assert path == str(world.real / tool)
    banned = {"typer", "rich", "yaml", "shim.cli", "shim.rules.compile"}
    banned |= {"json", "re", "os", "shlex"}
    assert banned.isdisjoint(mods), sorted(banned & set(mods))


def test_the_hot_bundle_is_used_and_a_stale_or_broken_one_falls_back(world: World) -> None:
    bundle = world.bin / ".shield-hot.bundle"
    assert bundle.exists()
    # with the bundle, no shim module comes through the import system
    proc = subprocess.run(
        [PY, "-IS", "-X", "importtime", str(world.bin / "kubectl"), "get", "pods"],
        env=world.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "shim.run" not in proc.stderr
    # a damaged bundle: the shim still works, through ordinary imports
    bundle.write_bytes(b"garbage")
    proc = world.run("kubectl", "get", "pods")
    assert proc.returncode == 0, proc.stderr
    assert (
        world.run(
            "kubectl", "delete", "pod", "x", env=world.env(SHIELD_HOLD_TIMEOUT="0")
        ).returncode
        == 124
    )


def test_hot_modules_hold_no_asserts() -> None:
    # the bundle is compiled with optimize=2, which strips asserts
    import re
    from pathlib import Path

    from shim.install import HOT_MODULES

    for name in HOT_MODULES:
        base = Path(__file__).resolve().parents[2] / name.replace(".", "/")
        text = (base / "__init__.py" if base.is_dir() else base.with_suffix(".py")).read_text()
        assert not re.search(r"^\s*assert\b", text, re.M), f"{name} uses assert"


def test_interactive_tool_runs_in_a_pty(world: World, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    tool = tmp_path / "tty-real" / "kubectl"
    tool.parent.mkdir()
    tool.write_text(
        f"#!{PY} -I\nimport os, sys\nprint('tty' if os.isatty(0) else 'notty', flush=True)\n"
        "line = sys.stdin.readline().strip()\nprint('got:' + line, flush=True)\n"
    )
    tool.chmod(0o755)
    child = pexpect.spawn(
        str(world.bin / "kubectl"),
        ["exec", "--help"],
        env=world.env(path=f"{world.bin}:{tool.parent}"),
        timeout=30,
    )
    child.expect("tty")
    child.sendline("hello")
    child.expect("got:hello")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_real_kubectl_client_side_call_through_the_shim(world: World, tmp_path: Path) -> None:
    real = Path("/usr/bin/kubectl")
    kubectl = next(
        (
            Path(p) / "kubectl"
            for p in os.environ.get("PATH", "").split(":")
            if (Path(p) / "kubectl").is_file()
        ),
        real,
    )
    if not kubectl.is_file():
        pytest.skip("kubectl is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-dev\n"
        "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n"
        "contexts:\n- name: kind-dev\n  context:\n    cluster: c\n    user: u\n    namespace: team-a\n"
        "users:\n- name: u\n  user:\n    token: s3cr3t-token\n"
    )
    env = world.env(path=f"{world.bin}:{kubectl.parent}", KUBECONFIG=str(kubeconfig))
    proc = world.run("kubectl", "config", "current-context", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == b"kind-dev"
    entry = world.log()[-1]
    assert entry["context"] == {"context": "kind-dev", "namespace": "team-a", "cwd": os.getcwd()}
    # a credential-printing call is held, and never reaches kubectl
    proc = world.run("kubectl", "config", "view", "--raw", env=dict(env, SHIELD_HOLD_TIMEOUT="0"))
    assert proc.returncode == 124
    assert b"s3cr3t-token" not in proc.stdout


def test_real_terraform_plan_is_allowed_and_apply_is_held(
    world: World, tf_project: tuple[Path, dict[str, str]]
) -> None:
    work, env = tf_project
    assert world.run("terraform", f"-chdir={work}", "init", "-input=false", env=env).returncode == 0
    plan = world.run("terraform", f"-chdir={work}", "plan", "-input=false", env=env)
    assert plan.returncode == 0, plan.stderr
    assert b"1 to add" in plan.stdout
    apply = world.run(
        "terraform",
        f"-chdir={work}",
        "apply",
        "-auto-approve",
        env=dict(env, SHIELD_HOLD_TIMEOUT="0"),
    )
    assert apply.returncode == 124
    assert not (work / "terraform.tfstate").exists()
    assert world.log()[-2]["context"]["dir"] == str(work)


def test_shim_falls_back_to_source_when_the_interpreter_changed(world: World) -> None:
    # the precompiled program is only used by the interpreter it was compiled for
    shim = world.bin / "kubectl"
    text = shim.read_text()
    assert "sys.hexversion >> 16 == " in text
    shim.write_text(text.replace("sys.hexversion >> 16 == ", "sys.hexversion >> 16 == 1 + ", 1))
    assert world.run("kubectl", "get", "pods").returncode == 0
    assert len(world.records()) == 1
    assert (
        world.run(
            "kubectl", "delete", "pod", "x", env=world.env(SHIELD_HOLD_TIMEOUT="0")
        ).returncode
        == 124
    )


def test_audit_error_numbers_match_errno() -> None:
    import errno

    assert (_EIO, _ENOSPC) == (errno.EIO, errno.ENOSPC)
