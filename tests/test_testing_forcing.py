"""rampup.testing: override_flags on test classes, forcing a variant for one subject only, and
forcing from tests that run in threads."""

from __future__ import annotations

import subprocess
import sys
import threading
import unittest
from pathlib import Path
from typing import Any

import pytest

import rampup
from rampup import Reason, Subject
from rampup.testing import FlagOverrideError, override_flags, snapshot_from

FLAGS: dict[str, Any] = {
    "segments": {"beta": {"keys": ["user-7"]}},
    "flags": {
        "new-checkout": {"rules": [{"segments": ["beta"], "serve": "on"}]},
        "checkout-button": {
            "variants": {"blue": "#00f", "green": "#0f0", "orange": "#f80"},
            "default": "blue",
        },
    },
}
SNAP = snapshot_from(FLAGS)

pytest_plugins = ["pytester"]


def variant(key: str, subject: str | None = "u1") -> str | None:
    """What a fresh request for ``subject`` is served."""
    return rampup.Flags(SNAP, Subject(subject)).variant(key)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process; without hypothesis's plugin, which costs ~1 s per session."""
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


# -- class decoration -------------------------------------------------------------------------
PYTEST_CLASS = """
import rampup
from rampup import Subject
from rampup.testing import override_flags, snapshot_from

SNAP = snapshot_from({"new-checkout": False, "button": ["blue", "green"]})


def read(key):
    return rampup.Flags(SNAP, Subject("u1")).variant(key)


class Base:
    def test_inherited(self):
        assert read("new-checkout") == "on"


@override_flags({"new-checkout": "on"})
class TestCheckout(Base):
    def setup_method(self):
        self.forced_in_setup = read("new-checkout")

    def test_forced(self):
        assert read("new-checkout") == "on"

    @override_flags({"button": "green"})
    def test_method_decorator_adds_to_it(self):
        assert (read("new-checkout"), read("button")) == ("on", "green")

    async def test_async_is_forced_too(self):
        assert read("new-checkout") == "on"

    @staticmethod
    def helper():
        return 1

    def test_static_helper_left_alone(self):
        assert self.helper() == 1


def test_after_the_class():
    assert read("new-checkout") == "off"
"""


