"""Condition operators: what each one matches, with missing attributes and mismatched types."""

from __future__ import annotations

from typing import Any

import pytest

import rampup
from rampup import Reason, Subject
from rampup.model import Condition
from rampup.operators import OPERATORS, check_value, compile_condition, parse_semver

MISSING = object()  # marks "the subject has no such attribute"


def holds(op: str, value: Any, attr: Any) -> bool:
    """Does ``attr <op> value`` hold for a subject (attr MISSING: not set at all)?"""
    assert check_value(op, value) is None, (op, value)
    if isinstance(value, list):
        value = tuple(value)  # what the loader stores
    pred = compile_condition(Condition("a", op, value))
    attrs = {} if attr is MISSING else {"a": attr}
    return pred(Subject("user-1", attrs))


CASES: list[tuple[str, Any, Any, bool]] = [
    # equals: same value, or the same text for string attributes (headers, cookies)
    ("equals", "pro", "pro", True),
    ("equals", "pro", "Pro", False),
    ("equals", "pro", "free", False),
    ("equals", 42, 42, True),
    ("equals", 42, 42.0, True),
    ("equals", 42, "42", True),
    ("equals", 42, 43, False),
    ("equals", True, True, True),
    ("equals", True, "true", True),
    ("equals", True, "True", False),
    ("equals", False, False, True),
    ("equals", False, "false", True),
    ("equals", "42", 42, False),
    ("equals", "pro", ["pro"], False),
    ("equals", "pro", None, False),
    ("equals", "pro", MISSING, False),
    # not_equals: never holds for a missing attribute
    ("not_equals", "pro", "free", True),
    ("not_equals", "pro", "pro", False),
    ("not_equals", 42, "42", False),
    ("not_equals", "pro", None, False),
    ("not_equals", "pro", MISSING, False),
    # in / not_in
    ("in", ["admin", "owner"], "owner", True),
    ("in", ["admin", "owner"], "guest", False),
    ("in", [1, 2, 3], 2, True),
    ("in", [1, 2, 3], "2", True),
    ("in", [1, 2, 3], "4", False),
    ("in", ["a"], ["a"], False),
    ("in", ["a"], {"a": 1}, False),
    ("in", ["a"], MISSING, False),
    ("in", [], "a", False),
    ("not_in", ["admin", "owner"], "guest", True),
    ("not_in", ["admin", "owner"], "admin", False),
    ("not_in", [1, 2], "1", False),
    ("not_in", ["a"], MISSING, False),
    # starts_with / ends_with / contains: strings (contains also searches lists)
    ("starts_with", "/api/", "/api/v2", True),
    ("starts_with", "/api/", "/web", False),
    ("starts_with", ["/a", "/b"], "/b/x", True),
    ("starts_with", "1", 123, False),
    ("starts_with", "x", MISSING, False),
    ("ends_with", "@example.com", "ann@example.com", True),
    ("ends_with", "@example.com", "ann@example.com.evil", False),
    ("ends_with", ["@a.com", "@b.com"], "x@b.com", True),
    ("ends_with", "@example.com", ["ann@example.com"], False),
    ("ends_with", "@example.com", MISSING, False),
    ("contains", "beta", "public-beta-2", True),
    ("contains", "beta", "stable", False),
    ("contains", ["x", "beta"], "beta", True),
    ("contains", "beta", ["alpha", "beta"], True),
    ("contains", "beta", ["alphabeta"], False),
    ("contains", "1", 12, False),
    ("contains", "beta", MISSING, False),
    # matches / regex: re.search, compiled at load
    ("matches", r"^user-\d+$", "user-42", True),
    ("matches", r"^user-\d+$", "user-x", False),
    ("matches", r"\d", "abc1", True),
    ("matches", r"\d", 1, False),
    ("matches", r".*", MISSING, False),
    ("regex", r"(?i)^CHROME", "chrome/120", True),
    ("regex", r"^a$", "b", False),
    # lt / lte / gt / gte: numbers, or numeric strings
    ("lt", 10, 9, True),
    ("lt", 10, 10, False),
    ("lt", 10, 9.99, True),
    ("lt", 10, "9", True),
    ("lt", 10, "nine", False),
    ("lt", 10, True, False),
    ("lt", 10, [1], False),
    ("lt", 10, MISSING, False),
    ("lte", 10, 10, True),
    ("lte", 10, 11, False),
    ("lte", "10.5", 10.5, True),
    ("gt", 10, 11, True),
    ("gt", 10, 10, False),
    ("gt", 10, "1e3", True),
    ("gt", 0, -1, False),
    ("gt", 10, None, False),
    ("gte", 10, 10, True),
    ("gte", 10, 9, False),
    ("gte", 18, "18", True),
    ("gte", 18, float("nan"), False),
    # semver_*: semantic versions, pre-releases before the release
    ("semver_eq", "1.2.3", "1.2.3", True),
    ("semver_eq", "1.2.3", "v1.2.3", True),
    ("semver_eq", "1.2.0", "1.2", True),
    ("semver_eq", "1.2.3", "1.2.3+build.7", True),
    ("semver_eq", "1.2.3", "1.2.3-rc.1", False),
    ("semver_eq", "1.2.3", "1.2.4", False),
    ("semver_lt", "4.2.0", "4.1.9", True),
    ("semver_lt", "4.2.0", "4.2.0", False),
    ("semver_lt", "4.2.0", "4.2.0-rc.1", True),
    ("semver_lt", "4.2.0", "4.10.0", False),
    ("semver_lte", "4.2.0", "4.2.0", True),
    ("semver_lte", "4.2.0", "4.2.1", False),
    ("semver_gt", "4.2.0", "4.10.0", True),
    ("semver_gt", "4.2.0", "4.2.0", False),
    ("semver_gt", "4.2.0-beta", "4.2.0-rc", True),
    ("semver_gte", "4.2.0", "4.2.0", True),
    ("semver_gte", "4.2.0", "4.2.0-rc.9", False),
    ("semver_gte", "4.2.0", "not-a-version", False),
    ("semver_gte", "4.2.0", 5, False),
    ("semver_gte", "4.2.0", 4.3, False),
    ("semver_gte", "4.2.0", MISSING, False),
    # exists
    ("exists", True, "x", True),
    ("exists", True, "", True),
    ("exists", True, False, True),
    ("exists", True, MISSING, False),
    ("exists", True, None, False),
    ("exists", False, MISSING, True),
    ("exists", False, "x", False),
]


