"""`shield demo`: a scripted session on stand-in tools (cold).

Everything happens in a temporary directory: an approver home, an agent home, one shared spool,
shims in front of stand-in kubectl/terraform/aws/helm binaries. The agent's calls and the
approver's commands are real, separate processes, exactly as a user would run them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
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


class Demo:
    def __init__(self, root: Path, console) -> None:  # noqa: ANN001 - rich Console
        self.root = root
        self.console = console
        self.approver = root / "approver-home"
        self.agent = root / "agent-home"
        self.spool = root / "spool"
        self.shims = root / "agent-bin"
        self.real = root / "real-bin"
        self.work = root / "work"

    # ---------------------------------------------------------------- helpers
    def shield(self, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.update({"SHIELD_HOME": str(home), "SHIELD_SPOOL": str(self.spool), "COLUMNS": "110"})
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

    def wait_pending(self, deadline_s: float = 20.0) -> dict:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            items = json.loads(
                self.shield(self.approver, "pending", "--json", "--spool", str(self.spool)).stdout
                or "[]"
            )
            if items:
                return items[0]
            time.sleep(0.05)
        raise RuntimeError("the held request never reached the spool")

    def held_call(self, argv: list[str], verdict: str, reason: str) -> int:
        self.show("agent", argv)
        proc = subprocess.Popen(
            argv,
            env=self.agent_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.work,
        )
        item = self.wait_pending()
        self.say("  [dim]...the agent blocks; in another terminal the approver looks:[/]")
        self.show("approver", ["shield", "pending"])
        self.output(self.shield(self.approver, "pending", "--spool", str(self.spool)).stdout)
        cmd = ["shield", verdict, item["id"], "--reason", reason]
        self.show("approver", cmd)
        self.output(
            self.shield(
                self.approver, verdict, item["id"], "--reason", reason, "--spool", str(self.spool)
            ).stdout
        )
        out, err = proc.communicate(timeout=60)
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
        self.say(
            "[bold]1. Set up[/] (two homes, one shared spool, stand-in tools; nothing real is touched)"
        )
        pub = self.shield(self.approver, "approver", "init", "--name", "alice").stdout
        self.show("approver", ["shield", "approver", "init", "--name", "alice"])
        self.output(pub)
        self.shield(
            self.agent,
            "install",
            "--dir",
            str(self.shims),
            "--agent",
            "demo-bot",
            "--spool",
            str(self.spool),
        )
        self.show("host", ["shield", "install", "--dir", str(self.shims), "--agent", "demo-bot"])
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
            "    hint: ask #platform to remove the namespace\n"
            "    match:\n"
            "      verb: delete\n"
            "      any_arg: [ns, namespace, namespaces, 'namespace/*', 'ns/*']\n"
            "      context: {context: '*prod*'}\n"
            "    examples:\n"
            "      match: [{argv: 'delete ns payments', context: {context: prod-eu}}]\n"
            "      no_match: [{argv: 'delete ns payments', context: {context: kind-dev}}]\n"
        )
        self.say("    [dim]team rule added: deny deleting namespaces in *prod* contexts[/]")

    def run(self) -> int:
        self.setup()
        self.say("\n[bold]2. Allowed calls run at once[/]")
        codes = [
            self.agent_call(["kubectl", "-n", "web", "get", "pods"]),
            self.agent_call(["terraform", "plan"]),
            self.agent_call(["aws", "s3", "ls"]),
        ]
        self.say("\n[bold]3. A held call, approved from a second process[/]")
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
) -> int:
    """Run a scripted session on stand-in tools: allow, hold, approve, deny, and a verified log.

    Nothing real is touched: kubectl, terraform, aws and helm are small stand-in scripts in a
    temporary directory; the agent and the approver are separate processes with separate homes.

    Example:

        shield demo
    """
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=140)
    root = Path(tempfile.mkdtemp(prefix="shield-demo-"))
    try:
        return Demo(root, console).run()
    finally:
        if keep:
            console.print(f"[dim]kept: {root}[/]")
        else:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
