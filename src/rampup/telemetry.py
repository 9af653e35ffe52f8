"""OpenTelemetry for rampup: tag traces with the variants served, count outcomes per variant,
and optionally carry the served variants to downstream services in W3C baggage.

:class:`RampupTelemetry` is a listener (``listeners=[RampupTelemetry()]`` on any adapter). It
depends on ``opentelemetry-api`` only; with no SDK configured its calls are no-ops
(``bench/bench_telemetry.py`` measures them). Names follow the OpenTelemetry semantic
conventions for feature flags; README's "Telemetry" section lists every name and the version.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .errors import MissingDependency

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.metrics import MeterProvider, get_meter
except ImportError as exc:  # pragma: no cover - exercised by tests/test_no_otel.py in a subprocess
    raise MissingDependency(
        'rampup.telemetry needs OpenTelemetry: pip install "rampup[otel]"'
    ) from exc

from . import __version__
from ._telemetry_baggage import BAGGAGE_KEY, Carrier
from ._telemetry_report import VariantOutcome, error_rates
from .context import Flags
from .model import Decision, Reason

if TYPE_CHECKING:
    from ._telemetry_logs import EventLogger

__all__ = [
    "ATTRIBUTE_PREFIX",
    "BAGGAGE_KEY",
    "DURATION",
    "ERRORS",
    "EVALUATIONS",
    "REQUESTS",
    "RampupTelemetry",
    "VariantOutcome",
    "error_rates",
]

# Semantic conventions for feature flags (not the deprecated feature_flag.variant and
# feature_flag.provider_name).
EVENT = "feature_flag.evaluation"
KEY = "feature_flag.key"
VARIANT = "feature_flag.result.variant"
REASON = "feature_flag.result.reason"
PROVIDER = "feature_flag.provider.name"
CONTEXT_ID = "feature_flag.context.id"
ERROR_TYPE = "error.type"
#: the response's status class ("2xx".."5xx"): never the path, the code or the subject
STATUS_CLASS = "http.response.status_class"
#: one span attribute per flag: ``feature_flag.rampup.<flag key>`` = variant
ATTRIBUTE_PREFIX = "feature_flag.rampup."
EVALUATIONS = "feature_flag.evaluations"
REQUESTS = "rampup.requests"
ERRORS = "rampup.request.errors"
DURATION = "rampup.request.duration"

#: the semantic conventions' HTTP server duration buckets, in seconds
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_CACHE_SIZE = 4096
#: lower-case semconv reasons; "override" is ours (the conventions allow custom values)
_REASONS = {
    Reason.DEFAULT: "default",
    Reason.RULE_MATCH: "targeting_match",
    Reason.SPLIT: "split",
    Reason.KILLED: "disabled",
    Reason.OVERRIDE: "override",
    Reason.UNKNOWN_FLAG: "error",
    Reason.ERROR: "error",
    Reason.PREREQUISITE_FAILED: "prerequisite_failed",
}
_ERROR_TYPES = {Reason.UNKNOWN_FLAG: "flag_not_found", Reason.ERROR: "general"}
_STATUS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_CLASSES = (*_STATUS.values(), "unknown")
# What opentelemetry-instrumentation's is_instrumentation_enabled() reads: a key the API
# defines (private name, hence getattr) and its plain-string predecessor. Reading them here
# needs no import of the optional instrumentation package.
_SUPPRESS_KEY = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
_SUPPRESS_PLAIN = "suppress_instrumentation"
_get_current = otel_context.get_current
_get_current_span = trace.get_current_span
#: state marker: nothing to record for this request (suppressed, or nothing configured)
_IDLE: Any = object()
_instances = 0


class _Info:
    """Everything derived from one (immutable, prebuilt) Decision, computed once."""

    __slots__ = ("attribute", "decision", "eval_attrs", "event_attrs", "outcome", "variant")

    def __init__(self, d: Decision, prefix: str, outcome: bool) -> None:
        self.decision = d  # held, so its id() cannot be reused while it is a cache key
        self.variant = d.variant
        self.attribute = prefix + d.key
        attrs: dict[str, Any] = {KEY: d.key}
        if d.variant is not None:
            attrs[VARIANT] = d.variant
        attrs[REASON] = _REASONS.get(d.reason, "unknown")
        error = _ERROR_TYPES.get(d.reason)
        if error is not None:
            attrs[ERROR_TYPE] = error
        self.eval_attrs = attrs
        self.event_attrs = {**attrs, PROVIDER: "rampup"}
        #: status class -> the outcome instruments' attributes; None: no outcome metrics
        self.outcome: dict[str, dict[str, Any]] | None = None
        if outcome and d.variant is not None:
            self.outcome = {c: {KEY: d.key, VARIANT: d.variant, STATUS_CLASS: c} for c in _CLASSES}


# What telemetry keeps for one request, in ``RequestFlags.state``: a list rather than an object
# because it is built on every request that reads a flag, and a list is several times cheaper.
_SPAN = 0  #: the span to tag, or None
_SERVED = 1  #: the outcome attributes of each variant served (None: no metrics to record)
_CID = 2  #: the feature_flag.context.id of the request, once computed
_CARRIER = 3  #: the baggage Carrier, once a decision went into baggage


class RampupTelemetry:
    """Record each flag decision on the current span and in per-variant metrics.

    ``mode``: ``"events"`` (a ``feature_flag.evaluation`` span event per flag), ``"attributes"``
    (a ``feature_flag.rampup.<key>`` span attribute per flag), ``"both"``, or ``"off"``.
    ``context_id``: add ``feature_flag.context.id``: ``"raw"`` (the subject key) or ``"hash"``
    (16 hex digits of its SHA-256). ``outcome_flags``: the flags whose variants get request
    outcome metrics (default: each flag the request decided, up to ``max_outcome_flags``).
    ``event_logs``: also emit log-based ``feature_flag.evaluation`` events. ``baggage``:
    ``"overrides"`` or ``"decisions"`` puts them in the ``rampup.override`` baggage entry.
    """

    __slots__ = (
        "_baggage",
        "_cache",
        "_context_id",
        "_duration",
        "_errors",
        "_evals",
        "_events",
        "_logger",
        "_max_outcome",
        "_metrics",
        "_outcome_flags",
        "_prefix",
        "_requests",
        "_slot",
        "_span_attrs",
        "_spans",
    )

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        mode: str = "events",
        metrics: bool = True,
        context_id: bool | str = False,
        outcome_flags: Collection[str] | None = None,
        max_outcome_flags: int = 20,
        event_logs: bool = False,
        logger_provider: Any = None,
        baggage: str = "off",
        attribute_prefix: str = ATTRIBUTE_PREFIX,
    ) -> None:
        global _instances
        _check("mode", mode, ("events", "attributes", "both", "off"))
        _check("context_id", context_id, (False, "hash", "raw"))
        _check("baggage", baggage, ("off", "overrides", "decisions"))
        if isinstance(outcome_flags, str):
            raise ValueError("rampup: outcome_flags takes a list of flag keys, not a string")
        if max_outcome_flags < 0:
            raise ValueError("rampup: max_outcome_flags must be 0 or more")
        self._events = mode in ("events", "both")
        self._span_attrs = mode in ("attributes", "both")
        self._context_id = context_id if isinstance(context_id, str) else None
        self._metrics = bool(metrics)
        self._outcome_flags = None if outcome_flags is None else frozenset(outcome_flags)
        self._max_outcome = max_outcome_flags
        self._baggage = None if baggage == "off" else baggage
        self._prefix = attribute_prefix
        self._cache: dict[int, _Info] = {}
        _instances += 1
        # Our own key in the state dict listeners share, so two instances never collide.
        self._slot = f"rampup.telemetry.{_instances}"
        self._logger: EventLogger | None = None
        if event_logs:
            from ._telemetry_logs import EventLogger

            self._logger = EventLogger(__version__, logger_provider)
        #: whether any span is needed at all (tagging, or linking log events to it)
        self._spans = self._events or self._span_attrs or self._logger is not None
        meter = get_meter("rampup", __version__, meter_provider)
        self._evals = meter.create_counter(
            EVALUATIONS, unit="{evaluation}", description="Feature flag evaluations"
        )
        self._requests = meter.create_counter(
            REQUESTS, unit="{request}", description="Requests, per flag variant served"
        )
        self._errors = meter.create_counter(
            ERRORS, unit="{request}", description="Requests that failed (5xx or an exception)"
        )
        description = "Request duration, per flag variant served"
        try:
            self._duration = meter.create_histogram(
                DURATION,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=list(_BUCKETS),
            )
        except TypeError:  # opentelemetry-api < 1.23: no bucket advice (configure a View)
            self._duration = meter.create_histogram(DURATION, unit="s", description=description)

    # -- listener protocol -----------------------------------------------------------------
    def on_request_start(self, flags: Any) -> None:
        """Keep the context current as the request opens (the server span's, when the
        OpenTelemetry middleware wraps rampup). Nothing else runs until a flag is read."""
        ctx = _get_current()
        if not ctx:  # nothing attached (no instrumentation, no SDK): nothing worth keeping
            return
        st = flags.state
        if st is None:
            flags.state = {self._slot: ctx}
        else:
            st[self._slot] = ctx

    def on_decision(self, flags: Flags, decision: Decision) -> None:
        """Tag the span, count the evaluation, note the variant for the outcome metrics."""
        try:
            st = flags.state  # type: ignore[attr-defined]
        except AttributeError:  # a Flags built by hand (a job, a script): no request
            self._outside_request(flags, decision)
            return
        req = st.get(self._slot) if st is not None else None
        if type(req) is not list:
            if req is _IDLE:  # nothing to record for this request
                return
            req = self._begin(flags, st, req)  # req: the context at request start, or None
            if req is None:
                return
        info = self._cache.get(id(decision))
        if info is None or info.decision is not decision:
            info = self._new_info(decision)
        served = req[_SERVED]
        if served is not None:
            self._evals.add(1, info.eval_attrs)
            if info.outcome is not None and len(served) < self._max_outcome:
                served.append(info.outcome)
        span = req[_SPAN]
        if span is not None or self._logger is not None:
            self._tag(span, req, flags, info)
        if (
            self._baggage is not None
            and info.variant is not None
            and (self._baggage == "decisions" or decision.reason is Reason.OVERRIDE)
        ):
            carrier = req[_CARRIER]
            if carrier is None:
                carrier = req[_CARRIER] = Carrier(flags)
            carrier.add(decision.key, info.variant)

    def wants_end(self, flags: Any) -> bool:
        """Only a request with outcome metrics to record or baggage to detach needs its end:
        with no SDK configured, or no flag read, the adapter can skip following the body."""
        st = flags.state
        req = st.get(self._slot) if st is not None else None
        return type(req) is list and (req[_CARRIER] is not None or bool(req[_SERVED]))

    def on_request_end(self, flags: Any, status: int | None, error: BaseException | None) -> None:
        """Count the request once for each variant it was served; undo our baggage."""
        st = flags.state
        # pop: the request's Flags lives in a reference cycle (environ <-> flags) until the
        # garbage collector runs; the span and context must not wait for it with them.
        req = st.pop(self._slot, None) if st is not None else None
        if type(req) is not list:
            return
        if req[_CARRIER] is not None:
            req[_CARRIER].close()
        served = req[_SERVED]
        if not served:
            return
        duration = time.perf_counter() - flags.started
        cls = _STATUS.get(status // 100, "unknown") if status is not None else "unknown"
        if error is not None and cls == "unknown":
            cls = "5xx"  # the server answers an unhandled exception with a 500
        failed = error is not None or (status is not None and status >= 500)
        add, record, add_error = self._requests.add, self._duration.record, self._errors.add
        for outcome in served:
            attrs = outcome[cls]
            add(1, attrs)
            record(duration, attrs)
            if failed:
                add_error(1, attrs)

    # -- internals -------------------------------------------------------------------------
    def _begin(self, flags: Any, st: dict[str, Any] | None, ctx: Any) -> list[Any] | None:
        """First decision of a request: honour suppression, find the span to tag; None (and
        the request marked idle) when there is nothing to record."""
        span = None
        if ctx:  # an empty context (nothing attached: no span, no suppression) is common
            if ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_PLAIN):
                self._idle(flags, st)
                return None
            if self._spans:
                # The span current at request start: the server span when OpenTelemetry's
                # middleware wraps rampup, even if this flag is read inside a child span.
                span = _get_current_span(ctx)
                if not span.is_recording():
                    span = None
        if span is None and self._spans:
            # Else the span current now, at the first flag read: FlaskInstrumentor starts its
            # span in before_request, after rampup opened the request.
            now = _get_current()
            if now is not ctx and now:
                span = _get_current_span(now)
                if not span.is_recording():
                    span = None
        # No SDK behind the API's proxy instruments: their calls would be no-ops (_recorded).
        recorded = self._metrics and getattr(self._evals, "_real_instrument", 1) is not None
        served: list[Any] | None = [] if recorded else None
        if span is None and served is None and self._logger is None and self._baggage is None:
            self._idle(flags, st)  # no SDK: nothing to record
            return None
        req: list[Any] = [span, served, None, None]  # _SPAN, _SERVED, _CID, _CARRIER
        if st is None:
            flags.state = {self._slot: req}
        else:
            st[self._slot] = req
        return req

    def _idle(self, flags: Any, st: dict[str, Any] | None) -> None:
        """Nothing to record for this request: stop hearing of its decisions (the adapter's
        per-read call is the biggest part of what telemetry costs without an SDK)."""
        if st is not None:
            st[self._slot] = _IDLE  # also drops the context kept at request start
        listeners = flags.listeners
        flags.listeners = tuple(x for x in listeners if x is not self) if len(listeners) > 1 else ()

    def _outside_request(self, flags: Flags, d: Decision) -> None:
        ctx = _get_current()
        if ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_PLAIN):
            return
        info = self._cache.get(id(d))
        if info is None or info.decision is not d:
            info = self._new_info(d)
        if self._metrics and _recorded(self._evals):
            self._evals.add(1, info.eval_attrs)
        span = _get_current_span(ctx) if self._spans else None
        if span is not None and not span.is_recording():
            span = None
        if span is not None or self._logger is not None:
            self._tag(span, None, flags, info)

    def _new_info(self, d: Decision) -> _Info:
        cache = self._cache
        if len(cache) >= _CACHE_SIZE:  # decisions of old snapshots, or many unknown keys
            cache.clear()
        of = self._outcome_flags
        outcome = self._metrics and d.reason is not Reason.OVERRIDE and (of is None or d.key in of)
        info = cache[id(d)] = _Info(d, self._prefix, outcome)
        return info

    def _tag(self, span: Any, req: list[Any] | None, flags: Flags, info: _Info) -> None:
        # False without a span, or once it ended (a flag read late, while a body streams)
        recording = span is not None and span.is_recording()
        if recording and self._span_attrs and info.variant is not None:
            span.set_attribute(info.attribute, info.variant)
        if not (self._events and recording) and self._logger is None:
            return
        attrs = info.event_attrs
        if self._context_id is not None:
            cid = req[_CID] if req is not None else None
            if cid is None:
                cid = _context_id(flags, self._context_id)
                if req is not None:
                    req[_CID] = cid
            if cid:
                attrs = {**attrs, CONTEXT_ID: cid}
        if self._events and recording:
            span.add_event(EVENT, attrs)
        if self._logger is not None:
            self._logger.emit(EVENT, attrs, span)


def _recorded(instrument: Any) -> bool:
    """False for an API proxy instrument that no SDK backs yet, whose calls would be no-ops.

    This reads the proxy's private ``_real_instrument`` only to skip work: if the attribute
    ever goes away, every instrument counts as recorded and is simply called.
    """
    return getattr(instrument, "_real_instrument", instrument) is not None


def _context_id(flags: Flags, how: str) -> str:
    """The subject key, or 16 hex digits of its SHA-256 ("" without a key)."""
    key = flags.subject.key
    if key is None:
        return ""
    if how == "hash":
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return key


def _check(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    # identity for False, equality for strings: 0, None and True are not taken for False
    if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
        raise ValueError(
            f"rampup: {name}={value!r}; expected one of {', '.join(map(repr, allowed))}"
        )
