"""Ed25519 signature verification that costs a few milliseconds, not fifty (cold, light).

A held call that a grant covers must start almost as fast as an allowed one, and importing
`cryptography` alone costs several times a whole shim call. So `verify` calls the system's
libcrypto (OpenSSL 1.1.1 or 3: `EVP_PKEY_new_raw_public_key`, `EVP_DigestVerify`) through the
built-in `_ctypes` module, without the `ctypes` package (whose import is the expensive part),
and falls back to `cryptography` where libcrypto cannot be loaded. A test keeps both in
agreement on valid, tampered and malformed signatures.

The agent's environment reaches the dynamic loader (LD_LIBRARY_PATH, LD_PRELOAD); an agent
that uses it runs code of its own inside the shim, which gains it nothing that calling the real
binary directly would not (the README's limits).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LIBS = ("libcrypto.so.3", "libcrypto.so.1.1")
_EVP_PKEY_ED25519 = 1087
_RTLD_NOW = 2

_lib: object = None  # the loaded functions, False when libcrypto is not usable


def _load() -> object:
    import _ctypes

    class Ptr(_ctypes._SimpleCData):
        _type_ = "P"

    class Int(_ctypes._SimpleCData):
        _type_ = "i"

    class PtrFunc(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Ptr

    class IntFunc(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Int

    class Lib:
        def __init__(self, handle: int) -> None:
            self._handle = handle

    for name in _LIBS:
        try:
            lib: Any = Lib(_ctypes.dlopen(name, _RTLD_NOW))
            return (
                Ptr,
                PtrFunc(("EVP_PKEY_new_raw_public_key", lib)),
                PtrFunc(("EVP_MD_CTX_new", lib)),
                IntFunc(("EVP_DigestVerifyInit", lib)),
                IntFunc(("EVP_DigestVerify", lib)),
                IntFunc(("EVP_MD_CTX_free", lib)),
                IntFunc(("EVP_PKEY_free", lib)),
            )
        except (OSError, AttributeError):
            continue
    return False


def _verify_openssl(funcs: tuple, pub: bytes, sig: bytes, msg: bytes) -> bool:
    ptr, new_key, new_ctx, init, digest_verify, free_ctx, free_key = funcs
    pkey = new_key(_EVP_PKEY_ED25519, None, pub, len(pub))
    if not pkey:
        return False
    ctx = new_ctx()
    try:
        if not ctx or init(ptr(ctx), None, None, None, ptr(pkey)) != 1:
            return False
        return digest_verify(ptr(ctx), sig, len(sig), msg, len(msg)) == 1
    finally:
        if ctx:
            free_ctx(ptr(ctx))
        free_key(ptr(pkey))


def _verify_cryptography(pub: bytes, sig: bytes, msg: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(pub: bytes, sig: bytes, msg: bytes, backend: str = "") -> bool:
    """True when `sig` is `pub`'s Ed25519 signature over `msg`. `backend` ("openssl" or
    "cryptography") forces one, for tests."""
    global _lib
    if len(pub) != 32 or len(sig) != 64:
        return False
    if backend != "cryptography":
        if _lib is None:
            _lib = _load()
        if _lib:
            return _verify_openssl(_lib, pub, sig, msg)  # type: ignore[arg-type]
        if backend == "openssl":
            raise OSError("libcrypto is not available")
    return _verify_cryptography(pub, sig, msg)
