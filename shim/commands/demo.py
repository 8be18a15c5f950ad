"""`shield demo`: a scripted session on stand-in tools (cold).

Everything happens in a temporary directory: an approver home, an agent home, one shared spool,
shims in front of stand-in kubectl/terraform/aws/helm binaries. The agent's calls and the
approver's commands are real, separate processes, exactly as a user would run them.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

STANDIN = """#!{python} -I
# stand-in {tool}: prints what the real tool would, touches nothing
import sys
args = sys.argv[1:]
words = " ".join(args)
out = {{
    "kubectl": [
        ("get pods", "NAME                   READY   STATUS    RESTARTS   AGE\\napi-7c9d8-x2x4q        1/1     Running   0          3d\\nweb-5f6b7-kk9sd        1/1     Running   0          3d"),
        ("get deploy/api", "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES\\napi    3/3     3            3           12d   api          registry.local/api:2.1.0"),
        ("rollout restart", "deployment.apps/api restarted"),
        ("delete", "namespace \\"payments\\" deleted"),
    ],
    "terraform": [("plan", "Plan: 1 to add, 0 to change, 0 to destroy.")],
    "aws": [("s3 ls", "2026-11-02 09:14:03 demo-artifacts\\n2026-11-20 17:40:55 demo-logs")],
    "helm": [
        ("history", '[{{"revision": 4, "updated": "2026-11-20T17:40:55Z", "status": "deployed", "chart": "web-1.4.2", "app_version": "2.1.0", "description": "Upgrade complete"}}]'),
        ("uninstall", 'release "web" uninstalled'),
    ],
}}[{tool!r}]
for key, text in out:
    if key in words:
        print(text)
        break
else:
    print("{tool}:", words)
