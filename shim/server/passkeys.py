"""The page's passkey routes (cold): enrolling with a one-time link, signing in and out, and the
credential file an operator copies into agent homes.

    GET    /api/v1/enroll/{token}            the link's approver (404 once used or expired)
    POST   /api/v1/enroll/{token}/options    WebAuthn creation options (a fresh challenge)
    POST   /api/v1/enroll/{token}            the new credential: verified, stored, the link used;
                                             answers with the credential file
    GET    /api/v1/session                   who is signed in, and the CSRF token
    POST   /api/v1/session/options           WebAuthn request options for signing in
    POST   /api/v1/session                   sign in: a verified assertion opens a session
    DELETE /api/v1/session                   sign out
    GET    /api/v1/passkeys/{name}           an approver's credential file (approvers only)

The server stores public data only and cannot add trust anywhere: an operator copies the
credential file into each agent home with `shield trust add`.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shim.approval.passkey import Passkey, b64url_decode
from shim.clock import now_iso
from shim.server import ceremony
from shim.server.auth import token_hash, valid_name
from shim.server.checks import Invalid
from shim.server.relay import Relay, read_json, relay_of, session_of, session_principal, who
from shim.server.session import SESSION_TTL_S, cookie, new_secret, same_origin
from shim.server.webstore import PasskeyRow

ENROLL_TTL_S = 24 * 3600.0
CHALLENGE_TTL_S = 300.0
ANSWER_LIMIT = 64 << 10


def credential_file(rows: list[PasskeyRow]) -> str:
    """The lines `shield trust add` reads: one credential per line."""
    return "".join(
        Passkey(
            r.approver, r.credential_id, b64url_decode(r.public_key), r.rp_id, r.origin
        ).to_line()
        for r in rows
    )


def _need_passkeys(request: Request) -> None:
    """Passkeys work on this server, and this call comes from its page (browsers send Origin
    with every POST; a cross-site JSON POST would need CORS, which this server never grants)."""
    site = relay_of(request).site
    if request.method == "POST" and not same_origin(site, request.headers.get("origin")):
        raise Invalid(403, f"enrolling and signing in happen on the page at {site.origin} only")
    if not site.passkeys_ok:
        raise Invalid(
            409,
            f"passkeys need the page on a host name over HTTPS (or http://localhost), not "
            f"{site.origin}: start shield serve with --public-url https://NAME",
        )


async def _enrollment(request: Request) -> tuple[str, str]:
    """(token hash, approver) of the link in the path, while it is usable."""
    relay = relay_of(request)
    token = request.path_params["token"]
    hashed = token_hash(token)
    approver = (
        await relay.db(relay.web.enrollment, hashed, time.time()) if len(token) < 200 else None
    )
    if approver is None:
        raise Invalid(
            404,
            "this enrollment link was used already, has expired, or never existed: ask your "
            "operator for a new one (shield serve approver enroll NAME)",
        )
    return hashed, approver


async def enroll_info(request: Request) -> Response:
    _, approver = await _enrollment(request)
    site = relay_of(request).site
    return JSONResponse(
        {"approver": approver, "origin": site.origin, "rp_id": site.rp_id, "ok": site.passkeys_ok}
    )


async def enroll_options(request: Request) -> Response:
    _need_passkeys(request)
    hashed, approver = await _enrollment(request)
    relay = relay_of(request)
    existing = [r.credential_id for r in await relay.db(relay.web.passkeys, approver)]
    options, challenge = ceremony.registration_options(relay.site, approver, existing)
    await _store_challenge(relay, challenge, "enroll", hashed)
    return Response(options, media_type="application/json")


async def enroll(request: Request) -> Response:
    _need_passkeys(request)
    hashed, approver = await _enrollment(request)
    relay = relay_of(request)
    body = await read_json(request, ANSWER_LIMIT)
    challenge = ceremony.challenge_in(body)
    if await relay.db(relay.web.take_challenge, challenge, "enroll", time.time()) != hashed:
        raise Invalid(400, "this enrollment attempt expired: try again")
    new = ceremony.finish_registration(relay.site, body, challenge)
    now = time.time()
    row = PasskeyRow(
        new.credential_id,
        approver,
        new.public_key,
        new.sign_count,
        relay.site.rp_id,
        relay.site.origin,
        now,
    )
    if not await relay.db(relay.web.enroll, hashed, row, now):
        raise Invalid(404, "this enrollment link was used meanwhile")
    text = credential_file([row])
    pk = Passkey(approver, row.credential_id, b64url_decode(row.public_key), row.rp_id, row.origin)
    return JSONResponse(
        {
            "approver": approver,
            "credential_id": row.credential_id,
            "fingerprint": pk.fingerprint,
            "file": text,
            "created": now_iso(now),
        },
        status_code=201,
    )


async def login_options(request: Request) -> Response:
    _need_passkeys(request)
    relay = relay_of(request)
    options, challenge = ceremony.login_options(relay.site)
    await _store_challenge(relay, challenge, "login", "")
    return Response(options, media_type="application/json")


async def _store_challenge(relay: Relay, challenge: str, purpose: str, subject: str) -> None:
    """Keep the challenge for its answer; 429 while too many are outstanding (anyone may
    ask for one: they expire in CHALLENGE_TTL_S, and the table stays bounded)."""
    now = time.time()
    added = await relay.db(
        relay.web.add_challenge, challenge, purpose, subject, now + CHALLENGE_TTL_S, now
    )
    if not added:
        raise Invalid(429, "too many passkey sign-ins in progress: try again in a few minutes")


async def login(request: Request) -> Response:
    _need_passkeys(request)
    relay = relay_of(request)
    body = await read_json(request, ANSWER_LIMIT)
    row = await relay.db(relay.web.passkey, ceremony.credential_id_of(body))
    if row is None:
        raise Invalid(401, "this passkey is not enrolled on this server")
    if row.origin != relay.site.origin:
        raise Invalid(401, f"this passkey was enrolled at {row.origin}: sign in there")
    challenge = ceremony.challenge_in(body)
    if await relay.db(relay.web.take_challenge, challenge, "login", time.time()) is None:
        raise Invalid(401, "this sign-in attempt expired: try again")
    count = ceremony.finish_login(relay.site, body, challenge, row.public_key, row.sign_count)
    now = time.time()
    await relay.db(relay.web.used_passkey, row.credential_id, count, now)
    value, csrf = new_secret(), new_secret()
    await relay.db(
        relay.web.add_session,
        token_hash(value),
        row.approver,
        csrf,
        row.credential_id,
        now,
        SESSION_TTL_S,
    )
    out = JSONResponse({"approver": row.approver, "csrf": csrf})
    out.headers["set-cookie"] = cookie(relay.site, value, int(SESSION_TTL_S))
    return out


async def session_info(request: Request) -> Response:
    session = await session_of(request)
    if session is None:
        raise Invalid(401, "sign in with your passkey")
    relay = relay_of(request)
    rows = await relay.db(relay.web.passkeys, session.approver)
    return JSONResponse(
        {
            "approver": session.approver,
            "csrf": session.csrf,
            "rp_id": relay.site.rp_id,
            "credentials": [r.credential_id for r in rows if r.origin == relay.site.origin],
            "expires": now_iso(session.expires),
        }
    )


async def logout(request: Request) -> Response:
    await session_principal(request)  # the CSRF token and the Origin, like any change
    relay = relay_of(request)
    value = request.cookies.get(relay.site.cookie_name, "")
    await relay.db(relay.web.drop_session, token_hash(value))
    out = JSONResponse({"ok": True})
    out.headers["set-cookie"] = cookie(relay.site, "", 0)
    return out


async def export(request: Request) -> Response:
    await who(request, "approver")
    name = request.path_params["name"]
    relay = relay_of(request)
    rows = await relay.db(relay.web.passkeys, name) if valid_name(name) else []
    if not rows:
        raise Invalid(404, f"no passkey enrolled for {name[:64]!r}")
    headers: dict[str, Any] = {}
    if request.query_params.get("download"):
        headers["content-disposition"] = f'attachment; filename="{name}.passkey"'
    return Response(credential_file(rows), media_type="application/json", headers=headers)


def routes() -> list[Route]:
    return [
        Route("/api/v1/enroll/{token}", enroll_info, methods=["GET"]),
        Route("/api/v1/enroll/{token}/options", enroll_options, methods=["POST"]),
        Route("/api/v1/enroll/{token}", enroll, methods=["POST"]),
        Route("/api/v1/session", session_info, methods=["GET"]),
        Route("/api/v1/session/options", login_options, methods=["POST"]),
        Route("/api/v1/session", login, methods=["POST"]),
        Route("/api/v1/session", logout, methods=["DELETE"]),
        Route("/api/v1/passkeys/{name}", export, methods=["GET"]),
    ]
