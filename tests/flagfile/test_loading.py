"""Environments, prerequisites, owners/expiry and client flags in the flag file: what loads,
how it evaluates, and a located error for every new field."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rampup import ConfigError, Reason, Subject
from rampup.config import load
from rampup.context import Flags

ADVANCED = Path(__file__).resolve().parents[2] / "examples" / "flags-advanced.toml"


def problems(doc: Any, env: str | None = "") -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load(doc, env=env)
    return [(p.where, p.message) for p in info.value.problems]


def test_new_fields_load_into_the_model() -> None:
    """owner, expires, kind, client and requires land on the Flag."""
    snap = load(ADVANCED, env="")
    f = snap.flags["new-checkout"]
    assert (f.owner, f.expires, f.kind, f.client) == (
        "team-checkout",
        date(2027, 3, 31),
        "temporary",
        True,
    )
    assert snap.flags["payment-provider"].kind == "permanent"
    assert [(r.flag, r.variant) for r in snap.flags["express-pay"].requires] == [
        ("new-checkout", "on"),
        ("payment-provider", "stripe"),
    ]
    assert snap.client_keys == ("new-checkout", "dark-mode")


def test_expires_from_json_or_yaml_string() -> None:
    """An ISO date string (JSON, YAML) is read as a date."""
    snap = load({"flags": {"a": {"expires": "2026-05-01"}}}, env="")
    assert snap.flags["a"].expires == date(2026, 5, 1)


def test_environment_overlays_replace_fields() -> None:
    """Each environment serves its overlay; the base flags serve without one."""
    base = load(ADVANCED, env="")
    prod = load(ADVANCED, env="production")
    dev = load(ADVANCED, env="development")
    assert base.environment == ""
    assert prod.environment == "production"
    assert not base.flags["express-pay"].killed
    assert prod.evaluate("express-pay", Subject("u")).reason is Reason.KILLED
    assert all(dev.evaluate("new-checkout", Subject(f"u{i}")).variant == "on" for i in range(50))
    # fields an overlay does not name are the base flag's
    assert prod.flags["express-pay"].requires == base.flags["express-pay"].requires


def test_env_comes_from_rampup_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without env=, $RAMPUP_ENV names the environment; env= wins over it."""
    monkeypatch.setenv("RAMPUP_ENV", "production")
    assert load(ADVANCED).environment == "production"
    assert load(ADVANCED, env="staging").environment == "staging"


def test_unknown_environment_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name the file does not define fails the load, naming the ones it does."""
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*production"):
        load(ADVANCED, env="prod")
    monkeypatch.setenv("RAMPUP_ENV", "qa")
    with pytest.raises(ConfigError, match="unknown environment 'qa'"):
        load({"flags": {}})


def test_every_environment_is_validated_on_every_load() -> None:
    """A broken overlay of one environment fails loading any environment (one verdict)."""
    doc = {
        "flags": {"a": {}},
        "environments": {"ok": {}, "bad": {"flags": {"a": {"default": "maybe"}}}},
    }
    assert (
        "environments.bad.flags.a.default",
        "'maybe' is not a variant of this flag",
    ) in problems(doc, env="ok")


def test_bucketing_is_independent_of_the_environment() -> None:
    """A subject keeps its bucket: a ramp widened in production keeps staging's 'on' subjects."""
    doc = {
        "flags": {"r": {"rules": [{"split": {"on": 10, "off": 90}}]}},
        "environments": {
            "production": {"flags": {"r": {"rules": [{"split": {"on": 30, "off": 70}}]}}}
        },
    }
    base, prod = load(doc, env=""), load(doc, env="production")
    on_base = {i for i in range(2000) if base.evaluate("r", Subject(f"u{i}")).variant == "on"}
    on_prod = {i for i in range(2000) if prod.evaluate("r", Subject(f"u{i}")).variant == "on"}
    assert on_base
    assert on_base < on_prod


def test_unmet_prerequisite_serves_off_with_a_reason() -> None:
    """A failed prerequisite serves off (or the default) and names the prerequisite."""
    doc = {
        "flags": {
            "base": {"default": "off"},
            "dep": {"requires": [{"flag": "base", "variant": "on"}], "rules": [{"serve": "on"}]},
            "multi": {
                "variants": ["a", "b"],
                "default": "b",
                "requires": [{"flag": "base"}],
                "rules": [{"serve": "a"}],
            },
        }
    }
    snap = load(doc, env="")
    d = snap.evaluate("dep", Subject("u"))
    assert (d.variant, d.reason) == ("off", Reason.PREREQUISITE_FAILED)
    assert "'base' served 'off', not 'on'" in d.detail
    assert snap.evaluate("multi", Subject("u")).variant == "b"  # no off: the default


