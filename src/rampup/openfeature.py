"""OpenFeature both ways: rampup as a provider, and any provider as rampup's source of decisions.

* :class:`RampupProvider` lets code written against ``openfeature.api.get_client()`` evaluate
  rampup's flag file (or any rampup source) with rampup's bucketing.
* :class:`OpenFeatureBackend` is a rampup source whose decisions come from an OpenFeature
  client, so a team whose flags live in flagd, LaunchDarkly, ... still gets rampup's
  per-request memo, anonymous ids, signed QA overrides and telemetry:
  ``RampupMiddleware(app, flags=OpenFeatureBackend(api.get_client()))``.

Needs ``pip install rampup[openfeature]``. The core never imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from .context import current_if_any
from .engine import Snapshot
from .errors import MissingDependency
from .model import Decision, Flag, Reason, Subject
from .sources import FileSource, Source, as_source
from .subject import MAX_KEY

try:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import ErrorCode, ProviderFatalError, ProviderNotReadyError
    from openfeature.flag_evaluation import FlagEvaluationDetails, FlagResolutionDetails
    from openfeature.flag_evaluation import Reason as OFReason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - the extra is installed in tests
    raise MissingDependency("pip install rampup[openfeature]") from exc

__all__ = [
    "OVERRIDE",
    "PREREQUISITE_FAILED",
    "OpenFeatureBackend",
    "RampupProvider",
    "RequestTransactionContext",
    "StatusSource",
    "context_of",
    "subject_of",
    "variant_text",
]

log = logging.getLogger("rampup")

#: The custom OpenFeature reason of a variant forced by a rampup QA override.
OVERRIDE = "OVERRIDE"
#: Decisions an OpenFeatureBackend remembers at most (see ``OpenFeatureBackend._decision``)
_MEMO_SIZE = 4096
#: The custom reason of a flag whose prerequisite was not met (it serves its ``off`` variant):
#: a normal evaluation, not an error, as LaunchDarkly reports it
PREREQUISITE_FAILED = "PREREQUISITE_FAILED"

_EMPTY_METADATA: Mapping[str, Any] = {}
_NOBODY = Subject(None)


class StatusSource(Protocol):
    """**Protocol:** what :class:`RampupProvider` reads from a source, beyond ``snapshot``.

    Every member is optional and found by ``getattr``:

    * ``status``: ``"ready"``, ``"stale"`` (serving the last good flags, the store is out of
      reach) or ``"error"`` (nothing good to serve), as a string or an enum whose value is one;
      changes become the provider events READY, STALE and ERROR.
    * ``version``: the version of the flag document being served (a string or a number), passed
      on as the ``version`` entry of each evaluation's flag metadata.
    * ``start()`` / ``close()`` (or ``stop()``): begin and end background updates; called by
      the provider's ``initialize`` and ``shutdown``. A ``start()`` that raises makes the
      provider FATAL: it has nothing to serve.
    """

    snapshot: Snapshot


# -- rampup as an OpenFeature provider -------------------------------------------------------------


def subject_of(context: EvaluationContext | None) -> Subject:
    """The rampup Subject for an OpenFeature evaluation context: ``targeting_key`` is the
    subject key, the other attributes its attributes. Raises ValueError for a context that
    cannot be one (a targeting key that is not a printable string of at most 256 characters
    without surrounding spaces, attributes that are not a mapping)."""
    if context is None:
        return _NOBODY
    key = context.targeting_key
    attributes = context.attributes
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        raise ValueError(f"attributes must be a mapping, got {type(attributes).__name__}")
    if not key:
        return Subject(None, attributes)
    # clean_key's test, unrolled (this runs per evaluation); strip() hands back a key with
    # nothing to strip unchanged, which makes the last test cheaper than looking at both ends
    if type(key) is not str or len(key) > MAX_KEY or not key.isprintable() or key.strip() != key:
        raise ValueError(
            "targeting_key must be a printable string of at most 256 characters without "
            f"surrounding spaces, got {str(key)[:60]!r}"
        )
    return Subject(key, attributes)


def _is_bool(v: Any) -> bool:
    return v is True or v is False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not _is_bool(v)


def _is_float(v: Any) -> bool:
    return isinstance(v, float) or _is_int(v)


def _is_object(v: Any) -> bool:
    return isinstance(v, Mapping) or (isinstance(v, Sequence) and not isinstance(v, str))


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "boolean": _is_bool,
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "float": _is_float,
    "object": _is_object,
}


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(
        value=default, error_code=code, error_message=message, reason=OFReason.ERROR
    )


def _not_found(default: Any, key: str) -> FlagResolutionDetails[Any]:
    return _error(default, ErrorCode.FLAG_NOT_FOUND, f"rampup: no flag {key!r}")


class RampupProvider(AbstractProvider):
    """An OpenFeature provider over a rampup source: a flag file path, a mapping, a Snapshot,
    a :class:`~rampup.FileSource`, the Redis store, ...

    Reasons: ``STATIC`` (a flag with no rules), ``DEFAULT`` (no rule matched),
    ``TARGETING_MATCH`` (a rule served one variant), ``SPLIT`` (a percentage split chose),
    ``DISABLED`` (killed: the caller's default is returned, as OpenFeature defines it),
    ``OVERRIDE`` (a QA override sent with the current rampup request). Errors:
    ``FLAG_NOT_FOUND``, ``TYPE_MISMATCH``, ``TARGETING_KEY_MISSING`` (a split by subject key
    reached without a targeting key), ``INVALID_CONTEXT``. ``flag_metadata`` holds the flag's
    own ``metadata`` table, the index of the rule that decided (``rule``) and the document's
    ``version`` when the source knows it.

    Events: ``PROVIDER_CONFIGURATION_CHANGED`` with the changed flag keys when the source swaps
    in a new snapshot; ``PROVIDER_STALE`` / ``PROVIDER_READY`` / ``PROVIDER_ERROR`` when its
    ``status`` changes (see :class:`StatusSource`). A thread started by ``initialize`` checks
    every ``interval`` seconds; :meth:`poll` checks now.

    Answers that do not depend on the caller's default are built once per prebuilt rampup
    Decision and shared between calls: treat a ``resolve_*_details`` result as read-only (the
    SDK's client copies it into the details it returns).
    """

    def __init__(self, source: Any, *, interval: float = 0.5, name: str = "rampup") -> None:
        # A path becomes a file source the provider owns: watched from initialize on.
        owned = isinstance(source, str) or hasattr(source, "__fspath__")
        self.source: Source = as_source(source, watch=False) if owned else as_source(source)
        self.interval = interval
        self._metadata = Metadata(name=name)
        self._seen = self.source.snapshot
        self._status = _status_of(self.source)
        self._stop: threading.Event | None = None
        self._fork_safe = False
        #: per snapshot: (flag key, rule index) -> the flag metadata of such an evaluation, and
        #: per type, id(Decision) -> (Decision, its answer); renewed with each snapshot
        self._cached_for: Snapshot | None = None
        self._meta: dict[tuple[str, int | None], Mapping[str, Any]] = {}
        self._cache: dict[str, dict[int, tuple[Decision, FlagResolutionDetails[Any]]]] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def get_metadata(self) -> Metadata:
        """The provider's name (``rampup`` unless given)."""
        return self._metadata

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Start the source and the thread that turns its changes into provider events."""
        source = self.source
        start = getattr(source, "start", None)
        if callable(start):
            if isinstance(source, FileSource):
                source.close()  # FileSource.start() is not idempotent: exactly one watcher
            try:
                start()
            except Exception as exc:
                raise ProviderFatalError(f"rampup: the source failed to start: {exc!r}") from exc
        self._seen = source.snapshot
        self._status = _status_of(source)
        if self._status == "error":
            raise ProviderNotReadyError("rampup: the source has no flags to serve (status error)")
        self._start_events()
        if not self._fork_safe:  # threads do not survive fork(): restart ours in the child
            self._fork_safe = True
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=partial(_after_fork, weakref.ref(self)))

    def _start_events(self) -> None:
        stop = self._stop = threading.Event()
        threading.Thread(
            target=self._watch, args=(stop,), name="rampup-openfeature-events", daemon=True
        ).start()

    def shutdown(self) -> None:
        """Stop the event thread and the source."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        stop = getattr(self.source, "close", None) or getattr(self.source, "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:
                log.exception("rampup: stopping the source failed")

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # pragma: no cover - poll catches what it can
                log.exception("rampup: the OpenFeature event thread failed")

    def poll(self) -> None:
        """Compare the source with what was seen last and emit the events for any change."""
        source = self.source
        snapshot = source.snapshot
        if snapshot is not self._seen:
            old, self._seen = self._seen, snapshot
            changed = sorted(
                k
                for k in old.flags.keys() | snapshot.flags.keys()
                if old.flags.get(k) != snapshot.flags.get(k)
            )
            self.emit_provider_configuration_changed(
                ProviderEventDetails(
                    flags_changed=changed, message=f"rampup: new flags from {snapshot.origin}"
                )
            )
        status = _status_of(source)
        if status != self._status:
            self._status = status
            details = ProviderEventDetails(message=f"rampup: source status {status}")
            if status == "stale":
                self.emit_provider_stale(details)
            elif status == "error":
                details.error_code = ErrorCode.GENERAL
                self.emit_provider_error(details)
            else:
                self.emit_provider_ready(details)

    # -- evaluation ----------------------------------------------------------------------------
    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        """Decide a boolean flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        """Decide a string flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        """Decide an integer flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        """Decide a float flag (an integer value is served as a float)."""
        return self._resolve(flag_key, default_value, evaluation_context, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        """Decide an object (table or list) flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "object")

    def _resolve(
        self, key: str, default: Any, context: EvaluationContext | None, kind: str
    ) -> FlagResolutionDetails[Any]:
        try:
            snapshot = self.source.snapshot
            if snapshot is not self._cached_for:  # a new snapshot: start the caches afresh
                self._renew(snapshot)
            try:
                subject = subject_of(context)
            except ValueError as exc:
                if key not in snapshot.flags:  # an unknown flag is reported first
                    return _not_found(default, key)
                return _error(default, ErrorCode.INVALID_CONTEXT, f"rampup: {exc}")
            # inside a rampup request, its QA overrides apply (None outside one)
            request = current_if_any()
            override = None if request is None else request.override_for(key)
            d = snapshot.evaluate(key, subject, None, override)
            # The engine returns prebuilt Decisions: their answer is built once per snapshot.
            # An entry holds its Decision, so no other object can have that id meanwhile.
            hit = self._cache[kind].get(id(d))
            if hit is not None:
                return hit[1]
            return self._answer(snapshot, key, d, default, kind)
        except Exception as exc:  # the SDK would log and return the default at ~90 µs
            log.exception("rampup: resolving flag %r for OpenFeature failed", key)
            return _error(default, ErrorCode.GENERAL, f"rampup: {exc!r}")

    def _answer(
        self, snapshot: Snapshot, key: str, d: Decision, default: Any, kind: str
    ) -> FlagResolutionDetails[Any]:
        """The answer for a Decision not met before; cached when it is the same every time."""
        flag = snapshot.flags.get(key)
        if flag is None:  # an unknown key, or a snapshot serving no flags
            return _not_found(default, key)
        if not _CHECKS[kind](d.value):
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"rampup: flag {key!r} serves {type(d.value).__name__}, not {kind}",
            )
        details = self._details(snapshot, flag, d, default, kind)
        if details.error_code is None and details.reason != OFReason.DISABLED:
            self._cache[kind][id(d)] = (d, details)  # not the caller's default: the same always
        return details

    def _renew(self, snapshot: Snapshot) -> None:
        self._cache = {kind: {} for kind in _CHECKS}
        self._meta = {}
        self._cached_for = snapshot

    def _details(
        self, snapshot: Snapshot, flag: Flag, d: Decision, default: Any, kind: str
    ) -> FlagResolutionDetails[Any]:
        reason = d.reason
        if reason is Reason.KILLED:
            return FlagResolutionDetails(value=default, reason=OFReason.DISABLED)
        if reason is Reason.DEFAULT:
            if d.rule_index is not None and _splits_by_key(flag, d.rule_index):
                return _error(
                    default,
                    ErrorCode.TARGETING_KEY_MISSING,
                    f"rampup: rule {d.rule_index} of {flag.key!r} splits by the targeting key, "
                    "which the evaluation context lacks",
                )
            of_reason: str = OFReason.DEFAULT if flag.rules else OFReason.STATIC
        elif reason is Reason.RULE_MATCH:
            of_reason = OFReason.TARGETING_MATCH
        elif reason is Reason.SPLIT:
            of_reason = OFReason.SPLIT
        elif reason is Reason.OVERRIDE:
            of_reason = OVERRIDE
        elif reason is Reason.PREREQUISITE_FAILED:
            of_reason = PREREQUISITE_FAILED
        else:  # ERROR: the engine logged it and served the flag's default variant
            return _error(default, ErrorCode.GENERAL, f"rampup: {d.detail}")
        value = d.value
        if kind == "float" and _is_int(value):
            value = float(value)
        return FlagResolutionDetails(
            value=value,
            reason=of_reason,
            variant=d.variant,
            flag_metadata=self._flag_metadata(snapshot, flag, d.rule_index),
        )

    def _flag_metadata(self, snapshot: Snapshot, flag: Flag, rule: int | None) -> Mapping[str, Any]:
        meta = self._meta.get((flag.key, rule))
        if meta is None:
            built: dict[str, Any] = dict(flag.metadata)
            if rule is not None:
                built["rule"] = rule
            version = getattr(snapshot, "version", None) or getattr(self.source, "version", None)
            if isinstance(version, str | int | float) and not _is_bool(version):
                built["version"] = version
            meta = self._meta[(flag.key, rule)] = built or _EMPTY_METADATA
        return meta


