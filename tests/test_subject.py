"""Reading identity from untrusted request input: cookies, keys, anonymous ids."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rampup.subject import (
    MAX_COOKIE_HEADER,
    clean_key,
    find_cookie,
    mint_anonymous_id,
    parse_cookies,
    valid_anonymous_id,
)

_names = st.sampled_from(["rampup_id", "rampup_override", "sid", "id", "a", "xrampup_id"])
_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_pairs = st.lists(st.tuples(_names, _values), max_size=6)
_seps = st.sampled_from([";", "; ", " ;", ";  "])


@settings(max_examples=300)
@given(_pairs, _seps, _names)
def test_find_cookie_agrees_with_full_parse(
    pairs: list[tuple[str, str]], sep: str, name: str
) -> None:
    """Looking up one cookie gives exactly what parsing the whole header gives."""
    header = sep.join(f"{k}={v}" for k, v in pairs)
    assert find_cookie(header, name) == parse_cookies(header).get(name)


@given(st.text(max_size=200), _names)
def test_find_cookie_never_raises(header: str, name: str) -> None:
    """Arbitrary header text gives a string or None, never an exception."""
    assert find_cookie(header, name) is None or isinstance(find_cookie(header, name), str)


def test_cookie_name_must_be_whole() -> None:
    """`xrampup_id=1` is not the rampup_id cookie; the first real occurrence wins."""
    assert find_cookie("xrampup_id=1; rampup_id=2; rampup_id=3", "rampup_id") == "2"
    assert find_cookie('rampup_id="quoted"', "rampup_id") == "quoted"
    assert find_cookie("a=1", "rampup_id") is None


def test_oversized_cookie_header_is_not_read() -> None:
    """A Cookie header beyond the cap yields nothing rather than a partial parse."""
    header = "rampup_id=" + "a" * 32 + "; pad=" + "x" * MAX_COOKIE_HEADER
    assert find_cookie(header, "rampup_id") is None
    assert parse_cookies(header) == {}


def test_clean_key_rejects_what_is_not_an_id() -> None:
    """Keys are stripped, printable, at most 256 characters; anything else is ignored."""
    assert clean_key("  user-42 ") == "user-42"
    assert clean_key(42) == "42"
    assert clean_key("") is None
    assert clean_key("a\nb") is None
    assert clean_key("x" * 257) is None
    assert clean_key(None) is None


def test_anonymous_ids_are_128_bit_hex_and_validated() -> None:
    """Minted ids are 32 hex digits, distinct, and only that shape is trusted back."""
    ids = {mint_anonymous_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(valid_anonymous_id(i) for i in ids)
    assert not valid_anonymous_id("A" * 32)
    assert not valid_anonymous_id("a" * 31)
    assert not valid_anonymous_id("a" * 32 + "\n")
    assert not valid_anonymous_id(None)
    # non-ASCII digits and letters, padding, hex with a prefix: never trusted, never raises
    assert not valid_anonymous_id("\u0660" * 32)  # ARABIC-INDIC DIGIT ZERO
    assert not valid_anonymous_id("\uff41" * 32)  # FULLWIDTH LATIN SMALL LETTER A
    assert not valid_anonymous_id(" " + "a" * 31)
    assert not valid_anonymous_id("0x" + "a" * 30)
    assert not valid_anonymous_id("g" * 32)
