"""Fixtures for the page's browser tests: one Chromium for the session, a `shield serve` whose
public URL is http://localhost:PORT (passkeys need a host name), approvers who enroll their
passkeys on the page, and an agent home that trusts them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World, shield
from tests.server.conftest import Relay, install_with_relay
from tests.web.browser import Person, have_chromium, launch


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not have_chromium():
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed here; .ci/run installs it (apt-get)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        b = launch(playwright)
        yield b
        b.close()


def page_relay(home: Path, *extra: str, db: str | None = None) -> Relay:
    """A relay whose page lives at http://localhost:PORT."""
    relay = Relay(home, db)
    relay.extra = ["--public-url", f"http://localhost:{relay.port}", *extra]
    return relay


class Site:
    """The relay as approvers see it: its page's base URL and approver enrollment."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.base = f"http://localhost:{relay.port}"

    def add_approver(self, name: str) -> dict:
        out = self.relay.cli("approver", "add", name, "--public-url", self.base, "--json")
        data = json.loads(out.stdout)
        token = self.relay.home.parent / f"approver-{name}-{self.relay.port}.token"
        token.write_text(data["token"] + "\n")
        token.chmod(0o600)
        data["token_file"] = token
        return data

    def enroll(self, person: Person, name: str) -> Path:
        """Add approver `name`, enroll `person`'s passkey on the page; the credential file as
        `shield serve approver export` prints it."""
        data = self.add_approver(name)
        shown = person.enroll(data["enroll_url"])
        exported = self.relay.cli("approver", "export", name).stdout
        assert shown.strip() == exported.strip()
        path = self.relay.home.parent / f"{name}.passkey"
        path.write_text(exported)
        return path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    relay = page_relay(tmp_path / "server-home").start()
    yield Site(relay)
    relay.stop()


@pytest.fixture
def alice_web(browser: object, site: Site, world: World) -> Iterator[Person]:
    """alice: enrolled on the page, trusted in the agent's home, signed in; the agent's shims
    use the relay."""
    person = Person(browser)
    creds = site.enroll(person, "alice")
    shield("trust", "add", str(creds), home=world.home)
    install_with_relay(world, site.relay)
    person.sign_in(site.base)
    yield person
    person.close()
