"""Read a flag file into plain data, turning every failure into a located :class:`Problem`.

Also the best-effort locator that finds the line of a ``flags.<key>.<field>`` path in the raw
text, since tomllib and json do not report positions of valid values.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._toml import TomlCache
from .errors import Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "MAX_BYTES",
    "MAX_YAML_ALIASES",
    "MAX_YAML_EXPANSION",
    "SUFFIXES",
    "Locator",
    "decode",
    "locate",
    "read",
    "read_bytes",
    "write_atomic",
]

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


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write a flag file so that a watcher never reads half of it: write a temporary file in
    the same directory, flush it to disk, then rename it over ``path`` (atomic on POSIX and
    on Windows for files on one volume). Every rampup writer of flag files uses this."""
    target = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():  # keep the file's permissions, not mkstemp's 0600
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read(path: str | os.PathLike[str]) -> tuple[Any, str, Problem | None]:
    """(data, text, problem): parse the file at ``path``; on failure data is None."""
    raw, problem = read_bytes(path)
    if problem is not None:
        return None, "", problem
    assert raw is not None
    return decode(raw, str(path))


def read_bytes(path: str | os.PathLike[str]) -> tuple[bytes | None, Problem | None]:
    """The bytes of the flag file at ``path`` (at most :data:`MAX_BYTES`), or a problem."""
    p = Path(path)
    name = str(path)

    def fail(message: str, hint: str = "") -> tuple[None, Problem]:
        return None, Problem(name, "", message, hint=hint)

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
        return fail(
            f"file not found (looked for {p.absolute()})", hint="check the path and the cwd"
        )
    except OSError as exc:
        return fail(f"cannot read file: {exc.strerror or exc}")
    if len(raw) > MAX_BYTES:  # grew between stat and read
        return fail(f"file is larger than {MAX_BYTES:,} bytes")
    return raw, None


def decode(
    raw: bytes, name: str, toml_cache: TomlCache | None = None
) -> tuple[Any, str, Problem | None]:
    """(data, text, problem): parse the bytes of the flag file ``name`` (its suffix says how;
    a TOML file through ``toml_cache`` if given)."""
    if b"\x00" in raw:
        return None, "", Problem(name, "", "file contains NUL bytes: not a text flag file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return (
            None,
            "",
            Problem(
                name,
                "",
                f"file is not UTF-8 text (bad byte at offset {exc.start})",
                line=raw[: exc.start].count(b"\n") + 1,
            ),
        )
    if not text.strip():
        empty = Problem(
            name,
            "",
            "file is empty",
            hint="a flag file holds a `flags` table; docs/flag-file.md has an example",
        )
        return None, text, empty
    data, problem = parse(text, Path(name).suffix.lower(), name, toml_cache)
    return data, text, problem


def parse(
    text: str, suffix: str, name: str, toml_cache: TomlCache | None = None
) -> tuple[Any, Problem | None]:
    """Parse ``text`` as the format named by ``suffix`` (TOML through ``toml_cache`` if given:
    the same result, parsing only what changed since its last text)."""
    fmt = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
    try:
        return _parse(text, suffix, name, toml_cache)
    except RecursionError:
        return None, Problem(name, "", f"invalid {fmt}: nested too deeply")
    except (ValueError, TypeError, OverflowError) as exc:
        # Parsers raise these for values they cannot build: a 5,000-digit integer (the int
        # string limit), a YAML date such as 2026-13-01. Still a bad file, not a crash.
        return None, Problem(name, "", f"invalid {fmt}: {exc}")


def _parse(
    text: str, suffix: str, name: str, toml_cache: TomlCache | None
) -> tuple[Any, Problem | None]:
    if suffix == ".toml":
        loads = tomllib.loads if toml_cache is None else toml_cache.loads
        try:
            return loads(text), None
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
#: Aliases (``*name``) one YAML document may use: a flag file needs a few, a bomb needs many.
MAX_YAML_ALIASES = 1000
#: Nodes the aliases of one document may add when expanded: ``&a [x, x, ...]`` referenced
#: nine times per level, eight levels deep, is 438 bytes for 9^8 strings.
MAX_YAML_EXPANSION = 100_000


def _yaml_loader() -> Any:
    """yaml.SafeLoader reading only true/false as booleans (as YAML 1.2 does), refusing
    duplicate keys, and bounding what aliases may expand to.

    YAML 1.1 reads bare on/off/yes/no as booleans, which would turn ``serve: on`` and
    ``split: {on: 5, off: 95}`` into True/False instead of the variants ``on`` and ``off``.
    """
    global _YAML_LOADER
    if _YAML_LOADER is None:
        _YAML_LOADER = _build_yaml_loader()
    return _YAML_LOADER


def _build_yaml_loader() -> Any:
    import yaml

    bool_tag = "tag:yaml.org,2002:bool"
    merge_tag = "tag:yaml.org,2002:merge"

    class Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise yaml.composer.ComposerError(
                        None,
                        None,
                        f"more than {MAX_YAML_ALIASES:,} aliases (*name): refused, a flag file "
                        "does not need that many",
                        self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                    )
            return super().compose_node(parent, index)

        def construct_document(self, node: Any) -> Any:
            _check_expansion(node, yaml)
            return super().construct_document(node)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == merge_tag:  # `<<: *base` may be overridden: not a dup
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        dup = key in seen
                        seen.add(key)
                    except TypeError:  # unhashable: SafeLoader refuses it below
                        continue
                    if dup:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key {_short_text(key)} (the second would silently "
                            "replace the first)",
                            key_node.start_mark,
                        )
            return super().construct_mapping(node, deep)

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Loader