def _splits_by_key(flag: Flag, index: int) -> bool:
    split = flag.rules[index].split if index < len(flag.rules) else None
    return split is not None and split.bucket_by == "key"


def _after_fork(ref: weakref.ref[RampupProvider]) -> None:
    """In a forked child (gunicorn --preload), restart an initialized provider's threads: the
    file watcher it manages and its event thread."""
    provider = ref()
    if provider is None or provider._stop is None:  # gone, or shut down
        return
    try:
        if isinstance(provider.source, FileSource):
            provider.source.start()
        provider._start_events()
    except Exception:  # pragma: no cover - a thread that cannot start
        log.exception("rampup: restarting the OpenFeature provider after fork failed")


def _status_of(source: Any) -> str:
    status = getattr(source, "status", None)
    if status is None:
        return "ready"
    text = str(getattr(status, "value", status)).lower()
    return text if text in ("stale", "error") else "ready"


# -- any OpenFeature provider as rampup's source of decisions --------------------------------------

_KINDS = ("boolean", "string", "integer", "float", "object")
_PROBE_DEFAULTS: dict[str, Any] = {
    "boolean": False,
    "string": "",
    "integer": 0,
    "float": 0.0,
    "object": {},
}
_REASONS: dict[str, Reason] = {
    OFReason.STATIC: Reason.DEFAULT,
    OFReason.DEFAULT: Reason.DEFAULT,
    OFReason.TARGETING_MATCH: Reason.RULE_MATCH,
    OFReason.SPLIT: Reason.SPLIT,
    OFReason.DISABLED: Reason.KILLED,
    OVERRIDE: Reason.OVERRIDE,
}