def test_decorated_pytest_class_is_collected_and_forced(pytester: pytest.Pytester) -> None:
    """A plain pytest class decorated with override_flags keeps its tests (it used to vanish:
    0 collected) and each of them, inherited ones included, runs with the variants forced."""
    pytester.makepyfile(test_classes=PYTEST_CLASS)
    pytester.makeconftest(
        "import asyncio, inspect, pytest\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_pyfunc_call(pyfuncitem):\n"
        "    if inspect.iscoroutinefunction(pyfuncitem.obj):\n"
        "        asyncio.run(pyfuncitem.obj(**{a: pyfuncitem.funcargs[a] "
        "for a in pyfuncitem._fixtureinfo.argnames}))\n"
        "        return True\n"
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*TestCheckout::test_inherited PASSED*"])


UNITTEST_CASE = """
import unittest

import rampup
from rampup import Subject
from rampup.testing import override_flags, snapshot_from

SNAP = snapshot_from({"new-checkout": False})
SEEN = []


def read():
    return rampup.Flags(SNAP, Subject("u1")).variant("new-checkout")


@override_flags({"new-checkout": "on"})
class CheckoutTests(unittest.TestCase):
    def setUp(self):
        SEEN.append(("setUp", read()))

    def tearDown(self):
        SEEN.append(("tearDown", read()))

    def test_one(self):
        self.assertEqual(read(), "on")

    def test_two(self):
        self.assertEqual(read(), "on")

    @override_flags({"new-checkout": "off"})
    def test_method_override_wins(self):
        self.assertEqual(read(), "off")


class ZRestoredTests(unittest.TestCase):  # runs last: unittest sorts classes by name
    def test_restored(self):
        self.assertEqual(read(), "off")
        self.assertEqual(SEEN, [("setUp", "on"), ("tearDown", "on")] * 3)
"""


def test_decorated_unittest_case_under_pytest(pytester: pytest.Pytester) -> None:
    """A decorated unittest.TestCase run by pytest: every test is collected, and setUp, the
    test and tearDown all see the forced variant; the next class does not."""
    pytester.makepyfile(test_case=UNITTEST_CASE)
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_decorated_unittest_case_under_unittest(tmp_path: Path) -> None:
    """The same class run by `python -m unittest` runs all four tests (not fewer) and passes."""
    (tmp_path / "test_case.py").write_text(UNITTEST_CASE)
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_case"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ran 4 tests" in proc.stderr


DJANGO_CASE = """
import django
from django.conf import settings

settings.configure(
    SECRET_KEY="test", ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="test_django_case",
    INSTALLED_APPS=["rampup.django"], MIDDLEWARE=["rampup.django.RampupMiddleware"],
    RAMPUP={"FLAGS": {"flags": {"new-checkout": {"default": "off"}}}}, DATABASES={},
)
django.setup()

from django.http import HttpResponse
from django.test import SimpleTestCase
from django.urls import path

from rampup.testing import override_flags


def index(request):
    return HttpResponse(request.flags.variant("new-checkout"))


urlpatterns = [path("", index)]


@override_flags({"new-checkout": "on"})
class CheckoutTests(SimpleTestCase):
    def test_view_sees_it(self):
        self.assertEqual(self.client.get("/").content, b"on")

    def test_again(self):
        self.assertEqual(self.client.get("/").content, b"on")

    @override_flags({"new-checkout": "off"})
    def test_method_wins(self):
        self.assertEqual(self.client.get("/").content, b"off")


class Undecorated(SimpleTestCase):
    def test_default(self):
        self.assertEqual(self.client.get("/").content, b"off")
"""


def test_decorated_django_test_case(tmp_path: Path) -> None:
    """A decorated Django SimpleTestCase runs all its tests through the middleware with the
    variant forced (in a subprocess: its own Django settings)."""
    pytest.importorskip("django")
    (tmp_path / "test_django_case.py").write_text(DJANGO_CASE)
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_django_case"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ran 4 tests" in proc.stderr


def test_decorating_a_class_without_tests_fails_loudly() -> None:
    """A class that is no TestCase and has no test methods is refused with a TypeError."""

    class Helpers:
        def build(self) -> None: ...

    with pytest.raises(TypeError, match=r"cannot decorate class .*Helpers"):
        override_flags({"new-checkout": "on"})(Helpers)


def test_class_decoration_typo_fails_the_test() -> None:
    """A typo in a class decorator fails each test (at setUp), never passes silently."""

    @override_flags({"new-chekout": "on"}, snapshot=SNAP)
    class Case(unittest.TestCase):
        def test_it(self) -> None:
            pass

    result = unittest.TestResult()
    Case("test_it").run(result)
    assert len(result.errors) == 1
    assert "did you mean 'new-checkout'" in result.errors[0][1]


# -- per subject ------------------------------------------------------------------------------
def test_force_for_one_subject_only() -> None:
    """for_subject forces the variant for that subject key; everyone else gets the rules."""
    with override_flags({"checkout-button": "green"}, for_subject="user-42"):
        d = rampup.Flags(SNAP, Subject("user-42")).decision("checkout-button")
        assert (d.variant, d.reason) == ("green", Reason.OVERRIDE)
        assert "user-42" in d.detail
        assert variant("checkout-button", "user-7") == "blue"
        assert variant("checkout-button", None) == "blue"
    assert variant("checkout-button", "user-42") == "blue"


def test_force_for_several_subjects_and_nesting() -> None:
    """A collection of keys is accepted; a per-subject layer inside a global one wins for its
    subjects only."""
    with override_flags({"new-checkout": "off"}):  # noqa: SIM117
        with override_flags({"new-checkout": "on"}, for_subject=["user-1", "user-2"]):
            assert [variant("new-checkout", u) for u in ("user-1", "user-2", "user-7")] == [
                "on",
                "on",
                "off",
            ]


def test_per_subject_forcing_resolves_the_subject_only_for_its_keys() -> None:
    """Reading a flag not forced per subject does not resolve the subject."""
    resolved: list[int] = []

    def resolve() -> Subject:
        resolved.append(1)
        return Subject("user-42")

    with override_flags({"new-checkout": "on"}, for_subject="user-42"):
        f = rampup.Flags(SNAP, resolve)
        assert f.variant("checkout-button") == "blue"  # no rules: no subject needed
        assert resolved == []
        assert f.variant("new-checkout") == "on"
        assert resolved == [1]


def test_per_subject_forcing_checks_typos() -> None:
    """An unknown flag forced for one subject still fails, whoever reads."""
    with pytest.raises(FlagOverrideError, match="unknown flag 'new-chekout'"):  # noqa: SIM117
        with override_flags({"new-chekout": "on"}, SNAP, for_subject="user-42"):
            pass


@pytest.mark.parametrize("bad", ["", [], [42]])
def test_for_subject_rejects_non_keys(bad: Any) -> None:
    """for_subject must name at least one subject key (str)."""
    with pytest.raises(TypeError, match="for_subject"):
        override_flags({"new-checkout": "on"}, for_subject=bad or ())


def test_per_subject_forcing_through_a_view() -> None:
    """Targeting tested through a real app: the user named by the header is forced, another
    user is served by the rules."""
    pytest.importorskip("flask")
    from flask import Flask

    from rampup.wsgi import RampupMiddleware

    app = Flask(__name__)
    app.testing = True

    @app.route("/")
    def index() -> str:
        return str(rampup.flags.variant("checkout-button"))

    app.wsgi_app = RampupMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, flags=SNAP, user_header="X-User-Id"
    )
    client = app.test_client()
    with override_flags({"checkout-button": "orange"}, for_subject="user-42"):
        assert client.get("/", headers={"X-User-Id": "user-42"}).text == "orange"
        assert client.get("/", headers={"X-User-Id": "user-7"}).text == "blue"
        assert client.get("/").text == "blue"


