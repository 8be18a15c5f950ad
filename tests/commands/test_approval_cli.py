"""`shield pending/approve/deny/approver init/trust add`, in process and across real processes.

Two temporary homes (approver, agent) and one shared spool, as on a host and its agent container.
The waiting side is a real process calling `wait_for_decision`; the approver side is the
`shield` CLI (`python -m shim.cli`) run as another process, or `shim.cli.main` in process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shim import keys
from shim.approval import spool as spool_mod
from shim.approval.decision import verify_decision
from shim.approval.request import HeldRequest, to_dict
from shim.approval.spool import request_path
from shim.cli import main
from shim.commands import approve, approver, pending, show_cmd, trust
from tests.approval.support import write_held

DEADLINE_S = 20.0

WAITER = r"""
import dataclasses, json, sys
from shim import keys
from shim.approval.request import new_request
from shim.approval.spool import SpoolTransport, write_request
from shim.approval.wait import wait_for_decision

spool, agent, out, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
req = new_request(
    agent="deploy-bot", tool="kubectl", argv=["delete", "namespace", "prod"],
    cwd="/work", context={"context": "prod-eu", "namespace": "prod"},
    rule="kubectl/delete-namespace", reason="deletes every object in the namespace",
    timeout_s=timeout,
)
write_request(spool, req)

def log(fields):
    with open(out + ".log", "a") as fh:
        fh.write(json.dumps(fields) + "\n")

verdict = wait_for_decision(
    req, [SpoolTransport(spool, req)], trusted=keys.load_trusted(agent),
    used_path=agent + "/state/used", log=log,
)
with open(out, "w") as fh:
    json.dump({"id": req.id, "verdict": dataclasses.asdict(verdict)}, fh)
"""


def poll_until(check: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


@dataclasses.dataclass
class Sides:
    approver: str
    agent: str
    spool: str
    tmp: Path

    def env(self, home: str) -> dict[str, str]:
        return {**os.environ, "SHIELD_HOME": home, "SHIELD_SPOOL": self.spool}

    def shield(self, home: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shim.cli", *args],
            env=self.env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def hold_in_process(self, timeout_s: float = 600, **kw: Any) -> HeldRequest:
        return write_held(self.spool, timeout_s, **kw)

    def decisions(self) -> list[str]:
        path = os.path.join(self.spool, "decisions")
        return os.listdir(path) if os.path.isdir(path) else []


@dataclasses.dataclass
class Waiter:
    proc: subprocess.Popen[bytes]
    out: Path
    id: str

    def result(self) -> dict[str, Any]:
        self.proc.wait(timeout=DEADLINE_S)
        assert self.proc.returncode == 0, self.proc.stderr.read() if self.proc.stderr else ""
        data: dict[str, Any] = json.loads(self.out.read_text())
        return data

    def events(self) -> list[dict[str, Any]]:
        log = Path(str(self.out) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def is_waiting(self) -> bool:
        """True once wait_for_decision has installed its SIGTERM handler (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        return False


@pytest.fixture
def sides(tmp_path: Path) -> Sides:
    approver, agent = str(tmp_path / "approver"), str(tmp_path / "agent")
    keys.init_approver(approver, "alice")
    keys.add_trusted(agent, keys.public_key_path(approver))
    return Sides(approver, agent, str(tmp_path / "spool"), tmp_path)


@pytest.fixture
def start_waiter(sides: Sides) -> Iterator[Callable[..., Waiter]]:
    script = sides.tmp / "waiter.py"
    script.write_text(WAITER)
    procs: list[subprocess.Popen[bytes]] = []

    def start(timeout_s: float = 30.0) -> Waiter:
        out = sides.tmp / f"result-{len(procs)}.json"
        before = set(os.listdir(os.path.join(sides.spool, "requests"))) if procs else set()
        proc = subprocess.Popen(
            [sys.executable, str(script), sides.spool, sides.agent, str(out), str(timeout_s)],
            stderr=subprocess.PIPE,
        )
        procs.append(proc)

        def new_id() -> str | None:
            try:
                names = set(os.listdir(os.path.join(sides.spool, "requests"))) - before
            except FileNotFoundError:
                return None
            return names.pop()[:-5] if names else None

        return Waiter(proc, out, poll_until(new_id))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- real processes ---------------------------------------------------------------------------


def test_an_approval_from_another_process_releases_the_held_call(
    sides: Sides, start_waiter: Callable[..., Waiter]
) -> None:
    waiter = start_waiter()
    done = sides.shield(sides.approver, "approve", waiter.id, "--reason", "planned change")
    assert done.returncode == 0, done.stderr
    assert f"approved {waiter.id}: kubectl delete namespace prod" in done.stdout
    result = waiter.result()
    assert result["verdict"] == {
        "outcome": "approved",
        "approver": "alice",
        "reason": "planned change",
        "signal": None,
        "channel": "spool",
    }
    assert [e["event"] for e in waiter.events()] == ["approved"]
    listed = sides.shield(sides.approver, "pending", "--json")
    assert json.loads(listed.stdout) == []


def test_a_denial_from_another_process_denies(
    sides: Sides, start_waiter: Callable[..., Waiter]
) -> None:
    waiter = start_waiter()
    done = sides.shield(sides.approver, "deny", waiter.id, "--reason", "use staging")
    assert done.returncode == 0, done.stderr
    verdict = waiter.result()["verdict"]
    assert (verdict["outcome"], verdict["reason"]) == ("denied", "use staging")


def test_a_held_call_expires_without_a_decision(
    sides: Sides, start_waiter: Callable[..., Waiter]
) -> None:
    waiter = start_waiter(timeout_s=1.0)
    assert waiter.result()["verdict"]["outcome"] == "expired"
    late = sides.shield(sides.approver, "approve", waiter.id)
    assert late.returncode == 1
    assert late.stderr.strip() == f"shield: request {waiter.id} expired; nothing was signed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_waiting_process_interrupts_and_withdraws(
    sides: Sides, start_waiter: Callable[..., Waiter], signum: int
) -> None:
    waiter = start_waiter()
    poll_until(waiter.is_waiting)
    waiter.proc.send_signal(signum)
    verdict = waiter.result()["verdict"]
    assert (verdict["outcome"], verdict["signal"]) == ("interrupted", signum)
    assert [e["event"] for e in waiter.events()] == ["cancelled"]
    assert json.loads(sides.shield(sides.approver, "pending", "--json").stdout) == []
    late = sides.shield(sides.approver, "approve", waiter.id)
    assert late.returncode == 1 and "cancelled" in late.stderr


