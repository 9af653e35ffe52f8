"""Overlays and prerequisites decide the same through every path: Snapshot.evaluate, a
request's Flags (through an adapter, with its environment option) and ``rampup explain``."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from rampup import Subject, wsgi
from rampup.cli import main
from rampup.config import load
from rampup.context import Flags, current

ENVS = ["staging", "production"]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Flags f0..fn; fi may require only fj with j < i (no cycles), overlays per environment."""
    n = draw(st.integers(1, 5))
    flags: dict[str, Any] = {}
    for i in range(n):
        rule = draw(
            st.sampled_from(
                [
                    {"serve": "on"},
                    {"split": {"on": 50, "off": 50}},
                    {
                        "conditions": [{"attribute": "plan", "op": "equals", "value": "pro"}],
                        "serve": "on",
                    },
                ]
            )
        )
        flag: dict[str, Any] = {"rules": [rule], "killed": draw(st.booleans())}
        if i:
            deps = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True))
            flag["requires"] = [
                {"flag": f"f{j}", "variant": draw(st.sampled_from(["on", "off"]))} for j in deps
            ]
        flags[f"f{i}"] = flag
    overlay = st.fixed_dictionaries(
        {},
        optional={
            "killed": st.booleans(),
            "default": st.sampled_from(["on", "off"]),
            "rules": st.just([]),
        },
    )
    envs = {
        e: {"flags": draw(st.dictionaries(st.sampled_from(sorted(flags)), overlay, max_size=3))}
        for e in ENVS
    }
    return {"flags": flags, "environments": envs}


def explain(path: Path, key: str, subject: str, plan: str, env: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "explain",
                str(path),
                key,
                "--id",
                subject,
                "--attr",
                f"plan={plan}",
                "--env",
                env,
                "--json",
            ]
        )
    assert code == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents(),
    st.sampled_from(["", *ENVS]),
    st.text("abcxyz0123", min_size=1, max_size=6),
    st.sampled_from(["pro", "free"]),
)
def test_every_path_decides_the_same(doc: dict[str, Any], env: str, key: str, plan: str) -> None:
    """For any acyclic flags with overlays, evaluate, Flags and explain agree on each flag, and
    an environment's decisions equal those of its overlays merged by hand into the base."""
    snap = load(doc, env=env)
    subject = Subject(key, {"plan": plan})
    merged = {
        k: {**f, **doc["environments"].get(env, {}).get("flags", {}).get(k, {})}
        for k, f in doc["flags"].items()
    }
    by_hand = load({"flags": merged}, env="")
    request = Flags(snap, lambda: subject)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flags.json"
        path.write_text(json.dumps(doc))
        for k in doc["flags"]:
            d = snap.evaluate(k, subject)
            assert request.decision(k) == d
            assert by_hand.evaluate(k, subject) == d
            shown = explain(path, k, key, plan, env)
            assert (shown["variant"], shown["reason"], shown["detail"]) == (
                d.variant,
                d.reason.value,
                d.detail or None,
            )
            chain = snap.prerequisite_chain(k, subject)
            assert [(c["flag"], c["variant"]) for c in shown["prerequisites"]] == [
                (c[1], c[3].variant) for c in chain
            ]


DOC = {
    "flags": {"a": {"default": "off"}, "b": {"default": "on", "requires": [{"flag": "a"}]}},
    "environments": {"production": {"flags": {"a": {"default": "on"}}}},
}


def reader(environ: Any, start_response: Any) -> list[bytes]:
    f = current()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{f.snapshot.environment}:{f.variant('b')}:{f.decision('b').reason.value}".encode()]


def test_adapter_environment_option() -> None:
    """The adapters' environment= option picks the overlays; a request's Flags decides through
    them (prerequisites included)."""
    prod = Client(wsgi.RampupMiddleware(reader, flags=DOC, environment="production"))
    base = Client(wsgi.RampupMiddleware(reader, flags=DOC, environment=""))
    assert prod.get("/").get_data(as_text=True) == "production:on:DEFAULT"
    assert base.get("/").get_data(as_text=True) == ":off:PREREQUISITE_FAILED"


def test_adapter_reads_rampup_env(monkeypatch: Any, tmp_path: Path) -> None:
    """Without the option, a file source takes its environment from $RAMPUP_ENV."""
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DOC))
    monkeypatch.setenv("RAMPUP_ENV", "production")
    app = Client(wsgi.RampupMiddleware(reader, flags=str(path), watch=False))
    assert app.get("/").get_data(as_text=True) == "production:on:DEFAULT"


def test_flask_environment_from_config() -> None:
    """Flask reads the environment from RAMPUP_ENVIRONMENT in app.config."""
    from flask import Flask

    from rampup.flask import Rampup

    app = Flask(__name__)
    app.config["RAMPUP_ENVIRONMENT"] = "production"
    Rampup(app, flags=DOC, watch=False)
    app.get("/")(lambda: current().variant("b") or "")
    assert app.test_client().get("/").get_data(as_text=True) == "on"


def test_django_environment_from_settings() -> None:
    """Django reads the environment from RAMPUP = {"ENVIRONMENT": ...}."""
    from django.conf import settings as dj

    if not dj.configured:
        dj.configure(INSTALLED_APPS=["rampup.django"], DATABASES={}, USE_TZ=True)
    from django.test import override_settings

    from rampup.django.conf import build_settings

    with override_settings(RAMPUP={"FLAGS": DOC, "ENVIRONMENT": "staging"}):
        assert build_settings().environment == "staging"


def test_file_source_reloads_in_its_environment(tmp_path: Path) -> None:
    """A watched file keeps its environment across reloads; a reload that breaks another
    environment's overlay keeps the last good flags."""
    from rampup.sources import FileSource

    path = tmp_path / "flags.json"
    path.write_text(json.dumps(DOC))
    source = FileSource(path, watch=False, env="production")
    changed = json.loads(json.dumps(DOC))
    changed["flags"]["b"]["default"] = "off"
    path.write_text(json.dumps(changed))
    assert source.reload()
    assert source.snapshot.environment == "production"
    assert source.snapshot.evaluate("b", Subject("u")).variant == "off"
    changed["environments"]["staging"] = {"flags": {"b": {"default": "maybe"}}}
    path.write_text(json.dumps(changed))
    assert not source.reload()
    assert source.last_error is not None
    assert "environments.staging.flags.b.default" in str(source.last_error)