def test_pytest_fixture_forces_for_one_subject(pytester: pytest.Pytester) -> None:
    """rampup_flags.force(..., for_subject=...) forces one subject for one test."""
    pytester.makepyfile(
        """
        import rampup
        from rampup import Subject
        from rampup.testing import snapshot_from

        SNAP = snapshot_from({"new-checkout": False})

        def read(key):
            return rampup.Flags(SNAP, Subject(key)).variant("new-checkout")

        def test_forced(rampup_flags):
            rampup_flags.force("new-checkout", "on", for_subject="user-42")
            assert (read("user-42"), read("user-7")) == ("on", "off")

        def test_restored():
            assert read("user-42") == "off"
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


# -- threads ----------------------------------------------------------------------------------
def test_overrides_entered_and_left_from_many_threads() -> None:
    """Threads entering and leaving their own overrides at the same time each see their own
    forced variant while inside, and nothing stays forced once all have left."""
    keys = [f"flag-{i}" for i in range(8)]
    snap = snapshot_from(dict.fromkeys(keys, False))
    barrier = threading.Barrier(len(keys))
    errors: list[str] = []

    def worker(key: str) -> None:
        barrier.wait(timeout=10)
        for _ in range(200):
            with override_flags({key: "on"}, snap):
                if rampup.Flags(snap).variant(key) != "on":
                    errors.append(key)

    threads = [threading.Thread(target=worker, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    f = rampup.Flags(snap)
    assert {k: f.decision(k).reason for k in keys} == dict.fromkeys(keys, Reason.DEFAULT)
