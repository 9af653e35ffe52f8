"""The demo page's outcome panel: each split flag's requests, error rate and p99 per variant,
read from the demo's own outcome book, and the button that simulates traffic to fill it.

The simulation is labelled as such on the page. It runs real requests through the demo's own
middleware, in this process, so the numbers come from the same code path as any request's:
distinct subjects (``sim-<run>-<n>``, one in four with a staff e-mail), a view that reads every
flag, waits a little (longer on the new checkout) and fails one request in ten served
``new-checkout = on``.
"""

from __future__ import annotations

import html
import io
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults

from .outcomes import OutcomeBook, report
from .types import StartResponse

__all__ = [
    "ENVIRON_KEY",
    "SIMULATED_REQUESTS",
    "DemoOutcomes",
    "outcomes_html",
]

#: the environ key under which the demo app finds its :class:`DemoOutcomes`
ENVIRON_KEY = "rampup_demo.outcomes"
#: the environ key that marks a simulated request (a client cannot set it: headers become HTTP_*)
_SIMULATION = "rampup_demo.simulation"
#: requests per press of the button
SIMULATED_REQUESTS = 200
#: of the requests served new-checkout = on, one in this many fails (a 500)
FAIL_ONE_IN = 10
#: what the simulated view waits, in seconds: the new checkout is slower
_WAIT_ON, _WAIT_OFF = 0.003, 0.001


@dataclass
class _Run:
    """One press of the button: how many requests were served new-checkout = on so far."""

    on: int = 0


@dataclass
class DemoOutcomes:
    """The demo's outcome book, and the simulated traffic sent into it so far."""

    book: OutcomeBook = field(default_factory=OutcomeBook)
    simulated: int = 0
    runs: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def simulate(self, app: Callable[..., Iterable[bytes]], n: int = SIMULATED_REQUESTS) -> int:
        """Send ``n`` simulated requests through ``app`` (the demo's middleware), each from a
        new subject; return how many answered 500."""
        run_id = next(self._ids)  # distinct subjects in every run
        state = _Run()
        failed = 0
        for i in range(1, n + 1):
            environ: dict[str, Any] = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/simulated",
                "wsgi.input": io.BytesIO(b""),
                "HTTP_X_USER_ID": f"sim-{run_id}-{i}",
                _SIMULATION: state,
            }
            if i % 4 == 0:  # staff: new-checkout's "then staff" rule serves them on
                environ["HTTP_X_USER_EMAIL"] = f"sim-{run_id}-{i}@example.com"
            setup_testing_defaults(environ)
            status: list[str] = []
            body = app(environ, _recorder(status))
            try:
                b"".join(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            failed += status[:1] == ["500 Internal Server Error"]
        self.simulated += n
        self.runs += 1
        return failed


def _recorder(status: list[str]) -> StartResponse:
    def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(line)

    return start_response


def simulated_view(environ: dict[str, Any], start_response: StartResponse) -> list[bytes] | None:
    """The view behind a simulated request (None when ``environ`` is not one): reads every
    flag, as a page would, waits, and fails one in ten requests served new-checkout = on."""
    state = environ.get(_SIMULATION)
    if not isinstance(state, _Run):
        return None
    flags = environ["rampup.flags"]
    for key in flags.snapshot.flags:
        flags.decision(key)
    fail = False
    if flags.enabled("new-checkout"):
        state.on += 1
        fail = state.on % FAIL_ONE_IN == 0
        time.sleep(_WAIT_ON)
    else:
        time.sleep(_WAIT_OFF)
    start_response(
        "500 Internal Server Error" if fail else "200 OK", [("Content-Type", "text/plain")]
    )
    return [b"simulated failure\n" if fail else b"simulated\n"]


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


def outcomes_html(outcomes: DemoOutcomes | None) -> str:
    """The panel's table, or 'no traffic yet'; and how much of it was simulated."""
    if outcomes is None:
        return '<p class="muted" id="no-traffic">No outcome book attached to this app.</p>'
    rows = report(outcomes.book)
    if not rows:
        return (
            '<p class="muted" id="no-traffic">No traffic yet: reload this page, or simulate '
            "some requests.</p>"
        )
    body = []
    previous = None
    for r in rows:
        flag = html.escape(r["flag"])
        variant = html.escape(r["variant"])
        first = r["flag"] != previous
        previous = r["flag"]
        bad = ' class="bad"' if r["errors"] else ""
        row_class = ' class="first"' if first else ""
        name = f"<code>{flag}</code>" if first else ""
        body.append(
            f'<tr data-flag="{flag}" data-variant="{variant}"{row_class}>'
            f"<td>{name}</td><td><b>{variant}</b></td>"
            f'<td class="requests">{r["requests"]:,}</td>'
            f'<td class="errors">{r["errors"]:,}</td>'
            f'<td class="error-rate"><span{bad}>{r["error_rate"]:.1%}</span></td>'
            f'<td class="p99">{_ms(r["p99_ms"])}</td></tr>'
        )
    note = (
        f"Includes {outcomes.simulated:,} simulated requests ({outcomes.runs} "
        f"run{'s' if outcomes.runs != 1 else ''})."
        if outcomes.simulated
        else "All real: requests this demo served (your page views included)."
    )
    return (
        '<table class="outcomes" id="outcomes-table"><thead><tr><th>flag</th><th>variant</th>'
        "<th>requests</th><th>errors</th><th>error rate</th><th>p99</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<p class="muted" id="simulated-note">{note}</p>'
    )
