"""Signed overrides have limits: a maximum lifetime and a minimum secret length (issue 12)."""

from __future__ import annotations

import logging
import time

import pytest

import rampup
from rampup._request import Settings
from rampup._signing import MAX_TTL, derive_keys, sign, verify
from rampup.overrides import read_values, reader_for
from rampup.wsgi import RampupMiddleware
from tests.test_overrides import FLAGS, SNAP, flag_app, wsgi_get

SECRET = "limits-secret-0123456789abcdef-0123456789"
KEYS = derive_keys(SECRET)
NOW = 1_800_000_000.0
MAKE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def test_verify_refuses_a_token_living_longer_than_the_maximum() -> None:
    """A token from sign() expiring in a year is refused; one at the 30-day cap is accepted."""
    long_lived = sign("button=green", int(NOW + 365 * 86400), SECRET)
    token, why = verify(long_lived, KEYS, NOW)
    assert token is None
    assert why == "lives too long (expires in 365 days; max 30 days)"
    ok, why = verify(sign("button=green", int(NOW + MAX_TTL), SECRET), KEYS, NOW)
    assert ok is not None
    assert why == ""


def test_max_lifetime_is_configurable() -> None:
    """override_max_ttl lowers (or raises) the cap the middleware applies."""
    tok = sign("button=green", int(time.time()) + 7200, SECRET)
    strict = RampupMiddleware(
        flag_app("button"), FLAGS, override_secret=SECRET, override_max_ttl=3600
    )
    _, headers, body = wsgi_get(strict, x_rampup_override=tok)
    assert body == b"button=blue/DEFAULT"
    lenient = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    _, headers, body = wsgi_get(lenient, x_rampup_override=tok)
    assert body == b"button=green/OVERRIDE"


@pytest.mark.parametrize(
    "options",
    [
        {"override_secret": "short"},
        {"override_secret": (SECRET, "old-and-short")},
        {"overrides": "signed", "framework_secret": "short-framework-secret"},
    ],
)
def test_short_secret_refused_in_production(options: dict[str, object]) -> None:
    """A secret under 32 bytes fails at start-up outside debug mode, saying how to make one."""
    with pytest.raises(ValueError, match="at least 32") as info:
        reader_for(Settings.from_options(options))
    assert MAKE in str(info.value)


def test_short_secret_allowed_with_a_warning_in_debug(caplog: pytest.LogCaptureFixture) -> None:
    """In debug mode a short secret works, with a warning that says how to make a real one."""
    caplog.set_level(logging.WARNING, logger="rampup")
    reader = reader_for(Settings.from_options({"override_secret": "short", "debug": True}))
    assert reader is not None
    assert reader.keys == derive_keys("short")
    assert any(MAKE in r.getMessage() for r in caplog.records)


def test_short_framework_secret_turns_signed_overrides_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A short SECRET_KEY (not chosen for overrides) does not break the app: under the default
    policy overrides are off, with an error saying why and how to make a secret."""
    caplog.set_level(logging.ERROR, logger="rampup")
    assert reader_for(Settings.from_options({"framework_secret": "s3cret"})) is None
    assert any("signed overrides are off" in r.getMessage() for r in caplog.records)


def test_token_bound_to_another_subject_is_reported() -> None:
    """A valid token bound to another subject is refused, and the report header says so (its
    holder has an authentic token, so the reason is shown, as for any signed override)."""
    app = RampupMiddleware(flag_app("button"), FLAGS, override_secret=SECRET)
    tok = sign("button=green", int(time.time()) + 3600, SECRET, subject="qa-1")
    _, headers, body = wsgi_get(app, x_rampup_override=tok)
    assert body == b"button=blue/DEFAULT"
    report = headers["x-rampup-overrides"]
    assert len(report) == 1
    assert report[0].startswith("refused token v1.")
    assert report[0].endswith("(header, signed): bound to another subject")


def test_bound_token_still_serves_its_subject() -> None:
    """Binding still works for the subject named in the token."""
    tok = sign("button=green", int(NOW + 60), SECRET, subject="qa-1")
    state = read_values([(tok, "header")], SNAP, KEYS, now=NOW, subject="qa-1")
    assert dict(state.served) == {"button": "green"}
    assert rampup.load(FLAGS).flags["button"].overridable
