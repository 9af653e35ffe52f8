"""TomlCache: ``loads(text)`` is ``tomllib.loads(text)`` (the same table, key order included,
or the same error), on any text and after any previous text; it parses only the flags whose
text changed, and the whole text whenever the cut is in doubt."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rampup
from rampup import _toml
from rampup._toml import TomlCache
from rampup.config import load_bytes
from rampup.sources import FileSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib


def outcome(loads: Callable[[str], Any], text: str) -> str:
    """What parsing gives, comparable: the table's repr (order matters) or the error."""
    try:
        return "ok " + repr(loads(text))
    except tomllib.TOMLDecodeError as exc:
        return f"error {exc}"


def assert_same(cache: TomlCache, text: str) -> None:
    assert outcome(cache.loads, text) == outcome(tomllib.loads, text)


# -- documents ---------------------------------------------------------------------------------
NAMES = ["a", "b", "'a'", '"c.d"', "c-1"]
HEADERS = [
    "[flags.{n}]",
    "[[flags.{n}.rules]]",
    "[flags.{n}.metadata]",
    "[ flags . {n} ]",
    "  [flags.{n}.rules]",
    "[[flags.{n}]]",
    "[flags.{n}] # a comment",
]
#: What a table holds; {n} is its flag, {m} another.
BODIES = [
    'default = "on"',
    "killed = true",
    "team = 'x'",
    "n.m = 1",
    "x = [1, 2]",
    "# [flags.{m}]",
    "",
]
#: Header lines where they are not headers: a cut there must not change the meaning.
TRICKY = [
    'description = """\n[flags.{m}]\nkilled = true\n[flags.{n}.rules]\n"""',
    "description = '''\n[flags.{m}]\n[[flags.{n}.rules]]\n'''",
    'description = """\n[flags.{n}.x]\n"""',
    'description = """one line [flags.{m}]"""',
    'd = """',
    '"""',
    "y = [\n[1],\n[2],\n]",
    "y = [\n[flags.{m}]\n[1]\n]",
    "y = [",
    "[1]\n]",
]
OTHER = [
    "version = 1",
    "[segments.qa]\nkeys = ['u1']",
    "[segments.qa]",
    "[environments.prod.flags.a]\nkilled = true",
    "[flags]",
    "flags.a.killed = true",
    "flags = {}",
    "[[flags]]",
    '[flags."\\u0061"]',
    '[flags."\\u0063-1"]\nkilled = true',
    '["flags".b]',
    "[x.flags.a]",
    'z = """\n[flags.a]\nkilled = false\n"""',
    "w = [\n[flags.b]\n]",
    '[flags."b"]\nkilled = false',
    'z = """',
]


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Flag tables in any order (interleaved, repeated), adversarial bodies (header lines
    inside multi-line strings and arrays), other tables, dotted keys, quoted names, CRLF."""
    blocks = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.integers(0, 4)) == 0:
            blocks.append(draw(st.sampled_from(OTHER)))
            continue
        n, m = draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES))
        lines = [draw(st.sampled_from(HEADERS))]
        for _ in range(draw(st.integers(0, 3))):
            tricky = draw(st.integers(0, 5)) == 0
            lines.append(draw(st.sampled_from(TRICKY if tricky else BODIES)))
        blocks.append("\n".join(lines).format(n=n, m=m))
    text = "\n".join(blocks) + draw(st.sampled_from(["", "\n"]))
    return text.replace("\n", "\r\n") if draw(st.booleans()) else text


def edit(text: str, data: st.DataObject) -> str:
    """``text`` with one line changed, added or removed."""
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines)))
    new = data.draw(
        st.sampled_from(["killed = false", "[flags.b]", '"""', "", "[[flags.a.rules]]"])
    )
    if i < len(lines) and data.draw(st.booleans()):
        lines[i] = new
    elif i < len(lines) and data.draw(st.booleans()):
        del lines[i]
    else:
        lines.insert(i, new)
    return "\n".join(lines)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(documents(), st.data())
def test_loads_is_tomllib_loads_after_any_previous_text(text: str, data: st.DataObject) -> None:
    """On any document, after any previous one (the same, or one with a line changed), the
    cache gives what tomllib gives: the same table in the same order, or the same error."""
    cache = TomlCache()
    assert_same(cache, text)
    assert_same(cache, text)
    changed = edit(text, data)
    assert_same(cache, changed)
    assert_same(cache, text)


def test_many_generated_documents_are_valid_and_cut() -> None:
    """The generator is not vacuous: many of its documents are valid and parsed in pieces."""
    seen = {"valid": 0, "cut": 0}

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(documents())
    def count(text: str) -> None:
        cache = TomlCache()
        if outcome(cache.loads, text).startswith("ok"):
            seen["valid"] += 1
            seen["cut"] += not cache.whole

    count()
    assert seen["valid"] >= 50
    assert seen["cut"] >= 25


