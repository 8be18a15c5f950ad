"""A software WebAuthn authenticator for tests: an ES256 key that makes assertions exactly as a
browser and an authenticator would (client data JSON, authenticator data, DER signature), so
the shim's passkey checks can be tried one by one without a browser. The browser tests
(tests/web) use Chromium's virtual authenticator instead."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from shim import canon
from shim.approval.passkey import DECISION_TYPE, Passkey, b64url, challenge_of
from shim.approval.request import HeldRequest
from shim.clock import now_iso

UP, UV = 0x01, 0x04


class SoftPasskey:
    def __init__(
        self, approver: str, rp_id: str = "localhost", origin: str = "http://localhost:8421"
    ) -> None:
        self.approver = approver
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.raw_id = os.urandom(32)
        self.count = 0

    @property
    def cose(self) -> bytes:
        nums = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")}
        )

    @property
    def passkey(self) -> Passkey:
        return Passkey(self.approver, b64url(self.raw_id), self.cose, self.rp_id, self.origin)

    def assertion(
        self,
        challenge: bytes,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        flags: int = UP | UV,
        count: int | None = None,
        kind: str = "webauthn.get",
        client_extra: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        """The assertion fields of a passkey decision, signed over `challenge`."""
        self.count += 1
        client = {
            "type": kind,
            "challenge": b64url(challenge),
            "origin": origin or self.origin,
            "crossOrigin": False,
            **(client_extra or {}),
        }
        client_json = json.dumps(client).encode()
        auth = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([flags])
            + struct.pack(">I", self.count if count is None else count)
        )
        sig = self.key.sign(auth + hashlib.sha256(client_json).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "credential": b64url(self.raw_id),
            "authenticator_data": b64url(auth),
            "client_data_json": b64url(client_json),
            "signature": b64url(sig),
        }

    def registration(
        self, challenge: bytes, *, origin: str | None = None, flags: int = UP | UV | 0x40
    ) -> dict[str, Any]:
        """What navigator.credentials.create() answers, as the page posts it (attestation
        "none")."""
        client = {"type": "webauthn.create", "challenge": b64url(challenge)}
        client["origin"] = origin or self.origin
        auth = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", 0)
            + bytes(16)
            + struct.pack(">H", len(self.raw_id))
            + self.raw_id
            + self.cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth})
        return {
            "id": b64url(self.raw_id),
            "rawId": b64url(self.raw_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(json.dumps(client).encode()),
                "attestationObject": b64url(attestation),
            },
            "clientExtensionResults": {},
        }

    def login(self, challenge: bytes, **kw: Any) -> dict[str, Any]:
        """What navigator.credentials.get() answers for signing in, as the page posts it."""
        got = self.assertion(challenge, **kw)
        return {
            "id": got["credential"],
            "rawId": got["credential"],
            "type": "public-key",
            "response": {
                "clientDataJSON": got["client_data_json"],
                "authenticatorData": got["authenticator_data"],
                "signature": got["signature"],
            },
            "clientExtensionResults": {},
        }

    def decide(
        self,
        req: HeldRequest,
        verdict: str = "approve",
        reason: str = "",
        *,
        ttl_s: float = 300,
        now: float | None = None,
        **assertion: Any,
    ) -> dict[str, str]:
        """A passkey decision on `req`, as the page builds and signs it."""
        import time

        now = time.time() if now is None else now
        body = {
            "type": DECISION_TYPE,
            "id": req.id,
            "digest": req.digest,
            "verdict": verdict,
            "approver": self.approver,
            "time": now_iso(now),
            "expires": now_iso(now + ttl_s),
            "reason": reason,
            "nonce": os.urandom(16).hex(),
        }
        return {**body, **self.assertion(challenge_of(body), **assertion)}


def body_digest(body: dict[str, Any]) -> bytes:
    return hashlib.sha256(canon.encode(body).encode("ascii")).digest()