def test_met_prerequisites_let_the_rules_decide() -> None:
    """When every prerequisite is met, the flag's own rules decide."""
    doc = {
        "flags": {
            "a": {"default": "on"},
            "b": {"variants": ["x", "y"], "default": "y"},
            "c": {
                "requires": [{"flag": "a"}, {"flag": "b", "variant": "y"}],
                "rules": [{"serve": "on"}],
            },
        }
    }
    d = load(doc, env="").evaluate("c", Subject("u"))
    assert (d.variant, d.reason) == ("on", Reason.RULE_MATCH)


def test_kill_and_override_win_over_prerequisites() -> None:
    """A killed flag serves KILLED, an honoured override forces, whatever its prerequisites."""
    doc = {
        "flags": {
            "a": {"default": "off"},
            "k": {"killed": True, "requires": [{"flag": "a"}]},
            "o": {"requires": [{"flag": "a"}]},
        }
    }
    snap = load(doc, env="")
    assert snap.evaluate("k", Subject("u")).reason is Reason.KILLED
    assert snap.evaluate("o", Subject("u"), override="on").reason is Reason.OVERRIDE


def test_prerequisites_resolve_the_subject_lazily() -> None:
    """A flag with prerequisites is not constant: it asks for the subject, once per read."""
    doc = {"flags": {"a": {"default": "on"}, "b": {"default": "on", "requires": [{"flag": "a"}]}}}
    calls = []

    def subject() -> Subject:
        calls.append(1)
        return Subject("u")

    f = Flags(load(doc, env=""), subject)
    assert f.enabled("a")
    assert calls == []
    assert f.enabled("b")
    assert calls == [1]


@pytest.mark.parametrize(
    ("doc", "where", "message"),
    [
        ({"a": {"owner": 1}}, "flags.a.owner", "expects a string, got int 1"),
        (
            {"a": {"expires": "next week"}},
            "flags.a.expires",
            "expects a date such as 2026-12-31, got 'next week'",
        ),
        (
            {"a": {"expires": "2026-01-01T00:00:00Z"}},
            "flags.a.expires",
            "expects a date such as 2026-12-31, got '2026-01-01T00:00:00Z'",
        ),
        ({"a": {"kind": "forever"}}, "flags.a.kind", "unknown kind 'forever'"),
        (
            {"a": {"kind": "permanent", "expires": "2026-01-01"}},
            "flags.a.expires",
            "a permanent flag does not expire",
        ),
        ({"a": {"client": 1}}, "flags.a.client", "expects true or false, got int 1"),
        (
            {"a": {"requires": "b"}},
            "flags.a.requires",
            'expects a list of { flag = "...", variant = "..." }, got str \'b\'',
        ),
        (
            {"a": {"requires": ["b"]}},
            "flags.a.requires[0]",
            'expects a table { flag = "...", variant = "on" }, got str \'b\'',
        ),
        ({"a": {"requires": [{"variant": "on"}]}}, "flags.a.requires[0].flag", "missing"),
        (
            {"a": {"requires": [{"flag": "b", "when": 1}]}, "b": {}},
            "flags.a.requires[0].when",
            "unknown field",
        ),
        (
            {"a": {"requires": [{"flag": "nope"}]}},
            "flags.a.requires[0].flag",
            "unknown flag 'nope'",
        ),
        (
            {"a": {"requires": [{"flag": "b", "variant": "x"}]}, "b": {}},
            "flags.a.requires[0].variant",
            "'x' is not a variant of flag 'b'",
        ),
        (
            {"a": {"requires": [{"flag": "a"}]}},
            "flags.a.requires[0].flag",
            "prerequisite cycle: a -> a",
        ),
        (
            {
                "a": {"requires": [{"flag": "b"}]},
                "b": {"requires": [{"flag": "c"}]},
                "c": {"requires": [{"flag": "a"}]},
            },
            "flags.c.requires[0].flag",
            "prerequisite cycle: a -> b -> c -> a",
        ),
    ],
)
def test_located_error_for_each_new_flag_field(
    doc: dict[str, Any], where: str, message: str
) -> None:
    """Every new field has a located error naming the field and what is wrong."""
    assert (where, message) in problems({"flags": doc})


