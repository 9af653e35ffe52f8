"""Read a flag file into plain data, turning every failure into a located :class:`Problem`.

Also the best-effort locator that finds the line of a ``flags.<key>.<field>`` path in the raw
text, since tomllib and json do not report positions of valid values.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import Any

from .errors import Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["MAX_BYTES", "SUFFIXES", "locate", "read"]

#: Flag files are reviewed by people; anything this large is a mistake, not a flag file.
MAX_BYTES = 10 * 1024 * 1024
SUFFIXES = (".toml", ".json", ".yaml", ".yml")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def read(path: str | os.PathLike[str]) -> tuple[Any, str, Problem | None]:
    """(data, text, problem): parse the file at ``path``; on failure data is None."""
    p = Path(path)
    name = str(path)

    def fail(message: str, hint: str = "", line: int | None = None) -> tuple[None, str, Problem]:
        return None, "", Problem(name, "", message, hint=hint, line=line)

    suffix = p.suffix.lower()
    try:
        st = p.stat()
        # before the suffix check, whose message would be misleading for a directory
        if stat.S_ISDIR(st.st_mode):
            return fail("is a directory, not a flag file")
        if suffix not in SUFFIXES:
            return fail(
                f"unsupported file type {suffix or '(none)'!r}",
                hint=f"use one of {', '.join(SUFFIXES)}",
            )
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, /dev/zero never end
            return fail("is not a regular file (a device, FIFO or socket)")
        if st.st_size > MAX_BYTES:
            return fail(
                f"file is {st.st_size:,} bytes; the limit is {MAX_BYTES:,}",
                hint="a flag file this large is almost certainly not the file you meant",
            )
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # the file may grow between stat() and read()
    except FileNotFoundError:
        if suffix not in SUFFIXES:
            return fail(
                f"unsupported file type {suffix or '(none)'!r}",
                hint=f"use one of {', '.join(SUFFIXES)}",
            )
        return fail("file not found", hint="check the path and the cwd")
    except OSError as exc:
        return fail(f"cannot read file: {exc.strerror or exc}")
    if len(raw) > MAX_BYTES:  # grew between stat and read
        return fail(f"file is larger than {MAX_BYTES:,} bytes")
    if b"\x00" in raw:
        return fail("file contains NUL bytes: not a text flag file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fail(
            f"file is not UTF-8 text (bad byte at offset {exc.start})",
            line=raw[: exc.start].count(b"\n") + 1,
        )
    if not text.strip():
        empty = Problem(
            name,
            "",
            "file is empty",
            hint="a flag file holds a `flags` table; docs/flag-file.md has an example",
        )
        return None, text, empty
    data, problem = parse(text, suffix, name)
    return data, text, problem


def parse(text: str, suffix: str, name: str) -> tuple[Any, Problem | None]:
    """Parse ``text`` as the format named by ``suffix``."""
    fmt = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
    try:
        return _parse(text, suffix, name)
    except RecursionError:
        return None, Problem(name, "", f"invalid {fmt}: nested too deeply")
    except (ValueError, TypeError, OverflowError) as exc:
        # Parsers raise these for values they cannot build: a 5,000-digit integer (the int
        # string limit), a YAML date such as 2026-13-01. Still a bad file, not a crash.
        return None, Problem(name, "", f"invalid {fmt}: {exc}")


def _parse(text: str, suffix: str, name: str) -> tuple[Any, Problem | None]:
    if suffix == ".toml":
        try:
            return tomllib.loads(text), None
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = re.search(r"line (\d+)", msg)
            return None, Problem(name, "", f"invalid TOML: {msg}", line=int(m[1]) if m else None)
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates), None
        except _DuplicateKey as exc:
            return None, Problem(
                name,
                "",
                f"invalid JSON: duplicate key {exc.args[0]!r}",
                line=locate(text, [exc.args[0]], nth=2),
            )
        except json.JSONDecodeError as exc:
            return None, Problem(name, "", f"invalid JSON: {exc.msg}", line=exc.lineno)
    try:
        import yaml
    except ImportError:
        return None, Problem(
            name, "", "YAML flag files need PyYAML", hint='pip install "rampup[yaml]"'
        )
    try:
        return yaml.load(text, Loader=_yaml_loader()), None  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, Problem(name, "", f"invalid YAML: {problem}", line=line)


_YAML_LOADER: Any = None


def _yaml_loader() -> Any:
    """yaml.SafeLoader reading only true/false as booleans (as YAML 1.2 does).

    YAML 1.1 reads bare on/off/yes/no as booleans, which would turn ``serve: on`` and
    ``split: {on: 5, off: 95}`` into True/False instead of the variants ``on`` and ``off``.
    """
    global _YAML_LOADER
    if _YAML_LOADER is None:
        import yaml

        bool_tag = "tag:yaml.org,2002:bool"

        class Loader(yaml.SafeLoader):
            pass

        Loader.yaml_implicit_resolvers = {
            first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver(
            bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
        )
        _YAML_LOADER = Loader
    return _YAML_LOADER


def _key_pattern(part: str) -> re.Pattern[str]:
    q = re.escape(part)
    # The key as TOML (bare, quoted, dotted or in a [table.header]), JSON or YAML writes it.
    return re.compile(rf"""(?:^|[\s{{,.\[])(?:"{q}"|'{q}'|{q})\s*(?:[=:\].]|$)""", re.M)


def locate(text: str, path: list[str | int], nth: int = 1) -> int | None:
    """The 1-based line where ``path`` (e.g. ``["flags", "x", "rules", 1, "serve"]``) is
    written, found by searching each key after the previous one; None if not found.

    A list index moves to that element: of an inline array (``[ ... ]`` in TOML, JSON or YAML),
    of a YAML block sequence (``- ...`` lines), or the matching ``[[a.b.c]]`` header of a TOML
    array of tables. Best effort: it finds what people write, not every layout the formats allow.
    """
    if not text:
        return None
    pos = 0
    found: int | None = None
    keys: list[str] = []
    after: int | None = None  # just past the last key's `=` or `:`, where its value starts
    for i, part in enumerate(path):
        if isinstance(part, int):
            item = _nth_item(text, after, part) if after is not None else None
            if item is None and keys:
                item = _nth_header(text, text.rfind("\n", 0, pos) + 1, keys, part)
            if item is not None:
                pos = found = item
            after = None
            continue
        keys.append(part)
        pattern = _key_pattern(part)
        m = pattern.search(text, pos)
        for _ in range(nth - 1 if i == len(path) - 1 else 0):
            if m is None:
                break
            m = pattern.search(text, m.end())
        if m is None:
            break
        pos = found = m.start() + 1
        after = m.end() if text[m.end() - 1 : m.end()] in ("=", ":") else None
    if found is None:
        return None
    return text.count("\n", 0, found) + 1


def _nth_item(text: str, start: int, n: int) -> int | None:
    """Offset of element ``n`` of the array value starting at ``start`` (after ``=``/``:``)."""
    i, end = start, len(text)
    while i < end and text[i] in " \t\r\n":
        i += 1
    if i < end and text[i] == "-":
        return _nth_block_item(text, i, n)
    if i >= end or text[i] != "[":
        return None
    depth, index = 0, 0
    while i < end:
        c = text[i]
        if depth == 1 and index == n and c not in " \t\r\n,]#":
            return i
        if c in "\"'":
            i = _skip_string(text, i)
            continue
        if c == "#":  # a TOML or YAML comment; JSON has none outside strings
            i = text.find("\n", i)
            if i < 0:
                return None
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return None
        elif c == "," and depth == 1:
            index += 1
        i += 1
    return None


def _skip_string(text: str, i: int) -> int:
    """Offset just past the quoted string starting at ``i``."""
    q = text[i]
    if text.startswith(q * 3, i):
        close = text.find(q * 3, i + 3)
        return len(text) if close < 0 else close + 3
    j = i + 1
    while j < len(text) and text[j] != q and text[j] != "\n":
        j += 2 if q == '"' and text[j] == "\\" else 1
    return j + 1


def _nth_block_item(text: str, dash: int, n: int) -> int | None:
    """Offset of item ``n`` of the YAML block sequence whose first ``-`` is at ``dash``."""
    line_start = text.rfind("\n", 0, dash) + 1
    indent = dash - line_start
    index = 0
    for m in re.compile(r"^([ \t]*)(\S)", re.M).finditer(text, line_start):
        col, first = len(m[1]), m[2]
        if first == "#":
            continue
        if col < indent or (col == indent and first != "-"):
            return None  # the sequence ended
        if col == indent:
            if index == n:
                return m.start(2)
            index += 1
    return None


def _nth_header(text: str, start: int, keys: list[str], n: int) -> int | None:
    """Offset of the ``n``-th ``[[keys...]]`` TOML array-of-tables header from ``start``."""
    parts = [rf"""(?:"{re.escape(k)}"|'{re.escape(k)}'|{re.escape(k)})""" for k in keys]
    header = re.compile(r"^[ \t]*\[\[[ \t]*" + r"[ \t]*\.[ \t]*".join(parts) + r"[ \t]*\]\]", re.M)
    for index, m in enumerate(header.finditer(text, start)):
        if index == n:
            return m.start()
    return None
