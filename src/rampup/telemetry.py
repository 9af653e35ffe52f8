"""OpenTelemetry for rampup: tag traces with the variants served, export each variant's
outcomes, and optionally carry the served variants to downstream services in W3C baggage.

Every adapter installs :func:`shared` (one :class:`RampupTelemetry` per process) when
opentelemetry-api is importable (option ``telemetry="auto"``); pass ``telemetry=False`` to turn
it off or ``telemetry=RampupTelemetry(...)`` to customise it. It depends on
``opentelemetry-api`` only; with no SDK configured it leaves each request at its first flag read
(``bench/bench_telemetry.py`` measures it).

A request makes no SDK metric call: the outcome counts and latencies come from the outcome book
(:mod:`rampup.outcomes`) and the evaluation counts from plain in-process sums, both read by
observable instruments when the SDK collects. Names follow the OpenTelemetry semantic
conventions for feature flags; ``docs/telemetry.md`` lists every name.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from .errors import MissingDependency

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter
except ImportError as exc:  # pragma: no cover - exercised by tests/test_no_otel.py in a subprocess
    raise MissingDependency(
        'rampup.telemetry needs OpenTelemetry: pip install "rampup[otel]"'
    ) from exc

from . import __version__
from ._telemetry_baggage import BAGGAGE_KEY, Carrier
from ._telemetry_report import VariantOutcome, error_rates
from ._telemetry_spans import event_adder
from .context import Flags
from .model import Decision, Reason
from .outcomes import OutcomeBook, OutcomeSnapshot
from .outcomes import book as process_book

if TYPE_CHECKING:
    from ._telemetry_logs import EventLogger

__all__ = [
    "ATTRIBUTE_PREFIX",
    "BAGGAGE_KEY",
    "DURATION",
    "ERRORS",
    "ERROR_SUBJECTS",
    "EVALUATIONS",
    "REQUESTS",
    "RampupTelemetry",
    "VariantOutcome",
    "error_rates",
    "shared",
]

log = logging.getLogger("rampup")

# Semantic conventions for feature flags (not the deprecated feature_flag.variant and
# feature_flag.provider_name).
EVENT = "feature_flag.evaluation"
KEY = "feature_flag.key"
VARIANT = "feature_flag.result.variant"
REASON = "feature_flag.result.reason"
PROVIDER = "feature_flag.provider.name"
CONTEXT_ID = "feature_flag.context.id"
ERROR_TYPE = "error.type"
#: one span attribute per flag: ``feature_flag.rampup.<flag key>`` = variant
ATTRIBUTE_PREFIX = "feature_flag.rampup."
EVALUATIONS = "feature_flag.evaluations"
REQUESTS = "rampup.requests"
ERRORS = "rampup.request.errors"
ERROR_SUBJECTS = "rampup.request.error_subjects"
#: a gauge of the latency quantiles (attribute ``quantile``: "0.5", "0.95", "0.99")
DURATION = "rampup.request.duration.quantile"
QUANTILE = "quantile"
_QUANTILES = (("0.5", 0.5), ("0.95", 0.95), ("0.99", 0.99))
_CACHE_SIZE = 4096
#: distinct (flag, variant, reason) evaluation counters kept at most
_MAX_EVAL_SERIES = 4096
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

    __slots__ = ("attribute", "count", "decision", "eval_attrs", "event", "variant")

    def __init__(self, d: Decision, prefix: str, count: list[int]) -> None:
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
        self.event = event_adder(EVENT, {**attrs, PROVIDER: "rampup"})
        #: the evaluation count of these attributes, shared by every _Info that has them
        self.count = count


# What telemetry keeps for one request, in ``RequestFlags.state``: a list rather than an object
# because it is built on every request that reads a flag, and a list is several times cheaper.
_SPAN = 0  #: the span to tag, or None
_CID = 1  #: the feature_flag.context.id of the request, once computed
_CARRIER = 2  #: the baggage Carrier, once a decision went into baggage


class RampupTelemetry:
    """Record each flag decision on the current span; export per-variant outcomes.

    ``mode``: ``"events"`` (a ``feature_flag.evaluation`` span event per flag; the default),
    ``"attributes"`` (a ``feature_flag.rampup.<key>`` span attribute per flag), ``"both"``, or
    ``"off"``. ``context_id``: add ``feature_flag.context.id``: ``"raw"`` (the subject key) or
    ``"hash"`` (16 hex digits of its SHA-256). ``metrics``: register the observable instruments.
    ``book``: the outcome book to export (default: the process's); only what it counts after
    this object was made is exported. ``outcome_flags``: export only these flags' outcomes;
    ``max_outcome_flags``: export at most this many flags (the first ones seen).
    ``event_logs``: also emit log-based ``feature_flag.evaluation`` events. ``baggage``:
    ``"overrides"`` or ``"decisions"`` puts them in the ``rampup.override`` baggage entry.
    """

    #: how rampup._telemetry_auto tells a telemetry listener from others without importing this
    rampup_telemetry = True
    #: nothing is recorded before a flag is read, so a request that read none has no end to
    #: handle (what ``on_request_start`` kept goes with the request's Flags)
    ends_need_reads = True

    __slots__ = (
        "_baggage",
        "_base",
        "_cache",
        "_context_id",
        "_counts",
        "_events",
        "_instruments",
        "_logger",
        "_max_outcome",
        "_metrics",
        "_outcome_flags",
        "_prefix",
        "_slot",
        "_span_attrs",
        "_spans",
        "book",
    )

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        mode: str = "events",
        metrics: bool = True,
        context_id: bool | str = False,
        book: OutcomeBook | None = None,
        outcome_flags: Collection[str] | None = None,
        max_outcome_flags: int = 100,
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
        #: (key, variant, reason, error type) -> [evaluations]; read by the observable counter
        self._counts: dict[tuple[Any, ...], list[int]] = {}
        #: the book whose outcomes are exported, and what it held when this object was made
        self.book = book if book is not None else process_book
        self._base = self.book.snapshot()
        _instances += 1
        # Our own key in the state dict listeners share, so two instances never collide.
        self._slot = f"rampup.telemetry.{_instances}"
        self._logger: EventLogger | None = None
        if event_logs:
            from ._telemetry_logs import EventLogger

            self._logger = EventLogger(__version__, logger_provider)
        #: whether any span is needed at all (tagging, or linking log events to it)
        self._spans = self._events or self._span_attrs or self._logger is not None
        self._instruments: list[Any] = []
        if self._metrics:
            self._instruments = _register(self, get_meter("rampup", __version__, meter_provider))

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
        """Tag the span and count the evaluation (a plain sum, exported at collection)."""
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
        info.count[0] += 1
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
        """Only a request with baggage to detach needs its end (outcomes are the book's)."""
        st = flags.state
        req = st.get(self._slot) if st is not None else None
        return type(req) is list and req[_CARRIER] is not None

    def on_request_end(self, flags: Any, status: int | None, error: BaseException | None) -> None:
        """Undo our baggage; drop what the request kept."""
        st = flags.state
        # pop: the request's Flags lives in a reference cycle (environ <-> flags) until the
        # garbage collector runs; the span and context must not wait for it with them.
        req = st.pop(self._slot, None) if st is not None else None
        if type(req) is list and req[_CARRIER] is not None:
            req[_CARRIER].close()

    # -- reading, for the observable instruments -------------------------------------------
    def outcomes(self) -> OutcomeSnapshot:
        """The book's outcomes since this object was made (what the instruments export)."""
        return self.book.snapshot().since(self._base)

    def evaluations(self) -> list[tuple[dict[str, Any], int]]:
        """(attributes, evaluations) of each (flag, variant, reason) seen."""
        out = []
        for key, count in list(self._counts.items()):
            attrs = {KEY: key[0], REASON: key[2]}
            if key[1] is not None:
                attrs[VARIANT] = key[1]
            if key[3] is not None:
                attrs[ERROR_TYPE] = key[3]
            out.append((attrs, count[0]))
        return out

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
        if span is None and self._logger is None and self._baggage is None and not self._live():
            self._idle(flags, st)  # no SDK: nothing to record
            return None
        req: list[Any] = [span, None, None]  # _SPAN, _CID, _CARRIER
        if st is None:
            flags.state = {self._slot: req}
        else:
            st[self._slot] = req
        return req

    def _live(self) -> bool:
        """Does an SDK collect our instruments? (False for the API's proxies with no SDK set:
        counting evaluations would then be wasted.) Reads the proxy's private
        ``_real_instrument`` only to skip work: if it goes away, instruments count as live."""
        return bool(self._instruments) and (
            getattr(self._instruments[0], "_real_instrument", 1) is not None
        )

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
        info.count[0] += 1
        span = _get_current_span(ctx) if self._spans else None
        if span is not None and not span.is_recording():
            span = None
        if span is not None or self._logger is not None:
            self._tag(span, None, flags, info)

    def _new_info(self, d: Decision) -> _Info:
        cache = self._cache
        if len(cache) >= _CACHE_SIZE:  # decisions of old snapshots, or many unknown keys
            cache.clear()
        series = (d.key, d.variant, _REASONS.get(d.reason, "unknown"), _ERROR_TYPES.get(d.reason))
        count = self._counts.get(series)
        if count is None:
            count = [0]
            if len(self._counts) < _MAX_EVAL_SERIES:  # else counted, but never exported
                count = self._counts.setdefault(series, count)
        info = cache[id(d)] = _Info(d, self._prefix, count)
        return info

    def _tag(self, span: Any, req: list[Any] | None, flags: Flags, info: _Info) -> None:
        # False without a span, or once it ended (a flag read late, while a body streams)
        recording = span is not None and span.is_recording()
        if recording and self._span_attrs and info.variant is not None:
            span.set_attribute(info.attribute, info.variant)
        if not (self._events and recording) and self._logger is None:
            return
        if self._context_id is None:
            if self._events and recording:
                info.event.add_to(span)
            if self._logger is not None:
                self._logger.emit(EVENT, info.event.attributes, span)
            return
        cid = req[_CID] if req is not None else None
        if cid is None:
            cid = _context_id(flags, self._context_id)
            if req is not None:
                req[_CID] = cid
        attrs = {**info.event.attributes, CONTEXT_ID: cid} if cid else info.event.attributes
        if self._events and recording:
            span.add_event(EVENT, attrs)
        if self._logger is not None:
            self._logger.emit(EVENT, attrs, span)


def _register(tel: RampupTelemetry, meter: Any) -> list[Any]:
    """The observable instruments of ``tel``: evaluations first (``_live`` looks at it)."""

    def evaluations(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, attrs) for attrs, n in tel.evaluations()]

    def outcome(field: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(getattr(s, field), a) for a, s in _exported(tel)]

        return observe

    def durations(options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for attrs, s in _exported(tel):
            for name, q in _QUANTILES:
                value = s.quantile(q)
                if value is not None:
                    out.append(Observation(value, {**attrs, QUANTILE: name}))
        return out

    return [
        meter.create_observable_counter(
            EVALUATIONS, [evaluations], unit="{evaluation}", description="Feature flag evaluations"
        ),
        meter.create_observable_counter(
            REQUESTS,
            [outcome("requests")],
            unit="{request}",
            description="Requests, per variant served of flags that split or target",
        ),
        meter.create_observable_counter(
            ERRORS,
            [outcome("errors")],
            unit="{request}",
            description="Requests that failed (5xx or an exception), per variant served",
        ),
        meter.create_observable_counter(
            ERROR_SUBJECTS,
            [outcome("error_subjects")],
            unit="{subject}",
            description="Subjects whose request failed, each counted once per 60 s",
        ),
        meter.create_observable_gauge(
            DURATION,
            [durations],
            unit="s",
            description="Request duration quantiles since the process started, per variant",
        ),
    ]


def _exported(tel: RampupTelemetry) -> list[tuple[dict[str, Any], Any]]:
    """(attributes, VariantStats) of each exported (flag, variant); never raises into the SDK."""
    try:
        snap = tel.outcomes()
    except Exception:
        log.exception("rampup: reading the outcome book failed; exporting nothing this time")
        return []
    only, cap = tel._outcome_flags, tel._max_outcome
    out = []
    flags: set[str] = set()
    for flag, variant, stats in snap:
        if (only is not None and flag not in only) or not stats.requests:
            continue
        if flag not in flags:
            if len(flags) >= cap:
                continue
            flags.add(flag)
        out.append(({KEY: flag, VARIANT: variant}, stats))
    return out


_shared: RampupTelemetry | None = None


def shared() -> RampupTelemetry:
    """The process's telemetry listener, made on first use: what ``telemetry="auto"`` installs
    in every middleware (one set of instruments per process, on the global providers)."""
    global _shared
    if _shared is None:
        _shared = RampupTelemetry()
    return _shared


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
