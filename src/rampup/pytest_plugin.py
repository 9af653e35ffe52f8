"""pytest plugin for apps that use rampup, active once rampup is installed.

* ``rampup_flags`` fixture: ``rampup_flags.force("new-checkout", "on")`` forces a variant for
  one test (``for_subject="user-42"``: for that subject only); everything forced is restored
  when the test ends.
* ``@pytest.mark.flag_variants("checkout-button")``: the test runs once per variant of the
  flag, with that variant forced (several keys: once per combination). An unknown key is a
  collection error.
* ``--rampup-flags FILE`` / ini ``rampup_flags_file``: the flag file both of them validate
  against (the marker can also name one: ``flags="flags.toml"``).

Registered through the ``pytest11`` entry point, so it is loaded by every pytest run in an
environment where rampup is installed: it imports no web framework, and loads no flag file
until a test asks for one.
"""

from __future__ import annotations

import difflib
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .engine import Snapshot
    from .testing import override_flags

__all__ = ["FlagForcer"]

_MARKER = (
    "flag_variants(*keys, flags=None): run the test once per variant of each flag (per "
    "combination for several), with that variant forced by rampup. flags: a flag file (relative "
    "to the rootdir), a dict or a Snapshot; by default --rampup-flags or ini rampup_flags_file."
)
_PARAM = "_rampup_flag_variants"
_cache_key = pytest.StashKey[dict[str, "Snapshot"]]()
_call_failed = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--rampup-flags`` option and the ``rampup_flags_file`` ini option."""
    group = parser.getgroup("rampup", "rampup feature flags")
    group.addoption(
        "--rampup-flags",
        metavar="FILE",
        default=None,
        help="flag file for @pytest.mark.flag_variants and the rampup_flags fixture "
        "(default: the rampup_flags_file ini option)",
    )
    parser.addini(
        "rampup_flags_file",
        "flag file for @pytest.mark.flag_variants and the rampup_flags fixture "
        "(relative to the ini file)",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``flag_variants`` marker and the flag file cache."""
    config.addinivalue_line("markers", _MARKER)
    config.stash[_cache_key] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Record whether the test body failed, for the override teardown."""
    # Only records whether the test body failed (see _restore); the report is left to pytest.
    # A plain hook rather than a wrapper, so that older pytest versions load the plugin too.
    if call.when == "call":
        exc = call.excinfo
        item.stash[_call_failed] = exc is not None and not exc.errisinstance(pytest.skip.Exception)


def _restore(request: pytest.FixtureRequest, active: list[override_flags]) -> None:
    """Leave every override, innermost first. A typo the app swallowed is raised here, so
    the test errors at teardown; not when the test already failed (most likely on it)."""
    error: BaseException | None = None
    while active:
        try:
            active.pop().__exit__(None, None, None)
        except BaseException as exc:
            error = error or exc
    if error is not None and not request.node.stash.get(_call_failed, False):
        raise error


def _load(config: pytest.Config, path: Path) -> Snapshot:
    from .config import load

    cache = config.stash[_cache_key]
    key = str(path)
    if key not in cache:
        cache[key] = load(path)
    return cache[key]


def _default_file(config: pytest.Config) -> Path | None:
    cli = config.getoption("rampup_flags")
    if cli:
        return config.invocation_params.dir / str(cli)
    ini = config.getini("rampup_flags_file")
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return base / str(ini)
    return None


def _default_snapshot(config: pytest.Config) -> Snapshot | None:
    path = _default_file(config)
    return None if path is None else _load(config, path)


def _marker_snapshot(config: pytest.Config, flags: Any) -> Snapshot:
    if flags is None:
        snapshot = _default_snapshot(config)
        if snapshot is None:
            raise LookupError(
                "no flag file: pass flags='path/to/flags.toml' to the marker, run pytest with "
                "--rampup-flags FILE, or set rampup_flags_file in the pytest ini options"
            )
        return snapshot
    if isinstance(flags, str | os.PathLike):
        return _load(config, config.rootpath / os.fspath(flags))
    from .testing import as_snapshot

    return as_snapshot(flags)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a ``flag_variants`` test once per variant (combination) of its flags."""
    markers = list(metafunc.definition.iter_markers("flag_variants"))
    if not markers:
        return
    from .errors import ConfigError

    where = f"@pytest.mark.flag_variants on {metafunc.definition.nodeid}"
    axes: dict[str, list[str]] = {}
    for mark in reversed(markers):  # module, class, then function: outermost first
        if not mark.args:
            pytest.fail(f"{where}: name at least one flag key", pytrace=False)
        try:
            snapshot = _marker_snapshot(metafunc.config, mark.kwargs.get("flags"))
        except (ConfigError, LookupError, OSError, TypeError) as exc:
            pytest.fail(f"{where}: {exc}", pytrace=False)
        for key in mark.args:
            flag = snapshot.flags.get(key)
            if flag is None:
                close = difflib.get_close_matches(str(key), list(snapshot.flags), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                pytest.fail(
                    f"{where}: unknown flag {key!r} in {snapshot.origin}{hint}", pytrace=False
                )
            axes[key] = [v.name for v in flag.variants]
    combos = [dict(zip(axes, names, strict=True)) for names in itertools.product(*axes.values())]
    ids = ["-".join(f"{k}={v}" for k, v in combo.items()) for combo in combos]
    metafunc.parametrize(_PARAM, combos, ids=ids, indirect=True)


@pytest.fixture(autouse=True)
def _rampup_flag_variants(request: pytest.FixtureRequest) -> Iterator[dict[str, str] | None]:
    """Forces the variants ``flag_variants`` chose for this test (does nothing otherwise).

    Autouse because parametrizing needs a fixture every test already uses.
    """
    forced: dict[str, str] | None = getattr(request, "param", None)
    if forced is None:
        yield None
        return
    from .testing import override_flags

    cm = override_flags(forced)
    cm.__enter__()
    try:
        yield forced
    finally:
        _restore(request, [cm])


class FlagForcer:
    """The ``rampup_flags`` fixture: force variants for the current test.

    ``force(key, variant)`` takes effect at once and lasts until the test ends (or until
    forced again). With a flag file configured, a typo fails at the ``force`` call; otherwise
    at the first flag read.
    """

    def __init__(
        self,
        request: pytest.FixtureRequest,
        snapshot: Snapshot | None,
        preset: Mapping[str, str] | None,
    ) -> None:
        self._request = request
        #: the configured flag file (``--rampup-flags`` / ``rampup_flags_file``), if any
        self.snapshot = snapshot
        self._forced: dict[str, str] = dict(preset or {})
        self._active: list[override_flags] = []

    @property
    def forced(self) -> Mapping[str, str]:
        """Everything forced in this test, ``flag_variants`` included: key -> variant."""
        return dict(self._forced)

    def force(
        self, key: str, variant: str | bool, *, for_subject: str | Iterable[str] | None = None
    ) -> None:
        """Force ``key`` to ``variant`` (True/False: ``on``/``off``) for the rest of the test;
        with ``for_subject``, only for that subject key (or keys)."""
        self.update({key: variant}, for_subject=for_subject)

    def update(
        self,
        variants: Mapping[str, str | bool],
        *,
        for_subject: str | Iterable[str] | None = None,
    ) -> None:
        """Force several flags at once: ``{"new-checkout": "on", "checkout-button": "green"}``
        (``for_subject``: only for that subject key or keys)."""
        from .testing import override_flags

        cm = override_flags(variants, self.snapshot, for_subject=for_subject)
        forced = cm.__enter__()
        self._active.append(cm)
        if for_subject is None:  # ``forced`` lists what every subject is served
            self._forced.update(forced)

    def _restore(self) -> None:
        _restore(self._request, self._active)

    def __repr__(self) -> str:
        return f"<rampup_flags forced={self._forced!r}>"


@pytest.fixture
def rampup_flags(request: pytest.FixtureRequest) -> Iterator[FlagForcer]:
    """Force flag variants for one test: ``rampup_flags.force("new-checkout", "on")``."""
    preset: dict[str, str] | None = request.getfixturevalue(_PARAM)
    forcer = FlagForcer(request, _default_snapshot(request.config), preset)
    try:
        yield forcer
    finally:
        forcer._restore()
