"""The server's WebAuthn ceremonies, with py_webauthn (cold): enrolling a passkey, signing in.

Both are ordinary relying-party work: the server makes a random challenge, the browser asks
the authenticator, the server verifies the answer against the challenge, its own origin and
relying-party id, with user verification required. Enrolling stores the credential's public
data; signing in opens a session. Neither approves anything: an approval is an assertion over
a decision, which only the shim verifies (shim.approval.passkey).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_client_data_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from shim.approval.passkey import b64url, b64url_decode
from shim.server.checks import Invalid
from shim.server.session import Site

RP_NAME = "shield"
TIMEOUT_MS = 120_000
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]


@dataclass(frozen=True)
class NewCredential:
    credential_id: str  # base64url
    public_key: str  # base64url COSE
    sign_count: int


def user_handle(approver: str) -> bytes:
    """A stable WebAuthn user id per approver name (no name in it)."""
    return hashlib.sha256(b"shield approver\0" + approver.encode()).digest()[:16]


def registration_options(site: Site, approver: str, existing: list[str]) -> tuple[str, str]:
    """(options as JSON for the browser, the challenge as base64url)."""
    options = generate_registration_options(
        rp_id=site.rp_id,
        rp_name=RP_NAME,
        user_name=approver,
        user_id=user_handle(approver),
        user_display_name=approver,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in existing],
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json(options), b64url(options.challenge)


def login_options(site: Site) -> tuple[str, str]:
    """Sign-in with a discoverable passkey: (options JSON, challenge base64url)."""
    options = generate_authentication_options(
        rp_id=site.rp_id,
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options), b64url(options.challenge)


def challenge_in(body: Any) -> str:
    """The challenge (base64url) a browser's answer says it signed; Invalid when unreadable."""
    try:
        client = body["response"]["clientDataJSON"]
        return b64url(parse_client_data_json(b64url_decode(client)).challenge)
    except (KeyError, TypeError, ValueError, WebAuthnException):
        raise Invalid(400, "not a WebAuthn answer (response.clientDataJSON)") from None


def credential_id_of(body: Any) -> str:
    raw = body.get("rawId") if isinstance(body, dict) else None
    if not isinstance(raw, str) or len(raw) > 2000:
        raise Invalid(400, "not a WebAuthn answer (rawId)")
    return raw


def finish_registration(site: Site, body: Any, challenge: str) -> NewCredential:
    """The new credential, verified; Invalid 400 when the answer does not verify."""
    try:
        verified = verify_registration_response(
            credential=json.dumps(body),
            expected_challenge=b64url_decode(challenge),
            expected_rp_id=site.rp_id,
            expected_origin=site.origin,
            require_user_presence=True,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise Invalid(400, f"the passkey could not be enrolled: {exc}") from None
    return NewCredential(
        b64url(verified.credential_id),
        b64url(verified.credential_public_key),
        int(verified.sign_count),
    )


def finish_login(site: Site, body: Any, challenge: str, public_key: str, sign_count: int) -> int:
    """The new sign count of a verified sign-in; Invalid 401 when it does not verify."""
    try:
        verified = verify_authentication_response(
            credential=json.dumps(body),
            expected_challenge=b64url_decode(challenge),
            expected_rp_id=site.rp_id,
            expected_origin=site.origin,
            credential_public_key=b64url_decode(public_key),
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise Invalid(401, f"the passkey did not sign in: {exc}") from None
    return int(verified.new_sign_count)
