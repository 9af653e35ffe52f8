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
from types import MappingProxyType
from typing import Any

from . import _files
from ._toml import TomlCache
from .engine import Snapshot
from .errors import ConfigError, Problem
from .model import BUCKETS, Condition, Flag, RampStep, Requirement, Rule, Segment, Split, Variant
from .operators import OPERATORS, check_value
from .rollout import parse_rollout, stage_split

__all__ = [
    "ENV_VAR",
    "KEY_PATTERN",
    "MAX_CHAIN",
    "VARIANT_PATTERN",
    "environments_of",
    "load",
    "load_bytes",
    "parse_weights",
]

#: ``$schema`` names the JSON Schema for editors (``rampup schema``); the loader ignores it.
_TOP = {"version", "flags", "segments", "environments", "$schema"}
_FLAG = {"description", "variants", "default", "rules", "killed", "overridable", "salt"}
_FLAG |= {"metadata", "requires", "owner", "expires", "kind", "client"}
#: What an environment's overlay may change on a flag; the rest is the same everywhere (the
#: salt above all: a subject keeps its bucket from staging to production).
_OVERLAY = {"killed", "default", "rules", "requires", "overridable", "client"}
_ENVIRONMENT = {"description", "flags"}
_REQUIREMENT = {"flag", "variant"}
_KINDS = ("temporary", "permanent")
#: The longest chain of prerequisites (a requires b requires c ...) a flag file may hold.
MAX_CHAIN = 16
#: The environment variable naming the environment when no ``env=`` option is given.
ENV_VAR = "RAMPUP_ENV"
_RULE = {"description", "segments", "conditions", "serve", "split", "ramp", "bucket_by", "rollout"}
_SEGMENT = {"description", "keys", "conditions"}
_CONDITION = {"attribute", "op", "value"}
_STEP = {"from", "split"}
#: What a flag or segment key may be (also checked on override entries by ``_signing``).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: What a variant name may be.
VARIANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    env: str | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Load, validate and compile flags from a file path or an in-memory mapping.

    ``env`` names the environment whose overlays apply (``[environments.<env>]``); None reads
    ``$RAMPUP_ENV``, and an empty name (or neither) means the base flags. Every environment is
    validated on every load, and a name the file does not define is a ConfigError.

    Files are TOML, JSON or YAML (``rampup[yaml]``), chosen by extension. Raises
    :class:`~rampup.ConfigError` listing every problem found, and only that, whatever the
    document holds. Time and memory are bounded by the file's size (at most
    :data:`rampup._files.MAX_BYTES`): YAML aliases may add at most
    ``MAX_YAML_EXPANSION`` values, messages show values cut short without building them whole,
    and problems are located in one pass over the text.

    ``previous``: the snapshot this load replaces (a reload). Flags whose definition did not
    change are neither validated nor compiled again (see :meth:`Snapshot.build`).
    """
    env = _env_name(env)
    if isinstance(source, Mapping):
        return _guarded("<mapping>", lambda: _Loader("<mapping>", "", previous).build(source, env))
    name = os.fspath(source)

    def from_file() -> Snapshot:
        raw, problem = _files.read_bytes(name)
        if problem is not None:
            raise ConfigError([problem])
        assert raw is not None
        return _build(raw, name, env, previous)

    return _guarded(name, from_file)


def load_bytes(
    raw: bytes,
    name: str,
    env: str | None = None,
    previous: Snapshot | None = None,
    *,
    toml_cache: TomlCache | None = None,
) -> Snapshot:
    """Load flags from the bytes of a flag file called ``name`` (its suffix picks the format),
    as :func:`load` does: what a watcher read and checked is exactly what gets parsed.

    ``toml_cache``: a TOML file is parsed through it, which parses only the flags whose text
    changed since the last load through the same cache (the result is the same).
    """
    env = _env_name(env)
    return _guarded(name, lambda: _build(raw, name, env, previous, toml_cache))


def _build(
    raw: bytes,
    name: str,
    env: str = "",
    previous: Snapshot | None = None,
    toml_cache: TomlCache | None = None,
) -> Snapshot:
    data, text, problem = _files.decode(raw, name, toml_cache)
    if problem is not None:
        raise ConfigError([problem])
    return _Loader(name, text, previous).build(data, env)


def _env_name(env: str | None) -> str:
    return (os.environ.get(ENV_VAR, "") if env is None else env).strip()


def environments_of(data: Any) -> list[str]:
    """The environment names a parsed flag file defines (for ``rampup check``)."""
    envs = data.get("environments") if isinstance(data, Mapping) else None
    return [str(e) for e in envs] if isinstance(envs, Mapping) else []


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
    def __init__(self, file: str, text: str, previous: Snapshot | None = None) -> None:
        self.file = file
        self.previous = previous
        self.text = text
        self.locator = _files.Locator(text)  # indexes the text at the first problem only
        self.problems: list[Problem] = []
        #: the keys under [flags], valid or not (a requirement of an invalid flag is not
        #: reported as unknown on top of that flag's own problems)
        self.defined: set[str] = set()

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
    def build(self, data: Any, env: str = "") -> Snapshot:
        flags: dict[str, Flag] = {}
        segments: dict[str, Segment] = {}
        prints: dict[str, str] = {}
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
                known = raw_segments if isinstance(raw_segments, Mapping) else {}
                seen = _Seen(self.previous, known, raw_flags, env, _overlaid(data, env))
                for key, raw in raw_flags.items():
                    fingerprint = repr(raw)
                    flag = seen.flag(str(key), fingerprint) or self.flag(str(key), raw, known)
                    if flag is not None:
                        flags[flag.key] = flag
                        seen.remember(flag.key, fingerprint)
                prints = seen.prints
        chosen = self.overlays(data, flags, env) if isinstance(data, Mapping) else flags
        if self.problems:
            raise ConfigError(self.problems)
        return Snapshot.build(
            chosen, segments, self.file, self.previous, fingerprints=prints, environment=env
        )

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

    def flag(
        self,
        key: str,
        raw: Any,
        raw_segments: Mapping[str, Any],
        path: list[str | int] | None = None,
    ) -> Flag | None:
        path = path or ["flags", key]
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
        metadata = self.metadata([*path, "metadata"], raw.get("metadata", {}))
        rules: list[Rule] = []
        raw_rules = raw.get("rules", [])
        if self.expect([*path, "rules"], raw_rules, list, "a list of rules ([[flags.KEY.rules]])"):
            for i, r in enumerate(raw_rules):
                rule = self.rule([*path, "rules", i], r, names, raw_segments)
                if rule is not None:
                    rules.append(rule)
        extras = self.flag_extras(path, raw)
        if len(self.problems) > n:
            return None
        return Flag(
            key,
            variants,
            default,
            tuple(rules),
            killed,
            overridable,
            desc,
            salt,
            metadata,
            **extras,
        )

    def metadata(self, path: list[str | int], raw: Any) -> Mapping[str, str | int | float | bool]:
        """``metadata = { owner = "payments", ticket = 42 }``: scalar values only (OpenFeature's
        flag metadata allows nothing else)."""
        if not self.expect(path, raw, Mapping, "a table of name = string, number or boolean"):
            return {}
        out: dict[str, str | int | float | bool] = {}
        for name, value in raw.items():
            if isinstance(value, str | int | float | bool):
                out[str(name)] = value
            else:
                self.problem(
                    [*path, str(name)],
                    f"expects a string, number or boolean, got {_short(value)}",
                )
        return MappingProxyType(out)

    # -- issue 19: prerequisites, owners and expiry, client flags, environments --------------
    def flag_extras(self, path: list[str | int], raw: Mapping[str, Any]) -> dict[str, Any]:
        """The optional fields ``requires``, ``owner``, ``expires``, ``kind`` and ``client``, as
        :class:`Flag` keyword arguments (absent fields keep the Flag's defaults)."""
        out: dict[str, Any] = {}
        if "requires" in raw:
            out["requires"] = self.requirements([*path, "requires"], raw["requires"])
        if "owner" in raw and self.expect([*path, "owner"], raw["owner"], str, "a string"):
            out["owner"] = raw["owner"]
        kind = raw.get("kind", "temporary")
        if kind not in _KINDS:
            self.problem(
                [*path, "kind"], f"unknown kind {_short(kind)}", "use 'temporary' or 'permanent'"
            )
        else:
            out["kind"] = kind
        if "expires" in raw:
            expires = self.day([*path, "expires"], raw["expires"])
            if expires is not None and kind == "permanent":
                self.problem(
                    [*path, "expires"],
                    "a permanent flag does not expire",
                    "drop expires, or make it kind = 'temporary'",
                )
            out["expires"] = expires
        if "client" in raw and self.expect([*path, "client"], raw["client"], bool, "true or false"):
            out["client"] = raw["client"]
        return out

    def requirements(self, path: list[str | int], raw: Any) -> tuple[Requirement, ...]:
        """``requires = [{ flag = "...", variant = "on" }]``; the keys are checked once every
        flag is known (:meth:`prerequisites`)."""
        if not self.expect(path, raw, list, 'a list of { flag = "...", variant = "..." }'):
            return ()
        out: list[Requirement] = []
        for i, r in enumerate(raw):
            p = [*path, i]
            if not self.expect(p, r, Mapping, 'a table { flag = "...", variant = "on" }'):
                continue
            self.unknown_fields(p, r, _REQUIREMENT)
            if "flag" not in r:
                self.problem([*p, "flag"], "missing", "name the flag this one requires")
                continue
            variant = r.get("variant", "on")
            ok = self.expect([*p, "flag"], r["flag"], str, "a flag key")
            if self.expect([*p, "variant"], variant, str, "a variant name") and ok:
                out.append(Requirement(r["flag"], variant))
        return tuple(out)

    def day(self, path: list[str | int], raw: Any) -> date | None:
        """A calendar date: a TOML/YAML date or an ISO ``YYYY-MM-DD`` string."""
        if isinstance(raw, date) and not isinstance(raw, datetime):
            return raw
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw.strip())
            except ValueError:
                pass
        self.problem(path, f"expects a date such as 2026-12-31, got {_short(raw)}")
        return None

    def prerequisites(
        self, flags: Mapping[str, Flag], where: Callable[[str], list[str | int]]
    ) -> None:
        """Every requirement names a flag and one of its variants, and no chain loops back.
        ``where(key)`` is the path of flag ``key`` (its overlay, in an environment)."""
        for key, flag in flags.items():
            for i, r in enumerate(flag.requires):
                p = [*where(key), "requires", i]
                target = flags.get(r.flag)
                if target is None and r.flag in self.defined:
                    continue  # defined but invalid: its own problems are reported
                if target is None:
                    close = _close(r.flag, list(flags))
                    self.problem(
                        [*p, "flag"],
                        f"unknown flag {_short(r.flag)}",
                        f"did you mean {close[0]!r}?" if close else "define it under [flags]",
                    )
                elif all(v.name != r.variant for v in target.variants):
                    self.problem(
                        [*p, "variant"],
                        f"{r.variant!r} is not a variant of flag {r.flag!r}",
                        f"variants: {', '.join(v.name for v in target.variants)}",
                    )
        # Depth-first search; each cycle is reported once, at the requirement closing it.
        state: dict[str, int] = {}  # 1: on the current chain, 2: done
        for key in flags:
            if key not in state:
                self._visit(flags, where, state, [key])

    def _visit(
        self,
        flags: Mapping[str, Flag],
        where: Callable[[str], list[str | int]],
        state: dict[str, int],
        chain: list[str],
    ) -> None:
        """Walk the requirements below ``chain[-1]``. A method, not a closure: a recursive
        closure is a reference cycle, left for the GC to free after every load."""
        key = chain[-1]
        state[key] = 1
        for i, r in enumerate(flags[key].requires):
            if r.flag not in flags:
                continue
            p: list[str | int] = [*where(key), "requires", i, "flag"]
            if state.get(r.flag) == 1:
                loop = [*chain[chain.index(r.flag) :], r.flag]
                self.problem(
                    p,
                    f"prerequisite cycle: {' -> '.join(loop)}",
                    "a flag cannot require itself, directly or through others",
                )
            elif len(chain) >= MAX_CHAIN:
                # Evaluation recurses once per link: keep chains short and the stack shallow.
                self.problem(
                    p,
                    f"prerequisite chain longer than {MAX_CHAIN}: {' -> '.join(chain[:4])} -> ...",
                    "require the flags a feature needs directly, not through long chains",
                )
            elif r.flag not in state:
                self._visit(flags, where, state, [*chain, r.flag])
        state[key] = 2

    def overlays(
        self, data: Mapping[str, Any], flags: dict[str, Flag], env: str
    ) -> dict[str, Flag]:
        """Validate every environment's overlays (so one ``rampup check`` covers them all) and
        return the flags of ``env`` ("" for the base flags)."""
        raw_flags = data.get("flags")
        self.defined = {str(k) for k in raw_flags} if isinstance(raw_flags, Mapping) else set()
        self.prerequisites(flags, lambda key: ["flags", key])
        raw_envs = data.get("environments", {})
        chosen = flags
        if self.expect(["environments"], raw_envs, Mapping, "a table of environments"):
            raw_flags = data.get("flags")
            raw_segments = data.get("segments", {})
            if not isinstance(raw_flags, Mapping):
                raw_flags = {}
            if not isinstance(raw_segments, Mapping):
                raw_segments = {}
            for name, raw in raw_envs.items():
                merged = self.environment(str(name), raw, raw_flags, raw_segments, flags)
                if str(name) == env:
                    chosen = merged
        else:
            raw_envs = {}
        if env and env not in raw_envs:
            defined = ", ".join(map(str, raw_envs)) or "none: add [environments.<name>] tables"
            self.problem(
                ["environments"],
                f"unknown environment {env!r} (from env= or ${ENV_VAR})",
                f"environments defined: {defined}",
            )
        return chosen

    def environment(
        self,
        name: str,
        raw: Any,
        raw_flags: Mapping[str, Any],
        raw_segments: Mapping[str, Any],
        base: dict[str, Flag],
    ) -> dict[str, Flag]:
        """The flags of environment ``name``: the base flags with its overlays applied."""
        path: list[str | int] = ["environments", name]
        if not KEY_PATTERN.match(name):
            self.problem(path, "invalid environment name", "use letters, digits, '-', '_', '.'")
        if not self.expect(path, raw, Mapping, "a table with a [flags] table of overlays"):
            return base
        self.unknown_fields(path, raw, _ENVIRONMENT)
        self.expect([*path, "description"], raw.get("description", ""), str, "a string")
        overlays = raw.get("flags", {})
        if not self.expect([*path, "flags"], overlays, Mapping, "a table of flag overlays"):
            return base
        out = dict(base)
        for key, overlay in overlays.items():
            p: list[str | int] = [*path, "flags", str(key)]
            if key not in raw_flags:
                close = _close(key, [str(k) for k in raw_flags])
                self.problem(
                    p,
                    "overlays a flag that [flags] does not define",
                    f"did you mean {close[0]!r}?" if close else "define the flag under [flags]",
                )
                continue
            if not self.expect(p, overlay, Mapping, "a table of fields to change"):
                continue
            for field in overlay:
                if field not in _OVERLAY:
                    hint = (
                        "bucketing is the same in every environment (a subject keeps its bucket)"
                        if field == "salt"
                        else f"an environment may change: {', '.join(sorted(_OVERLAY))}"
                    )
                    self.problem([*p, str(field)], "cannot differ per environment", hint)
            if key not in base or not isinstance(raw_flags[key], Mapping):
                continue  # the base flag is invalid: reported already
            merged = {**raw_flags[key], **{k: v for k, v in overlay.items() if k in _OVERLAY}}
            flag = self.flag(str(key), merged, raw_segments, p)
            if flag is not None:
                out[str(key)] = flag
        if any(isinstance(o, Mapping) and "requires" in o for o in overlays.values()):
            # Only new requirements can add a problem; the base ones were checked already.
            n = len(self.problems)
            self.prerequisites(
                out,
                lambda k: (
                    [*path, "flags", k] if "requires" in overlays.get(k, ()) else ["flags", k]
                ),
            )
            seen = {(p.where, p.message) for p in self.problems[:n]}
            self.problems[n:] = [p for p in self.problems[n:] if (p.where, p.message) not in seen]
        return out

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