# -- the cases, one by one ---------------------------------------------------------------------
FLAGS = """\
version = 1

[segments.qa]
keys = ["u1"]

[flags.a]
default = "on"

[[flags.a.rules]]
segments = ["qa"]
serve = "off"

[flags."checkout.v2"]
variants = ["x", "y"]
default = "x"

[flags.b]
killed = true
metadata = { team = "pay" }

[environments.prod.flags.b]
killed = false
"""


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        pytest.param(FLAGS, False, id="flags, segments, environments, quoted name"),
        pytest.param(FLAGS.replace("\n", "\r\n"), False, id="CRLF"),
        pytest.param(
            "[flags.a]\n[[flags.a.rules]]\nserve = 'on'\n[flags.b]\n[[flags.a.rules]]\n"
            "serve = 'off'\n[flags.a.rules.split]\non = 5\noff = 95\n",
            False,
            id="a flag's tables interleaved with another's",
        ),
        pytest.param(
            '[flags.a]\nd = """\n[flags.b]\nx = 1\n[flags.a.y]\n"""\n',
            True,
            id="header lines inside a multi-line string",
        ),
        pytest.param(
            "[flags.a]\nd = '''\n[flags.a.y]\n'''\n[flags.b]\n",
            False,
            id="a flag's own header line inside its multi-line string",
        ),
        pytest.param("x = [\n[flags.a]\n[1]\n]\n", True, id="a header line inside an array"),
        pytest.param(
            "[segments.s]\nx = [\n[flags.a]\n[1]\n]\n[flags.b]\n",
            True,
            id="a header line inside an array, flags after",
        ),
        pytest.param("y = [\n[1],\n]\n[flags.a]\n", False, id="an array of arrays"),
        pytest.param("[flags]\n[flags.a]\n", True, id="a [flags] header"),
        pytest.param("flags.b.killed = true\n[flags.a]\n", True, id="dotted keys into flags"),
        pytest.param("flags = {}\n[flags.a]\n", True, id="an inline flags table"),
        pytest.param("[flags.a]\n[segments.s]\n[flags.a]\n", True, id="a duplicate table"),
        pytest.param("[flags.a]\n[flags.'a']\n", True, id="a duplicate, quoted"),
        pytest.param('[flags.a]\n[flags."\\u0061"]\n', True, id="a duplicate, escaped"),
        pytest.param(
            '[flags."\\u0062"]\nkilled = true\n[flags.a]\n', True, id="an escaped name first"
        ),
        pytest.param('[flags.a]\n[flags."\\u0062"]\n', True, id="an escaped name in a flag"),
        pytest.param("[flags.a]\nx = 1\nx = 2\n", True, id="a duplicate key"),
        pytest.param("[flags.a]\nx = \n", True, id="a syntax error"),
        pytest.param("[[flags.a]]\n[[flags.a]]\n[flags.b]\n", False, id="flags as arrays"),
        pytest.param("version = 1\n", True, id="no flags"),
        pytest.param("", True, id="empty"),
    ],
)
def test_each_case_is_tomllib_loads(text: str, whole: bool) -> None:
    """Each case gives tomllib's table or error, parsed in pieces or whole as expected."""
    cache = TomlCache()
    assert_same(cache, text)
    assert cache.whole is whole


def test_an_error_is_reported_with_its_real_line() -> None:
    """A bad flag in a file loaded before fails with tomllib's error and its line in the
    file, exactly as without the cache."""
    cache = TomlCache()
    load_bytes(FLAGS.encode(), "f.toml", toml_cache=cache)
    bad = FLAGS.replace('killed = true\nmetadata = { team = "pay" }', "killed = \nmetadata = 1")
    with pytest.raises(rampup.ConfigError) as cached:
        load_bytes(bad.encode(), "f.toml", toml_cache=cache)
    with pytest.raises(rampup.ConfigError) as plain:
        load_bytes(bad.encode(), "f.toml")
    assert str(cached.value) == str(plain.value)
    assert "f.toml:18: invalid TOML: Invalid value (at line 18" in str(cached.value)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts tomllib parses (for the cache, and for the whole-text fallback)."""
    texts: list[str] = []
    loads = tomllib.loads

    def spy(text: str, **kwargs: Any) -> dict[str, Any]:
        texts.append(text)
        return loads(text, **kwargs)

    monkeypatch.setattr(_toml.tomllib, "loads", spy)
    return texts


def test_only_the_changed_flag_is_parsed(parsed: list[str]) -> None:
    """After one flag's change, only its tables are parsed again; the others' tables are the
    ones the last load returned."""
    cache = TomlCache()
    before = cache.loads(FLAGS)
    parsed.clear()
    after = cache.loads(FLAGS.replace("killed = true", "killed = false"))
    assert parsed == ['[flags.b]\nkilled = false\nmetadata = { team = "pay" }\n\n']
    assert after["flags"]["b"]["killed"] is False
    assert after["flags"]["a"] is before["flags"]["a"]
    assert list(after) == ["version", "segments", "flags", "environments"]


def test_a_fixed_error_costs_only_its_flag(parsed: list[str]) -> None:
    """A bad edit parses the whole text (to report it); fixing it parses just that flag."""
    cache = TomlCache()
    cache.loads(FLAGS)
    with pytest.raises(tomllib.TOMLDecodeError):
        cache.loads(FLAGS.replace("killed = true", "killed = "))
    parsed.clear()
    cache.loads(FLAGS.replace("killed = true", "killed = false"))
    assert len(parsed) == 1
    assert not cache.whole


def test_a_file_source_reload_parses_only_the_edited_flag(
    tmp_path: Path, parsed: list[str]
) -> None:
    """FileSource.reload() of a TOML file parses the edited flag's tables, not the file."""
    path = tmp_path / "flags.toml"
    path.write_text(FLAGS)
    source = FileSource(path, watch=False)
    parsed.clear()
    path.write_text(FLAGS.replace('default = "x"', 'default = "y"'))
    assert source.reload() is True
    assert parsed == ['[flags."checkout.v2"]\nvariants = ["x", "y"]\ndefault = "y"\n\n']
    assert source.snapshot.flags["checkout.v2"].default == "y"
    assert source.snapshot.flags["b"].killed