def test_approver_init_in_the_agents_home_cannot_approve_its_own_call(
    sides: Sides, start_waiter: Callable[..., Waiter]
) -> None:
    waiter = start_waiter()
    made = sides.shield(sides.agent, "approver", "init", "--name", "alice")
    assert made.returncode == 0, made.stderr
    signed = sides.shield(sides.agent, "approve", waiter.id)
    assert signed.returncode == 0, signed.stderr  # it can sign; nobody trusts that key
    poll_until(lambda: [e for e in waiter.events() if e["event"] == "security"])
    assert "untrusted key" in waiter.events()[0]["detail"]
    assert waiter.proc.poll() is None  # still held
    pending = json.loads(sides.shield(sides.approver, "pending", "--json").stdout)
    assert [p["id"] for p in pending] == [waiter.id]
    assert sides.shield(sides.approver, "approve", waiter.id).returncode == 0
    assert waiter.result()["verdict"]["approver"] == "alice"
    assert [e["event"] for e in waiter.events()] == ["security", "approved"]


def test_two_held_calls_are_decided_independently(
    sides: Sides, start_waiter: Callable[..., Waiter]
) -> None:
    first, second = start_waiter(), start_waiter()
    assert sides.shield(sides.approver, "deny", second.id).returncode == 0
    assert sides.shield(sides.approver, "approve", first.id).returncode == 0
    assert first.result()["verdict"]["outcome"] == "approved"
    assert second.result()["verdict"]["outcome"] == "denied"


def test_pending_watch_rings_the_bell_when_a_request_arrives(sides: Sides) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "shim.cli", "pending", "--watch"],
        env=sides.env(sides.approver),
        stdout=subprocess.PIPE,
    )
    seen = bytearray()

    def read() -> None:
        assert watch.stdout is not None
        fd = watch.stdout.fileno()
        while chunk := os.read(fd, 4096):
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        req = sides.hold_in_process()
        poll_until(lambda: b"\a" in seen)
        assert req.id.encode() in seen and b"kubectl delete namespace prod" in seen
        assert seen.count(b"\a") == 1
        second = sides.hold_in_process(argv=["delete", "pod", "web-1"])
        poll_until(lambda: seen.count(b"\a") == 2)
        assert second.id.encode() in seen
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=DEADLINE_S) == 0
        reader.join(timeout=DEADLINE_S)