class _Seen:
    """The flags a reload need not validate again: those whose raw definition is the same as in
    the previous load (and was valid there), when the names of the segments and flags they
    may refer to are the same too.

    A flag's fingerprint is ``repr`` of its raw table: unlike ``==`` (or sorted JSON) it tells
    ``1`` from ``1.0`` and ``true``, and keeps the order of variants, which split tables
    follow. Its size is bounded by the document's (YAML aliases are capped by ``_files``).
    The key ``""`` (never a flag key) holds the fingerprint of the segment and flag names.
    """

    __slots__ = ("old", "overlaid", "previous", "prints")

    def __init__(
        self,
        previous: Snapshot | None,
        raw_segments: Mapping[Any, Any],
        raw_flags: Mapping[Any, Any],
        env: str = "",
        overlaid: frozenset[str] = frozenset(),
    ) -> None:
        names = sorted(repr(name) for name in raw_segments)
        # The environment is part of the context: a snapshot's flags are those of its
        # environment, so one of another environment has nothing to lend.
        context = repr((names, sorted(repr(key) for key in raw_flags), env))
        #: flag key -> fingerprint of its raw table, for the flags of this load
        self.prints: dict[str, str] = {"": context}
        self.previous = previous
        #: the flags the environment overlays: the previous snapshot holds them with the
        #: overlay applied, not the base flag this loader needs, so they are never lent
        self.overlaid = overlaid
        old = previous._fingerprints if previous is not None else {}
        self.old = old if old.get("") == context else {}

    def flag(self, key: str, fingerprint: str) -> Flag | None:
        """The previous load's Flag for ``key`` if its raw table is unchanged (and no overlay
        applies to it, then or now), else None."""
        if self.previous is None or key in self.overlaid or self.old.get(key) != fingerprint:
            return None
        return self.previous.flags.get(key)

    def remember(self, key: str, fingerprint: str) -> None:
        """Note ``key``'s fingerprint for the next load (not for an overlaid flag: see above)."""
        if key not in self.overlaid:
            self.prints[key] = fingerprint


def _overlaid(data: Mapping[str, Any], env: str) -> frozenset[str]:
    """The keys of the flags environment ``env``'s overlay changes (none for the base flags,
    or when the document is malformed: the loader reports that)."""
    envs = data.get("environments") if env else None
    chosen = envs.get(env) if isinstance(envs, Mapping) else None
    overlays = chosen.get("flags") if isinstance(chosen, Mapping) else None
    return frozenset(str(k) for k in overlays) if isinstance(overlays, Mapping) else frozenset()


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
