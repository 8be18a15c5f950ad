"""shim/classify/ini.py reads INI files the way configparser.RawConfigParser does (the aws CLI's reader)."""

from __future__ import annotations

import configparser
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.classify.ini import aws_profiles, parse


def reference(text: str) -> dict[str, dict[str, str]] | None:
    """configparser reading `text` as a file (text mode: \r and \r\n end lines too)."""
    cp = configparser.RawConfigParser()
    try:
        cp.read_file(io.StringIO(text, newline=None))
    except configparser.Error:
        return None
    return {s: dict(cp.items(s)) for s in cp.sections()}


PIECES = [
    "[a]",
    "[b]",
    " [a]",
    "[DEFAULT]",
    "[toplevel] ; x",
    "[plugins]",
    "[]",
    "[a] [b]",
    "k = v",
    " k = v",
    "  x: y",
    "K=3",
    "j=1",
    "=v",
    "noeq",
    "\tk=2",
    "#c",
    ";c",
    " # c",
    "",
    "  ",
    "v = w = x",
]
LINE_ENDS = ["\n", "\r\n", "\r", "\f", "\v", "\x1c", "\x85", "\u2028"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(LINE_ENDS)), max_size=8))
def test_parse_agrees_with_configparser(lines: list[tuple[str, str]]) -> None:
    text = "".join(piece + end for piece, end in lines)
    assert parse(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "[toplevel]\n  s3 = !x\n",  # an indented key under a header is a key
        "  [toplevel]\ns3 = !x\n",  # an indented header is a header
        "[toplevel] ; aliases\ns3 = !x\n",  # text after the header
        "[DEFAULT]\ns3 = !x\n[toplevel]\n",  # DEFAULT keys show in every section
        "[toplevel]\nwhoami = sts get-caller-identity\f[other]\ns3 = !x\n",  # \f is no line end
    ],
)
def test_the_alias_file_tricks_found_in_review_read_as_configparser_reads_them(text: str) -> None:
    assert parse(text) == reference(text)


def test_a_profile_header_is_split_like_shell_words_and_credentials_win() -> None:
    config = parse(
        '[profile prod]\nregion = us-east-1\n[profile  "prod"]\nregion = eu-west-1\n'
        "[default]\nregion = us-east-1\n[profile default]\nregion = ap-south-1\n"
    )
    creds = parse("[prod]\nregion = eu-central-1\n")
    profiles = aws_profiles(config, creds)
    assert profiles["prod"]["region"] == "eu-central-1"  # the credentials file wins
    assert profiles["default"]["region"] == "ap-south-1"  # the later section replaces
    assert aws_profiles(config, None)["prod"]["region"] == "eu-west-1"