#: The evaluation context last built, with its subject: a request builds it once.
_last_context: ContextVar[tuple[Subject, EvaluationContext] | None] = ContextVar(
    "rampup.openfeature.context", default=None
)


def context_of(subject: Subject) -> EvaluationContext:
    """The OpenFeature evaluation context of a rampup Subject: its key as ``targeting_key``,
    its attributes (``path``, ``method``, ``host``, ``ip``, ``scheme`` and what your ``user``
    callback returned) as attributes, without the missing (None) ones."""
    last = _last_context.get()
    if last is not None and last[0] is subject:
        return last[1]
    attributes = {k: v for k, v in subject.attributes.items() if v is not None}
    context = EvaluationContext(subject.key, attributes)
    _last_context.set((subject, context))
    return context


def variant_text(value: Any) -> str:
    """The variant name rampup uses when a provider names none: ``on``/``off`` for booleans,
    the value's text otherwise (JSON for objects)."""
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def _value_of(kind: str | None, variant: str) -> Any:
    """What a QA override of ``variant`` serves: the inverse of :func:`variant_text` for the
    flag's type (the backend cannot ask a provider for a variant's value)."""
    if variant in ("on", "off") and kind in (None, "boolean"):
        return variant == "on"
    try:
        if kind == "integer":
            return int(variant)
        if kind == "float":
            return float(variant)
        if kind == "object":
            return json.loads(variant)
    except ValueError:
        pass
    return variant


