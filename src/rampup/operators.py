"""Condition operators: each compiles ``(attribute getter, value)`` into a predicate once.

``check_value`` validates an operator's value at load time (returning an error message), so
``compile_condition`` never fails on a loaded file. A missing attribute (None) never matches,
except for ``exists = false``: a rule cannot accidentally include subjects it knows nothing about.

Request values are untrusted and bounded before any parsing: a version longer than
:data:`MAX_VERSION`, a number longer than :data:`MAX_NUMBER` or a string longer than
:data:`MAX_MATCH_INPUT` (for ``matches``) does not match. A condition that raises anyway (an
attribute object from the app with a broken ``__eq__``) does not match either, and is logged once
per flag (or segment) and operator per minute, without a traceback per request.

``matches`` runs in linear time with ``google-re2`` (``rampup[re2]``); without it, Python's
``re`` runs the patterns, and the loader refuses the shapes that backtrack exponentially
(a repeated group that itself repeats or alternates). Either way the syntax accepted is RE2's
(no backreferences, no lookaround), so a file valid on one machine is valid on another.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .model import Condition, Subject

__all__ = [
    "MAX_MATCH_INPUT",
    "MAX_NUMBER",
    "MAX_PATTERN",
    "MAX_VERSION",
    "OPERATORS",
    "Predicate",
    "check_value",
    "compile_condition",
    "parse_semver",
]

Predicate = Callable[[Subject], bool]
log = logging.getLogger("rampup")

#: A version string longer than this is not a version (and is never parsed).
MAX_VERSION = 64
#: A number written with more characters than this is not a number here.
MAX_NUMBER = 64
#: ``matches`` sees at most this many characters: a longer value does not match.
MAX_MATCH_INPUT = 1024
#: A ``matches`` pattern longer than this is refused at load.
MAX_PATTERN = 1000

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

SemverKey = tuple[int, int, int, tuple[tuple[int, int | str], ...]]


def parse_semver(text: str) -> SemverKey | None:
    """A sort key for a semantic version (``1.2``, ``v1.2.3-rc.1``), or None if it is not one.

    Pre-releases sort before the release, identifiers compare per SemVer 2.0 section 11.
    """
    if not isinstance(text, str) or len(text) > MAX_VERSION:
        return None  # int() of a 5,000-digit part would raise, and costs quadratic time
    m = _SEMVER.match(text.strip())
    if m is None:
        return None
    pre = m.group("pre")
    ids: tuple[tuple[int, int | str], ...]
    if pre is None:
        ids = ((2, 0),)  # a release outranks every pre-release
    else:
        ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(m.group("major")), int(m.group("minor") or 0), int(m.group("patch") or 0), ids)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        if isinstance(v, int | float):
            return float(v)  # OverflowError for an int past 1e308
        if isinstance(v, str) and len(v) <= MAX_NUMBER:
            return float(v)
    except (ValueError, OverflowError):
        return None
    return None


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _is_str_or_strs(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def _check_scalar(value: Any) -> str | None:
    if isinstance(value, str | int | float | bool):
        return None
    return "expects a string, number or boolean"


def _check_list(value: Any) -> str | None:
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float | bool) for v in value
    ):
        return None
    return "expects a list of strings or numbers"


def _check_strs(value: Any) -> str | None:
    return None if _is_str_or_strs(value) else "expects a string or a non-empty list of strings"


def _check_regex(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expects a regular expression string"
    if len(value) > MAX_PATTERN:
        return f"is longer than {MAX_PATTERN} characters"
    try:
        _compile_regex(value)
    except _Refused as exc:
        return str(exc)
    except Exception as exc:  # re.error, RecursionError (5,000 nested groups), OverflowError
        return f"is not a valid regular expression: {str(exc)[:120]}"
    return None


class _Refused(ValueError):
    """A pattern refused for the time it could take, not for its syntax."""


_RE2: Any = None  # the google-re2 module, False when it is not installed


def _compile_regex(pattern: str) -> Callable[[str], Any]:
    """The ``search`` of ``pattern``: RE2 when installed, else Python's ``re`` after a check
    that the pattern cannot backtrack exponentially. Raises on a bad or refused pattern."""
    global _RE2
    if _RE2 is None:
        try:
            _RE2 = importlib.import_module("re2")  # google-re2, rampup[re2]
        except ImportError:
            _RE2 = False
    if _RE2:
        # RE2 for every pattern, not only risky ones: Python's re takes 4 ms for `.*=` on 1,024
        # characters; RE2's wrapper costs ~10 µs a call but never more than linear time.
        options = _RE2.Options()
        options.log_errors = False  # errors become located problems, not stderr noise
        return _RE2.compile(pattern, options).search  # type: ignore[no-any-return]
    compiled = re.compile(pattern)
    _check_backtracking(pattern)
    global _WARNED
    if not _WARNED:
        _WARNED = True
        log.warning(
            "rampup: `matches` conditions run on Python's re (google-re2 is not installed): "
            "patterns that could backtrack are refused; pip install 'rampup[re2]' for "
            "linear-time matching of any RE2 pattern"
        )
    return compiled.search


_WARNED = False


def _check_backtracking(pattern: str) -> None:
    """Raise :class:`_Refused` for what RE2 would not accept (backreferences, lookaround),
    for a repeat whose body repeats or alternates, as in ``(\\w+\\s?)*`` or ``(a|ab)*``
    (Python's ``re`` backtracks on those in time exponential in the input's length), and for
    more than one unbounded repeat (``.*.*=`` takes 0.7 s on 1,024 characters: polynomial)."""
    # The standard library's own regex parser (public as sre_parse before 3.11).
    new = sys.version_info >= (3, 11)
    sre_constants = importlib.import_module("re._constants" if new else "sre_constants")
    sre_parse = importlib.import_module("re._parser" if new else "sre_parse")

    hint = " (install rampup[re2] for linear-time matching, or simplify the pattern)"
    repeats = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
    possessive = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
    if possessive is not None:
        repeats.add(possessive)

    unbounded = [0]

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, av in items:
            if op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
                raise _Refused("uses a backreference, which RE2 syntax does not have")
            if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                raise _Refused("uses a lookaround, which RE2 syntax does not have")
            if op in repeats:
                _low, high, body = av
                if inside_repeat and high > 1:
                    raise _Refused(
                        "nests a repeat inside a repeat, which can take exponential time" + hint
                    )
                if high == sre_constants.MAXREPEAT:
                    unbounded[0] += 1
                    if unbounded[0] > 1:
                        raise _Refused(
                            "has more than one unbounded repeat (*, +, {n,}), which can take "
                            "polynomial time" + hint
                        )
                walk(body, inside_repeat or high > 1)
            elif op == sre_constants.BRANCH:
                if inside_repeat:
                    raise _Refused("repeats an alternation, which can take exponential time" + hint)
                for branch in av[1]:
                    walk(branch, inside_repeat)
            elif op == sre_constants.SUBPATTERN:
                walk(av[-1], inside_repeat)
            elif op == getattr(sre_constants, "ATOMIC_GROUP", None):
                walk(av, inside_repeat)

    walk(sre_parse.parse(pattern), False)


def _check_number(value: Any) -> str | None:
    return None if _number(value) is not None else "expects a number"


def _check_semver(value: Any) -> str | None:
    if isinstance(value, str) and parse_semver(value) is not None:
        return None
    return "expects a semantic version such as '2.4.0'"


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expects true or false"


# name -> (value checker, compiler(getter, value) -> predicate)
Getter = Callable[[Subject], Any]
Compiler = Callable[[Getter, Any], Predicate]


def _eq(get: Getter, value: Any) -> Predicate:
    alt = str(value).lower() if isinstance(value, bool) else str(value)

    def p(s: Subject) -> bool:
        v = get(s)
        if v is None:
            return False
        if isinstance(v, str):  # header and cookie attributes: "42" equals 42, "true" true
            return v in (value, alt)
        if isinstance(v, bool) or isinstance(value, bool):  # Python's True == 1 is not ours
            return v is value
        return bool(v == value)

    return p


def _neq(get: Getter, value: Any) -> Predicate:
    eq = _eq(get, value)
    return lambda s: get(s) is not None and not eq(s)


def _in(get: Getter, value: Any) -> Predicate:
    # Booleans apart: in one set, True and 1 would be the same member.
    bools = frozenset(v for v in value if isinstance(v, bool))
    others = [v for v in value if not isinstance(v, bool)]
    members = frozenset(others) | frozenset(str(v) for v in others)

    def p(s: Subject) -> bool:
        v = get(s)
        if v is None:
            return False
        if isinstance(v, bool):
            return v in bools
        try:
            return v in members
        except TypeError:  # unhashable attribute value
            return False

    return p


def _not_in(get: Getter, value: Any) -> Predicate:
    inside = _in(get, value)
    return lambda s: get(s) is not None and not inside(s)


def _starts(get: Getter, value: Any) -> Predicate:
    prefixes = _strs(value)
    return lambda s: isinstance(v := get(s), str) and v.startswith(prefixes)


def _ends(get: Getter, value: Any) -> Predicate:
    suffixes = _strs(value)
    return lambda s: isinstance(v := get(s), str) and v.endswith(suffixes)


def _contains(get: Getter, value: Any) -> Predicate:
    needles = _strs(value)

    def p(s: Subject) -> bool:
        v = get(s)
        if isinstance(v, str):
            return any(n in v for n in needles)
        if isinstance(v, list | tuple | set | frozenset):
            return any(n in v for n in needles)
        return False

    return p


def _matches(get: Getter, value: Any) -> Predicate:
    search = _compile_regex(value)
    # A string past the cap does not match: the pattern never sees an 8 KB header.
    return lambda s: (
        isinstance(v := get(s), str) and len(v) <= MAX_MATCH_INPUT and search(v) is not None
    )


def _numeric(cmp: Callable[[float, float], bool]) -> Compiler:
    def compiler(get: Getter, value: Any) -> Predicate:
        bound = _number(value)
        assert bound is not None  # guaranteed by check_value at load

        def p(s: Subject) -> bool:
            n = _number(get(s))
            return n is not None and cmp(n, bound)

        return p

    return compiler


def _semver(cmp: Callable[[SemverKey, SemverKey], bool]) -> Compiler:
    def compiler(get: Getter, value: Any) -> Predicate:
        bound = parse_semver(value)
        assert bound is not None

        def p(s: Subject) -> bool:
            v = get(s)
            parsed = parse_semver(v) if isinstance(v, str) else None
            return parsed is not None and cmp(parsed, bound)

        return p

    return compiler


def _exists(get: Getter, value: Any) -> Predicate:
    return lambda s: (get(s) is not None) is value


OPERATORS: dict[str, tuple[Callable[[Any], str | None], Compiler]] = {
    "equals": (_check_scalar, _eq),
    "not_equals": (_check_scalar, _neq),
    "in": (_check_list, _in),
    "not_in": (_check_list, _not_in),
    "starts_with": (_check_strs, _starts),
    "ends_with": (_check_strs, _ends),
    "contains": (_check_strs, _contains),
    "matches": (_check_regex, _matches),
    "regex": (_check_regex, _matches),  # alias of matches
    "lt": (_check_number, _numeric(lambda a, b: a < b)),
    "lte": (_check_number, _numeric(lambda a, b: a <= b)),
    "gt": (_check_number, _numeric(lambda a, b: a > b)),
    "gte": (_check_number, _numeric(lambda a, b: a >= b)),
    "semver_eq": (_check_semver, _semver(lambda a, b: a == b)),
    "semver_lt": (_check_semver, _semver(lambda a, b: a < b)),
    "semver_lte": (_check_semver, _semver(lambda a, b: a <= b)),
    "semver_gt": (_check_semver, _semver(lambda a, b: a > b)),
    "semver_gte": (_check_semver, _semver(lambda a, b: a >= b)),
    "exists": (_check_bool, _exists),
}


def check_value(op: str, value: Any) -> str | None:
    """None when ``value`` suits ``op``, else what is wrong (the operator must exist)."""
    return OPERATORS[op][0](value)


def _getter(attribute: str) -> Getter:
    if attribute == "key":
        return lambda s: s.key
    return lambda s: s.attributes.get(attribute)


# The commonest rule conditions (e-mail domain, path prefix), compiled with the attribute lookup
# inlined: one Python call per condition instead of two. Same semantics as _starts/_ends.
_INLINE: dict[str, Callable[[str, tuple[str, ...]], bool]] = {
    "starts_with": str.startswith,
    "ends_with": str.endswith,
}


def compile_condition(cond: Condition, where: str = "a condition") -> Predicate:
    """The predicate for one validated condition; ``where`` names its flag or segment in the
    log line of a condition that raises."""
    test = _INLINE.get(cond.op)
    if test is not None and cond.attribute != "key":
        name, arg = cond.attribute, _strs(cond.value)
        return lambda s: isinstance(v := s.attributes.get(name), str) and test(v, arg)
    pred = OPERATORS[cond.op][1](_getter(cond.attribute), cond.value)
    if cond.op in _CANNOT_RAISE:
        return pred
    op = cond.op

    def guarded(s: Subject) -> bool:
        try:
            return pred(s)
        except Exception as exc:  # an attribute object from the app with a broken __eq__
            _log_failure(where, op, cond.attribute, exc)
            return False

    return guarded


# Operators whose predicates only test str/None values and cannot raise: not wrapped.
_CANNOT_RAISE = frozenset(
    {
        "starts_with",
        "ends_with",
        "exists",
        "semver_eq",
        "semver_lt",
        "semver_lte",
        "semver_gt",
        "semver_gte",
    }
)
_FAILURE_EVERY = 60.0  # seconds between two log lines for one (flag, operator)
_failures: dict[tuple[str, str], float] = {}


def _log_failure(where: str, op: str, attribute: str, exc: Exception) -> None:
    """Log a failing condition once per ``where`` and operator per minute (bounded memory)."""
    now = time.monotonic()
    key = (where, op)
    last = _failures.get(key)
    if last is not None and now - last < _FAILURE_EVERY:
        return
    if len(_failures) >= 1000:
        _failures.clear()
    _failures[key] = now
    log.error(
        "rampup: condition %r %s in %s raised %s: %s; it does not match (logged once a minute "
        "per flag and operator)",
        attribute[:100],
        op,
        where,
        type(exc).__name__,
        str(exc)[:200],
    )
