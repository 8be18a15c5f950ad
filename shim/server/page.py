"""The approvers' web page (cold): one HTML shell, a small script and a style sheet, served by
the relay itself (no build step, no CDN), and the JSON it reads.

    GET /  /r/{id}  /history  /enroll/{token}      the page (the script picks the view)
    GET /static/app.js  /static/style.css
    GET /api/v1/page/site                          the page's origin; whether passkeys work here
    GET /api/v1/page/feed?seen=V&wait=S            approvers: the pending cards and the recently
                                                   closed requests; waits up to S seconds while
                                                   nothing changed since version V
    GET /api/v1/page/requests/{id}                 approvers: one card, or how it closed
    GET /api/v1/page/history                       approvers: recent outcomes

Every response carries a strict Content-Security-Policy (scripts and styles from this server
only, no inline code, no frames) and no-referrer (enrollment links never leak). Request data
reaches the page only as JSON strings made by shim.server.cards, which the script puts into
the document as text.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shim import canon
from shim.approval.request import is_request_id
from shim.server.cards import card, summary
from shim.server.checks import Invalid
from shim.server.hub import ANY
from shim.server.relay import Relay, relay_of, who

STATIC = Path(__file__).parent / "static"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
FEED_MAX_S = 25.0
RECHECK_S = 2.0
NOTE_WINDOW_S = 600.0  # closed requests the feed reports, for the "approved by ..." notes
HISTORY_S = 7 * 86400.0
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (
        b"permissions-policy",
        b"publickey-credentials-get=(self), publickey-credentials-create=(self)",
    ),
]


class SecurityHeaders:
    """Adds the page's security headers, and `Cache-Control: no-store` to everything but the
    static files, to every response (a pure ASGI middleware: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in HEADERS if k not in have]
                if b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-cache" if static else b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)


def _load(name: str) -> bytes:
    return (STATIC / name).read_bytes()


_CACHE: dict[str, tuple[bytes, str]] = {}


def static_file(name: str) -> Response:
    if name not in FILES:
        raise Invalid(404, "no such file")
    if name not in _CACHE:
        body = _load(name)
        _CACHE[name] = (body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    body, etag = _CACHE[name]
    return Response(body, media_type=FILES[name], headers={"etag": etag})


async def shell(request: Request) -> Response:
    rid = request.path_params.get("rid")
    if rid is not None and not is_request_id(rid):
        raise Invalid(404, "no such request")
    return static_file("index.html")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "index.html":
        raise Invalid(404, "no such file")
    response = static_file(name)
    if request.headers.get("if-none-match") == response.headers["etag"]:
        return Response(status_code=304, headers={"etag": response.headers["etag"]})
    return response


async def site(request: Request) -> Response:
    s = relay_of(request).site
    return JSONResponse({"origin": s.origin, "rp_id": s.rp_id, "passkeys": s.passkeys_ok})


async def view(relay: Relay) -> dict[str, Any]:
    """The pending cards and the requests closed lately, with a version that changes only
    when one of them does (not with the passing time)."""
    now = time.time()
    rows = await relay.db(relay.store.pending, now)
    posted = await relay.db(relay.web.posted, [r.id for r in rows])
    cards = [c for r in rows if (c := card(r, now, posted.get(r.id))) is not None]
    closed = [summary(r) for r in await relay.db(relay.web.closed_since, now - NOTE_WINDOW_S, 50)]
    state = [[c["id"], c["status"], c["posted"], c["refused"]] for c in cards]
    state += [[s["id"], s["status"]] for s in closed]
    version = hashlib.sha256(canon.encode(state).encode()).hexdigest()[:16]
    return {"version": version, "now": now, "cards": cards, "closed": closed}


async def feed(request: Request) -> Response:
    principal = await who(request, "approver")
    relay = relay_of(request)
    seen = request.query_params.get("seen", "")
    try:
        wait = min(max(float(request.query_params.get("wait", "0")), 0.0), FEED_MAX_S)
    except ValueError:
        raise Invalid(400, "wait is a number of seconds") from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with relay.hub.watch(ANY) as event:
        while True:
            event.clear()
            out = await view(relay)
            left = deadline - loop.time()
            if out["version"] != seen or left <= 0:
                break
            try:
                await asyncio.wait_for(event.wait(), min(left, RECHECK_S))
            except TimeoutError:
                pass
    out["approver"] = principal.name
    return JSONResponse(out)


async def one(request: Request) -> Response:
    await who(request, "approver")
    relay = relay_of(request)
    rid = request.path_params["rid"]
    row = await relay.db(relay.store.request, rid) if is_request_id(rid) else None
    if row is None:
        raise Invalid(404, f"no request {rid[:16]!r}")
    now = time.time()
    if row.status == "pending" and row.expires > now:
        posted = await relay.db(relay.web.posted, [row.id])
        return JSONResponse({"now": now, "card": card(row, now, posted.get(row.id))})
    return JSONResponse({"now": now, "card": None, "closed": summary(row)})


async def history(request: Request) -> Response:
    await who(request, "approver")
    relay = relay_of(request)
    rows = await relay.db(relay.web.closed_since, time.time() - HISTORY_S, 100)
    return JSONResponse({"items": [summary(r) for r in rows]})


def routes() -> list[Route]:
    return [
        Route("/", shell, methods=["GET"]),
        Route("/history", shell, methods=["GET"]),
        Route("/r/{rid}", shell, methods=["GET"]),
        Route("/enroll/{token}", shell, methods=["GET"]),
        Route("/static/{name}", asset, methods=["GET"]),
        Route("/api/v1/page/site", site, methods=["GET"]),
        Route("/api/v1/page/feed", feed, methods=["GET"]),
        Route("/api/v1/page/requests/{rid}", one, methods=["GET"]),
        Route("/api/v1/page/history", history, methods=["GET"]),
    ]
