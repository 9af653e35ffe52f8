"""Condition operators: each compiles ``(attribute getter, value)`` into a predicate once.

``check_value`` validates an operator's value at load time (returning an error message), so
``compile_condition`` never fails on a loaded file. A missing attribute (None) never matches,
except for ``exists = false``: a rule cannot accidentally include subjects it knows nothing about.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .model import Condition, Subject

__all__ = ["OPERATORS", "Predicate", "check_value", "compile_condition", "parse_semver"]

Predicate = Callable[[Subject], bool]

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

SemverKey = tuple[int, int, int, tuple[tuple[int, int | str], ...]]


def parse_semver(text: str) -> SemverKey | None:
    """A sort key for a semantic version (``1.2``, ``v1.2.3-rc.1``), or None if it is not one.

    Pre-releases sort before the release, identifiers compare per SemVer 2.0 section 11.
    """
    m = _SEMVER.match(text.strip()) if isinstance(text, str) else None
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
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
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
    try:
        re.compile(value)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    return None


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
    search = re.compile(value).search
    return lambda s: isinstance(v := get(s), str) and search(v) is not None


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


def compile_condition(cond: Condition) -> Predicate:
    """The predicate for one validated condition."""
    test = _INLINE.get(cond.op)
    if test is not None and cond.attribute != "key":
        name, arg = cond.attribute, _strs(cond.value)
        return lambda s: isinstance(v := s.attributes.get(name), str) and test(v, arg)
    return OPERATORS[cond.op][1](_getter(cond.attribute), cond.value)
