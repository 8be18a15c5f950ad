"""shim.ed25519 (libcrypto through _ctypes) agrees with `cryptography` on every signature."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shim import ed25519

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
L = 2**252 + 27742317777372353535851937790883648493


def both(pub: bytes, sig: bytes, msg: bytes) -> bool:
    fast = ed25519.verify(pub, sig, msg, "openssl")
    assert fast == ed25519.verify(pub, sig, msg, "cryptography")
    return fast


def test_a_real_signature_verifies_with_both_backends() -> None:
    assert both(PUB, KEY.sign(b"grant"), b"grant")


@settings(max_examples=200)
@given(st.binary(max_size=200), st.integers(0, 63), st.integers(1, 255))
def test_any_changed_byte_of_the_signature_is_refused(msg: bytes, at: int, flip: int) -> None:
    sig = bytearray(KEY.sign(msg))
    sig[at] ^= flip
    assert both(PUB, bytes(sig), msg) is False


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=200))
def test_another_message_is_refused(msg: bytes) -> None:
    assert both(PUB, KEY.sign(msg), msg + b"x") is False


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64))
def test_random_keys_and_signatures_agree(pub: bytes, sig: bytes) -> None:
    both(pub, sig, b"m")


def test_a_non_canonical_s_is_refused() -> None:
    sig = KEY.sign(b"m")
    s = int.from_bytes(sig[32:], "little") + L  # the same signature with S + L: malleable
    if s < 2**256:
        assert both(PUB, sig[:32] + s.to_bytes(32, "little"), b"m") is False


@pytest.mark.parametrize("size", [0, 31, 33])
def test_wrong_sizes_are_refused(size: int) -> None:
    assert ed25519.verify(b"\0" * size, KEY.sign(b"m"), b"m") is False
    assert ed25519.verify(PUB, b"\0" * size, b"m") is False