# --- in process -------------------------------------------------------------------------------


@dataclasses.dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(
    sides: Sides, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    def run(home: str, *args: str) -> Ran:
        monkeypatch.setenv("SHIELD_HOME", home)
        monkeypatch.setenv("SHIELD_SPOOL", sides.spool)
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


def test_approver_init_prints_the_public_key_and_the_trust_add_line(
    tmp_path: Path, cli: Callable[..., Ran]
) -> None:
    home = str(tmp_path / "bob")
    result = cli(home, "approver", "init", "--name", "bob")
    assert result.exit_code == 0, result.stderr
    pub = keys.public_key_path(home)
    assert f"public key: {pub}" in result.stdout
    assert f"shield trust add {pub}" in result.stdout
    assert os.stat(keys.private_key_path(home)).st_mode & 0o777 == 0o600
    again = cli(home, "approver", "init", "--name", "bob")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert cli(home, "approver", "init", "--name", "bob", "--force").exit_code == 0


def test_trust_add_accepts_a_key_and_warns_about_the_homes_own(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    result = cli(sides.agent, "trust", "add", keys.public_key_path(sides.approver))
    assert result.exit_code == 0 and "trusted alice" in result.stdout
    assert "warning" not in result.stderr
    own = cli(sides.approver, "trust", "add", keys.public_key_path(sides.approver))
    assert own.exit_code == 0 and "its own requests" in own.stderr
    bad = sides.tmp / "bad.pub"
    bad.write_text("ssh-ed25519 AAAA x\n")
    refused = cli(sides.agent, "trust", "add", str(bad))
    assert refused.exit_code == 1 and "not a shield public key" in refused.stderr


def test_pending_json_prints_the_array_scripts_rely_on(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    assert json.loads(cli(sides.approver, "pending", "--json").stdout) == []
    req = sides.hold_in_process(extra={"preview": "namespace/prod deleted", "risk": "high"})
    result = cli(sides.approver, "pending", "--json")
    (item,) = json.loads(result.stdout)
    assert item == {**to_dict(req), "status": "pending"}
    for key in ("id", "agent", "tool", "argv", "cwd", "context", "rule", "reason", "created"):
        assert key in item
    assert item["expires"] == req.expires and item["preview"] and item["risk"] == "high"


def test_pending_shows_one_line_per_request_with_its_command_escaped(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    empty = cli(sides.approver, "pending")
    assert empty.exit_code == 0 and "no held requests" in empty.stdout
    req = sides.hold_in_process(argv=["delete", "ns", "prod\x1b[2K[bold]x[/]"])
    out = cli(sides.approver, "pending").stdout
    header, line, count = out.splitlines()
    assert header.split() == ["id", "risk", "age", "expires", "agent", "tool", "command"]
    assert line.startswith(req.id) and "deploy-bot  kubectl  delete ns 'prod\\x1b[2K" in line
    assert count == "1 held request: 1 unrated"
    assert "\x1b" not in out


def test_show_prints_the_full_panel_of_a_request(sides: Sides, cli: Callable[..., Ran]) -> None:
    req = sides.hold_in_process(argv=["delete", "ns", "prod\x1b[2K[bold]x[/]"])
    out = cli(sides.approver, "show", req.id).stdout
    for text in (
        req.id,
        "kubectl delete ns",
        "\\x1b[2K[bold]x[/]",
        "kubectl/delete-namespace",
        "deletes every object",
        "context=prod-eu namespace=prod",
        "deploy-bot",
        "ago, expires in",
        f"shield approve {req.id} --digest {req.digest[:12]}",
        "what will run",
    ):
        assert text in out, text
    assert "\x1b" not in out
    as_json = json.loads(cli(sides.approver, "show", req.id, "--json").stdout)
    assert as_json == {**to_dict(req), "status": "pending"}
    missing = cli(sides.approver, "show", "zzzzzz")
    assert missing.exit_code == 1 and missing.stderr.startswith("shield: no request zzzzzz")


def test_approving_an_unknown_id_says_so_in_one_line(sides: Sides, cli: Callable[..., Ran]) -> None:
    result = cli(sides.approver, "approve", "zzzzzz")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("shield: no pending request zzzzzz")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "", "k7m2pq.json"])
def test_approve_refuses_what_is_not_a_request_id(
    sides: Sides, cli: Callable[..., Ran], bad: str
) -> None:
    result = cli(sides.approver, "approve", bad)
    assert result.exit_code == 1 and "is not a request id" in result.stderr
    assert sides.decisions() == []


def test_approving_an_expired_request_is_refused(sides: Sides, cli: Callable[..., Ran]) -> None:
    req = sides.hold_in_process(timeout_s=1, now=time.time() - 10)
    result = cli(sides.approver, "approve", req.id)
    assert result.exit_code == 1
    assert f"request {req.id} expired at {req.expires}; nothing was signed" in result.stderr
    assert sides.decisions() == []


def test_approving_a_request_edited_in_the_spool_is_refused(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    req = sides.hold_in_process()
    path = request_path(sides.spool, req.id)
    data = json.loads(Path(path).read_text())
    data["argv"] = ["kubectl", "get", "pods"]
    Path(path).write_text(json.dumps(data))
    result = cli(sides.approver, "approve", req.id)
    assert result.exit_code == 1 and "was modified in the spool" in result.stderr
    assert sides.decisions() == []


def test_pending_shows_the_digest_to_pin_and_approve_repeats_what_it_signed(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    req = sides.hold_in_process()
    shown = cli(sides.approver, "show", req.id).stdout
    assert f"shield approve {req.id} --digest {req.digest[:12]}" in shown
    result = cli(sides.approver, "approve", req.id, "--digest", req.digest[:8])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"approved {req.id}: kubectl delete namespace prod"
    assert lines[1] == (
        f"  target context=prod-eu namespace=prod; digest {req.digest[:12]} (as pinned)"
    )
    (name,) = sides.decisions()
    decision = json.loads(Path(sides.spool, "decisions", name).read_text())
    assert (decision["id"], decision["digest"]) == (req.id, req.digest)


@pytest.mark.parametrize("pin", ["abc", "xyz12345", "0" * 65, ""])
def test_a_malformed_digest_pin_is_a_usage_error(
    sides: Sides, cli: Callable[..., Ran], pin: str
) -> None:
    req = sides.hold_in_process()
    result = cli(sides.approver, "approve", req.id, "--digest", pin)
    assert result.exit_code == 2 and "--digest takes" in result.stderr
    assert sides.decisions() == []


def test_a_pinned_digest_that_does_not_match_signs_nothing(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    req = sides.hold_in_process()
    wrong = "0123456789ab" if not req.digest.startswith("0123") else "fedcba987654"
    for verdict in ("approve", "deny"):
        result = cli(sides.approver, verdict, req.id, "--digest", wrong)
        assert result.exit_code == 1 and "is not the one you reviewed" in result.stderr
    assert sides.decisions() == []


def test_pending_flags_a_request_whose_file_was_edited_after_the_hold(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    req = sides.hold_in_process()
    path = request_path(sides.spool, req.id)
    data = json.loads(Path(path).read_text())
    data["argv"] = ["get", "pods"]  # the digest field still names the held call
    Path(path).write_text(json.dumps(data))
    (item,) = json.loads(cli(sides.approver, "pending", "--json").stdout)
    assert item["status"] == "modified" and item["digest"] != req.digest  # recomputed
    assert "edited after it was held" in cli(sides.approver, "pending").stdout
    assert "was edited after the call was held" in cli(sides.approver, "show", req.id).stdout


def test_a_request_file_holding_another_id_signs_nothing(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    a = sides.hold_in_process(argv=["scale", "deploy", "web", "--replicas=3"])
    b = sides.hold_in_process()
    os.replace(request_path(sides.spool, b.id), request_path(sides.spool, a.id))
    assert json.loads(cli(sides.approver, "pending", "--json").stdout) == []
    for verdict in ("approve", "deny"):
        result = cli(sides.approver, verdict, a.id)
        assert result.exit_code == 1, result.stdout
        assert f"the spool file of request {a.id} holds request {b.id}" in result.stderr
    assert sides.decisions() == []


def test_approve_for_grants_the_request_it_signed_not_a_second_read_of_the_spool(
    sides: Sides, cli: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `approve --for` used to look the request up again after signing it, to build the grant:
    # an agent rewriting the file in between got a grant for another rule, target or agent.
    a = sides.hold_in_process(argv=["scale", "deploy", "web"], rule="kubectl/mutate")
    b = to_dict(sides.hold_in_process(agent="other-bot", rule="kubectl/delete-namespace"))
    reads: list[str] = []
    real_lookup = spool_mod.lookup

    def lookup(spool: str, rid: str) -> tuple[str, dict[str, Any] | None]:
        reads.append(rid)
        return real_lookup(spool, rid) if len(reads) == 1 else ("pending", {**b, "id": rid})

    monkeypatch.setattr(spool_mod, "lookup", lookup)
    result = cli(sides.approver, "approve", a.id, "--for", "15m")
    assert result.exit_code == 0, result.stderr
    assert reads == [a.id]
    assert "deploy-bot may run kubectl kubectl/mutate on context=prod-eu" in result.stdout


def test_deny_writes_a_signed_denial_for_the_request(sides: Sides, cli: Callable[..., Ran]) -> None:
    req = sides.hold_in_process()
    result = cli(sides.approver, "deny", req.id.upper(), "--reason", "not today")
    assert result.exit_code == 0, result.stderr
    assert f"denied {req.id}" in result.stdout
    (name,) = sides.decisions()
    decision = json.loads(Path(sides.spool, "decisions", name).read_text())
    assert (decision["verdict"], decision["reason"]) == ("deny", "not today")
    trusted = keys.load_trusted(sides.agent)
    assert verify_decision(decision, req, trusted, time.time(), 30, set()) == (True, "ok")


def test_approve_without_an_approver_key_says_how_to_make_one(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    req = sides.hold_in_process()
    result = cli(sides.agent, "approve", req.id)
    assert result.exit_code == 1
    assert "no approver key" in result.stderr and "shield approver init" in result.stderr


def test_every_command_docstring_ends_with_an_example() -> None:
    for command in (
        pending.pending,
        show_cmd.show,
        approve.approve,
        approve.deny,
        approver.approver_init,
        trust.trust_add,
    ):
        assert command.__doc__ is not None
        assert command.__doc__.strip().splitlines()[-1].strip().startswith("Example: ")


# --- several requests at once, and what the agent's side says back ---------------------------


def test_approve_takes_several_ids_and_signs_each(sides: Sides, cli: Callable[..., Ran]) -> None:
    a = sides.hold_in_process(argv=["delete", "pod", "a"])
    b = sides.hold_in_process(argv=["delete", "pod", "b"])
    result = cli(sides.approver, "approve", a.id, b.id.upper(), a.id.upper(), "--reason", "both")
    assert result.exit_code == 0, result.stderr
    assert [x.split()[1][:6] for x in result.stdout.splitlines() if x.startswith("approved")] == [
        a.id,
        b.id,
    ]
    assert len(sides.decisions()) == 2


def test_one_bad_id_among_several_signs_nothing(sides: Sides, cli: Callable[..., Ran]) -> None:
    a = sides.hold_in_process()
    result = cli(sides.approver, "approve", a.id, "zzzzzz")
    assert result.exit_code == 1 and "no pending request zzzzzz" in result.stderr
    assert sides.decisions() == []


def test_deny_all_with_filters_decides_only_what_matches(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    aws = [sides.hold_in_process(tool="aws", argv=["s3", "rm", f"s3://b/{n}"]) for n in range(3)]
    kube = sides.hold_in_process()
    result = cli(sides.approver, "deny", "--all", "--tool", "aws", "--reason", "no")
    assert result.exit_code == 0, result.stderr
    decided = {n.split(".")[0] for n in sides.decisions()}
    assert decided == {r.id for r in aws} and kube.id not in decided
    none = cli(sides.approver, "deny", "--all", "--tool", "helm")
    assert none.exit_code == 1 and "no held requests match tool helm" in none.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["approve"], "name the requests"),
        (["approve", "--tool", "aws", "abcdef"], "choose requests for --all"),
        (["approve", "--all", "abcdef"], "give request ids or --all, not both"),
        (["approve", "--digest", "0123456789ab", "abcdef", "bcdefg"], "--digest pins one"),
        (["approve", "--for", "15m", "--all"], "--for grants the rule of one request"),
        (["pending", "--risk", "severe"], "--risk takes one of"),
    ],
)
def test_batch_options_that_do_not_fit_together_are_usage_errors(
    sides: Sides, cli: Callable[..., Ran], args: list[str], said: str
) -> None:
    result = cli(sides.approver, *args)
    assert result.exit_code == 2 and said in result.stderr, result.stderr
    assert sides.decisions() == []


def test_approve_all_leaves_out_a_request_edited_in_the_spool_and_says_so(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    good = sides.hold_in_process(argv=["delete", "pod", "a"])
    bad = sides.hold_in_process(argv=["delete", "pod", "b"])
    path = request_path(sides.spool, bad.id)
    data = json.loads(Path(path).read_text())
    data["argv"] = ["delete", "pod", "c"]
    Path(path).write_text(json.dumps(data))
    result = cli(sides.approver, "approve", "--all")
    assert result.exit_code == 1
    assert f"shield: skipped {bad.id}: edited after it was held; not signed" in result.stderr
    assert [n.split(".")[0] for n in sides.decisions()] == [good.id]


def test_approve_in_a_home_the_agent_does_not_trust_says_so_instead_of_success(
    sides: Sides, cli: Callable[..., Ran]
) -> None:
    alice = keys.approver_identity(sides.approver).fingerprint
    bob = str(sides.tmp / "bob")
    keys.init_approver(bob, "bob")
    req = sides.hold_in_process(extra={"trusted_keys": {alice: "alice"}})
    result = cli(bob, "approve", req.id)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"approved {req.id}: kubectl delete namespace prod")
    assert "signed, but the agent's shim does not trust this home's key" in result.stderr
    assert "it trusts: alice" in result.stderr
    assert len(sides.decisions()) == 1  # delivered all the same: the agent's side decides
    trusted = cli(sides.approver, "approve", req.id)
    assert trusted.exit_code == 0 and "trust" not in trusted.stderr


def test_show_and_pending_flag_a_refused_decision_with_the_agents_reason(
    sides: Sides, cli: Callable[..., Ran], start_waiter: Callable[..., Waiter]
) -> None:
    bob = str(sides.tmp / "bob")
    keys.init_approver(bob, "bob")
    waiter = start_waiter()
    assert cli(bob, "approve", waiter.id).exit_code == 0  # no trusted_keys in this request
    notes = poll_until(lambda: spool_mod.list_refusals(sides.spool).get(waiter.id))
    assert notes[0]["approver"] == "bob" and "untrusted key" in notes[0]["why"]
    queue = cli(sides.approver, "pending").stdout
    assert f"! {waiter.id}  a decision by bob was refused: decision signed by an untrusted" in queue
    shown = cli(sides.approver, "show", waiter.id).stdout
    assert "a decision by bob was refused" in shown and "bob  decision signed by an" in shown
    assert cli(sides.approver, "approve", waiter.id).exit_code == 0
    assert waiter.result()["verdict"]["outcome"] == "approved"


def test_a_spool_copy_disguised_for_a_bulk_approve_gets_the_held_call_nothing(
    sides: Sides, cli: Callable[..., Ran], start_waiter: Callable[..., Waiter]
) -> None:
    # review 2: the agent rewrites its held `kubectl delete namespace prod` in the spool as a
    # low-risk aws call of another agent, with a digest field that matches the new content,
    # so that `approve --all --tool aws --risk low --agent ci-*` picks it. The approver signs
    # what was shown (aws s3 ls); the waiting shim refuses that digest and keeps waiting.
    from shim.approval.request import request_from_dict

    waiter = start_waiter(timeout_s=8)
    path = Path(request_path(sides.spool, waiter.id))
    disguised = {
        **json.loads(path.read_text()),
        **{"tool": "aws", "argv": ["s3", "ls"], "agent": "ci-bot", "risk": "low"},
    }
    disguised["digest"] = request_from_dict(disguised).digest
    path.write_text(json.dumps(disguised))
    bulk = cli(
        sides.approver, "approve", "--all", "--tool", "aws", "--risk", "low", "--agent", "ci-*"
    )
    assert bulk.exit_code == 0, bulk.stderr
    assert f"approved {waiter.id} (risk low): aws s3 ls" in bulk.stdout
    notes = poll_until(lambda: spool_mod.list_refusals(sides.spool).get(waiter.id))
    assert "digest" in notes[0]["why"]
    outcome = waiter.result()["verdict"]["outcome"]
    assert outcome == "expired"  # the deadline, a denial: the delete never ran
    assert "approved" not in [e["event"] for e in waiter.events()]
