"""Where the page lives, and the signed-in approver's cookie (cold; pure but for randomness).

`Site` is what the server's public URL says about the page: its origin (what the browser puts
in every WebAuthn client data, and in the Origin header of every state-changing call), the
relying-party id (the host name; passkeys do not work on a bare IP address), and whether it is
served over TLS (then the cookie is `Secure` and `__Host-` prefixed).

A session is a random cookie (HttpOnly, SameSite=Strict, Path=/, Secure under TLS) whose
SHA-256 the server stores, with a CSRF token the page sends in `X-Shield-CSRF` on every call
that changes anything. A session lets an approver list requests and relay what their passkey
signed; it approves nothing by itself (only an assertion the shim verifies does).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

SESSION_TTL_S = 12 * 3600.0
CSRF_HEADER = "x-shield-csrf"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Site:
    public_url: str
    origin: str
    rp_id: str  # "" when the public URL's host is an IP address: no passkeys there
    secure: bool

    @property
    def cookie_name(self) -> str:
        return "__Host-shield_session" if self.secure else "shield_session"

    @property
    def passkeys_ok(self) -> bool:
        return bool(self.rp_id)


def site_of(public_url: str) -> Site:
    """The page's origin and relying party from the server's public URL."""
    parts = urlsplit(public_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    shown = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown}" + (f":{port}" if port and port != default else "")
    try:
        ipaddress.ip_address(host)
        rp_id = ""
    except ValueError:
        rp_id = host
    if scheme == "http" and host != "localhost":
        rp_id = ""  # browsers allow WebAuthn only in secure contexts
    return Site(public_url.rstrip("/"), origin, rp_id, scheme == "https")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def cookie(site: Site, value: str, max_age: int) -> str:
    """A Set-Cookie value for the session cookie (max_age 0 clears it)."""
    attrs = [f"{site.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    attrs.append(f"Max-Age={max_age}")
    if site.secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def same_origin(site: Site, origin_header: str | None) -> bool:
    """A state-changing call from the page itself: browsers send Origin on every such call."""
    return origin_header is not None and hmac.compare_digest(origin_header, site.origin)


def csrf_ok(expected: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(expected.encode(), sent.encode())
