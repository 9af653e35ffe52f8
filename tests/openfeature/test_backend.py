"""OpenFeatureBackend: rampup's middleware over any OpenFeature provider (WSGI and ASGI)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from werkzeug.test import Client

import rampup
from rampup import Subject
from rampup.asgi import RampupMiddleware as ASGIMiddleware
from rampup.openfeature import OpenFeatureBackend, RampupProvider, context_of, variant_text
from rampup.types import Receive, Scope, Send
from rampup.wsgi import RampupMiddleware as WSGIMiddleware

ANON = re.compile(r"rampup_id=([0-9a-f]{32});")
RAMPUP_FLAGS = {
    "flags": {
        "split": {"rules": [{"split": {"on": 50, "off": 50}}]},
        "beta": {
            "rules": [
                {
                    "conditions": [{"attribute": "plan", "op": "equals", "value": "pro"}],
                    "serve": "on",
                }
            ]
        },
        "color": {"variants": {"red": "#f00", "blue": "#00f"}, "default": "red"},
    }
}


def whoami(flag: InMemoryFlag[str], context: EvaluationContext) -> FlagResolutionDetails[str]:
    """An in-memory flag serving the targeting key it was given, with no variant name."""
    return FlagResolutionDetails(value=context.targeting_key or "nobody", reason="TARGETING_MATCH")


class Counting(InMemoryProvider):
    """The SDK's in-memory provider, counting the evaluations it is asked for."""

    def __init__(self, flags: dict[str, InMemoryFlag[Any]]) -> None:
        super().__init__(flags)
        self.calls: list[str] = []

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: Any = None
    ) -> Any:
        self.calls.append(flag_key)
        return super().resolve_boolean_details(flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: Any = None
    ) -> Any:
        self.calls.append(flag_key)
        return super().resolve_string_details(flag_key, default_value, evaluation_context)


def in_memory() -> Counting:
    return Counting(
        {
            "new-checkout": InMemoryFlag("on", {"on": True, "off": False}),
            "whoami": InMemoryFlag("x", {"x": "x"}, context_evaluator=whoami),
        }
    )


def wsgi_reader(*reads: str) -> Callable[..., Iterable[bytes]]:
    """A WSGI app reading each key in ``reads`` (repeats allowed) and answering the decisions."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        out = {}
        for key in reads:
            d = rampup.flags.decision(key)
            out[key] = [d.variant, d.value, str(d.reason)]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(out).encode()]

    return app


def asgi_reader(*reads: str) -> Any:
    """The ASGI twin of :func:`wsgi_reader`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        out = {}
        for key in reads:
            d = rampup.flags.decision(key)
            out[key] = [d.variant, d.value, str(d.reason)]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(out).encode()})

    return app


