"""Parse a TOML flag file again at the cost of what changed: :class:`TomlCache`.

A reload of a 10,000-flag TOML file parsed all of it (about 0.6 s on a slow machine) to change
one flag. :class:`TomlCache` cuts the text at its table headers into one piece per flag (every
``[flags.NAME...]`` and ``[[flags.NAME...]]`` table of that NAME, in file order) and the rest
(everything else), and gives tomllib only the pieces whose text the previous load did not
have. ``TomlCache().loads(text)`` is always ``tomllib.loads(text)``: whenever the cut is in
doubt it parses the whole text instead, so a bad file fails with tomllib's own error and line.

Why the cut is sound. A line that looks like a header may be inside a multi-line string or
array, and a piece cut there would mean something else. So the text is taken as *runs*, the
longest stretches of consecutive tables that go to the same piece, and every run is parsed
alone at least once: a run of a piece of one run is that piece; a piece of several runs (a
flag whose tables are interleaved with others) has each run parsed alone first. The first run
starts the file, outside any string or array, and a run that parses alone also ends outside
them (tomllib refuses an unclosed string or array at the end of a text), so the next run
starts at a real header, and so on: every cut is at a real header. Then the pieces cannot
interact. A flag's tables name only paths under ``flags.NAME``, which the piece checks (it
must parse to ``{"flags": {NAME: ...}}``); the rest is parsed with ``[flags]`` standing where
the first flag's table was (which also keeps the order of the top-level keys), so anything
else that defines ``flags`` or puts something in it is a conflict or a non-empty table, and
the whole text is parsed. (A file that writes a ``[flags]`` header itself is therefore always
parsed whole.)
"""

from __future__ import annotations

import re
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["TomlCache"]

_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*')"""
#: A line that may be a table header, ``[a.b]`` or ``[[a.b]]`` (keys bare, or quoted without
#: escapes), maybe indented and commented; its first two keys are captured. Anything else
#: stays in the table above it: a header not seen here leaves a piece that does not parse to
#: its one flag, so the whole text is parsed.
_HEADER = re.compile(
    rf"^[ \t]*\[\[?[ \t]*({_KEY})(?:[ \t]*\.[ \t]*({_KEY}))?(?:[ \t]*\.[ \t]*{_KEY})*"
    r"[ \t]*\]\]?[ \t]*(?:#[^\n]*)?\r?$",
    re.M,
)
#: Stands in the rest for the flags' tables (see the module docstring).
_FLAGS = "[flags]\n"


class TomlCache:
    """``loads(text)`` returns ``tomllib.loads(text)``, parsing only the pieces of ``text`` (a
    flag's tables, or the rest) that the previous call did not see; see the module docstring.

    It keeps the pieces of the last text it parsed and their tables, which it hands out again:
    the caller must not change what it returns. One per watched file, used under its lock.
    """

    __slots__ = ("_flags", "_rest", "parsed", "whole")

    def __init__(self) -> None:
        #: a flag's runs -> its parsed table, for the flags of the last text
        self._flags: dict[tuple[str, ...], Any] = {}
        #: the runs of the rest of the last text, and its parsed table
        self._rest: tuple[tuple[str, ...], dict[str, Any]] | None = None
        #: how many texts the last call gave tomllib (a piece, a run alone or the whole)
        self.parsed = 0
        #: whether the last call parsed the whole text (the cut was in doubt, or no flags)
        self.whole = False

    def loads(self, text: str) -> dict[str, Any]:
        """``tomllib.loads(text)``; raises what it raises."""
        self.parsed, self.whole = 0, False
        by_flag: dict[str, list[str]] = {}
        rest: list[str] = []
        for name, run in _runs(text):
            if name is None:
                rest.append(run)
                continue
            if not by_flag:
                rest.append(_FLAGS)
            by_flag.setdefault(name, []).append(run)
        flags: dict[str, Any] = {}
        kept: dict[tuple[str, ...], Any] = {}
        for name, runs in by_flag.items():
            key = tuple(runs)
            table = self._flags.get(key)
            if table is None:
                table = self._flag(name, key)
                if table is None:
                    continue
            flags[name] = kept[key] = table
        self._flags = kept  # only what this text holds: the cache never outgrows one file
        top = self._top(tuple(rest)) if by_flag else None
        if top is None or len(flags) != len(by_flag):
            self.whole = True
            self.parsed += 1
            whole: dict[str, Any] = tomllib.loads(text)
            return whole
        return {k: flags if k == "flags" else v for k, v in top.items()}

    def _flag(self, name: str, runs: tuple[str, ...]) -> Any:
        """Flag ``name``'s table from its runs, or None if in doubt."""
        doc = self._parse(runs)
        inner = doc.get("flags") if doc is not None and len(doc) == 1 else None
        if not isinstance(inner, dict) or len(inner) != 1 or name not in inner:
            return None
        return inner[name]

    def _top(self, runs: tuple[str, ...]) -> dict[str, Any] | None:
        """The rest's table, ``flags`` empty (the placeholder), or None if in doubt."""
        if self._rest is not None and self._rest[0] == runs:
            return self._rest[1]
        doc = self._parse(runs)
        if doc is None or doc.get("flags") != {}:
            return None
        self._rest = (runs, doc)
        return doc

    def _parse(self, runs: tuple[str, ...]) -> dict[str, Any] | None:
        """tomllib's table of the runs put together, each run of several parsed alone first;
        None if any fails (whatever the error, the whole text's parse reports it)."""
        try:
            if len(runs) > 1:
                for run in runs:
                    self.parsed += 1
                    tomllib.loads(run)
            self.parsed += 1
            doc: dict[str, Any] = tomllib.loads("".join(runs))
        except Exception:
            return None
        return doc


def _runs(text: str) -> list[tuple[str | None, str]]:
    """(flag name, or None for the rest; text) of each run of ``text``, in order."""
    out: list[tuple[str | None, str]] = []
    group: str | None = None
    start = 0
    for m in _HEADER.finditer(text):
        first, second = m[1], m[2]
        name = _unquote(second) if second is not None and _unquote(first) == "flags" else None
        if name != group:
            if m.start() > start:
                out.append((group, text[start : m.start()]))
            group, start = name, m.start()
    if start < len(text):
        out.append((group, text[start:]))
    return out


def _unquote(key: str) -> str:
    return key[1:-1] if key[0] in "\"'" else key
