"""Approver Ed25519 keys and the agent side's trust store.

Cold except `verify_signature`, which a waiting shim calls. Files:
- approver side: `<home>/keys/approver.key` (PKCS8 PEM, 0600) and `<home>/keys/approver.pub`
- agent side: `<home>/trust/<name>-<fingerprint>.pub` (read-only for the agent, ideally)
A public key file is one line: `shield-ed25519 <base64 of the 32 raw bytes> <approver name>`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from shim.errors import KeyError_
from shim.home import keys_dir, trust_dir

PUB_PREFIX = "shield-ed25519"


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def to_line(self) -> str:
        return f"{PUB_PREFIX} {base64.b64encode(self.raw).decode()} {self.name}\n"


def fingerprint(raw: bytes) -> str:
    """A short, stable name for a public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_public_key(text: str, source: str = "") -> PublicKey:
    parts = text.strip().split(None, 2)
    if len(parts) < 3 or parts[0] != PUB_PREFIX:
        raise KeyError_(
            f"{source or 'public key'}: not a shield public key",
            "use the .pub file printed by: shield approver init --name NAME",
        )
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise KeyError_(f"{source or 'public key'}: bad base64") from exc
    if len(raw) != 32:
        raise KeyError_(f"{source or 'public key'}: an Ed25519 key has 32 bytes")
    return PublicKey(parts[2].strip(), raw)


def private_key_path(home: str) -> str:
    return os.path.join(keys_dir(home), "approver.key")


def public_key_path(home: str) -> str:
    return os.path.join(keys_dir(home), "approver.pub")


def init_approver(home: str, name: str, force: bool = False) -> str:
    """Create the approver's key pair in `home`; return the public key file's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not name or any(c.isspace() for c in name):
        raise KeyError_("the approver name must be one word", "example: --name alice")
    priv_path = private_key_path(home)
    if os.path.exists(priv_path) and not force:
        raise KeyError_(
            f"an approver key already exists: {priv_path}",
            "pass --force to replace it (signatures by the old key stop being accepted "
            "once agents drop it from their trust store)",
        )
    os.makedirs(keys_dir(home), mode=0o700, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = priv_path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, priv_path)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with open(public_key_path(home), "w") as fh:
        fh.write(PublicKey(name, raw).to_line())
    return public_key_path(home)


def load_public_key(path: str) -> PublicKey:
    try:
        with open(path) as fh:
            return parse_public_key(fh.read(), path)
    except OSError as exc:
        raise KeyError_(f"cannot read public key {path}: {exc.strerror}") from exc


def approver_identity(home: str) -> PublicKey:
    """The approver's own public key (name and raw bytes)."""
    path = public_key_path(home)
    if not os.path.exists(path):
        raise KeyError_(
            f"no approver key in {keys_dir(home)}",
            "create one with: shield approver init --name YOUR_NAME",
        )
    return load_public_key(path)


def sign(home: str, data: bytes) -> tuple[PublicKey, str]:
    """Sign `data` with the approver key of `home`; return (identity, base64 signature)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ident = approver_identity(home)
    try:
        with open(private_key_path(home), "rb") as fh:
            key = serialization.load_pem_private_key(fh.read(), password=None)
    except OSError as exc:
        raise KeyError_(f"cannot read the approver key: {exc.strerror}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_("the approver key is not an Ed25519 key")
    return ident, base64.b64encode(key.sign(data)).decode()


def add_trusted(home: str, pubkey_file: str) -> str:
    """Copy an approver's public key into the trust store of `home`; return its path."""
    pub = load_public_key(pubkey_file)
    os.makedirs(trust_dir(home), mode=0o755, exist_ok=True)
    dest = os.path.join(trust_dir(home), f"{pub.name}-{pub.fingerprint}.pub")
    with open(dest, "w") as fh:
        fh.write(pub.to_line())
    os.chmod(dest, 0o644)
    return dest


def load_trusted(home: str) -> dict[str, PublicKey]:
    """Trusted approver keys by fingerprint. Unreadable or malformed files are skipped."""
    out: dict[str, PublicKey] = {}
    tdir = trust_dir(home)
    try:
        names = sorted(os.listdir(tdir))
    except OSError:
        return out
    for fname in names:
        if not fname.endswith(".pub"):
            continue
        try:
            pub = load_public_key(os.path.join(tdir, fname))
        except KeyError_:
            continue
        out[pub.fingerprint] = pub
    return out


def verify_signature(
    trusted: dict[str, PublicKey], fp: str, data: bytes, sig_b64: str
) -> PublicKey | None:
    """The trusted key that made `sig_b64` over `data`, or None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = trusted.get(fp)
    if pub is None:
        return None
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(pub.raw).verify(sig, data)
    except (InvalidSignature, ValueError):
        return None
    return pub