def _short_text(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _check_expansion(root: Any, yaml: Any) -> None:
    """Refuse a node graph whose aliases expand past :data:`MAX_YAML_EXPANSION` nodes, or
    into a cycle. One iterative walk, each distinct node sized once (no recursion limit)."""
    size: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[Any, bool]] = [(root, False)]
    visiting: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            if key not in size:
                size[key] = 1
                distinct += 1
            continue
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            visiting.discard(key)
            total = 1 + sum(size[id(c)] for c in children)
            distinct += 1
            size[key] = total
            if total > distinct + MAX_YAML_EXPANSION:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"aliases expand this document past {MAX_YAML_EXPANSION:,} extra values: "
                    "refused (an alias bomb?)",
                    node.start_mark,
                )
            continue
        if key in size:
            continue
        if key in visiting:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a value that contains it", node.start_mark
            )
        visiting.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


# A key as TOML (bare, quoted, dotted or in a [table.header]), JSON or YAML writes it: after a
# line start, blank, `{`, `,`, `.` or `[`, and followed by `=`, `:`, `]`, `.` or the line's end.
_KEY_TOKEN = re.compile(
    r"""(?:^|(?<=[\s{,.\[]))"""
    r"""(?:"([^"\n]*)"|'([^'\n]*)'|([^\s{},\[\]=:"'#]+))"""
    r"""[ \t]*([=:\].]|$)""",
    re.M,
)


class _Index:
    """Every key written in a text, found in one pass: key -> (offsets, value offsets)."""

    __slots__ = ("items", "keys", "lines")

    def __init__(self, text: str) -> None:
        keys: dict[str, tuple[list[int], list[int | None]]] = {}

        def add(key: str, start: int, after: int | None) -> None:
            starts, afters = keys.setdefault(key, ([], []))
            starts.append(start)
            afters.append(after)

        for m in _KEY_TOKEN.finditer(text):
            after = m.end() if m[4] in ("=", ":") else None
            bare = m[3]
            if bare is None:
                add(m[1] if m[1] is not None else m[2], m.start(), after)
                continue
            add(bare, m.start(), after)
            if "." in bare:  # each part of a dotted key (a.b.c = 1) is a key too
                offset = m.start()
                parts = bare.split(".")
                for n, part in enumerate(parts):
                    if part:
                        add(part, offset, after if n == len(parts) - 1 else None)
                    offset += len(part) + 1
        self.keys = keys
        self.lines = [0, *(m.end() for m in re.finditer("\n", text))]
        self.items: dict[tuple[int, int], int | None] = {}

    def find(self, key: str, pos: int, nth: int) -> tuple[int, int | None] | None:
        """The ``nth`` occurrence of ``key`` after ``pos``: (offset, value offset or None)."""
        found = self.keys.get(key)
        if found is None:
            return None
        starts, afters = found
        i = bisect.bisect_left(starts, pos) + nth - 1
        return (starts[i], afters[i]) if i < len(starts) else None

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.lines, offset)


class Locator:
    """Finds the lines of many paths in one text, indexing its keys once (in one pass) so that
    locating every problem of a file stays linear in its size. Dropped with the load."""

    __slots__ = ("_index", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._index: _Index | None = None

    def locate(self, path: list[str | int], nth: int = 1) -> int | None:
        """See :func:`locate`."""
        if not self.text:
            return None
        if self._index is None:
            self._index = _Index(self.text)
        return _locate(self.text, self._index, path, nth)


def locate(text: str, path: list[str | int], nth: int = 1) -> int | None:
    """The 1-based line where ``path`` (e.g. ``["flags", "x", "rules", 1, "serve"]``) is
    written, found by looking each key up after the previous one; None if not found.

    A list index moves to that element: of an inline array (``[ ... ]`` in TOML, JSON or YAML),
    of a YAML block sequence (``- ...`` lines), or the matching ``[[a.b.c]]`` header of a TOML
    array of tables. Best effort: it finds what people write, not every layout the formats allow.
    One call indexes the whole text: to locate many paths, use one :class:`Locator`.
    """
    return Locator(text).locate(path, nth)


def _locate(text: str, index: _Index, path: list[str | int], nth: int) -> int | None:
    pos = 0
    found: int | None = None
    keys: list[str] = []
    after: int | None = None  # just past the last key's `=` or `:`, where its value starts
    for i, part in enumerate(path):
        if isinstance(part, int):
            item = None
            if after is not None:
                item = index.items.get((after, part), -1)
                if item == -1:
                    item = index.items[(after, part)] = _nth_item(text, after, part)
            if item is None and keys:
                item = _nth_header(text, text.rfind("\n", 0, pos) + 1, keys, part)
            if item is not None:
                pos = found = item
            after = None
            continue
        keys.append(part)
        hit = index.find(part, pos + (found is not None), nth if i == len(path) - 1 else 1)
        if hit is None:
            break
        pos, after = hit
        found = pos
    if found is None:
        return None
    return index.line(found)


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