@pytest.mark.parametrize(
    ("envs", "where", "message"),
    [
        ([], "environments", "expects a table of environments, got list []"),
        ({"bad name!": {}}, "environments.'bad name!'", "invalid environment name"),
        ({"p": 1}, "environments.p", "expects a table with a [flags] table of overlays, got int 1"),
        ({"p": {"flag": {}}}, "environments.p.flag", "unknown field"),
        (
            {"p": {"flags": {"zz": {}}}},
            "environments.p.flags.zz",
            "overlays a flag that [flags] does not define",
        ),
        (
            {"p": {"flags": {"a": 3}}},
            "environments.p.flags.a",
            "expects a table of fields to change, got int 3",
        ),
        (
            {"p": {"flags": {"a": {"salt": "s"}}}},
            "environments.p.flags.a.salt",
            "cannot differ per environment",
        ),
        (
            {"p": {"flags": {"a": {"variants": ["x", "y"]}}}},
            "environments.p.flags.a.variants",
            "cannot differ per environment",
        ),
        (
            {"p": {"flags": {"a": {"killed": "yes"}}}},
            "environments.p.flags.a.killed",
            "expects true or false, got str 'yes'",
        ),
        (
            {"p": {"flags": {"a": {"rules": [{"serve": "maybe"}]}}}},
            "environments.p.flags.a.rules[0].serve",
            "'maybe' is not a variant of this flag",
        ),
        (
            {"p": {"flags": {"b": {"requires": [{"flag": "a"}]}}}},
            "environments.p.flags.b.requires[0].flag",
            "prerequisite cycle: a -> b -> a",
        ),
    ],
)
def test_located_error_for_each_environment_field(envs: Any, where: str, message: str) -> None:
    """Overlays are validated like flags, located under their environment."""
    doc = {"flags": {"a": {"requires": [{"flag": "b"}]}, "b": {}}, "environments": envs}
    assert (where, message) in problems(doc)


def test_environment_errors_point_at_their_line(tmp_path: Path) -> None:
    """A problem in an overlay of a TOML file is reported at the overlay's line."""
    path = tmp_path / "flags.toml"
    path.write_text(
        '[flags.a]\ndefault = "on"\n\n[environments.production.flags.a]\nkilled = "yes"\n'
    )
    with pytest.raises(ConfigError) as info:
        load(path, env="")
    assert [(p.where, p.line) for p in info.value.problems] == [
        ("environments.production.flags.a.killed", 5)
    ]


def test_prerequisite_chains_are_bounded() -> None:
    """A chain longer than MAX_CHAIN is a located error (evaluation recurses once per link);
    one of exactly MAX_CHAIN flags loads and evaluates."""
    from rampup.config import MAX_CHAIN

    def chain(n: int) -> dict[str, Any]:
        return {
            "flags": {
                f"f{i}": {
                    "default": "on",
                    **({"requires": [{"flag": f"f{i + 1}"}]} if i < n - 1 else {}),
                }
                for i in range(n)
            }
        }

    snap = load(chain(MAX_CHAIN), env="")
    assert snap.evaluate("f0", Subject("u")).variant == "on"
    where = [w for w, m in problems(chain(MAX_CHAIN + 1)) if "longer than" in m]
    assert where == [f"flags.f{MAX_CHAIN - 1}.requires[0].flag"]


def test_requirement_on_a_flag_missing_from_a_built_snapshot() -> None:
    """Built from model objects without validation, a requirement on a missing flag is unmet
    (the prerequisite serves None), with the reason saying so."""
    from rampup.engine import Snapshot
    from rampup.model import Flag, Requirement, Variant

    flag = Flag(
        "a",
        (Variant("on", True), Variant("off", False)),
        "on",
        requires=(Requirement("gone", "on"),),
    )
    d = Snapshot.build({"a": flag}, {}).evaluate("a", Subject("u"))
    assert (d.variant, d.reason, d.detail) == (
        "off",
        Reason.PREREQUISITE_FAILED,
        "prerequisite 'gone' served None, not 'on'",
    )


def test_requirement_of_an_invalid_flag_is_not_reported_twice() -> None:
    """Requiring a flag that is itself invalid reports that flag's problem only."""
    found = problems({"flags": {"a": {"requires": [{"flag": "b"}]}, "b": {"killed": "yes"}}})
    assert found == [("flags.b.killed", "expects true or false, got str 'yes'")]


def test_proxy_client_reads_the_bound_flags() -> None:
    """rampup.flags.client() answers for the bound request's Flags."""
    from rampup import flags
    from rampup.context import bound

    snap = load({"flags": {"a": {"client": True, "default": "on"}, "b": {}}}, env="")
    with bound(Flags(snap, Subject("u"))):
        assert flags.client() == {"a": True}
