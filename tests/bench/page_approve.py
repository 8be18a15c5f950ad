"""Bench: a click on Approve on the web page -> the held command starting (SPEC: p50 <= 0.5 s).

A real `shield serve` on loopback (SQLite), a shim installed with --server that holds `kubectl
delete pod web-N` (its preview runs first, against a stand-in kubectl that records when the
real call starts), and alice in Debian's Chromium with a virtual authenticator: enrolled on the
page, trusted in the agent's home, signed in. Each round waits for the card to arrive on the
page (live feed), then clicks Approve; the figure is the stand-in's start time minus the moment
just before the click. It covers the whole path: the page builds the decision and hashes it,
the passkey signs, the server relays, the shim verifies the assertion (py_webauthn), records
it in the used store and the sign counts, logs, and starts the command.

    .venv/bin/python tests/bench/page_approve.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relay import BASE_ENV, Servers, shield

from tests.web.browser import Person, launch

STANDIN = """#!{python} -I
import os, sys, time
if not os.environ.get("_SHIELD_PREVIEW"):
    with open({out!r}, "a") as fh:
        fh.write(repr(time.time()) + "\\n")
"""


def setup(root: Path, servers: Servers, browser: object) -> tuple[Person, dict[str, str]]:
    """alice enrolled, trusted by the agent home, signed in; the agent's environment."""
    starts = root / "starts"
    real = root / "real"
    real.mkdir()
    (real / "kubectl").write_text(STANDIN.format(python=sys.executable, out=str(starts)))
    (real / "kubectl").chmod(0o755)
    base = servers.urls[0].replace("127.0.0.1", "localhost")
    added = json.loads(
        shield(servers.home, "serve", "approver", "add", "alice", "--public-url", base, "--json")
    )
    alice = Person(browser)
    alice.enroll(added["enroll_url"])
    creds = root / "alice.passkey"
    creds.write_text(shield(servers.home, "serve", "approver", "export", "alice"))
    agent = root / "agent"
    token = servers.token("agent", "bench")
    shield(
        agent, "install", "--dir", str(root / "bin"), "--agent", "bench", "kubectl",
        "--server", servers.urls[0], "--token-file", str(token),
    )  # fmt: skip
    shield(agent, "trust", "add", str(creds))
    alice.sign_in(base)
    env = dict(BASE_ENV, PATH=f"{root / 'bin'}:{real}:/usr/bin:/bin", HOME=str(root))
    return alice, env


def one_round(alice: Person, env: dict[str, str], starts: Path, i: int) -> float:
    proc = subprocess.Popen(
        ["kubectl", "delete", "pod", f"web-{i}"], env=env, stderr=subprocess.DEVNULL
    )
    card = alice.page.locator("article.card").first
    card.wait_for(timeout=60_000)
    button = card.locator("button.approve")
    before = len(starts.read_text().splitlines()) if starts.exists() else 0
    clicked = time.time()
    button.click()
    proc.wait(timeout=60)
    lines = starts.read_text().splitlines()
    if len(lines) != before + 1:
        raise SystemExit("the approved command did not run exactly once")
    # the card leaves the page before the next round holds a call
    alice.page.locator("article.card").first.wait_for(state="detached", timeout=60_000)
    return float(lines[-1]) - clicked


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shield-page-approve-"))
    servers = Servers(root, 1)
    delays = []
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            alice, env = setup(root, servers, browser)
            one_round(alice, env, root / "starts", -1)  # warm up: the first feed, the caches
            for i in range(args.rounds):
                delays.append(one_round(alice, env, root / "starts", i))
            browser.close()
    finally:
        servers.stop()
    print(f"rounds: {args.rounds} (one server, SQLite; Chromium, virtual authenticator)")
    print(f"page_click_to_command_start_p50_s: {statistics.median(delays):.3f}  (target <= 0.5)")
    print(f"page_click_to_command_start_max_s: {max(delays):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
