"""Flag file (or mapping) -> validated model -> compiled :class:`~rampup.engine.Snapshot`.

Validation happens here, once, at load: the request path never sees an invalid flag. Every
problem found is collected, located (file, flag or segment, field, line) and raised together in
one :class:`~rampup.errors.ConfigError`, so one edit-check cycle fixes them all.
"""

from __future__ import annotations

import difflib
import gc
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time, timezone
from typing import Any

from . import _files
from .engine import Snapshot
from .errors import ConfigError, Problem
from .model import BUCKETS, Condition, Flag, RampStep, Rule, Segment, Split, Variant
from .operators import OPERATORS, check_value
from .rollout import parse_rollout, stage_split

__all__ = ["load", "parse_weights"]

_TOP = {"version", "flags", "segments"}
_FLAG = {"description", "variants", "default", "rules", "killed", "overridable", "salt"}
_RULE = {"description", "segments", "conditions", "serve", "split", "ramp", "bucket_by", "rollout"}
_SEGMENT = {"description", "keys", "conditions"}
_CONDITION = {"attribute", "op", "value"}
_STEP = {"from", "split"}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load(source: str | os.PathLike[str] | Mapping[str, Any]) -> Snapshot:
    """Load, validate and compile flags from a file path or an in-memory mapping.

    Files are TOML, JSON or YAML (``rampup[yaml]``), chosen by extension. Raises
    :class:`~rampup.ConfigError` listing every problem found.
    """
    with _no_gc():
        if isinstance(source, Mapping):
            return _Loader("<mapping>", "").build(source)
        name = os.fspath(source)
        data, text, problem = _files.read(name)
        if problem is not None:
            raise ConfigError([problem])
        return _Loader(name, text).build(data)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while a snapshot is built: it allocates many objects that all stay
    alive, so collections find nothing and cost most of the load time (a 10,000-flag file
    loads in about half the time). Reference counting still frees garbage meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_weights(raw: Any) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """``{"on": 5, "off": 95}`` -> ((("on", 500), ("off", 9500)), None), or an error message.

    Weights are percentages with at most two decimals (0.01 % steps) summing to 100.
    """
    if not isinstance(raw, Mapping) or not raw:
        return (), "expects a table of variant = percent, e.g. { on = 5, off = 95 }"
    out: list[tuple[str, int]] = []
    for name, w in raw.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 100:
            return (), f"weight of {name!r} must be a number from 0 to 100, got {w!r}"
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
        self.problems: list[Problem] = []

    # -- reporting ---------------------------------------------------------------------------
    def problem(self, path: list[str | int], message: str, hint: str = "") -> None:
        where = ".".join(
            f"[{p}]" if isinstance(p, int) else (p if _KEY.match(p) or not p else repr(p))
            for p in path
        ).replace(".[", "[")
        # A missing field is not written anywhere: point at its table, not at the next
        # table's field of the same name.
        where_written = path[:-1] if message == "missing" else path
        line = _files.locate(self.text, where_written) if self.text else None
        self.problems.append(Problem(self.file, where, message, hint, line))

    def unknown_fields(
        self, path: list[str | int], table: Mapping[str, Any], known: set[str]
    ) -> None:
        for k in table:
            if k not in known:
                close = difflib.get_close_matches(str(k), sorted(known), n=1)
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
                    ["version"], f"unsupported version {version!r}", "this rampup reads version 1"
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
        if not _KEY.match(name):
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
                close = difflib.get_close_matches(str(op), OPERATORS, n=1)
                hint = (
                    f"did you mean {close[0]!r}?" if close else "operators: " + ", ".join(OPERATORS)
                )
                self.problem([*p, "op"], f"unknown operator {op!r}", hint)
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
        if not _KEY.match(key):
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
            if not isinstance(name, str) or not _VARIANT.match(name):
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
                    close = difflib.get_close_matches(str(s), [str(k) for k in raw_segments], n=1)
                    self.problem(
                        [*path, "segments"],
                        f"undefined segment {_short(s)}",
                        f"did you mean {close[0]!r}?" if close else "define it under [segments]",
                    )
        conds = self.conditions([*path, "conditions"], raw.get("conditions", []))
        outcomes = [k for k in ("serve", "split", "ramp", "rollout") if k in raw]
        if len(outcomes) != 1:
            self.problem(
                path,
                # (rollout is the fourth kind; the message stays as README quotes it)
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
        elif "rollout" in raw:  # guarded stages (rollout.py): a split at the current stage
            rollout = parse_rollout(
                self, [*path, "rollout"], raw["rollout"], names, {"on", "off"} <= names
            )
            if len(self.problems) > n or rollout is None:
                return None
            return Rule(tuple(segs), conds, None, stage_split(rollout, by), desc, rollout)
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
                    f"{raw!r} is not an ISO 8601 date or time",
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
