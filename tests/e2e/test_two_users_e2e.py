"""The README's two-user recipe, followed literally, with two real Unix users (issue 14).

The test reads the README's "Two users" section and runs its commands: the host's setup (as
root, then as the approver), every instruction of the Dockerfile (RUN as root, COPY, ENV, USER),
and the approver's one-time commands, adapted only where a test must be:

- paths move under a temporary root (`/opt/shield`, `/opt/real`, `/src/agent-shield` is this
  checkout, `/spool`, `/var/lib/shield-spool`, `/tmp/alice.pub`);
- users and groups are numeric ids nobody on this machine uses, so `groupadd`, `useradd` and
  `usermod` are skipped and `agent`, `shield` and `10001` become those ids; each side runs
  through `setpriv --reuid --regid` (the agent without the approver's group, the approver in
  it);
- `docker run -v /var/lib/shield-spool:/spool` becomes a symlink from the image's `/spool` to
  the host's directory;
- "install as usual" is four stand-in tools on the build's PATH, which record what they run.

Then the agent's user runs calls through the shims, the approver's user approves one (pinning
the digest `shield pending` showed) and denies another, and verifies the log.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

TOOLS = ("kubectl", "aws", "terraform", "helm")
STANDIN = """#!{python} -I
import json, os, sys
if not os.environ.get("_SHIELD_PREVIEW"):
    with open({record!r}, "a") as fh:
        fh.write(json.dumps([{tool!r}, *sys.argv[1:]]) + "\\n")
print("standin {tool}", *sys.argv[1:])
"""
DEADLINE_S = 60.0
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: kind-dev
  context:
    cluster: dev
    user: bot
current-context: kind-dev
"""
SETPRIV = shutil.which("setpriv") or "setpriv"


def public_python() -> str | None:
    """A Python 3.11+ with venv that every user can start (the agent's user runs the shims)."""
    for cand in ("/usr/local/bin/python3", "/usr/bin/python3"):
        real = os.path.realpath(cand)
        if not os.path.isfile(real):
            continue
        parts = Path(real).parents
        if any(not os.stat(p).st_mode & 0o001 for p in parts) or not os.stat(real).st_mode & 1:
            continue
        probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
        if subprocess.run([cand, "-c", probe], capture_output=True).returncode == 0:
            return cand
    return None


def free_ids(n: int) -> list[int]:
    """`n` consecutive ids that are neither a user nor a group here."""

    def used(i: int) -> bool:
        try:
            pwd.getpwuid(i)
            return True
        except KeyError:
            pass
        try:
            grp.getgrgid(i)
            return True
        except KeyError:
            return False

    for base in range(23000, 60000, 10):
        if not any(used(base + i) for i in range(n)):
            return [base + i for i in range(n)]
    raise AssertionError("no free ids")


def section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("### Two users", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section(), re.S)


