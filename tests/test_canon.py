"""The hand-built canonical JSON encoder is byte-identical to json.dumps (the log depends on it)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shim.canon import encode

scalars = st.none() | st.booleans() | st.integers() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def reference(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@settings(max_examples=500)
@given(values)
def test_encode_matches_json_dumps(obj: object) -> None:
    assert encode(obj) == reference(obj)


def test_surrogate_escaped_argv_bytes_round_trip() -> None:
    arg = b"\xff\xfe-caf\xc3\xa9".decode("utf-8", "surrogateescape")
    text = encode({"argv": [arg]})
    assert text == reference({"argv": [arg]})
    assert json.loads(text)["argv"][0].encode("utf-8", "surrogateescape") == b"\xff\xfe-caf\xc3\xa9"


def test_floats_are_refused() -> None:
    import pytest

    with pytest.raises(TypeError):
        encode({"x": 1.5})


@settings(max_examples=500)
@given(values)
def test_decode_reads_back_what_encode_writes(obj: object) -> None:
    from shim.canon import decode

    assert decode(encode(obj)) == json.loads(encode(obj))


@settings(max_examples=300)
@given(st.text(alphabet='{}[]",:0123456789-aeflnrstu\\ ', max_size=30))
def test_decode_refuses_what_is_not_canonical(text: str) -> None:
    import pytest

    from shim.canon import decode

    try:
        value = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            decode(text)
        return
    if reference(value) == text:
        assert decode(text) == value
    else:
        with pytest.raises(ValueError):
            decode(text)


def test_decode_refuses_nesting_too_deep_with_a_value_error() -> None:
    # a signed statement file in the spool is the agent's words: a few KiB of `[` (a grant
    # file the shim and `shield grants` read) is refused like any other junk, never a crash
    import pytest

    from shim.canon import decode

    with pytest.raises(ValueError):
        decode("[" * 20_000 + "]" * 20_000)
