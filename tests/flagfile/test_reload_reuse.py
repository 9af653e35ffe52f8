"""Incremental reloads (``load(..., previous=)``) with environments and prerequisites: what a
reload reuses from the previous snapshot never hides a change of an overlay or of a flag that
another one requires."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from rampup import ConfigError, Subject, load
from rampup.sources import FileSource

USER = Subject("user-1")


def doc(*, overlay: dict[str, Any] | None = None, checkout: str = "on") -> dict[str, Any]:
    """A flag file: ``express-pay`` requires ``new-checkout`` (served ``checkout`` to all),
    ``banner`` depends on nothing; ``overlay`` is production's overlay of ``banner``."""
    return {
        "flags": {
            "new-checkout": {"rules": [{"serve": checkout}]},
            "express-pay": {
                "requires": [{"flag": "new-checkout", "variant": "on"}],
                "rules": [{"serve": "on"}],
            },
            "banner": {"rules": [{"serve": "on"}]},
            "search": {"rules": [{"split": {"on": 50, "off": 50}}]},
        },
        "environments": {
            "production": {"flags": {} if overlay is None else {"banner": overlay}},
            "staging": {"flags": {}},
        },
    }


def test_a_removed_overlay_stops_applying_on_reload() -> None:
    """Dropping an environment's overlay in a reload serves the base flag again (the previous
    snapshot holds the overlaid flag, which must not be taken for the unchanged base)."""
    old = load(doc(overlay={"killed": True}), env="production")
    assert old.evaluate("banner", USER).reason == "KILLED"
    new = load(doc(), env="production", previous=old)
    d = new.evaluate("banner", USER)
    assert (d.variant, d.reason) == ("on", "RULE_MATCH")
    assert new.evaluate("banner", USER) == load(doc(), env="production").evaluate("banner", USER)


def test_a_changed_overlay_applies_on_reload() -> None:
    """Changing an overlay (and only the overlay) in a reload changes what the flag serves."""
    old = load(doc(overlay={"killed": True}), env="production")
    new = load(doc(overlay={"rules": [{"serve": "off"}]}), env="production", previous=old)
    d = new.evaluate("banner", USER)
    assert (d.variant, d.reason) == ("off", "RULE_MATCH")


def test_a_snapshot_of_another_environment_lends_nothing_wrong() -> None:
    """A previous snapshot of another environment does not carry its overlays over."""
    prod = load(doc(overlay={"killed": True}), env="production")
    staging = load(doc(overlay={"killed": True}), env="staging", previous=prod)
    assert staging.evaluate("banner", USER).variant == "on"
    assert staging.environment == "staging"


def test_a_changed_prerequisite_is_followed_by_the_flag_requiring_it() -> None:
    """Changing only the prerequisite's rules in a reload changes the dependent's decision; the
    dependent is compiled again while an unrelated unchanged flag is reused."""
    old = load(doc(checkout="on"), env="")
    assert old.evaluate("express-pay", USER).variant == "on"
    new = load(doc(checkout="off"), env="", previous=old)
    d = new.evaluate("express-pay", USER)
    assert (d.variant, d.reason) == ("off", "PREREQUISITE_FAILED")
    assert "prerequisite 'new-checkout' served 'off'" in (d.detail or "")
    assert not new.reused("express-pay", old)
    assert new.reused("search", old)  # reuse itself is on: only dependents are rebuilt


def test_a_reload_removing_a_required_variant_is_refused() -> None:
    """The dependent's own text is unchanged, yet its requirement is checked again: a reload
    whose prerequisite lost the required variant is a located error."""
    old = load(doc(), env="")
    changed = copy.deepcopy(doc())
    changed["flags"]["new-checkout"] = {"variants": ["a", "b"], "default": "a"}
    with pytest.raises(ConfigError, match=r"flags\.express-pay\.requires\[0\]\.variant"):
        load(changed, env="", previous=old)


def test_file_source_reload_drops_a_removed_overlay(tmp_path: Path) -> None:
    """Through a FileSource in an environment: removing the overlay from the file and
    reloading serves the base flag."""
    path = tmp_path / "flags.toml"
    base = '[flags.banner]\nrules = [{ serve = "on" }]\n\n[flags.search]\n'
    path.write_text(base + "[environments.production.flags.banner]\nkilled = true\n")
    source = FileSource(path, watch=False, env="production")
    assert source.snapshot.evaluate("banner", USER).reason == "KILLED"
    path.write_text(base + "[environments.production.flags.search]\nkilled = true\n")
    assert source.reload()
    assert source.snapshot.evaluate("banner", USER).variant == "on"
    assert source.snapshot.evaluate("search", USER).reason == "KILLED"