def commands(block: str) -> list[str]:
    """Shell lines of a block (continuations joined), comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def by_user(block: str) -> list[tuple[str, str]]:
    """(user, command) for a block whose comments say who runs what (`# as root: ...`)."""
    out: list[tuple[str, str]] = []
    who = ""
    for line in re.sub(r"\\\n\s*", " ", block).splitlines():
        found = re.match(r"#\s*as (\w+)", line.strip())
        if found:
            who = found.group(1)
        elif line.strip() and not line.strip().startswith("#"):
            assert who, f"the README does not say who runs: {line}"
            out.append((who, line.strip()))
    return out


def dockerfile() -> list[tuple[str, str]]:
    (block,) = blocks("dockerfile")
    return [tuple(line.split(None, 1)) for line in commands(block)]  # type: ignore[misc]


class Machine:
    """The temporary root, the two users, and how each runs a command."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.python = python
        self.agent, self.alice, self.group = free_ids(3)
        self.host_spool = root / "var-lib" / "host-spool-dir"
        self.alice_home = root / "home" / "alice"
        self.agent_home = root / "home" / "agent"
        self.context = root / "build-context"
        self.build_path = root / "build-path"
        self.record = root / "record" / "ran.jsonl"
        self.env_lines: dict[str, str] = {}

    def adapt(self, cmd: str) -> str:
        """A README command with this machine's paths and ids."""
        for old, new in (
            ("/var/lib/shield-spool", str(self.host_spool)),
            ("/src/agent-shield", str(REPO)),
            ("/opt/", f"{self.root}/opt/"),
            ("/tmp/alice.pub", f"{self.root}/tmp/alice.pub"),
        ):
            cmd = cmd.replace(old, new)
        cmd = re.sub(r"(?<=\s)/spool\b", f"{self.root}/spool", cmd)
        cmd = re.sub(r"(--agent-user|-o) \S+", rf"\1 {self.agent}", cmd)
        return re.sub(r"(--approver-group|-g) \S+", rf"\1 {self.group}", cmd)

    def base_env(self) -> dict[str, str]:
        return {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("PIP_", "LANG", "LC_")) or k in ("TERM", "SSL_CERT_FILE")
        }

    def as_root(self, cmd: str, env: dict[str, str] | None = None) -> str:
        path = f"{self.build_path}:{os.path.dirname(self.python)}:/usr/bin:/bin"
        e = {**self.base_env(), "PATH": path, "HOME": "/root", **(env or {})}
        proc = subprocess.run(
            ["sh", "-c", cmd], env=e, cwd=self.root, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def as_alice(self, cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {
            **self.base_env(),
            "HOME": str(self.alice_home),
            "PATH": f"{self.root}/alice-venv/bin:/usr/bin:/bin",
            "SHIELD_SPOOL": str(self.host_spool),
        }
        user = [f"--reuid={self.alice}", f"--regid={self.alice}", f"--groups={self.group}"]
        proc = subprocess.run(
            [SETPRIV, *user, "/bin/sh", "-c", cmd],
            env=env,
            cwd=self.context,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def agent_env(self) -> dict[str, str]:
        env = {
            **self.base_env(),
            "HOME": str(self.agent_home),
            "PATH": str(self.root / "agent-path"),
            "SHIELD_HOLD_TIMEOUT": "120",
        }
        for key, value in self.env_lines.items():
            env[key] = value.replace("$PATH", str(self.root / "agent-path"))
        return env

    def as_agent(self, *argv: str) -> list[str]:
        return [SETPRIV, f"--reuid={self.agent}", f"--regid={self.agent}", "--clear-groups", *argv]

    def agent_run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.as_agent(*argv), env=self.agent_env(), capture_output=True, text=True, timeout=120
        )

    def agent_start(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.as_agent(*argv),
            env=self.agent_env(),
            cwd=self.agent_home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ran(self) -> list[list[str]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def wait_for_request(self) -> dict:
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            items = json.loads(self.as_alice("shield pending --json").stdout)
            if items:
                (item,) = items
                return item
            time.sleep(0.1)
        raise AssertionError("no held request reached the spool in time")


@pytest.fixture
def machine() -> Iterator[Machine]:
    if os.geteuid() != 0:
        pytest.skip("two real users need root (setpriv --reuid); CI runs the suite as root")
    python = public_python()
    if python is None:
        pytest.skip("no Python 3.11+ with venv that every user can start (/usr/bin/python3)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    root = Path(tempfile.mkdtemp(prefix="shield-two-users-"))
    root.chmod(0o755)
    m = Machine(root, python)
    try:
        yield m
    finally:
        shutil.rmtree(root, ignore_errors=True)


def set_up(m: Machine) -> None:
    """Everything before the agent's first call, in the README's order."""
    for d in (m.root / "opt", m.root / "tmp", m.root / "var-lib", m.root / "agent-path"):
        d.mkdir(parents=True)
    for home, uid in ((m.alice_home, m.alice), (m.agent_home, m.agent)):
        home.mkdir(parents=True, mode=0o700)
        os.chown(home, uid, uid)
    m.context.mkdir()
    os.chown(m.context, m.alice, m.alice)
    m.record.parent.mkdir()
    os.chown(m.record.parent, m.agent, m.agent)
    m.build_path.mkdir()
    for tool in TOOLS:  # "install kubectl / aws / terraform / helm as usual"
        path = m.build_path / tool
        path.write_text(STANDIN.format(python=m.python, record=str(m.record), tool=tool))
        path.chmod(0o755)
    # the approver's own shield on the host
    m.as_root(f"{m.python} -m venv {m.root}/alice-venv")
    m.as_root(f"{m.root}/alice-venv/bin/pip install -q --disable-pip-version-check {REPO}")
    (host,) = [b for b in blocks("sh") if "install -d" in b]
    for who, cmd in by_user(host):
        if who == "root" and not skip_user_management(cmd):
            m.as_root(m.adapt(cmd))
        elif who == "alice":
            m.as_alice(m.adapt(cmd))
    run_dockerfile(m)
    # docker run -v /var/lib/shield-spool:/spool
    shutil.rmtree(m.root / "spool")
    os.symlink(m.host_spool, m.root / "spool")


def skip_user_management(cmd: str) -> bool:
    """True for a line that only adds users and groups (simulated here by numeric ids)."""
    words = {part.split()[0] for part in cmd.split("&&")}
    if words & {"groupadd", "useradd", "usermod"}:
        assert words <= {"groupadd", "useradd", "usermod"}, cmd
        return True
    return False


def run_dockerfile(m: Machine) -> None:
    for instruction, arg in dockerfile():
        if instruction == "FROM":
            continue
        if instruction == "RUN":
            if not skip_user_management(arg):
                out = m.as_root(m.adapt(arg))
                if "install.sh" in arg and "--agent-user" in arg:
                    # install.sh's doctor runs as the agent: root's view would call every
                    # root-owned file writable
                    assert "shield doctor, as " in out, out
                    assert "this user can rewrite" not in out, out
        elif instruction == "COPY":
            src, dest = arg.split()
            if src == "agent-shield":
                assert m.adapt(dest) == str(REPO)  # the build reads this checkout in place
                continue
            shutil.copy(m.context / src, m.adapt(dest))
        elif instruction == "ENV":
            key, _, value = arg.partition("=")
            m.env_lines[key] = m.adapt(value)
        elif instruction == "USER":
            assert arg == "agent"
        else:
            raise AssertionError(f"the test does not know the instruction {instruction}")


def test_the_readme_two_user_recipe_works_as_written(machine: Machine) -> None:
    m = machine
    set_up(m)
    log_dir = m.root / "opt" / "shield" / "home" / "log"
    anchor = log_dir / "anchor.json"
    # the log's first key is out of the agent's reach; the approver takes it away
    assert m.agent_run("cat", str(anchor)).returncode != 0
    (once,) = [b for b in blocks("sh") if "anchor import" in b]
    m.as_alice(m.adapt(once))
    assert not anchor.exists()

    # the agent's allowed call, and its own view of the setup (the shims' home, no SHIELD_HOME)
    shield = str(m.root / "opt" / "shield" / "venv" / "bin" / "shield")
    ok = m.agent_run("kubectl", "get", "pods")
    assert ok.returncode == 0, ok.stderr
    doctor = m.agent_run(shield, "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 0, checks
    assert checks["home"]["detail"].startswith(str(m.root / "opt" / "shield" / "home"))
    assert checks["real kubectl"]["detail"].endswith("(pinned at install)")
    assert not [c for c in checks.values() if c["status"] == "fail"], checks
    checked = m.agent_run(
        shield, "check", "--json", "--", "kubectl", "-n", "prod", "delete", "pod", "web"
    )
    assert json.loads(checked.stdout)["decision"] == "ask", checked.stderr

    # a real approval, pinned to the digest the approver reviewed
    held = m.agent_start("kubectl", "-n", "prod", "delete", "pod", "web")
    item = m.wait_for_request()
    assert item["agent"] == "deploy-bot" and item["argv"] == ["-n", "prod", "delete", "pod", "web"]
    # (a critical request: not on a terminal, approve wants --yes to sign it unasked)
    pin = item["digest"][:12]
    signed = m.as_alice(f"shield approve {item['id']} --digest {pin} --reason ok --yes")
    assert f"approved {item['id']} (risk critical): kubectl -n prod delete pod web" in signed.stdout
    out, err = held.communicate(timeout=DEADLINE_S)
    assert held.returncode == 0, err
    assert m.ran()[-1] == ["kubectl", "-n", "prod", "delete", "pod", "web"]

    # a real denial
    held = m.agent_start("helm", "uninstall", "web")
    item = m.wait_for_request()
    m.as_alice(f"shield deny {item['id']} --reason 'still serving'")
    _, err = held.communicate(timeout=DEADLINE_S)
    assert held.returncode == 126 and "still serving" in err
    assert ["helm", "uninstall", "web"] not in m.ran()

    # a grant the approver drops into the shared spool covers the agent's next such call (the
    # agent's user, outside the approver's group, must be able to read grants/ and record
    # the use in its home), and a revocation ends it
    kube = m.agent_home / ".kube"
    kube.mkdir(exist_ok=True)
    (kube / "config").write_text(KUBECONFIG)  # a target the grant can pin
    (kube / "config").chmod(0o644)
    m.as_alice(
        "shield grant --agent deploy-bot --rule kubectl/mutate --context kind-dev --namespace web"
        " --for 5m --reason window"
    )
    covered = m.agent_run("kubectl", "-n", "web", "rollout", "restart", "deploy/api")
    assert covered.returncode == 0, covered.stderr
    assert m.ran()[-1] == ["kubectl", "-n", "web", "rollout", "restart", "deploy/api"]
    m.as_alice("shield revoke --all --reason done")
    held = m.agent_start("kubectl", "-n", "web", "rollout", "restart", "deploy/api")
    item = m.wait_for_request()  # held again: the revocation counts
    m.as_alice(f"shield deny {item['id']} --reason 'grant revoked'")
    _, err = held.communicate(timeout=DEADLINE_S)
    assert held.returncode == 126 and "grant revoked" in err

    # the approver checks the agent's log with the anchor it imported
    log = f"{log_dir}/shield.log"
    m.as_alice(f"shield log checkpoint --path {log}")
    verified = m.as_alice(f"shield log verify --path {log}")
    assert "intact" in verified.stdout or "ok" in verified.stdout, verified.stdout
    approver = m.as_alice(f"shield doctor --approver --json --log {log}")
    checks = {c["check"]: c for c in json.loads(approver.stdout)["checks"]}
    assert all(c["status"] in ("ok", "note") for c in checks.values()), checks
    assert m.ran()[0] == ["kubectl", "get", "pods"]
