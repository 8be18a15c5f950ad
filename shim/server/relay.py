"""What every handler of the relay uses (cold): the `Relay` (store, hub, notifier, the page's
site), the caller's identity (a bearer token, or an approver's session cookie on the page),
JSON bodies, and errors as JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from shim.approval.request import is_request_id
from shim.server.auth import Principal, bearer, token_hash
from shim.server.checks import Invalid
from shim.server.hub import Hub
from shim.server.notify import Notifier, NotifyConfig, request_url
from shim.server.session import CSRF_HEADER, SAFE_METHODS, Site, csrf_ok, same_origin, site_of
from shim.server.store import RequestRow, Store
from shim.server.webstore import SessionRow, WebStore

T = TypeVar("T")
AUTH_CACHE_S = 10.0


@dataclass
class Relay:
    """What every handler uses: the store, the hub that wakes long polls, the notifier."""

    store: Store
    notify: NotifyConfig
    hub: Hub = field(default_factory=Hub)
    notifier: Notifier | None = None
    known: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    site: Site = field(init=False)
    web: WebStore = field(init=False)

    def __post_init__(self) -> None:
        self.notifier = Notifier(self.notify)
        self.site = site_of(self.notify.public_url)
        self.web = WebStore(self.store)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call: in the event loop for SQLite (local and fast: a thread hop costs
        more than the query, and writes take an in-process lock anyway), in the thread pool
        for PostgreSQL (a network round trip)."""
        if self.store.dialect == "sqlite":
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    async def principal(self, hashed: str) -> Principal | None:
        """Who holds this token hash; known tokens are remembered for AUTH_CACHE_S (so a
        replaced token keeps working that long), unknown ones are looked up every time."""
        now = time.monotonic()
        hit = self.known.get(hashed)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = await self.db(self.store.principal, hashed)
        if found is None:
            self.known.pop(hashed, None)
            return None
        principal = Principal(*found)
        if len(self.known) > 10_000:
            self.known.clear()
        self.known[hashed] = (principal, now + AUTH_CACHE_S)
        return principal

    def url(self, rid: str) -> str:
        return request_url(self.notify.public_url, rid)

    def announce(self, event: str, row: RequestRow) -> None:
        if self.notifier is not None:
            self.notifier.event(event, row)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON; Invalid (413, 415, 400) when too big, not JSON, or malformed."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Invalid(415, "send the body as application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Invalid(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Invalid(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise Invalid(400, "the body is not JSON (or nests too deep)") from None


def relay_of(request: Request) -> Relay:
    return request.app.state.relay


async def who(request: Request, *roles: str) -> Principal:
    """The caller, from its bearer token or, for approvers on the page, its session cookie
    (with the CSRF token and the page's own Origin on anything that changes state); Invalid
    401 without either, 403 in a role that may not call this route."""
    header = request.headers.get("authorization")
    if header is None and relay_of(request).site.cookie_name in request.cookies:
        principal = await session_principal(request)
    else:
        token = bearer(header)
        if token is None:
            raise Invalid(401, "send a token: Authorization: Bearer <token>")
        found = await relay_of(request).principal(token_hash(token))
        if found is None:
            raise Invalid(401, "unknown token")
        principal = found
    if roles and principal.role not in roles:
        raise Invalid(403, f"an {principal.role} token may not do this")
    return principal


async def session_of(request: Request) -> SessionRow | None:
    """The signed-in approver's session, or None (no cookie, unknown or expired)."""
    relay = relay_of(request)
    value = request.cookies.get(relay.site.cookie_name)
    if not value or len(value) > 200:
        return None
    return await relay.db(relay.web.session, token_hash(value), time.time())


async def session_principal(request: Request) -> Principal:
    session = await session_of(request)
    if session is None:
        raise Invalid(401, "sign in with your passkey")
    if request.method not in SAFE_METHODS:
        site = relay_of(request).site
        if not same_origin(site, request.headers.get("origin")):
            raise Invalid(403, f"calls with a session come from the page at {site.origin} only")
        if not csrf_ok(session.csrf, request.headers.get(CSRF_HEADER)):
            raise Invalid(403, "missing or wrong CSRF token (X-Shield-CSRF): reload the page")
    return Principal("approver", session.approver)


async def owned_request(request: Request, principal: Principal) -> RequestRow:
    """The request named in the path, if this principal may see it (else 404: an agent does
    not learn whether another agent's request exists)."""
    rid = request.path_params["rid"]
    row = None
    if is_request_id(rid):
        row = await relay_of(request).db(relay_of(request).store.request, rid)
    if row is None or not principal.owns(row.agent):
        raise Invalid(404, f"no request {rid[:16]!r}")
    return row
