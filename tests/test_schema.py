"""The JSON Schema shipped in the package agrees with the loader: every valid flag file
validates, every invalid document the schema can judge fails it, and the fields are the same."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rampup import config
from rampup._files import read
from rampup.cli.schema import schema_text
from rampup.errors import ConfigError
from rampup.operators import OPERATORS

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(schema_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
VALID_FILES = [
    ROOT / "examples" / "flags.toml",
    ROOT / "examples" / "flags-advanced.toml",
    ROOT / "src" / "rampup" / "data" / "flags.toml",
    ROOT / "tests" / "fixtures" / "refs_project" / "flags.toml",
]


def as_json(value: Any) -> Any:
    """What an editor sees: TOML/YAML dates and times as ISO strings."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def test_schema_is_a_valid_draft_07_schema() -> None:
    """The shipped file is a valid draft-07 JSON Schema (the draft editors support best)."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_rampup_schema_prints_the_shipped_file() -> None:
    """`rampup schema` prints exactly the schema in the package."""
    out = subprocess.run(
        [sys.executable, "-m", "rampup", "schema"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == SCHEMA


@pytest.mark.parametrize(
    ("schema_def", "loader_fields"),
    [
        ("flag", config._FLAG),
        ("rule", config._RULE),
        ("segment", config._SEGMENT),
        ("condition", config._CONDITION),
        ("step", config._STEP),
        ("requirement", config._REQUIREMENT),
        ("environment", config._ENVIRONMENT),
        ("overlay", config._OVERLAY),
    ],
)
def test_schema_fields_are_the_loader_fields(schema_def: str, loader_fields: set[str]) -> None:
    """Each table allows the same fields in the schema as in the loader."""
    assert set(SCHEMA["definitions"][schema_def]["properties"]) == loader_fields


def test_schema_rollout_fields_are_the_loader_fields() -> None:
    """A rule's rollout table (held included) allows the same fields as the loader."""
    from rampup import rollout

    props = SCHEMA["definitions"]["rule"]["properties"]["rollout"]["properties"]
    assert set(props) == rollout._ROLLOUT
    assert set(props["guard"]["properties"]) == rollout._GUARD


def test_schema_top_level_and_operators_match_the_loader() -> None:
    """Top-level tables and the operator list are the loader's."""
    assert set(SCHEMA["properties"]) == config._TOP
    assert SCHEMA["definitions"]["condition"]["properties"]["op"]["enum"] == list(OPERATORS)
    assert SCHEMA["definitions"]["key"]["pattern"] == config.KEY_PATTERN.pattern
    assert SCHEMA["definitions"]["variantName"]["pattern"] == config.VARIANT_PATTERN.pattern


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_every_valid_example_validates(path: Path) -> None:
    """Every example and fixture flag file loads in every environment and fits the schema."""
    data, _, problem = read(path)
    assert problem is None
    for env in ["", *config.environments_of(data)]:
        config.load(path, env=env)
    errors = [e.message for e in VALIDATOR.iter_errors(as_json(data))]
    assert errors == []


#: Documents the loader rejects, each for a reason a schema can express.
INVALID: dict[str, dict[str, Any]] = {
    "no flags table": {"segments": {}},
    "unknown top-level table": {"flags": {}, "flagz": {}},
    "bad version": {"version": 2, "flags": {}},
    "bad flag key": {"flags": {"no spaces": {}}},
    "unknown flag field": {"flags": {"a": {"killd": True}}},
    "killed not a bool": {"flags": {"a": {"killed": "yes"}}},
    "one variant": {"flags": {"a": {"variants": ["x"], "default": "x"}}},
    "bad variant name": {"flags": {"a": {"variants": ["x y", "z"], "default": "z"}}},
    "rule with two outcomes": {"flags": {"a": {"rules": [{"serve": "on", "split": {"on": 100}}]}}},
    "rule with no outcome": {"flags": {"a": {"rules": [{"segments": []}]}}},
    "unknown rule field": {"flags": {"a": {"rules": [{"serve": "on", "when": 1}]}}},
    "weight over 100": {"flags": {"a": {"rules": [{"split": {"on": 101, "off": -1}}]}}},
    "unknown operator": {
        "flags": {"a": {"rules": [{"conditions": [{"attribute": "x", "op": "eq"}], "serve": "on"}]}}
    },
    "condition without attribute": {
        "flags": {"a": {"rules": [{"conditions": [{"op": "exists"}], "serve": "on"}]}}
    },
    "ramp step without split": {"flags": {"a": {"rules": [{"ramp": [{"from": "2026-01-01"}]}]}}},
    "empty ramp": {"flags": {"a": {"rules": [{"ramp": []}]}}},
    "segment matching nobody": {"flags": {}, "segments": {"s": {"description": "x"}}},
    "owner not a string": {"flags": {"a": {"owner": 3}}},
    "expires not a date": {"flags": {"a": {"expires": "soon"}}},
    "unknown kind": {"flags": {"a": {"kind": "forever"}}},
    "permanent flag expiring": {"flags": {"a": {"kind": "permanent", "expires": "2026-01-01"}}},
    "client not a bool": {"flags": {"a": {"client": "yes"}}},
    "requires not a list": {"flags": {"a": {"requires": "b"}, "b": {}}},
    "requirement without flag": {"flags": {"a": {"requires": [{"variant": "on"}]}}},
    "unknown requirement field": {
        "flags": {"a": {"requires": [{"flag": "b", "value": "on"}]}, "b": {}}
    },
    "environment not a table": {"flags": {}, "environments": {"prod": 1}},
    "unknown environment field": {"flags": {}, "environments": {"prod": {"flag": {}}}},
    "overlay of the salt": {
        "flags": {"a": {}},
        "environments": {"prod": {"flags": {"a": {"salt": "x"}}}},
    },
    "overlay of the variants": {
        "flags": {"a": {}},
        "environments": {"prod": {"flags": {"a": {"variants": ["x", "y"]}}}},
    },
    "overlay killed not a bool": {
        "flags": {"a": {}},
        "environments": {"prod": {"flags": {"a": {"killed": "yes"}}}},
    },
}


@pytest.mark.parametrize("doc", list(INVALID.values()), ids=list(INVALID))
def test_every_invalid_fixture_fails_loader_and_schema(doc: dict[str, Any]) -> None:
    """A document the loader rejects (for a reason a schema can express) fails the schema."""
    with pytest.raises(ConfigError):
        config.load(doc)
    assert not VALIDATOR.is_valid(doc)