"""


HOLD_BACKSTOP_S = 120  # a held call the demo could not end (it was SIGKILLed) gives up then


class Demo:
    def __init__(self, root: Path, console, server: bool = False) -> None:  # noqa: ANN001
        self.root = root
        self.console = console
        self.server = server  # the approver reaches held calls through `shield serve`
        self.relay: subprocess.Popen | None = None
        self.url = ""
        self.approver = root / "approver-home"
        self.agent = root / "agent-home"
        self.spool = root / "spool"
        self.shims = root / "agent-bin"
        self.real = root / "real-bin"
        self.work = root / "work"
        self.agents: list[subprocess.Popen] = []  # agent calls running in the background

    # ---------------------------------------------------------------- helpers
    def shield(self, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        # the output is shown indented by 4: tables fit the demo's own width, never wrap
        width = str(max(60, self.console.width - 4))
        env.update({"SHIELD_HOME": str(home), "SHIELD_SPOOL": str(self.spool), "COLUMNS": width})
        proc = subprocess.run(
            [sys.executable, "-m", "shim", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"shield {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def agent_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIELD", "AWS_DATA_PATH"))}
        env["PATH"] = f"{self.shims}{os.pathsep}{self.real}{os.pathsep}/usr/bin{os.pathsep}/bin"
        env["HOME"] = str(self.root)
        env["KUBECONFIG"] = str(self.root / "kubeconfig")
        env["SHIELD_HOLD_TIMEOUT"] = str(HOLD_BACKSTOP_S)
        return env

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def show(self, who: str, argv: list[str]) -> None:
        self.console.print(f"[dim]{who}$[/] [bold]{shlex.join(argv)}[/]", highlight=False)

    def output(self, text: str, style: str = "") -> None:
        for line in text.rstrip("\n").splitlines():
            self.console.print(f"    {line}", style=style or None, highlight=False, markup=False)

    def agent_call(self, argv: list[str]) -> int:
        self.show("agent", argv)
        proc = subprocess.run(
            argv, env=self.agent_env(), capture_output=True, text=True, timeout=60, cwd=self.work
        )
        self.output(proc.stdout)
        self.output(proc.stderr, "yellow")
        self.say(f"    [dim]exit {proc.returncode}[/]")
        return proc.returncode

    def where(self) -> list[str]:
        """How the approver's commands reach held calls: the spool, or the server."""
        if self.server:
            return ["--server", self.url, "--token-file", str(self.root / "alice.token")]
        return ["--spool", str(self.spool)]

    def wait_pending(self, deadline_s: float = 20.0) -> dict:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            items = json.loads(
                self.shield(self.approver, "pending", "--json", *self.where()).stdout or "[]"
            )
            if items:
                return items[0]
            time.sleep(0.05)
        raise RuntimeError("the held request never reached the approver")

    def held_call(self, argv: list[str], verdict: str, reason: str) -> int:
        self.show("agent", argv)
        proc = self.start_agent(argv)
        item = self.wait_pending()
        self.say("  [dim]...the agent blocks; in another terminal the approver looks:[/]")
        shown = ["--server", self.url, "--token-file", "alice.token"] if self.server else []
        self.show("approver", ["shield", "pending", *shown])
        self.output(self.shield(self.approver, "pending", *self.where()).stdout)
        cmd = ["shield", verdict, item["id"], "--reason", reason, *shown]
        self.show("approver", cmd)
        self.output(
            self.shield(
                self.approver, verdict, item["id"], "--reason", reason, *self.where()
            ).stdout
        )
        out, err = proc.communicate(timeout=60)
        self.agents.remove(proc)
        self.say("  [dim]...and back on the agent's side:[/]")
        self.output(err, "yellow")
        self.output(out)
        self.say(f"    [dim]exit {proc.returncode}[/]")
        return proc.returncode

    def grant_scene(self) -> list[int]:
        """Two calls a 15-minute grant covers run at once; a third, in another namespace, is
        held as usual (and denied)."""
        args = ["--agent", "demo-bot", "--rule", "kubectl/mutate", "--context", "kind-dev"]
        args += ["--namespace", "web", "--for", "15m", "--reason", "deploy window"]
        self.show("approver", ["shield", "grant", *args])
        self.output(self.shield(self.approver, "grant", *args, "--spool", str(self.spool)).stdout)
        return [
            self.agent_call(["kubectl", "-n", "web", "rollout", "restart", "deploy/api"]),
            self.agent_call(["kubectl", "-n", "web", "scale", "deploy/api", "--replicas=3"]),
            self.held_call(
                ["kubectl", "-n", "payments", "rollout", "restart", "deploy/api"],
                "deny",
                "the grant covers web only",
            ),
        ]

    def start_agent(self, argv: list[str]) -> subprocess.Popen:
        """An agent call that will be held, in the background. It runs in a session of its
        own, as an agent in its container would: the demo's terminal does not reach it, and
        `end_agents` ends it however the demo ends."""
        proc = subprocess.Popen(
            argv,
            env=self.agent_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.work,
            start_new_session=True,
        )
        self.agents.append(proc)
        return proc

    def end_agents(self, grace_s: float = 10.0) -> None:
        """End the agent calls still running (the demo was interrupted, or its output was
        closed): SIGTERM, so that a held call withdraws its request and logs it, then
        SIGKILL for any that is still there after `grace_s`."""
        for proc in self.agents:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace_s
        for proc in self.agents:
            try:
                proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        self.agents.clear()

    # ---------------------------------------------------------------- the session
    def setup(self) -> None:
        for d in (self.real, self.work, self.spool):
            d.mkdir(parents=True)
        (self.root / "kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: kind-dev\n"
            "contexts:\n- name: kind-dev\n  context: {cluster: dev, user: dev, namespace: default}\n"
            "- name: prod-eu\n  context: {cluster: prod, user: prod}\n"
        )
        for tool in ("kubectl", "terraform", "aws", "helm"):
            path = self.real / tool
            path.write_text(STANDIN.format(python=sys.executable, tool=tool))
            path.chmod(0o755)
        meet = "one approval server" if self.server else "one shared spool"
        self.say(f"[bold]1. Set up[/] (two homes, {meet}, stand-in tools; nothing real is touched)")
        pub = self.shield(self.approver, "approver", "init", "--name", "alice").stdout
        self.show("approver", ["shield", "approver", "init", "--name", "alice"])
        self.output(pub)
        relay = self.start_server() if self.server else []
        self.shield(
            self.agent,
            "install",
            "--dir",
            str(self.shims),
            "--agent",
            "demo-bot",
            "--spool",
            str(self.spool),
            *relay,
        )
        shown = ["--server", self.url, "--token-file", "demo-bot.token"] if self.server else []
        self.show(
            "host", ["shield", "install", "--dir", str(self.shims), "--agent", "demo-bot", *shown]
        )
        pubkey = self.approver / "keys" / "approver.pub"
        self.shield(self.agent, "trust", "add", str(pubkey))
        self.show("host", ["shield", "trust", "add", str(pubkey)])
        anchor = self.agent / "log" / "anchor.json"
        self.shield(self.approver, "log", "anchor", "import", str(anchor))
        anchor.unlink(missing_ok=True)
        self.show("approver", ["shield", "log", "anchor", "import", "anchor.json"])
        self.say("    [dim](the log's first key now lives only with the approver)[/]")
        team = self.agent / "commands.d" / "team.yaml"
        team.write_text(
            "tool: kubectl\n"
            "rules:\n"
            "  - id: team/no-namespace-delete-in-prod\n"
            "    decision: deny\n"
            "    reason: namespaces in prod are removed by the platform team, not by agents\n"
            '    hint: "ask #platform to remove the namespace"\n'
            "    match:\n"
            "      verb: delete\n"
            "      any_arg: [ns, namespace, namespaces, 'namespace/*', 'ns/*']\n"
            "      context: {context: '*prod*'}\n"
            "    examples:\n"
            "      match: [{argv: 'delete ns payments', context: {context: prod-eu}}]\n"
            "      no_match: [{argv: 'delete ns payments', context: {context: kind-dev}}]\n"
        )
        self.say("    [dim]team rule added: deny deleting namespaces in *prod* contexts[/]")

    def start_server(self) -> list[str]:
        """`shield serve` on a free loopback port, an agent and an approver token; the
        approver then uses only the server (its spool is not the agent's)."""
        import socket

        home = self.root / "server-home"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIELD")}
        env["SHIELD_HOME"] = str(home)
        home.mkdir()
        log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed when the demo ends
        self.relay = subprocess.Popen(
            [sys.executable, "-m", "shim", "serve", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=log,
            stderr=log,
        )
        self.show("server", ["shield", "serve", "--listen", f"127.0.0.1:{port}"])
        for role, name in (("agent", "demo-bot"), ("approver", "alice")):
            token = self.shield(home, "serve", role, "add", name).stdout.strip()
            (self.root / f"{name}.token").write_text(token + "\n")
            self.show("server", ["shield", "serve", role, "add", name])
            self.say(f"    [dim](the token, shown once, saved to {name}.token)[/]")
        self.wait_server()
        self.spool = self.root / "approver-spool"  # the approver no longer shares the spool
        return ["--server", self.url, "--token-file", str(self.root / "demo-bot.token")]

    def wait_server(self, deadline_s: float = 30.0) -> None:
        import urllib.request

        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("shield serve did not start")

    def stop_server(self) -> None:
        if self.relay is not None:
            self.relay.terminate()
            try:
                self.relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.relay.kill()

    def run(self) -> int:
        try:
            return self.session()
        finally:
            with ignored_signals():  # a second Ctrl-C must not leave a held call behind
                self.end_agents()  # before the server: a held call withdraws through it too
                self.stop_server()

    def session(self) -> int:
        self.setup()
        self.say("\n[bold]2. Allowed calls run at once[/]")
        codes = [
            self.agent_call(["kubectl", "-n", "web", "get", "pods"]),
            self.agent_call(["terraform", "plan"]),
            self.agent_call(["aws", "s3", "ls"]),
        ]
        via = " through the approval server" if self.server else " from a second process"
        self.say(f"\n[bold]3. A held call, approved{via}[/]")
        approved = self.held_call(
            ["kubectl", "-n", "web", "rollout", "restart", "deploy/api"],
            "approve",
            "routine restart",
        )
        self.say("\n[bold]4. A held call, denied by the approver[/]")
        denied = self.held_call(
            ["helm", "uninstall", "web"], "deny", "web is still serving traffic"
        )
        self.say("\n[bold]5. A 15-minute grant: fewer prompts, same target[/]")
        granted = self.grant_scene()
        self.say("\n[bold]6. A call denied by a team rule[/]")
        ruled = self.agent_call(
            ["kubectl", "--context", "prod-eu", "delete", "namespace", "payments"]
        )
        self.say("\n[bold]7. The log, and its verification[/]")
        log_path = str(self.agent / "log" / "shield.log")
        self.show("approver", ["shield", "log", "--path", "agent-home/log/shield.log"])
        from shim.commands.log import render_table
        from shim.log.verify import read_entries

        render_table(list(read_entries(log_path)), self.console)
        self.shield(self.approver, "log", "checkpoint", "--path", log_path)
        self.show("approver", ["shield", "log", "checkpoint"])
        verify = self.shield(self.approver, "log", "verify", "--path", log_path, check=False)
        self.show("approver", ["shield", "log", "verify"])
        self.output(verify.stdout + verify.stderr)
        ok = (
            codes == [0, 0, 0]
            and approved == 0
            and denied == 126
            and granted == [0, 0, 126]
            and ruled == 126
            and verify.returncode == 0
        )
        self.say(
            "\n[bold green]demo complete[/]: allowed 3, held+approved 1 (ran), held+denied 1 (exit 126), "
            "2 calls under a grant (ran) and 1 outside it (held, denied), "
            "denied by rule 1 (exit 126), log verified"
            if ok
            else "\n[bold red]demo finished with unexpected results[/]"
        )
        return 0 if ok else 1


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: bool = typer.Option(False, "--keep", help="keep the temporary world and print its path"),
    server: bool = typer.Option(
        False, "--server", help="the approver works through a real `shield serve` on loopback"
    ),
) -> int:
    """Run a scripted session on stand-in tools: allow, hold, approve, deny, and a verified log.

    Nothing real is touched: kubectl, terraform, aws and helm are small stand-in scripts in a
    temporary directory; the agent and the approver are separate processes with separate homes.
    With --server they share no spool: held calls reach the approver through `shield serve`.

    Example:

        shield demo
    """
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=140)
    root = Path(tempfile.mkdtemp(prefix="shield-demo-"))
    try:
        with signals_as_exit():
            return Demo(root, console, server=server).run()
    except KeyboardInterrupt:
        print("shield: demo: interrupted; ending its agent calls", file=sys.stderr)
        raise typer.Exit(130) from None
    finally:
        if keep:
            try:
                console.print(f"[dim]kept: {root}[/]")
            except OSError:
                pass  # the output is gone (a closed pipe); the directory is kept all the same
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) end the demo through its `finally`, which ends
    its agent calls, instead of killing it on the spot; Ctrl-C already does (KeyboardInterrupt)."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def ignored_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait while the demo cleans up (end_agents is bounded)."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