def asgi_get(app: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/", headers=headers)

    return asyncio.run(go())


@pytest.fixture
def counting() -> Counting:
    provider = in_memory()
    api.set_provider_and_wait(provider)
    return provider


def test_wsgi_decisions_come_from_the_client_once_per_request(counting: Counting) -> None:
    """Through WSGI, a flag read three times is asked of the provider once, and served."""
    backend = OpenFeatureBackend(api.get_client(), types={"new-checkout": "boolean"})
    app = WSGIMiddleware(wsgi_reader("new-checkout", "new-checkout", "new-checkout"), backend)
    body = Client(app).get("/").get_json()
    assert body == {"new-checkout": ["on", True, "DEFAULT"]}
    assert counting.calls == ["new-checkout"]


def test_asgi_decisions_come_from_the_client_once_per_request(counting: Counting) -> None:
    """Through ASGI, the same: one provider call per flag per request."""
    backend = OpenFeatureBackend(api.get_client(), types={"new-checkout": "boolean"})
    app = ASGIMiddleware(asgi_reader("new-checkout", "new-checkout"), backend)
    assert asgi_get(app).json() == {"new-checkout": ["on", True, "DEFAULT"]}
    assert counting.calls == ["new-checkout"]


def test_type_is_found_once_then_remembered(counting: Counting) -> None:
    """Without a declared type, a string flag is probed (boolean first) on the first request
    only; the next request asks once."""
    backend = OpenFeatureBackend(api.get_client())
    app = WSGIMiddleware(wsgi_reader("whoami"), backend, user_header="X-User")
    Client(app).get("/", headers={"X-User": "u1"})
    assert counting.calls == ["whoami", "whoami"]  # boolean: TYPE_MISMATCH, then string
    counting.calls.clear()
    Client(app).get("/", headers={"X-User": "u1"})
    assert counting.calls == ["whoami"]
    assert backend.types["whoami"] == "string"


def test_subject_is_the_evaluation_context_and_variant_falls_back_to_text(
    counting: Counting,
) -> None:
    """The request's subject key reaches the provider as targeting_key; a provider that names
    no variant gets the value's text as the variant."""
    backend = OpenFeatureBackend(api.get_client(), types={"whoami": "string"})
    app = WSGIMiddleware(wsgi_reader("whoami"), backend, user_header="X-User")
    body = Client(app).get("/", headers={"X-User": "alice"}).get_json()
    assert body == {"whoami": ["alice", "alice", "RULE_MATCH"]}


def test_unknown_flag_is_unknown_and_off(counting: Counting) -> None:
    """A flag the provider does not have is UNKNOWN_FLAG with no value (off)."""
    backend = OpenFeatureBackend(api.get_client(), types={"nope": "boolean"})
    body = Client(WSGIMiddleware(wsgi_reader("nope"), backend)).get("/").get_json()
    assert body == {"nope": [None, None, "UNKNOWN_FLAG"]}


def test_overrides_work_unchanged(counting: Counting) -> None:
    """A QA override is served with reason OVERRIDE without asking the provider, and reported."""
    backend = OpenFeatureBackend(api.get_client(), types={"new-checkout": "boolean"})
    app = WSGIMiddleware(wsgi_reader("new-checkout"), backend, overrides="open", debug=True)
    response = Client(app).get("/", headers={"X-Rampup-Override": "new-checkout=off"})
    assert response.get_json() == {"new-checkout": ["off", False, "OVERRIDE"]}
    assert "served new-checkout=off" in response.headers["X-Rampup-Overrides"]
    assert counting.calls == []


def test_transaction_context_is_the_request_subject_and_ends_with_it(counting: Counting) -> None:
    """Inside a request, the app's own SDK calls see the request's subject as transaction
    context; outside it, they do not."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(api.get_client().get_string_value("whoami", "?"))
        start_response("200 OK", [])
        return [b""]

    backend = OpenFeatureBackend(api.get_client())
    Client(WSGIMiddleware(app, backend, user_header="X-User")).get("/", headers={"X-User": "bob"})
    assert seen == ["bob"]
    assert api.get_client().get_string_value("whoami", "?") == "nobody"


def test_listeners_hear_each_decision_once(counting: Counting) -> None:
    """Listeners (telemetry, the outcome book) are told of each OpenFeature decision once."""
    heard: list[tuple[str, str | None]] = []

    class Listener:
        def on_decision(self, flags: Any, decision: rampup.Decision) -> None:
            heard.append((decision.key, decision.variant))

    backend = OpenFeatureBackend(api.get_client(), types={"new-checkout": "boolean"})
    app = WSGIMiddleware(
        wsgi_reader("new-checkout", "new-checkout"), backend, listeners=[Listener()]
    )
    Client(app).get("/")
    assert heard == [("new-checkout", "on")]


def test_over_rampup_provider_anonymous_ids_stay_sticky() -> None:
    """Over RampupProvider, a split mints the anonymous id cookie, serves what rampup itself
    decides for that id, and the same id keeps its variant on the next request (WSGI)."""
    snapshot = rampup.load(RAMPUP_FLAGS)
    api.set_provider_and_wait(RampupProvider(snapshot))
    backend = OpenFeatureBackend(api.get_client())
    client = Client(WSGIMiddleware(wsgi_reader("split"), backend))
    first = client.get("/")
    match = ANON.search(first.headers["Set-Cookie"])
    assert match is not None
    anon = match.group(1)
    variant, _, reason = first.get_json()["split"]
    assert reason == "SPLIT"
    assert variant == snapshot.evaluate("split", Subject(anon)).variant
    again = client.get("/")  # werkzeug's client sends the cookie back
    assert again.get_json()["split"][0] == variant
    assert "Set-Cookie" not in again.headers


def test_over_rampup_provider_through_asgi_rules_and_values() -> None:
    """Over RampupProvider through ASGI: attributes from the user callback reach rampup's
    rules (TARGETING_MATCH -> RULE_MATCH), and string variants keep their names."""
    api.set_provider_and_wait(RampupProvider(RAMPUP_FLAGS))
    backend = OpenFeatureBackend(api.get_client())
    app = ASGIMiddleware(
        asgi_reader("beta", "color"), backend, user=lambda scope: {"key": "u1", "plan": "pro"}
    )
    assert asgi_get(app).json() == {
        "beta": ["on", True, "RULE_MATCH"],
        "color": ["red", "#f00", "DEFAULT"],
    }


def test_split_reasons_option_keeps_anonymous_ids_for_targeting_match(counting: Counting) -> None:
    """With split_reasons including TARGETING_MATCH, such decisions count as SPLIT (so a
    visitor's minted id is kept)."""
    backend = OpenFeatureBackend(
        api.get_client(), types={"whoami": "string"}, split_reasons=("SPLIT", "TARGETING_MATCH")
    )
    response = Client(WSGIMiddleware(wsgi_reader("whoami"), backend)).get("/")
    anon = ANON.search(response.headers["Set-Cookie"])
    assert anon is not None
    assert response.get_json()["whoami"] == [anon.group(1), anon.group(1), "SPLIT"]


def test_a_failing_client_serves_errors_not_exceptions() -> None:
    """A client that raises gives an ERROR decision (off); the request succeeds."""

    class Broken:
        def get_boolean_details(self, *args: Any) -> Any:
            raise RuntimeError("down")

    backend = OpenFeatureBackend(Broken(), types={"x": "boolean"}, transaction_context=False)
    body = Client(WSGIMiddleware(wsgi_reader("x"), backend)).get("/").get_json()
    assert body == {"x": [None, None, "ERROR"]}


def test_types_are_validated() -> None:
    """A misspelt type is refused at construction, naming the allowed ones."""
    with pytest.raises(ValueError, match="boolean, string"):
        OpenFeatureBackend(api.get_client(), types={"x": "bool"})


def test_context_and_variant_text() -> None:
    """context_of drops missing attributes; variant_text names booleans on/off, objects JSON."""
    ctx = context_of(Subject("k", {"plan": "pro", "ip": None}))
    assert (ctx.targeting_key, dict(ctx.attributes)) == ("k", {"plan": "pro"})
    assert [variant_text(v) for v in (True, False, 3, {"b": 1, "a": [2]})] == [
        "on",
        "off",
        "3",
        '{"a":[2],"b":1}',
    ]


def test_override_values_follow_the_flag_type() -> None:
    """An override's value is read from the variant name by the flag's type: on/off for
    booleans, numbers, JSON objects; a name that does not parse is served as itself."""
    backend = OpenFeatureBackend(
        api.get_client(),
        types={"n": "integer", "r": "float", "o": "object", "s": "string"},
        transaction_context=False,
    )
    snap, nobody = backend.snapshot, Subject(None)
    served = {
        (key, variant): snap.evaluate(key, nobody, None, variant).value
        for key, variant in [
            ("b", "on"), ("n", "3"), ("n", "three"), ("r", "0.5"), ("o", '{"a": 1}'), ("s", "on"),
        ]
    }  # fmt: skip
    assert served == {
        ("b", "on"): True,
        ("n", "3"): 3,
        ("n", "three"): "three",
        ("r", "0.5"): 0.5,
        ("o", '{"a": 1}'): {"a": 1},
        ("s", "on"): "on",
    }
    assert snap.override_refusal("anything", "any") is None


def test_the_same_answer_is_the_same_decision_so_the_outcome_book_learns_it_once(
    counting: Counting,
) -> None:
    """Equal answers from the client give one Decision object (as a snapshot's prebuilt ones),
    so the outcome book counts many requests with one combination instead of learning a new
    one per request; different answers stay different Decisions."""
    from rampup.outcomes import OutcomeBook, OutcomeRecorder

    provider = RampupProvider(RAMPUP_FLAGS)
    api.set_provider_and_wait(provider)
    backend = OpenFeatureBackend(api.get_client(), types={"split": "boolean"})
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(rampup.flags.decision("split"))
        start_response("200 OK", [])
        return [b"ok"]

    book = OutcomeBook()
    mw = WSGIMiddleware(app, backend, user_header="X-User-Id", listeners=[OutcomeRecorder(book)])
    client = Client(mw)
    for i in range(40):
        client.get("/", headers={"X-User-Id": f"user-{i}"})
    # Two answers (on and off) among 40 subjects: two Decision objects, two combinations
    assert {d.variant for d in seen} == {"on", "off"}
    assert len({id(d) for d in seen}) == 2
    rows = {r["variant"]: r["requests"] for r in rampup.outcomes.report(book)}
    assert sum(rows.values()) == 40
    assert len(book._combos) == 2  # white-box: one combination per answer, not per request


def test_an_object_value_is_served_though_it_cannot_be_memoised() -> None:
    """An object answer (a dict: unhashable) is served each time, built afresh."""
    api.set_provider_and_wait(
        RampupProvider({"flags": {"cfg": {"variants": {"a": {"x": [1]}, "b": {}}, "default": "a"}}})
    )
    backend = OpenFeatureBackend(api.get_client(), types={"cfg": "object"})
    first, second = (backend.decide("cfg", Subject(f"u{i}")) for i in range(2))
    assert (first.variant, first.value, str(first.reason)) == ("a", {"x": [1]}, "DEFAULT")
    assert second == first
    assert second is not first
