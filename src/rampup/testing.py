"""Test helpers for apps that use rampup: force variants, bind flags, build snapshots from dicts.

* :class:`override_flags` forces variants for the code under test, as a context manager or a
  decorator (sync or async): every :class:`~rampup.Flags` decides a forced flag as forced, so
  it reaches all four adapters and code reading ``rampup.flags`` directly.
* :func:`bound_flags` binds ``rampup.flags`` outside a request (jobs, helpers, unit tests).
* :func:`snapshot_from` builds a snapshot from a dict, with no file.

Forcing is process-wide while active, not per context: test clients may run the app in
another thread (Starlette's ``TestClient``, a live server), where a ContextVar set by the test
is not guaranteed to be visible. Forced variants win over overrides, rules and the kill
switch, so both sides of a killed flag stay testable. A forced key or variant the flag file
does not have raises :class:`FlagOverrideError`: a typo must fail the test, never pass it.
The pytest plugin (``rampup.pytest_plugin``) is built on this module.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
import threading
import unittest
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar, cast

from . import context
from .config import load
from .engine import Snapshot
from .errors import RampupError, UnboundFlagsError
from .model import Decision, Flag, Reason, Subject, Variant

__all__ = ["FlagOverrideError", "as_snapshot", "bound_flags", "override_flags", "snapshot_from"]

F = TypeVar("F", bound=Callable[..., Any])

#: What a forced variant may be given as: a variant name, or True/False for ``on``/``off``.
Forced = Mapping[str, "str | bool"]


class FlagOverrideError(RampupError, LookupError):
    """A test forced a flag or a variant that the flag file does not define.

    .. versionadded:: 0.1.0
    """


# -- snapshots from dicts -------------------------------------------------------------------------
_FILE_KEYS = frozenset({"version", "flags", "segments"})


def snapshot_from(data: Mapping[str, Any]) -> Snapshot:
    """A :class:`~rampup.Snapshot` from a dict, for tests that need no flag file.

    Takes the flag-file format (``{"flags": {...}, "segments": {...}}``, as :func:`rampup.load`
    does) or a terse one, one entry per flag::

        snapshot_from({
            "new-checkout": True,                  # boolean flag, always on (False: always off)
            "checkout-button": "green",            # always serves the single variant "green"
            "theme": ["light", "dark"],            # variants, the first is the default
            "banner": {"variants": {"a": 1, "b": 2}, "default": "a"},  # a flag-file table
        })

    Raises :class:`~rampup.ConfigError` for an invalid flag, TypeError for an unknown form.
    """
    if _is_file_format(data):
        return load(data)
    tables: dict[str, Any] = {}
    single: dict[str, Flag] = {}
    for key, spec in data.items():
        if isinstance(spec, bool):
            tables[key] = {"default": "on" if spec else "off"}
        elif isinstance(spec, str):
            # One variant only, which a flag file cannot express (it wants two): built directly.
            single[key] = Flag(key, (Variant(spec, spec),), spec, salt=key)
        elif isinstance(spec, list | tuple) and spec:
            tables[key] = {"variants": list(spec), "default": spec[0]}
        elif isinstance(spec, Mapping):
            tables[key] = dict(spec)
        else:
            raise TypeError(
                f"snapshot_from: flag {key!r} is {spec!r}; expected True/False, a variant name, "
                "a list of variant names (the first is the default) or a flag table"
            )
    snapshot = load({"flags": tables})
    if not single:
        return snapshot
    return Snapshot.build({**snapshot.flags, **single}, snapshot.segments)


def _is_file_format(data: Mapping[str, Any]) -> bool:
    return isinstance(data.get("flags"), Mapping) and set(data) <= _FILE_KEYS


def as_snapshot(flags: Any) -> Snapshot:
    """A snapshot from what tests pass: a Snapshot, a source (its current snapshot), a dict (see
    :func:`snapshot_from`) or a flag file path."""
    if isinstance(flags, Snapshot):
        return flags
    if isinstance(flags, Mapping):
        return snapshot_from(flags)
    if isinstance(flags, str | os.PathLike):
        return load(flags)
    snapshot = getattr(flags, "snapshot", None)
    if isinstance(snapshot, Snapshot):
        return snapshot
    raise TypeError(
        f"expected a Snapshot, a source, a dict or a flag file path; got {type(flags).__name__}"
    )


# -- forcing --------------------------------------------------------------------------------------
def _normalize(forced: Forced) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, variant in forced.items():
        if isinstance(variant, bool):
            out[key] = "on" if variant else "off"
        elif isinstance(variant, str):
            out[key] = variant
        else:
            raise TypeError(
                f"override_flags: {key!r} is forced to {variant!r}; expected a variant name "
                "(or True/False for on/off)"
            )
    return out


def _problems(snapshot: Snapshot, forced: Mapping[str, str]) -> list[str]:
    """What is wrong with forcing ``forced`` over ``snapshot``: unknown flags and variants."""
    out = []
    for key, variant in forced.items():
        flag = snapshot.flags.get(key)
        if flag is None:
            close = difflib.get_close_matches(key, list(snapshot.flags), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(f"unknown flag {key!r} forced{hint}")
        elif all(v.name != variant for v in flag.variants):
            names = ", ".join(repr(v.name) for v in flag.variants)
            out.append(f"flag {key!r} has no variant {variant!r} to force (variants: {names})")
    return out


def _check(snapshot: Snapshot, forced: Mapping[str, str]) -> None:
    """Raise :class:`FlagOverrideError` if ``forced`` names an unknown flag or variant."""
    found = _problems(snapshot, forced)
    if found:
        raise FlagOverrideError(f"rampup: {'; '.join(found)}; flags from {snapshot.origin}")


class _Layer:
    """One active ``override_flags``: what it forces, for whom, and which snapshots it was
    checked on."""

    __slots__ = ("checked", "error", "forced", "known", "subjects")

    def __init__(self, forced: dict[str, str], subjects: frozenset[str] | None) -> None:
        self.forced = forced
        #: the subject keys the variants are forced for; None: everyone
        self.subjects = subjects
        self.checked: dict[int, Snapshot] = {}  # id -> snapshot, kept alive so ids stay unique
        #: flag keys of the snapshots checked so far
        self.known: set[str] = set()
        #: a validation error raised while deciding (an app may have swallowed it)
        self.error: FlagOverrideError | None = None

    def check(self, snapshot: Snapshot) -> None:
        if id(snapshot) in self.checked:
            return
        # A key that a snapshot checked earlier defines is not a typo when a second, smaller
        # snapshot (a helper's dict) lacks it; its variants are still checked where it exists.
        relevant = {
            k: v for k, v in self.forced.items() if k in snapshot.flags or k not in self.known
        }
        try:
            _check(snapshot, relevant)
        except FlagOverrideError as exc:
            self.error = exc
            raise
        self.checked[id(snapshot)] = snapshot
        self.known.update(snapshot.flags)


_lock = threading.Lock()
# Replaced (never mutated) under the lock, so the hook reads it without one.
_layers: tuple[_Layer, ...] = ()


def _hook(flags: context.Flags, key: str) -> Decision | None:
    """The test hook of :mod:`rampup.context` while overrides are active: the forced
    Decision, or None."""
    layers = _layers
    snapshot = flags.snapshot
    for layer in layers:
        # Checked on the first decision over each snapshot, whatever key is read: a typo'd
        # forced key is never read by the code, so checking only the key read would miss it.
        layer.check(snapshot)
    for layer in reversed(layers):  # the innermost override wins
        variant = layer.forced.get(key)
        flag = snapshot.flags.get(key) if variant is not None else None
        if flag is None:
            continue
        detail = "forced by rampup.testing"
        if layer.subjects is not None:
            # Resolved only for a key forced per subject, so other reads stay subject-free.
            subject_key = flags.subject.key
            if subject_key not in layer.subjects:
                continue
            detail = f"forced for subject {subject_key!r} by rampup.testing"
        value = next(v.value for v in flag.variants if v.name == variant)
        return Decision(key, variant, value, Reason.OVERRIDE, detail=detail)
    return None


def _forget(keys: Mapping[str, str]) -> None:
    # A Flags bound here may have memoized these keys before the override began (or during
    # it): drop them so the next read decides again.
    try:
        bound = context.current()
    except UnboundFlagsError:
        return
    bound.forget(keys)


def _bound_snapshot() -> Snapshot | None:
    try:
        return context.current().snapshot
    except UnboundFlagsError:
        return None


def _push(layer: _Layer) -> None:
    global _layers
    with _lock:
        _layers = (*_layers, layer)
        context.set_test_hook(_hook)
    _forget(layer.forced)


def _pop(layer: _Layer) -> None:
    global _layers
    with _lock:
        # By identity, not "the last one": overlapping (not nested) uses from threads still
        # remove exactly their own layer.
        _layers = tuple(x for x in _layers if x is not layer)
        context.set_test_hook(_hook if _layers else None)
    _forget(layer.forced)


def _subject_keys(for_subject: str | Iterable[str] | None) -> frozenset[str] | None:
    if for_subject is None:
        return None
    keys = frozenset([for_subject] if isinstance(for_subject, str) else for_subject)
    if not keys or not all(isinstance(k, str) for k in keys):
        raise TypeError(
            f"override_flags: for_subject={for_subject!r}; expected a subject key (a str) or "
            "a collection of them"
        )
    return keys


class override_flags:  # lowercase: used like a function, `with override_flags({...}):`
    """Force variants for the code under test: a context manager, or a decorator of a test
    function (sync or async) or of a test class::

        with override_flags({"new-checkout": "on", "checkout-button": "green"}):
            client.get("/checkout")

        @override_flags({"new-checkout": False})
        async def test_old_checkout(): ...

        @override_flags({"new-checkout": "on"})
        class CheckoutTests(TestCase): ...  # setUp, each test and tearDown see it

        with override_flags({"new-checkout": "on"}, for_subject="user-42"):
            ...  # only subject "user-42" is forced; everyone else gets what the rules say

    Values are variant names (True/False mean ``on``/``off``). With ``snapshot`` (a Snapshot,
    dict or flag file path), or inside :func:`bound_flags`, an unknown flag or variant raises
    :class:`FlagOverrideError` on entering; otherwise on the first flag read, over the
    snapshot being read, and again when the block exits in case the app swallowed it. Nests:
    the innermost override of a key wins, and leaving a block restores what was forced before.

    Decorating a :class:`unittest.TestCase` (Django's test cases included) forces the variants
    from ``setUp`` to the test's cleanups, like Django's ``override_settings``; decorating any
    other class (a pytest test class) decorates each of its ``test*`` methods.
    """

    def __init__(
        self,
        variants: Forced,
        snapshot: Any = None,
        *,
        for_subject: str | Iterable[str] | None = None,
    ) -> None:
        self.variants = _normalize(variants)
        self.snapshot = None if snapshot is None else as_snapshot(snapshot)
        #: the subject keys forced, or None for everyone
        self.subjects = _subject_keys(for_subject)
        self._active: list[_Layer] = []

    def __enter__(self) -> dict[str, str]:
        layer = _Layer(dict(self.variants), self.subjects)
        known = self.snapshot if self.snapshot is not None else _bound_snapshot()
        if known is not None:
            layer.check(known)
        _push(layer)
        self._active.append(layer)
        return layer.forced

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        layer = self._active.pop()
        _pop(layer)
        if layer.error is not None and exc is not layer.error:
            raise layer.error

    def _copy(self) -> override_flags:
        return override_flags(self.variants, self.snapshot, for_subject=self.subjects)

    def __call__(self, func: F) -> F:
        """Decorate a test function (sync or async) or a test class: see the class docstring."""
        if isinstance(func, type):
            return cast(F, self._decorate_class(func))
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._copy():
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return func(*args, **kwargs)

        return cast(F, run)

    def _decorate_class(self, cls: type[Any]) -> type[Any]:
        if issubclass(cls, unittest.TestCase):
            # As Django's override_settings does: enter before setUp, leave in a cleanup (run
            # after tearDown, and even when setUp fails), so every part of the test sees it.
            set_up = cls.setUp
            forcing = self

            @functools.wraps(set_up)
            def setUp(case: unittest.TestCase) -> None:
                cm = forcing._copy()
                cm.__enter__()
                case.addCleanup(cm.__exit__, None, None, None)
                set_up(case)

            cls.setUp = setUp  # type: ignore[assignment, method-assign]
            return cls
        # Any other class (pytest's test classes): each test method, inherited ones included,
        # as mock.patch does. Static and class methods are left alone.
        names = [
            name
            for name in dir(cls)
            if name.startswith("test") and inspect.isfunction(inspect.getattr_static(cls, name))
        ]
        if not names:
            raise TypeError(
                f"override_flags cannot decorate class {cls.__qualname__}: it is not a "
                "unittest.TestCase and has no test* methods; decorate the test functions, or "
                "use it as a context manager"
            )
        for name in names:
            setattr(cls, name, self(getattr(cls, name)))
        return cls

    def __repr__(self) -> str:
        who = "" if self.subjects is None else f", for_subject={sorted(self.subjects)!r}"
        return f"override_flags({self.variants!r}{who})"


@contextmanager
def bound_flags(
    flags: Any, subject: Subject | str | Mapping[str, Any] | None = None, /, **forced: str | bool
) -> Iterator[context.Flags]:
    """Bind ``rampup.flags`` for the block, outside any request::

        with bound_flags({"new-checkout": False, "theme": ["light", "dark"]}, "user-42",
                         new_checkout=True, theme="dark"):
            assert rampup.flags.enabled("new-checkout")
            assert rampup.flags.variant("theme") == "dark"

    ``flags`` is a Snapshot, source, dict (see :func:`snapshot_from`) or flag file path;
    ``subject`` a Subject, a key, or a mapping with ``key`` and attributes. Keyword arguments
    force variants; ``_`` in a name matches ``-`` in a flag key the file defines.
    """
    snapshot = as_snapshot(flags)
    f = context.Flags(snapshot, _subject(subject))
    variants = {_flag_key(snapshot, name): variant for name, variant in forced.items()}
    with context.bound(f):
        if not variants:
            yield f
            return
        with override_flags(variants, snapshot):
            yield f


def _subject(subject: Subject | str | Mapping[str, Any] | None) -> Subject | None:
    if subject is None or isinstance(subject, Subject):
        return subject
    if isinstance(subject, Mapping):
        attrs = {k: v for k, v in subject.items() if k != "key"}
        key = subject.get("key")
        return Subject(None if key is None else str(key), attrs)
    return Subject(str(subject))


def _flag_key(snapshot: Snapshot, name: str) -> str:
    if name not in snapshot.flags and name.replace("_", "-") in snapshot.flags:
        return name.replace("_", "-")
    return name
