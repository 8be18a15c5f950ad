"""Take the README's screenshot of the approval page: two held calls, real previews.

A `shield serve` on loopback, an agent home whose shims use it, the real terraform (a plan that
adds two `terraform_data` resources) and the real kubectl (deleting two pods in a `prod` context
of a small recording API server) held at once; alice enrolls a passkey in Chromium, signs in,
and the page is photographed at a laptop's and at a phone's width. Both calls are then
withdrawn (SIGTERM), nothing runs.

    .venv/bin/python -m tests.web.screenshot [--out docs/approve-page.png]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.conftest import World, shield
from tests.e2e.kubeapi import KubeAPI
from tests.server.conftest import install_with_relay
from tests.web.browser import Person, launch
from tests.web.conftest import Site, page_relay

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: prod-eu
clusters:
- name: prod-eu
  cluster: {{server: {server}}}
contexts:
- name: prod-eu
  context: {{cluster: prod-eu, user: deploy, namespace: shop}}
users:
- name: deploy
  user: {{token: t0ken}}
"""
TERRAFORM = """resource "terraform_data" "web" {
  input = "v2"
}

resource "terraform_data" "worker" {
  input = "v2"
}
"""


def hold_two(world: World, root: Path, kube: KubeAPI) -> list[subprocess.Popen]:
    """terraform apply and kubectl delete, each held by its shim."""
    tf, kubectl = shutil.which("terraform"), shutil.which("kubectl")
    if tf is None or kubectl is None:
        raise SystemExit("needs the real terraform and kubectl on PATH")
    work = root / "infra"
    work.mkdir()
    (work / "main.tf").write_text(TERRAFORM)
    env = world.env(
        path=f"{world.bin}:{Path(tf).parent}:{Path(kubectl).parent}:/usr/bin:/bin",
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
    )
    subprocess.run(
        ["terraform", f"-chdir={work}", "init", "-input=false"], env=env, capture_output=True
    )
    (root / "user-home" / ".kube").mkdir(parents=True)
    (root / "user-home" / ".kube" / "config").write_text(KUBECONFIG.format(server=kube.url("prod")))
    calls = [
        ["terraform", "-chdir=infra", "apply", "-auto-approve", "-input=false"],
        ["kubectl", "delete", "pod", "web-1", "web-2", "--wait=false"],
    ]
    procs = []
    for argv in calls:
        procs.append(
            subprocess.Popen(
                argv, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        end = time.monotonic() + 120
        while len([e for e in world.log() if e["event"] == "held"]) < len(procs):
            if time.monotonic() > end:
                raise SystemExit("a call was not held in time")
            time.sleep(0.1)
    return procs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/approve-page.png")
    args = ap.parse_args()
    out = Path(args.out)
    root = Path(tempfile.mkdtemp(prefix="shield-screenshot-"))
    world = World(root)
    (root / "user-home").mkdir()
    kube = KubeAPI(("prod",)).start()
    for name in ("web-1", "web-2"):
        kube.add("prod", "pods", "shop", name)
    relay = page_relay(root / "server-home").start()
    procs: list[subprocess.Popen] = []
    try:
        site = Site(relay)
        install_with_relay(world, relay, agent="deploy-bot")
        with sync_playwright() as playwright:
            browser = launch(playwright)
            alice = Person(browser, viewport={"width": 960, "height": 900})
            shield("trust", "add", str(site.enroll(alice, "alice")), home=world.home)
            procs = hold_two(world, root, kube)
            alice.sign_in(site.base)
            alice.page.locator("article.card").nth(1).wait_for()
            alice.page.locator("#live", has_text="Live").wait_for()
            alice.screenshot(out)
            phone = Person(browser, viewport={"width": 390, "height": 844})
            phone.context.add_cookies(alice.context.cookies())
            phone.page.goto(site.base)
            phone.page.locator("article.card").nth(1).wait_for()
            phone.screenshot(out.with_name(out.stem + "-phone" + out.suffix))
            browser.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        relay.stop()
        kube.stop()
    print(f"wrote {out} and {out.with_name(out.stem + '-phone' + out.suffix)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
