"""Passkey approvals: WebAuthn credentials in the trust store, and decisions they sign (cold).

An approver who decides on the web page (`shield serve`) signs with a passkey. The page builds
the decision (request id and digest, verdict, approver, time, expiry, reason, nonce: the same
terms as an Ed25519 decision) and asks the passkey for a WebAuthn assertion whose challenge is
the SHA-256 of that decision's canonical JSON. The statement the server relays is the decision
plus the assertion (credential id, authenticator data, client data, signature).

The shim accepts it only when every check holds (`verify_passkey_decision`):
- a credential in its trust store (`<home>/trust/<name>-<fingerprint>.passkey`, added with
  `shield trust add`) made the signature, and the decision names that credential's approver;
- the assertion's challenge is the digest of this very decision, and the decision names this
  request's id and digest (shim.approval.decision.check_terms, as for Ed25519);
- the client data says `webauthn.get`, at the origin recorded at enrollment, not from a frame
  embedded in another site; the authenticator data names the enrolled relying-party id and
  says user present and user verified;
- not expired, not made in the future (with the clock-skew tolerance), not used before (the
  used store); the sign count is above the last one seen for this credential, when the
  authenticator keeps one (the caller records it: shim.approval.used).

The WebAuthn checks are the maintained `webauthn` library's (py_webauthn), imported only when a
passkey decision is verified (never on an allowed call, nor when loading the trust store).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from shim import canon, fs
from shim.approval.decision import VERDICTS, check_terms
from shim.approval.request import HeldRequest
from shim.errors import KeyError_
from shim.home import trust_dir

PASSKEY_TYPE = "shield.passkey/1"
DECISION_TYPE = "shield.passkey-decision/1"
BODY_KEYS = frozenset(
    {"type", "id", "digest", "verdict", "approver", "time", "expires", "reason", "nonce"}
)
ASSERTION_KEYS = frozenset({"credential", "authenticator_data", "client_data_json", "signature"})
DECISION_KEYS = BODY_KEYS | ASSERTION_KEYS
FILE_KEYS = frozenset({"type", "approver", "credential_id", "public_key", "rp_id", "origin"})
SUFFIX = ".passkey"
MAX_FILE_BYTES = 64 << 10


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (what WebAuthn uses); ValueError otherwise."""
    if not isinstance(text, str) or not text or "=" in text:
        raise ValueError("not base64url")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None
    if b64url(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class Passkey:
    """One approver's WebAuthn credential, as enrolled on the server and trusted here."""

    approver: str
    credential_id: str  # base64url
    public_key: bytes  # COSE_Key
    rp_id: str
    origin: str

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of the public key (as for Ed25519 keys)."""
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    def to_line(self) -> str:
        """The credential file's line (canonical JSON)."""
        return (
            canon.encode(
                {
                    "type": PASSKEY_TYPE,
                    "approver": self.approver,
                    "credential_id": self.credential_id,
                    "public_key": b64url(self.public_key),
                    "rp_id": self.rp_id,
                    "origin": self.origin,
                }
            )
            + "\n"
        )


def valid_origin(origin: str) -> bool:
    """`https://HOST[:PORT]`, or `http://localhost[:PORT]` (browsers allow WebAuthn there)."""
    scheme, sep, rest = origin.partition("://")
    if not sep or not rest or any(c in rest for c in "/?#@ ") or not rest.isascii():
        return False
    host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
    return scheme == "https" or (scheme == "http" and host == "localhost")


def parse_passkey(data: object, source: str = "passkey") -> Passkey:
    """A credential from one line of a credential file; KeyError_ when malformed."""
    if not isinstance(data, dict) or set(data) - {"created"} != FILE_KEYS:
        raise KeyError_(
            f"{source}: not a shield passkey credential",
            "use the file from: shield serve approver export NAME",
        )
    if data.get("type") != PASSKEY_TYPE or not all(
        isinstance(data[k], str) for k in sorted(FILE_KEYS)
    ):
        raise KeyError_(f"{source}: not a {PASSKEY_TYPE} credential")
    name = data["approver"]
    if not name or len(name) > 64 or not name.isprintable() or any(c.isspace() for c in name):
        raise KeyError_(f"{source}: the approver name must be one printable word")
    try:
        raw_id = b64url_decode(data["credential_id"])
        public_key = b64url_decode(data["public_key"])
    except ValueError as exc:
        raise KeyError_(f"{source}: {exc}") from None
    if not 16 <= len(raw_id) <= 1023 or not 16 <= len(public_key) <= 2048:
        raise KeyError_(f"{source}: credential id or public key of an impossible size")
    rp_id, origin = data["rp_id"], data["origin"]
    host = origin.partition("://")[2].rsplit(":", 1)[0] if ":" in origin else ""
    if not valid_origin(origin) or not rp_id or not (host == rp_id or host.endswith("." + rp_id)):
        raise KeyError_(f"{source}: origin {origin!r} does not belong to relying party {rp_id!r}")
    return Passkey(name, data["credential_id"], public_key, rp_id, origin)


def parse_passkey_file(text: str, source: str) -> list[Passkey]:
    """Every credential in a credential file (one JSON object per line)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise KeyError_(f"{source}:{n}: not JSON") from None
        out.append(parse_passkey(data, f"{source}:{n}"))
    if not out:
        raise KeyError_(f"{source}: no credential in the file")
    return out


def is_passkey_file(text: str) -> bool:
    return text.lstrip().startswith("{")


def trusted_name(pk: Passkey) -> str:
    return f"{pk.approver}-{pk.fingerprint}{SUFFIX}"


def add_trusted_passkeys(home: str, text: str, source: str) -> list[tuple[Passkey, str]]:
    """Copy the credentials of a credential file into the trust store of `home`. Each public
    key is decoded by the WebAuthn library first, so a key no shim could use is refused here."""
    from webauthn.helpers import decode_credential_public_key

    keys = parse_passkey_file(text, source)
    for pk in keys:
        try:
            decode_credential_public_key(pk.public_key)
        except Exception as exc:  # noqa: BLE001 - the library raises several kinds
            raise KeyError_(
                f"{source}: the public key of {pk.approver} is unusable: {exc}"
            ) from None
    os.makedirs(trust_dir(home), mode=0o755, exist_ok=True)
    out = []
    for pk in keys:
        dest = os.path.join(trust_dir(home), trusted_name(pk))
        with open(dest, "w") as fh:
            fh.write(pk.to_line())
        os.chmod(dest, 0o644)
        out.append((pk, dest))
    return out


def load_passkeys(home: str) -> dict[str, Passkey]:
    """Trusted passkey credentials by credential id. Unreadable or malformed files are skipped."""
    return {pk.credential_id: pk for _, pk, _ in list_passkeys(home) if pk is not None}


def list_passkeys(home: str) -> list[tuple[str, Passkey | None, str]]:
    """Every `.passkey` file of the trust store, sorted: (path, credential, '') or (path, None,
    why the shims skip it)."""
    out: list[tuple[str, Passkey | None, str]] = []
    tdir = trust_dir(home)
    try:
        names = sorted(fs.listdir(tdir))
    except OSError:
        return out
    for fname in names:
        if not fname.endswith(SUFFIX):
            continue
        path = fs.join(tdir, fname)
        try:
            text = fs.read_file(path, MAX_FILE_BYTES).decode("utf-8", "replace")
            out += [(path, pk, "") for pk in parse_passkey_file(text, fname)]
        except OSError as exc:
            out.append((path, None, f"unreadable: {exc.strerror}"))
        except KeyError_ as exc:
            out.append((path, None, exc.message.removeprefix(f"{fname}: ")))
    return out


# --- decisions -------------------------------------------------------------------------------
def is_passkey_decision(decision: object) -> bool:
    return isinstance(decision, dict) and decision.get("type") == DECISION_TYPE


def decision_body(decision: dict[str, Any]) -> dict[str, Any]:
    """The decision without its assertion: what the challenge covers."""
    return {k: v for k, v in decision.items() if k not in ASSERTION_KEYS}


def challenge_of(decision: dict[str, Any]) -> bytes:
    """The challenge the passkey signs: SHA-256 of the decision body's canonical JSON. Its hex
    is also what the used store records (unique by the nonce)."""
    return hashlib.sha256(canon.encode(decision_body(decision)).encode("ascii")).digest()


@dataclass(frozen=True)
class Accepted:
    """A passkey decision that verified: who signed, the used-store mark, the sign count."""

    passkey: Passkey
    mark: str
    sign_count: int


def _shape(decision: object) -> str:
    if not isinstance(decision, dict):
        return "decision is not a JSON object"
    keys = set(decision)
    if keys != DECISION_KEYS:
        missing = sorted(DECISION_KEYS - keys)
        unknown = sorted(keys - DECISION_KEYS)[:5]
        return f"passkey decision has missing fields {missing} or unknown fields {unknown}"
    for key in sorted(DECISION_KEYS):
        if not isinstance(decision[key], str):
            return f"passkey decision field {key!r} is not a string"
    if decision["verdict"] not in VERDICTS:
        return "passkey decision verdict is not approve or deny"
    return ""


def _client_data(decision: dict[str, Any]) -> dict[str, Any] | str:
    try:
        data = json.loads(b64url_decode(decision["client_data_json"]))
    except (ValueError, UnicodeDecodeError):
        return "passkey assertion: the client data is not base64url JSON"
    if not isinstance(data, dict):
        return "passkey assertion: the client data is not a JSON object"
    if data.get("crossOrigin") is True or "topOrigin" in data:
        return "passkey assertion was made in a frame embedded in another site; refused"
    return data


def check_assertion(
    decision: dict[str, Any], pk: Passkey, challenge: bytes, last_count: int
) -> tuple[str, int]:
    """('', sign count) when the assertion is `pk`'s signature over `challenge` at the enrolled
    origin and relying party, with user presence and verification; else (why, 0)."""
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse

    data = _client_data(decision)
    if isinstance(data, str):
        return data, 0
    if data.get("origin") != pk.origin:
        return (
            f"passkey assertion made at origin {str(data.get('origin'))[:100]!r}, not at "
            f"{pk.origin!r} where {pk.approver}'s passkey was enrolled (a look-alike site?)",
            0,
        )
    credential = {
        "id": decision["credential"],
        "rawId": decision["credential"],
        "type": "public-key",
        "response": {
            "authenticatorData": decision["authenticator_data"],
            "clientDataJSON": decision["client_data_json"],
            "signature": decision["signature"],
        },
    }
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=pk.rp_id,
            expected_origin=pk.origin,
            credential_public_key=pk.public_key,
            credential_current_sign_count=last_count,
            require_user_verification=True,
        )
    except InvalidAuthenticationResponse as exc:
        return f"passkey assertion refused: {exc}", 0
    except Exception as exc:  # noqa: BLE001 - malformed input fails in many library places
        return f"passkey assertion is malformed ({type(exc).__name__})", 0
    return "", int(verified.new_sign_count)


def verify_passkey_decision(
    decision: object,
    req: HeldRequest,
    passkeys: dict[str, Passkey],
    now: float,
    skew_s: float,
    used: set[str],
    counts: dict[str, int],
) -> tuple[bool, str, Accepted | None]:
    """(True, "ok", what verified) when the passkey decision may decide `req`; else
    (False, why, None). `counts`: the last sign count seen per credential fingerprint."""
    why = _shape(decision)
    if why:
        return False, why, None
    assert isinstance(decision, dict)
    pk = passkeys.get(decision["credential"])
    if pk is None:
        cred = decision["credential"][:24]
        return False, f"decision signed by an untrusted passkey (credential {cred!r})", None
    if decision["approver"] != pk.approver:
        name = decision["approver"][:64]
        return False, f"decision names approver {name!r} but the passkey is {pk.approver!r}", None
    challenge = challenge_of(decision)
    mark = challenge.hex()
    if mark in used:  # before the sign count, which a replay fails too, less clearly
        return False, "decision was used before (replay)", None
    why, count = check_assertion(decision, pk, challenge, counts.get(pk.fingerprint, 0))
    if why:
        return False, why, None
    why = check_terms(decision, req, now, skew_s, mark, used)
    if why:
        return False, why, None
    return True, "ok", Accepted(pk, mark, count)