@dataclass(frozen=True, slots=True)
class _ClientSnapshot(Snapshot):
    """A Snapshot whose decisions come from an OpenFeature client: ``evaluate`` asks it."""

    backend: Any = field(default=None, repr=False, compare=False)

    def evaluate(
        self,
        key: str,
        subject: Subject | Callable[[], Subject],
        now: float | None = None,
        override: str | None = None,
    ) -> Decision:
        """Ask the client (a QA override is served without asking, and without resolving the
        subject); never raises."""
        backend: OpenFeatureBackend = self.backend
        if override is not None:
            return Decision(
                key, override, _value_of(backend.types.get(key), override), Reason.OVERRIDE
            )
        try:
            s = subject if isinstance(subject, Subject) else subject()
        except Exception as exc:
            log.exception("rampup: resolving the subject for flag %r failed", key)
            return Decision(key, None, None, Reason.ERROR, detail=repr(exc)[:200])
        return backend.decide(key, s)

    def override_refusal(self, key: str, variant: str) -> str | None:
        """Overrides are honoured for any flag: the provider's variants are not known here."""
        return None


class OpenFeatureBackend:
    """A rampup source whose decisions come from an OpenFeature client: pass it as ``flags=``
    to any adapter and keep rampup's per-request memo (each flag asked once per request),
    anonymous ids, QA overrides and telemetry over flags that live in another system.

    Each flag is asked with ``client.get_<type>_details(key, default, context)``, the context
    being the request's subject (:func:`context_of`). The type is the one given in ``types``
    (flag key -> ``"boolean"``, ``"string"``, ``"integer"``, ``"float"`` or ``"object"``), or
    found by asking in that order until the provider stops answering TYPE_MISMATCH, then
    remembered. OpenFeature reasons become rampup's: STATIC and DEFAULT -> DEFAULT,
    TARGETING_MATCH -> RULE_MATCH, SPLIT -> SPLIT, DISABLED -> KILLED, an error -> ERROR
    (FLAG_NOT_FOUND -> UNKNOWN_FLAG); the reasons in ``split_reasons`` count as SPLIT, which
    keeps a visitor's anonymous id (add ``"TARGETING_MATCH"`` for providers that report
    percentage rollouts that way, as flagd does). With ``transaction_context`` the request's
    subject is also the SDK's transaction context inside the request (see
    :class:`RequestTransactionContext`).
    """

    def __init__(
        self,
        client: Any,
        *,
        types: Mapping[str, str] | None = None,
        split_reasons: Sequence[str] = (OFReason.SPLIT,),
        transaction_context: bool = True,
    ) -> None:
        for key, kind in (types or {}).items():
            if kind not in _KINDS:
                raise ValueError(
                    f"rampup: types[{key!r}] = {kind!r}; expected one of {', '.join(_KINDS)}"
                )
        self.client = client
        #: flag key -> OpenFeature type, as declared or as found
        self.types: dict[str, str] = dict(types or {})
        self._declared = frozenset(self.types)
        self.split_reasons = frozenset(str(r) for r in split_reasons)
        #: (flag, variant, reason, type and value answered) -> the Decision made of it
        self._memo: dict[tuple[Any, ...], Decision] = {}
        self.snapshot: Snapshot = _ClientSnapshot({}, {}, "<openfeature>", backend=self)
        if transaction_context:
            api.set_transaction_context_propagator(RequestTransactionContext())

    def decide(self, key: str, subject: Subject) -> Decision:
        """The Decision for ``key`` from the client; never raises."""
        try:
            context = context_of(subject)
            known = self.types.get(key)
            for kind in (known,) if known is not None else _KINDS:
                get = getattr(self.client, f"get_{kind}_details")
                details: FlagEvaluationDetails[Any] = get(key, _PROBE_DEFAULTS[kind], context)
                code = details.error_code
                if code == ErrorCode.TYPE_MISMATCH and key not in self._declared:
                    continue
                if code == ErrorCode.FLAG_NOT_FOUND:
                    return Decision(key, None, None, Reason.UNKNOWN_FLAG, detail="FLAG_NOT_FOUND")
                if code is not None:
                    return Decision(
                        key, None, None, Reason.ERROR, detail=f"{code}: {details.error_message}"
                    )
                self.types[key] = kind
                return self._decision(key, details)
            return Decision(key, None, None, Reason.ERROR, detail="TYPE_MISMATCH for every type")
        except Exception as exc:
            log.exception("rampup: asking OpenFeature for flag %r failed", key)
            return Decision(key, None, None, Reason.ERROR, detail=repr(exc)[:200])

    def _decision(self, key: str, details: FlagEvaluationDetails[Any]) -> Decision:
        # The same answer gives the same Decision object, as a rampup snapshot's prebuilt ones
        # do: the outcome book and telemetry find what they learned of a Decision by its
        # identity, and a new object per request would make them learn it on every request.
        value = details.value
        reason = str(details.reason or OFReason.UNKNOWN)
        # type(value): 1, 1.0 and True are equal keys but different answers
        memo_key = (key, details.variant, reason, type(value), value)
        try:
            d, memoised = self._memo.get(memo_key), True
        except TypeError:  # an object value (dict, list): unhashable, built afresh
            d, memoised = None, False
        if d is not None:
            return d
        mapped = Reason.SPLIT if reason in self.split_reasons else _REASONS.get(reason)
        d = Decision(
            key,
            details.variant or variant_text(value),
            value,
            Reason.RULE_MATCH if mapped is None else mapped,
            detail=f"openfeature: {reason}",
        )
        if memoised:
            if len(self._memo) >= _MEMO_SIZE:  # bounded: a provider may answer many values
                self._memo.clear()
            self._memo[memo_key] = d
        return d

    def __repr__(self) -> str:
        return f"OpenFeatureBackend({self.client!r})"


class RequestTransactionContext:
    """The SDK's transaction context propagator that :class:`OpenFeatureBackend` installs:
    inside a rampup request, the request's subject (:func:`context_of`) merged with anything
    set by ``api.set_transaction_context``; outside one, only the latter. The request's
    context thus ends with the request, with nothing to reset."""

    def __init__(self) -> None:
        from openfeature.transaction_context import ContextVarsTransactionContextPropagator

        self._explicit = ContextVarsTransactionContextPropagator()

    def get_transaction_context(self) -> EvaluationContext:
        """The current request's subject, merged with what was set explicitly."""
        explicit = self._explicit.get_transaction_context()
        f = current_if_any()
        return explicit if f is None else context_of(f.subject).merge(explicit)

    def set_transaction_context(self, transaction_context: EvaluationContext) -> None:
        """Set extra transaction context (the SDK's ContextVar semantics)."""
        self._explicit.set_transaction_context(transaction_context)