@pytest.mark.parametrize(("op", "value", "attr", "expected"), CASES)
def test_operator(op: str, value: Any, attr: Any, expected: bool) -> None:
    """Each operator matches exactly the attribute values it documents."""
    assert holds(op, value, attr) is expected


def test_every_operator_is_covered() -> None:
    """The table above exercises every operator the loader accepts."""
    assert {op for op, *_ in CASES} == set(OPERATORS)


EXAMPLE_VALUE = {
    "equals": "x",
    "not_equals": "x",
    "in": ["x"],
    "not_in": ["x"],
    "starts_with": "x",
    "ends_with": "x",
    "contains": "x",
    "matches": "x",
    "regex": "x",
    "lt": 1,
    "lte": 1,
    "gt": 1,
    "gte": 1,
    "semver_eq": "1.0.0",
    "semver_lt": "1.0.0",
    "semver_lte": "1.0.0",
    "semver_gt": "1.0.0",
    "semver_gte": "1.0.0",
    "exists": False,
}


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_missing_attribute_never_matches(op: str) -> None:
    """A subject without the attribute matches no operator, except `exists = false`."""
    assert holds(op, EXAMPLE_VALUE[op], MISSING) is (op == "exists")


def test_key_is_the_subject_key() -> None:
    """The attribute name `key` reads the subject key, not an attribute called key."""
    pred = compile_condition(Condition("key", "starts_with", "qa-"))
    assert pred(Subject("qa-alice"))
    assert not pred(Subject("alice", {"key": "qa-x"}))
    assert not pred(Subject(None))


SEMVER_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0-0",
    "2.0.0",
    "10.0.0",
]


def test_semver_precedence_spec_example() -> None:
    """Versions sort as SemVer 2.0 section 11 orders them, pre-releases included."""
    keys = [parse_semver(v) for v in SEMVER_ORDER]
    assert None not in keys
    assert sorted(SEMVER_ORDER, key=parse_semver) == SEMVER_ORDER  # type: ignore[arg-type]
    for i, low in enumerate(SEMVER_ORDER):
        for high in SEMVER_ORDER[i + 1 :]:
            assert holds("semver_lt", high, low), (low, high)
            assert holds("semver_gt", low, high), (low, high)
            assert not holds("semver_gte", high, low)
            assert holds("semver_lte", low, low)


@pytest.mark.parametrize(
    "text", ["", "1.2.3.4", "01.2.3", "1.2.3-", "latest", "1..2", "a.b.c", "1.2.3-rc..1"]
)
def test_not_a_semver(text: str) -> None:
    """Things that are not semantic versions parse to None (and so never match)."""
    assert parse_semver(text) is None


