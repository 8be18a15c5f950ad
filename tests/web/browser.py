"""A real browser for the page's tests and benchmarks: Debian's Chromium driven by Playwright
(never a downloaded browser), with a virtual WebAuthn authenticator per approver added through
the Chrome DevTools Protocol (CTAP2, internal, resident keys, user verification on)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def have_chromium() -> bool:
    return os.access(CHROMIUM, os.X_OK)


class Person:
    """One approver at one browser: their own context (cookies) and virtual authenticator."""

    def __init__(self, browser: Any, viewport: dict[str, int] | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or {"width": 1000, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        added = self.cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        self.authenticator = added["authenticatorId"]

    def close(self) -> None:
        self.context.close()

    def user_verified(self, on: bool) -> None:
        self.cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator, "isUserVerified": on},
        )

    def credentials(self) -> list[dict[str, Any]]:
        got = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return got["credentials"]

    # ------------------------------------------------------------------ the page
    def enroll(self, url: str) -> str:
        """Open an enrollment link, create the passkey; the credential file the page shows."""
        self.page.goto(url)
        self.page.click("#enroll")
        self.page.wait_for_selector("#credential-file")
        return self.page.inner_text("#credential-file")

    def sign_in(self, base: str, path: str = "/") -> None:
        self.page.goto(base + path)
        self.page.click("#signin")
        self.page.wait_for_selector("#nav:not([hidden])")

    def card(self, rid: str) -> Any:
        return self.page.locator(f"#card-{rid}")

    def wait_card(self, rid: str, deadline_s: float = 30) -> Any:
        card = self.card(rid)
        card.wait_for(state="visible", timeout=deadline_s * 1000)
        return card

    def decide(self, rid: str, verdict: str, reason: str = "") -> str:
        """Click Approve or Deny on a card; the card's result line once it says how it went
        (or the note that replaced the card, when the shim was quicker than this look)."""
        card = self.wait_card(rid)
        if reason:
            card.locator(".reason").fill(reason)
        card.locator(f"button.{verdict}").click()
        result = card.locator(".result")
        note = self.page.locator(f"#note-{rid}")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            # all_inner_texts does not wait: the card can be replaced between two looks
            notes = note.all_inner_texts()
            if notes:
                return notes[0]
            texts = result.all_inner_texts()
            text = texts[0] if texts else ""
            if text.startswith(("Approved", "Denied", "Not sent")):
                return text
            time.sleep(0.02)
        raise AssertionError(f"no result on card {rid}")

    def assertion(
        self, challenge: bytes, rp_id: str, credentials: list[str], uv: str = "required"
    ) -> dict[str, str]:
        """What any script on a page at this origin can ask the passkey for: an assertion over
        `challenge` (the attacker's tool in the attack tests)."""
        got = self.page.evaluate(
            """async ([challenge, rpId, ids, uv]) => {
              const dec = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/")
                  + "===".slice((t.length + 3) % 4)), (c) => c.charCodeAt(0));
              const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
                  .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
              const c = await navigator.credentials.get({publicKey: {
                challenge: dec(challenge), rpId,
                allowCredentials: ids.map((id) => ({type: "public-key", id: dec(id)})),
                userVerification: uv}});
              return {credential: enc(c.rawId),
                      authenticator_data: enc(c.response.authenticatorData),
                      client_data_json: enc(c.response.clientDataJSON),
                      signature: enc(c.response.signature)};
            }""",
            [_b64url(challenge), rp_id, credentials, uv],
        )
        return dict(got)

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        self.page.screenshot(path=str(path), full_page=full_page)


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def credential_ids(file_text: str) -> list[str]:
    return [json.loads(line)["credential_id"] for line in file_text.splitlines() if line.strip()]
