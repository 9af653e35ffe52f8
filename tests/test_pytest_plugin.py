"""The pytest plugin (rampup_flags fixture, flag_variants marker), run with pytester."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

FLAGS_TOML = """
[flags.new-checkout]
default = "off"

[flags.checkout-button]
variants = { blue = "#00f", green = "#0f0", orange = "#f80" }
default = "blue"
"""

# A small app module the generated tests import: code reading rampup.flags directly.
APP = """
import rampup
from rampup.testing import bound_flags

def button():
    with bound_flags("flags.toml"):
        return rampup.flags.variant("checkout-button")

def checkout():
    with bound_flags("flags.toml"):
        return rampup.flags.enabled("new-checkout")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in-process; without hypothesis's plugin, which costs ~1 s per session."""
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with a flag file, an app module and the ini option set."""
    pytester.makefile(".toml", flags=FLAGS_TOML)
    pytester.makepyfile(app=APP)
    pytester.makeini("[pytest]\nrampup_flags_file = flags.toml\n")
    pytester.syspathinsert()
    return pytester


def test_fixture_forces_a_variant(project: pytest.Pytester) -> None:
    """A test that forces a variant with rampup_flags sees it; the next test does not."""
    project.makepyfile(
        """
        import app

        def test_forced(rampup_flags):
            rampup_flags.force("checkout-button", "green")
            rampup_flags.force("new-checkout", True)
            assert app.button() == "green"
            assert app.checkout() is True
            assert rampup_flags.forced == {"checkout-button": "green", "new-checkout": "on"}

        def test_restored_afterwards():
            assert app.button() == "blue"
            assert app.checkout() is False
        """
    )
    result = run(project, "-p", "no:randomly", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_fixture_rejects_an_unknown_variant(project: pytest.Pytester) -> None:
    """Forcing a variant the flag lacks fails the test with a message naming the variants."""
    project.makepyfile(
        """
        def test_typo(rampup_flags):
            rampup_flags.force("checkout-button", "purple")
        """
    )
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FlagOverrideError: rampup: flag 'checkout-button' has no variant 'purple' to force "
            "(variants: 'blue', 'green', 'orange'); flags from *flags.toml"
        ]
    )


def test_fixture_rejects_an_unknown_flag_without_a_flag_file(pytester: pytest.Pytester) -> None:
    """With no flag file configured, the typo fails at the first flag read."""
    pytester.makefile(".toml", flags=FLAGS_TOML)
    pytester.makepyfile(app=APP)
    pytester.syspathinsert()
    pytester.makepyfile(
        """
        import app

        def test_typo(rampup_flags):
            rampup_flags.force("new-chekout", "on")
            app.checkout()
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*unknown flag 'new-chekout' forced (did you mean 'new-checkout'?); flags from *"]
    )


def test_fixture_reports_a_swallowed_typo_at_teardown(pytester: pytest.Pytester) -> None:
    """Code that swallows the error does not let the typo pass: teardown reports it."""
    pytester.makepyfile(
        """
        import rampup
        from rampup.testing import snapshot_from

        def test_swallowed(rampup_flags):
            flags = rampup.Flags(snapshot_from({"new-checkout": False}))
            rampup_flags.force("new-checkout", "maybe")
            try:
                flags.enabled("new-checkout")
            except Exception:
                pass  # an app that hides errors
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_swallowed*", "*no variant 'maybe'*"])


def test_flag_variants_runs_once_per_variant(project: pytest.Pytester) -> None:
    """flag_variants makes one test per variant, each seeing its own variant forced."""
    project.makepyfile(
        """
        import json, pytest
        import app

        @pytest.mark.flag_variants("checkout-button")
        def test_button(rampup_flags, tmp_path_factory):
            seen = app.button()
            assert seen == rampup_flags.forced["checkout-button"]
            with open("seen.txt", "a") as fh:
                fh.write(seen + "\\n")

        def test_after():
            assert app.button() == "blue"
        """
    )
    result = run(project, "-v", "--strict-markers")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_button?checkout-button=blue? PASSED*",
            "*test_button?checkout-button=green? PASSED*",
            "*test_button?checkout-button=orange? PASSED*",
        ]
    )
    seen = (project.path / "seen.txt").read_text().split()
    assert sorted(seen) == ["blue", "green", "orange"]


def test_flag_variants_combines_several_flags(project: pytest.Pytester) -> None:
    """Two flags (class and function markers) give every combination, without a fixture."""
    project.makepyfile(
        """
        import pytest
        import app

        @pytest.mark.flag_variants("new-checkout")
        class TestCheckout:
            @pytest.mark.flag_variants("checkout-button")
            def test_both(self, request):
                ids = request.node.callspec.id
                assert f"new-checkout={'on' if app.checkout() else 'off'}" in ids
                assert f"checkout-button={app.button()}" in ids
        """
    )
    result = run(project, "-q")
    result.assert_outcomes(passed=6)


def test_flag_variants_file_from_marker_and_cli(pytester: pytest.Pytester) -> None:
    """The flag file may come from the marker's flags= or from --rampup-flags."""
    pytester.makefile(".toml", flags=FLAGS_TOML)
    pytester.makepyfile(
        """
        import pytest
        from rampup.testing import bound_flags
        import rampup

        @pytest.mark.flag_variants("new-checkout", flags="flags.toml")
        def test_marker(rampup_flags):
            with bound_flags("flags.toml"):
                assert rampup.flags.variant("new-checkout") == rampup_flags.forced["new-checkout"]

        @pytest.mark.flag_variants("checkout-button")
        def test_cli(rampup_flags):
            with bound_flags("flags.toml"):
                assert rampup.flags.variant("checkout-button") == (
                    rampup_flags.forced["checkout-button"])

        @pytest.mark.flag_variants("theme", flags={"theme": ["light", "dark"]})
        def test_dict(rampup_flags):
            assert rampup_flags.forced["theme"] in ("light", "dark")
        """
    )
    result = run(pytester, "--rampup-flags", "flags.toml")
    result.assert_outcomes(passed=7)


def test_flag_variants_unknown_flag_is_a_collection_error(project: pytest.Pytester) -> None:
    """An unknown key in flag_variants is a collection error with a clear message."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.flag_variants("checkout-buton")
        def test_button():
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*flag_variants on *test_button: unknown flag 'checkout-buton' in *flags.toml "
            "(did you mean 'checkout-button'?)*"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_flag_variants_without_a_flag_file(pytester: pytest.Pytester) -> None:
    """With no flag file anywhere, the collection error says where to give one."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.flag_variants("checkout-button")
        def test_button():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no flag file: pass flags=*--rampup-flags*rampup_flags_file*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    """`pytest --markers` lists flag_variants, so --strict-markers accepts it."""
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.flag_variants(*keys, flags=None)*"])


def test_plugin_imports_no_framework() -> None:
    """Loading the plugin imports no web framework and loads no flag file."""
    code = (
        "import sys, rampup.pytest_plugin\n"
        "bad = {'flask', 'django', 'starlette', 'fastapi', 'opentelemetry'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