@pytest.mark.parametrize(
    ("op", "value", "fragment"),
    [
        ("equals", ["a"], "expects a string, number or boolean"),
        ("equals", None, "expects a string, number or boolean"),
        ("not_equals", {"a": 1}, "expects a string, number or boolean"),
        ("in", "admin", "expects a list"),
        ("in", [["nested"]], "expects a list"),
        ("not_in", 5, "expects a list"),
        ("starts_with", 5, "expects a string or a non-empty list of strings"),
        ("ends_with", [], "expects a string or a non-empty list of strings"),
        ("contains", ["a", 1], "expects a string or a non-empty list of strings"),
        ("matches", "([unclosed", "is not a valid regular expression"),
        ("regex", 5, "expects a regular expression string"),
        ("lt", "ten", "expects a number"),
        ("lte", True, "expects a number"),
        ("gt", None, "expects a number"),
        ("gte", [1], "expects a number"),
        ("semver_eq", "one", "expects a semantic version"),
        ("semver_lt", 1, "expects a semantic version"),
        ("semver_lte", "1.2.3.4", "expects a semantic version"),
        ("semver_gt", None, "expects a semantic version"),
        ("semver_gte", ["1.0.0"], "expects a semantic version"),
        ("exists", "yes", "expects true or false"),
    ],
)
def test_bad_values_rejected_at_load(op: str, value: Any, fragment: str) -> None:
    """A value unfit for its operator is a located ConfigError at load, not a runtime surprise."""
    assert check_value(op, value) is not None
    cond = {"attribute": "a", "op": op, "value": value}
    with pytest.raises(rampup.ConfigError) as info:
        rampup.load({"flags": {"f": {"rules": [{"conditions": [cond], "serve": "on"}]}}})
    (problem,) = info.value.problems
    assert problem.where == "flags.f.rules[0].conditions[0].value"
    assert fragment in problem.message
    assert op in problem.message


def test_exists_defaults_to_true() -> None:
    """`exists` without a value means the attribute must be present."""
    cond = {"attribute": "beta", "op": "exists"}
    snap = rampup.load({"flags": {"f": {"rules": [{"conditions": [cond], "serve": "on"}]}}})
    assert snap.evaluate("f", Subject("u", {"beta": "1"})).reason is Reason.RULE_MATCH
    assert snap.evaluate("f", Subject("u")).reason is Reason.DEFAULT


def test_conditions_all_must_hold_through_load() -> None:
    """Conditions of a rule are ANDed: every one must hold for the rule to match."""
    conds = [
        {"attribute": "email", "op": "ends_with", "value": "@example.com"},
        {"attribute": "app_version", "op": "semver_gte", "value": "4.2.0"},
        {"attribute": "age", "op": "gte", "value": 18},
    ]
    snap = rampup.load({"flags": {"f": {"rules": [{"conditions": conds, "serve": "on"}]}}})
    ok = {"email": "a@example.com", "app_version": "4.2.1", "age": "30"}
    assert snap.evaluate("f", Subject("u", ok)).variant == "on"
    for name in ok:
        attrs = {k: v for k, v in ok.items() if k != name}
        assert snap.evaluate("f", Subject("u", attrs)).variant == "off", name


def test_attribute_with_raising_eq_does_not_escape(caplog: pytest.LogCaptureFixture) -> None:
    """An attribute whose comparison raises does not match (the rule is skipped), never an
    exception, and is logged once with the flag and operator, not once per request."""

    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    cond = {"attribute": "a", "op": "equals", "value": "x"}
    snap = rampup.load(
        {"flags": {"raising-eq": {"rules": [{"conditions": [cond], "serve": "on"}]}}}
    )
    with caplog.at_level("ERROR", logger="rampup"):
        decisions = [snap.evaluate("raising-eq", Subject("u", {"a": Hostile()})) for _ in range(50)]
    assert {(d.variant, d.reason) for d in decisions} == {("off", Reason.DEFAULT)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "flag 'raising-eq'" in lines[0]
    assert "equals" in lines[0]
    assert "boom" in lines[0]
    assert caplog.records[0].exc_info is None  # no traceback


def test_booleans_are_not_numbers_in_equals_and_in() -> None:
    """`equals true` does not match 1, `in [1]` does not match True, and the reverse; the
    string forms from headers still match ("true" equals true, "1" is in [1])."""
    cases = [
        ("equals", True, 1, False),
        ("equals", True, True, True),
        ("equals", True, "true", True),
        ("equals", 1, True, False),
        ("equals", 1, 1.0, True),
        ("in", [1, 2], True, False),
        ("in", [True], 1, False),
        ("in", [True], True, True),
        ("in", [1, 2], "1", True),
        ("not_in", [1], True, True),
    ]
    for op, value, attr, expected in cases:
        snap = rampup.load(
            {
                "flags": {
                    "f": {
                        "rules": [
                            {
                                "conditions": [{"attribute": "a", "op": op, "value": value}],
                                "serve": "on",
                            }
                        ]
                    }
                }
            }
        )
        got = snap.evaluate("f", Subject("k", {"a": attr})).variant == "on"
        assert got is expected, (op, value, attr)
