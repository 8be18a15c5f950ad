"""Approver Ed25519 keys and the agent side's trust store.

Light to import (no os, base64, hashlib or dataclasses at the top): a held call that a grant
covers reads the trust store and checks a signature on its way to the real binary, and must
start almost as fast as an allowed call. Signature checks go through `shim.ed25519`; making
and using a private key (the approver's side) imports `cryptography` when called.

Files:
- approver side: `<home>/keys/approver.key` (PKCS8 PEM, 0600) and `<home>/keys/approver.pub`
- agent side: `<home>/trust/<name>-<fingerprint>.pub` (read-only for the agent, ideally)
A public key file is one line: `shield-ed25519 <base64 of the 32 raw bytes> <approver name>`.
"""

import binascii

from shim import ed25519, fs
from shim.errors import KeyError_
from shim.home import keys_dir, trust_dir

try:
    from _sha256 import sha256 as _sha256
except ImportError:  # Python 3.12+ merged the builtin SHA-2 modules
    from _sha2 import sha256 as _sha256

PUB_PREFIX = "shield-ed25519"


class PublicKey:
    """An approver's public key and name (immutable)."""

    __slots__ = ("name", "raw")
    name: str
    raw: bytes

    def __init__(self, name: str, raw: bytes) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "raw", raw)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PublicKey is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and (self.name, self.raw) == (other.name, other.raw)

    def __hash__(self) -> int:
        return hash((self.name, self.raw))

    def __repr__(self) -> str:
        return f"PublicKey(name={self.name!r}, fingerprint={self.fingerprint!r})"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def to_line(self) -> str:
        return f"{PUB_PREFIX} {binascii.b2a_base64(self.raw, newline=False).decode()} {self.name}\n"


def fingerprint(raw: bytes) -> str:
    """A short, stable name for a public key: 16 hex digits of its SHA-256."""
    return _sha256(raw).hexdigest()[:16]


def b64decode(text: str) -> bytes:
    """Strict base64 (no stray characters, correct padding); ValueError otherwise."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"bad base64: {exc}") from exc


def parse_public_key(text: str, source: str = "") -> PublicKey:
    parts = text.strip().split(None, 2)
    if len(parts) < 3 or parts[0] != PUB_PREFIX:
        raise KeyError_(
            f"{source or 'public key'}: not a shield public key",
            "use the .pub file printed by: shield approver init --name NAME",
        )
    try:
        raw = b64decode(parts[1])
    except ValueError as exc:
        raise KeyError_(f"{source or 'public key'}: bad base64") from exc
    if len(raw) != 32:
        raise KeyError_(f"{source or 'public key'}: an Ed25519 key has 32 bytes")
    return PublicKey(parts[2].strip(), raw)


def private_key_path(home: str) -> str:
    return fs.join(keys_dir(home), "approver.key")


def public_key_path(home: str) -> str:
    return fs.join(keys_dir(home), "approver.pub")


def init_approver(home: str, name: str, force: bool = False) -> str:
    """Create the approver's key pair in `home`; return the public key file's path."""
    import os

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
        text = fs.read_file(path, 64 << 10).decode("utf-8", "replace")
    except OSError as exc:
        raise KeyError_(f"cannot read public key {path}: {exc.strerror}") from exc
    return parse_public_key(text, path)


def approver_identity(home: str) -> PublicKey:
    """The approver's own public key (name and raw bytes)."""
    path = public_key_path(home)
    if not fs.exists(path):
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
    return ident, binascii.b2a_base64(key.sign(data), newline=False).decode()


def add_trusted(home: str, pubkey_file: str) -> str:
    """Copy an approver's public key into the trust store of `home`; return its path."""
    import os

    pub = load_public_key(pubkey_file)
    os.makedirs(trust_dir(home), mode=0o755, exist_ok=True)
    dest = os.path.join(trust_dir(home), f"{pub.name}-{pub.fingerprint}.pub")
    with open(dest, "w") as fh:
        fh.write(pub.to_line())
    os.chmod(dest, 0o644)
    return dest


def load_trusted(home: str) -> dict[str, PublicKey]:
    """Trusted approver keys by fingerprint. Unreadable or malformed files are skipped."""
    return {pub.fingerprint: pub for _, pub, _ in list_trusted(home) if pub is not None}


def list_trusted(home: str) -> list[tuple[str, PublicKey | None, str]]:
    """Every `.pub` file of the trust store, sorted: (path, key, '') or (path, None, why it
    is skipped) for a file that is not a shield public key."""
    out: list[tuple[str, PublicKey | None, str]] = []
    tdir = trust_dir(home)
    try:
        names = sorted(fs.listdir(tdir))
    except OSError:
        return out
    for fname in names:
        if not fname.endswith(".pub"):
            continue
        path = fs.join(tdir, fname)
        try:
            out.append((path, load_public_key(path), ""))
        except KeyError_ as exc:
            out.append((path, None, exc.message.removeprefix(f"{path}: ")))
    return out


def verify_signature(
    trusted: dict[str, PublicKey], fp: str, data: bytes, sig_b64: str
) -> PublicKey | None:
    """The trusted key that made `sig_b64` over `data`, or None."""
    pub = trusted.get(fp)
    if pub is None:
        return None
    try:
        sig = b64decode(sig_b64)
    except ValueError:
        return None
    return pub if ed25519.verify(pub.raw, sig, data) else None


def approver_trusted(home: str) -> dict[str, PublicKey]:
    """Keys an approver's home accepts (its checkpoints, the grants it lists): its trust
    store and its own approver key."""
    trusted = load_trusted(home)
    try:
        own = approver_identity(home)
    except KeyError_:
        return trusted
    trusted[own.fingerprint] = own
    return trusted
