"""Flag file (or mapping) -> validated model -> compiled :class:`~rampup.engine.Snapshot`.

Validation happens here, once, at load: the request path never sees an invalid flag. Every
problem found is collected, located (file, flag or segment, field, line) and raised together in
one :class:`~rampup.errors.ConfigError`, so one edit-check cycle fixes them all.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timezone
from typing import Any

from . import _files
from .engine import Snapshot
from .errors import ConfigError, Problem
from .model import BUCKETS, Condition, Flag, RampStep, Rule, Segment, Split, Variant
from .operators import OPERATORS, check_value

__all__ = ["KEY_PATTERN", "VARIANT_PATTERN", "load", "load_bytes", "parse_weights"]

_TOP = {"version", "flags", "segments"}
_FLAG = {"description", "variants", "default", "rules", "killed", "overridable", "salt"}
_RULE = {"description", "segments", "conditions", "serve", "split", "ramp", "bucket_by"}
_SEGMENT = {"description", "keys", "conditions"}
_CONDITION = {"attribute", "op", "value"}
_STEP = {"from", "split"}
#: What a flag or segment key may be (also checked on override entries by ``_signing``).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: What a variant name may be.
VARIANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load(source: str | os.PathLike[str] | Mapping[str, Any]) -> Snapshot:
    """Load, validate and compile flags from a file path or an in-memory mapping.

    Files are TOML, JSON or YAML (``rampup[yaml]``), chosen by extension. Raises
    :class:`~rampup.ConfigError` listing every problem found, and only that, whatever the
    document holds. Time and memory are bounded by the file's size (at most
    :data:`rampup._files.MAX_BYTES`): YAML aliases may add at most
    ``MAX_YAML_EXPANSION`` values, messages show values cut short without building them whole,
    and problems are located in one pass over the text.
    """
    if isinstance(source, Mapping):
        return _guarded("<mapping>", lambda: _Loader("<mapping>", "").build(source))
    name = os.fspath(source)

    def from_file() -> Snapshot:
        raw, problem = _files.read_bytes(name)
        if problem is not None:
            raise ConfigError([problem])
        assert raw is not None
        return _build(raw, name)

    return _guarded(name, from_file)


def load_bytes(raw: bytes, name: str) -> Snapshot:
    """Load flags from the bytes of a flag file called ``name`` (its suffix picks the format),
    as :func:`load` does: what a watcher read and checked is exactly what gets parsed."""
    return _guarded(name, lambda: _build(raw, name))


def _build(raw: bytes, name: str) -> Snapshot:
    data, text, problem = _files.decode(raw, name)
    if problem is not None:
        raise ConfigError([problem])
    return _Loader(name, text).build(data)


def _guarded(name: str, build: Callable[[], Snapshot]) -> Snapshot:
    try:
        return build()
    except ConfigError:
        raise
    except (Exception, RecursionError, MemoryError) as exc:
        # A hostile document must not escape as a traceback (a watcher thread would log one
        # per poll): whatever the parsers or the checks raise becomes a problem of this file.
        raise ConfigError(
            [Problem(name, "", f"cannot be loaded: {type(exc).__name__}: {str(exc)[:200]}")]
        ) from None


def parse_weights(raw: Any) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """``{"on": 5, "off": 95}`` -> ((("on", 500), ("off", 9500)), None), or an error message.

    Weights are percentages with at most two decimals (0.01 % steps) summing to 100.
    """
    if not isinstance(raw, Mapping) or not raw:
        return (), "expects a table of variant = percent, e.g. { on = 5, off = 95 }"
    out: list[tuple[str, int]] = []
    for name, w in raw.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 100:
            return (), f"weight of {name!r} must be a number from 0 to 100, got {_short(w)}"
        bp = round(w * 100)
        if abs(bp - w * 100) > 1e-6:
            return (), f"weight of {name!r} ({w}) is finer than 0.01 %"
        out.append((str(name), bp))
    total = sum(bp for _, bp in out)
    if total != BUCKETS:
        return (), f"weights sum to {total / 100:g}, not 100"
    return tuple(out), None


class _Loader:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.locator = _files.Locator(text)  # indexes the text at the first problem only
        self.problems: list[Problem] = []

    # -- reporting ---------------------------------------------------------------------------
    def problem(self, path: list[str | int], message: str, hint: str = "") -> None:
        where = ".".join(
            f"[{p}]" if isinstance(p, int) else (p if KEY_PATTERN.match(p) or not p else repr(p))
            for p in path
        ).replace(".[", "[")
        # A missing field is not written anywhere: point at its table, not at the next
        # table's field of the same name.
        where_written = path[:-1] if message == "missing" else path
        line = self.locator.locate(where_written)
        self.problems.append(Problem(self.file, where, message, hint, line))

    def unknown_fields(
        self, path: list[str | int], table: Mapping[str, Any], known: set[str]
    ) -> None:
        for k in table:
            if k not in known:
                close = _close(k, sorted(known))
                hint = (
                    f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
                )
                self.problem([*path, str(k)], "unknown field", hint)

    def expect(
        self, path: list[str | int], value: Any, kind: type | tuple[type, ...], what: str
    ) -> bool:
        if isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float)):
            return True
        self.problem(path, f"expects {what}, got {type(value).__name__} {_short(value)}")
        return False

    # -- the file ----------------------------------------------------------------------------
    def build(self, data: Any) -> Snapshot:
        flags: dict[str, Flag] = {}
        segments: dict[str, Segment] = {}
        if not isinstance(data, Mapping):
            self.problem(
                [], f"expects a table with [flags] and [segments], got {type(data).__name__}"
            )
        else:
            self.unknown_fields([], data, _TOP)
            version = data.get("version", 1)
            if version != 1:
                self.problem(
                    ["version"],
                    f"unsupported version {_short(version)}",
                    "this rampup reads version 1",
                )
            raw_segments = data.get("segments", {})
            if self.expect(["segments"], raw_segments, Mapping, "a table of segments"):
                for name, raw in raw_segments.items():
                    seg = self.segment(str(name), raw)
                    if seg is not None:
                        segments[seg.name] = seg
            raw_flags = data.get("flags")
            if raw_flags is None:
                self.problem(
                    ["flags"], "missing", "add a [flags] table (it may be empty: flags = {})"
                )
            elif self.expect(["flags"], raw_flags, Mapping, "a table of flags"):
                for key, raw in raw_flags.items():
                    flag = self.flag(
                        str(key), raw, raw_segments if isinstance(raw_segments, Mapping) else {}
                    )
                    if flag is not None:
                        flags[flag.key] = flag
        if self.problems:
            raise ConfigError(self.problems)
        return Snapshot.build(flags, segments, self.file)

    def segment(self, name: str, raw: Any) -> Segment | None:
        path: list[str | int] = ["segments", name]
        n = len(self.problems)
        if not KEY_PATTERN.match(name):
            self.problem(path, "invalid segment name", "use letters, digits, '-', '_', '.', ':'")
        if not self.expect(path, raw, Mapping, "a table"):
            return None
        self.unknown_fields(path, raw, _SEGMENT)
        desc = raw.get("description", "")
        self.expect([*path, "description"], desc, str, "a string")
        keys = raw.get("keys", [])
        if self.expect([*path, "keys"], keys, list, "a list of subject keys"):
            for i, k in enumerate(keys):
                self.expect([*path, "keys", i], k, str, "a string")
        conds = self.conditions([*path, "conditions"], raw.get("conditions", []))
        if not keys and not conds and "conditions" not in raw:
            self.problem(path, "matches nobody", "give it keys = [...] or conditions = [...]")
        if len(self.problems) > n:
            return None
        return Segment(name, desc, frozenset(keys), conds)

    def conditions(self, path: list[str | int], raw: Any) -> tuple[Condition, ...]:
        if not self.expect(path, raw, list, "a list of conditions"):
            return ()
        out = []
        for i, c in enumerate(raw):
            p = [*path, i]
            if not self.expect(p, c, Mapping, "a table { attribute, op, value }"):
                continue
            self.unknown_fields(p, c, _CONDITION)
            attr, op = c.get("attribute"), c.get("op")
            ok = self.expect([*p, "attribute"], attr, str, "an attribute name")
            if not isinstance(op, str) or op not in OPERATORS:
                close = _close(op, list(OPERATORS))
                hint = (
                    f"did you mean {close[0]!r}?" if close else "operators: " + ", ".join(OPERATORS)
                )
                self.problem([*p, "op"], f"unknown operator {_short(op)}", hint)
                continue
            if "value" not in c:
                if op != "exists":
                    self.problem([*p, "value"], "missing", f"{op} needs a value")
                    continue
                value: Any = True
            else:
                value = c["value"]
            err = check_value(op, value)
            if err:
                self.problem([*p, "value"], f"{op} {err}, got {_short(value)}")
            elif ok:
                out.append(Condition(attr, op, tuple(value) if isinstance(value, list) else value))
        return tuple(out)

    def flag(self, key: str, raw: Any, raw_segments: Mapping[str, Any]) -> Flag | None:
        path: list[str | int] = ["flags", key]
        n = len(self.problems)
        if not KEY_PATTERN.match(key):
            self.problem(
                path, "invalid flag key", "use letters, digits, '-', '_', '.', ':' (max 128)"
            )
        if not self.expect(path, raw, Mapping, "a table"):
            return None
        self.unknown_fields(path, raw, _FLAG)
        variants = self.variants(path, raw)
        names = {v.name for v in variants}
        boolean = "variants" not in raw
        default = raw.get("default", "off" if boolean else None)
        if default is None:
            self.problem(
                [*path, "default"], "missing", "name the variant served when no rule matches"
            )
        elif not isinstance(default, str) or (names and default not in names):
            self.problem(
                [*path, "default"],
                f"{_short(default)} is not a variant of this flag",
                f"variants: {', '.join(sorted(names))}",
            )
        killed = raw.get("killed", False)
        self.expect([*path, "killed"], killed, bool, "true or false")
        overridable = raw.get("overridable", True)
        self.expect([*path, "overridable"], overridable, bool, "true or false")
        desc = raw.get("description", "")
        self.expect([*path, "description"], desc, str, "a string")
        salt = raw.get("salt", key)
        self.expect([*path, "salt"], salt, str, "a string")
        rules: list[Rule] = []
        raw_rules = raw.get("rules", [])
        if self.expect([*path, "rules"], raw_rules, list, "a list of rules ([[flags.KEY.rules]])"):
            for i, r in enumerate(raw_rules):
                rule = self.rule([*path, "rules", i], r, names, raw_segments)
                if rule is not None:
                    rules.append(rule)
        if len(self.problems) > n:
            return None
        return Flag(key, variants, default, tuple(rules), killed, overridable, desc, salt)

    def variants(self, path: list[str | int], raw: Mapping[str, Any]) -> tuple[Variant, ...]:
        if "variants" not in raw:
            return (Variant("on", True), Variant("off", False))
        vs = raw["variants"]
        p = [*path, "variants"]
        if isinstance(vs, list):
            pairs = [(v, v) for v in vs]
        elif isinstance(vs, Mapping):
            pairs = list(vs.items())
        else:
            self.problem(p, "expects a list of names or a table of name = value")
            return ()
        if len(pairs) < 2:
            self.problem(p, "a flag needs at least two variants")
        out, seen = [], set()
        for name, value in pairs:
            if not isinstance(name, str) or not VARIANT_PATTERN.match(name):
                self.problem(
                    p,
                    f"invalid variant name {_short(name)}",
                    "use letters, digits, '-', '_', '.' (max 64)",
                )
            elif name in seen:
                self.problem(p, f"duplicate variant {name!r}")
            else:
                seen.add(name)
                out.append(Variant(name, value))
        return tuple(out)

    def rule(
        self, path: list[str | int], raw: Any, names: set[str], raw_segments: Mapping[str, Any]
    ) -> Rule | None:
        if not self.expect(path, raw, Mapping, "a table"):
            return None
        n = len(self.problems)
        self.unknown_fields(path, raw, _RULE)
        segs = raw.get("segments", [])
        if isinstance(segs, str):
            segs = [segs]
        if self.expect([*path, "segments"], segs, list, "a list of segment names"):
            for s in segs:
                if not isinstance(s, str) or s not in raw_segments:
                    close = _close(s, [str(k) for k in raw_segments])
                    self.problem(
                        [*path, "segments"],
                        f"undefined segment {_short(s)}",
                        f"did you mean {close[0]!r}?" if close else "define it under [segments]",
                    )
        conds = self.conditions([*path, "conditions"], raw.get("conditions", []))
        outcomes = [k for k in ("serve", "split", "ramp") if k in raw]
        if len(outcomes) != 1:
            self.problem(
                path,
                "a rule needs exactly one of serve, split or ramp"
                + (f" (has {', '.join(outcomes)})" if outcomes else ""),
            )
            return None
        by = raw.get("bucket_by", "key")
        self.expect([*path, "bucket_by"], by, str, "an attribute name")
        desc = raw.get("description", "")
        self.expect([*path, "description"], desc, str, "a string")
        serve: str | None = None
        split: Split | None = None
        if "serve" in raw:
            serve = raw["serve"]
            if not isinstance(serve, str) or (names and serve not in names):
                self.problem(
                    [*path, "serve"],
                    f"{_short(serve)} is not a variant of this flag",
                    f"variants: {', '.join(sorted(names))}",
                )
        elif "split" in raw:
            weights = self.weights([*path, "split"], raw["split"], names)
            split = Split(weights, (), by)
        else:
            split = Split((), self.ramp([*path, "ramp"], raw["ramp"], names), by)
        if len(self.problems) > n:
            return None
        return Rule(tuple(segs), conds, serve, split, desc)

    def weights(
        self, path: list[str | int], raw: Any, names: set[str]
    ) -> tuple[tuple[str, int], ...]:
        weights, err = parse_weights(raw)
        if err:
            self.problem(path, err)
            return ()
        for name, _ in weights:
            if names and name not in names:
                self.problem(
                    path,
                    f"{name!r} is not a variant of this flag",
                    f"variants: {', '.join(sorted(names))}",
                )
        return weights

    def ramp(self, path: list[str | int], raw: Any, names: set[str]) -> tuple[RampStep, ...]:
        if not self.expect(path, raw, list, "a list of steps { from = <date>, split = {...} }"):
            return ()
        if not raw:
            self.problem(path, "a ramp needs at least one step")
        steps: list[RampStep] = []
        for i, step in enumerate(raw):
            p = [*path, i]
            if not self.expect(p, step, Mapping, "a table { from, split }"):
                continue
            self.unknown_fields(p, step, _STEP)
            start = self.when([*p, "from"], step.get("from"))
            if "split" not in step:
                self.problem([*p, "split"], "missing", "e.g. split = { on = 10, off = 90 }")
                continue
            weights = self.weights([*p, "split"], step["split"], names)
            if start is not None and weights:
                if steps and start <= steps[-1].start:
                    self.problem(
                        [*p, "from"],
                        f"{start.isoformat()} is not after the previous "
                        f"step ({steps[-1].start.isoformat()})",
                        "list steps in time order",
                    )
                steps.append(RampStep(start, weights))
        return tuple(steps)

    def when(self, path: list[str | int], raw: Any) -> datetime | None:
        if raw is None:
            self.problem(path, "missing", "e.g. from = 2026-12-01T09:00:00Z")
            return None
        value = raw
        if isinstance(raw, str):
            try:
                text = raw.strip()
                value = (
                    datetime.fromisoformat(text.replace("Z", "+00:00"))
                    if "T" in text or " " in text
                    else date.fromisoformat(text)
                )
            except ValueError:
                self.problem(
                    path,
                    f"{_short(raw)} is not an ISO 8601 date or time",
                    "e.g. 2026-12-01T09:00:00Z or 2026-12-03",
                )
                return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                self.problem(
                    path,
                    f"{raw.isoformat() if isinstance(raw, datetime) else _short(raw)} has no "
                    "time zone",
                    "add Z for UTC, e.g. 09:00:00Z",
                )
                return None
            return value
        if isinstance(value, date):  # a bare date means midnight UTC
            return datetime.combine(value, time(0), timezone.utc)
        self.problem(path, f"expects a date or date-time, got {_short(raw)}")
        return None


def _close(word: Any, candidates: list[str]) -> list[str]:
    """The closest candidate to ``word`` for a "did you mean" hint (a short string only:
    difflib's cost grows with the length, and a non-string has no useful spelling)."""
    if not isinstance(word, str) or len(word) > 128:
        return []
    return difflib.get_close_matches(word, candidates, n=1)


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, built without materialising the whole repr:
    a YAML alias bomb holds billions of strings behind a few hundred bytes, and a full repr
    would take seconds with the GIL held (every serving thread stopped)."""
    parts: list[str] = []
    _bounded_repr(value, parts, [limit + 1], set())
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bounded_repr(value: Any, out: list[str], budget: list[int], seen: set[int]) -> None:
    """Append pieces of ``repr(value)`` to ``out`` until ``budget[0]`` characters are spent."""
    if budget[0] <= 0:
        return
    if isinstance(value, str | bytes):
        piece = repr(value[: budget[0]])
    elif isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in seen:  # a YAML anchor can make a value contain itself
            piece = "..."
        else:
            seen.add(id(value))
            is_map = isinstance(value, Mapping)
            open_, close = ("{", "}") if is_map or isinstance(value, set) else "[]"
            if isinstance(value, tuple):
                open_, close = "(", ")"
            out.append(open_)
            budget[0] -= 1
            items: Any = value.items() if isinstance(value, Mapping) else value
            for i, item in enumerate(items):
                if budget[0] <= 0:
                    return
                if i:
                    out.append(", ")
                    budget[0] -= 2
                if is_map:
                    _bounded_repr(item[0], out, budget, seen)
                    out.append(": ")
                    budget[0] -= 2
                    _bounded_repr(item[1], out, budget, seen)
                else:
                    _bounded_repr(item, out, budget, seen)
            seen.discard(id(value))
            piece = close
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        piece = f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    else:
        piece = repr(value)[: budget[0] + 1]
    out.append(piece)
    budget[0] -= len(piece)
