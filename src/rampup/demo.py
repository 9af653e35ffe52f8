"""The demo app behind ``rampup demo``: a plain WSGI app that shows, and explains, each decision.

It uses only the standard library (wsgiref), so ``pip install rampup && rampup demo`` works on a
fresh machine. The page shows every flag with its description, its variants (a colour as a
swatch), the rule that decided in words, the visitor's bucket and the current ramp step; a
visitor can switch identity and force variants from the page. Identity comes from a cookie the
page sets, or from headers, as it would behind an auth gateway (for curl).

The page reads every flag *before* ``start_response``, so a split can set the ``rampup_id``
cookie on the response and an anonymous visitor keeps their variants across reloads.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from ._demo_outcomes import ENVIRON_KEY as OUTCOMES_KEY
from ._demo_outcomes import SIMULATED_REQUESTS, DemoOutcomes, outcomes_html, simulated_view
from .bucketing import bucket
from .model import Decision, Flag, Reason, Rule, Subject
from .outcomes import OutcomeBook, OutcomeRecorder, report
from .overrides import explain_override
from .types import StartResponse
from .wsgi import RampupMiddleware

__all__ = ["DEMO_FLAGS", "demo_flags_path", "make_app", "user_from_headers"]

_HEADERS = {
    "email": "HTTP_X_USER_EMAIL",
    "role": "HTTP_X_USER_ROLE",
    "beta": "HTTP_X_BETA",
    "app_version": "HTTP_X_APP_VERSION",
}
#: the cookie the identity form sets (the demo's stand-in for a login session)
IDENTITY_COOKIE = "rampup_demo_user"
#: the override query parameter: the "Force" form redirects to ``/?rampup_override=...``, and
#: the middleware sets the ``rampup_override`` cookie from it (the documented QA-link flow)
OVERRIDE_PARAM = "rampup_override"
_MAX_BODY = 4096
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
#: people from examples/flags.toml, one click away
PRESETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("QA tester", {"id": "qa-alice"}),
    ("Staff", {"id": "42", "email": "ann@example.com"}),
    ("Admin", {"id": "7", "email": "root@example.com", "role": "admin"}),
    ("Beta customer", {"id": "1001", "beta": "true", "app_version": "4.3.0"}),
    ("Customer", {"id": "1002", "email": "bob@gmail.com"}),
)
#: why a subject's bucket did not decide, by the reason that did
_UNUSED = {
    Reason.KILLED: "the flag is killed",
    Reason.OVERRIDE: "an override decided",
    Reason.RULE_MATCH: "a rule before the split matched you",
}
_BAR = ("#0969da", "#1a7f37", "#bc4c00", "#8250df", "#bf3989", "#57606a")


def demo_flags_path() -> Path:
    """The flag file the demo serves: ``examples/flags.toml`` when rampup runs from a checkout
    (an editable install), else the copy bundled in the package (the same file)."""
    checkout = Path(__file__).resolve().parents[2] / "examples" / "flags.toml"
    if checkout.is_file():
        return checkout
    return Path(str(resources.files("rampup") / "data" / "flags.toml"))


DEMO_FLAGS = demo_flags_path


def user_from_headers(environ: dict[str, Any]) -> dict[str, Any]:
    """X-User-Id and X-User-Email/-Role/-App-Version, X-Beta: the subject, gateway style."""
    user: dict[str, Any] = {"key": environ.get("HTTP_X_USER_ID")}
    for attr, header in _HEADERS.items():
        value = environ.get(header)
        if value is not None:
            user[attr] = value == "true" if attr == "beta" else value[:256]
    return user


def _cookies(environ: Mapping[str, Any]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in jar:
            jar[name] = value.strip('"')
    return jar


def _identity(environ: Mapping[str, Any]) -> dict[str, str]:
    """The identity the page's form stored: id, email, role, beta, app_version."""
    raw = _cookies(environ).get(IDENTITY_COOKIE, "")
    return {k: v[:256] for k, v in parse_qsl(raw)[:8] if k in {"id", *_HEADERS}}


def demo_user(environ: dict[str, Any]) -> dict[str, Any]:
    """The subject: X-User-* headers if sent (curl), else the identity the page's form set."""
    if environ.get("HTTP_X_USER_ID") is not None:
        return user_from_headers(environ)
    ident = _identity(environ)
    user: dict[str, Any] = {"key": ident.get("id") or None}
    for attr in _HEADERS:
        if ident.get(attr):
            user[attr] = ident[attr] == "true" if attr == "beta" else ident[attr]
    return user


# -- explaining a decision in words --------------------------------------------------------------
def _pct(weight: int) -> str:
    return f"{weight / 100:g} %"


def _weights(rule: Rule, now: float) -> tuple[tuple[str, int], ...] | None:
    """The split weights ``rule`` applies at ``now`` (None: a ramp that has not begun)."""
    assert rule.split is not None
    if not rule.split.ramp:
        return rule.split.weights
    started = [s for s in rule.split.ramp if s.start.timestamp() <= now]
    return started[-1].weights if started else None


def _ranges(flag: Flag, weights: Iterable[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(variant, first bucket, end) in the flag's variant order: how the engine assigns them."""
    share = dict(weights)
    out, start = [], 0
    for v in flag.variants:
        w = share.get(v.name, 0)
        if w:
            out.append((v.name, start, start + w))
            start += w
    return out


def _split_rule(flag: Flag, d: Decision) -> Rule | None:
    if d.rule_index is not None and d.rule_index < len(flag.rules):
        rule = flag.rules[d.rule_index]
        if rule.split is not None:
            return rule
    return next((r for r in flag.rules if r.split is not None), None)


def _rule_name(flag: Flag, index: int) -> str:
    desc = flag.rules[index].description
    return f"Rule #{index}" + (f" (“{html.escape(desc)}”)" if desc else "")


def _conditions(rule: Rule) -> str:
    parts = [f"in segment <code>{html.escape(s)}</code>" for s in rule.segments]
    parts += [
        f"<code>{html.escape(c.attribute)} {html.escape(c.op)} {html.escape(json.dumps(c.value))}"
        "</code>"
        for c in rule.conditions
    ]
    return " and ".join(parts) or "everyone"


def explain(flag: Flag, d: Decision, subject: Subject, now: float) -> str:
    """One sentence (HTML) saying why ``d`` was served."""
    name = f"<b>{html.escape(str(d.variant))}</b>"
    if d.reason is Reason.KILLED:
        return f"The kill switch is on: {name} for everyone, overrides included."
    if d.reason is Reason.OVERRIDE:
        return f"Forced to {name} by your QA override (the <code>rampup_override</code> cookie)."
    if d.reason is Reason.RULE_MATCH and d.rule_index is not None:
        rule = flag.rules[d.rule_index]
        who = _conditions(rule)
        whom = "everyone" if who == "everyone" else f"you ({who})"
        return f"{_rule_name(flag, d.rule_index)} matches {whom}: it serves {name}."
    if d.reason is Reason.SPLIT and d.rule_index is not None:
        rule = flag.rules[d.rule_index]
        share = dict(_weights(rule, now) or ()).get(str(d.variant), 0)
        scope = "everyone" if not rule.segments and not rule.conditions else _conditions(rule)
        by = rule.split.bucket_by if rule.split is not None else "key"
        by_text = "" if by == "key" else f" by <code>{html.escape(by)}</code>"
        step = " (this ramp step)" if rule.split is not None and rule.split.ramp else ""
        return (
            f"{_rule_name(flag, d.rule_index)} splits {scope}{by_text}: your "
            f"bucket falls in the {_pct(share)} that get {name}{step}."
        )
    if d.reason is Reason.DEFAULT:
        why = f" ({html.escape(d.detail)})" if d.detail else ""
        if not flag.rules:
            return f"No rules: the default, {name}."
        return f"No rule matched you: the default, {name}{why}."
    return f"{html.escape(d.reason.value)}: {html.escape(d.detail or 'see the log')}"


# -- rendering -------------------------------------------------------------------------------------
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return f'<span class="bool-{str(value).lower()}">{str(value).lower()}</span>'
    if isinstance(value, str) and _COLOUR.match(value):
        return f'<span class="swatch" style="background:{value}"></span><code>{value}</code>'
    return f"<code>{html.escape(json.dumps(value))}</code>"


def _bucket_html(flag: Flag, d: Decision, subject: Subject, now: float) -> str:
    rule = _split_rule(flag, d)
    if rule is None or rule.split is None:
        return ""
    by = rule.split.bucket_by
    key = subject.key if by == "key" else subject.get(by)
    weights = _weights(rule, now)
    colours = {v.name: _BAR[i % len(_BAR)] for i, v in enumerate(flag.variants)}
    spans = "".join(
        f'<span style="width:{(end - start) / 100}%;background:{colours[name]}" '
        f'title="{html.escape(name)}: buckets {start}-{end - 1}">{html.escape(name)}</span>'
        for name, start, end in _ranges(flag, weights or ())
    )
    if key is None:
        text = f"You have no <code>{html.escape(by)}</code>, so no split puts you in a bucket."
        return f'<div class="bucket">{text}</div>'
    b = bucket(flag.salt or flag.key, str(key))
    marker = f'<span class="marker" style="left:calc({b / 100}% - 1px)"></span>'
    unused = _UNUSED.get(d.reason)
    label = f"Your bucket (unused: {unused})" if unused else "Your bucket"
    salt = html.escape(flag.salt or flag.key)
    text = f"{label}: <b>{b}</b> of 10,000 (v1, salt <code>{salt}</code>)"
    if weights is None:
        return f'<div class="bucket">{text}; the ramp has not begun.</div>'
    return f'<div class="bucket">{text}<div class="bar">{spans}{marker}</div></div>'


def _ramp_html(flag: Flag, now: float) -> str:
    for rule in flag.rules:
        if rule.split is None or not rule.split.ramp:
            continue
        items = []
        current = max(
            (i for i, s in enumerate(rule.split.ramp) if s.start.timestamp() <= now), default=None
        )
        for i, step in enumerate(rule.split.ramp):
            shares = ", ".join(f"{html.escape(n)} {_pct(w)}" for n, w in step.weights)
            when = step.start.strftime("%Y-%m-%d %H:%M UTC")
            mark = ' class="now"' if i == current else ""
            now_text = " ← now" if i == current else ""
            items.append(f"<li{mark}>from {when}: {shares}{now_text}</li>")
        head = (
            "Ramp not begun yet."
            if current is None
            else f"Ramp step {current + 1} of {len(rule.split.ramp)}."
        )
        return f'<div class="muted">{head}</div><ol class="ramp">{"".join(items)}</ol>'
    return ""


def _flag_html(flag: Flag, d: Decision, subject: Subject, forced: str | None, now: float) -> str:
    variants = "".join(
        f'<li class="{"on" if v.name == d.variant else ""}" data-variant="{html.escape(v.name)}">'
        f"<b>{html.escape(v.name)}</b> {_value(v.value)}</li>"
        for v in flag.variants
    )
    options = ['<option value="">no override</option>'] + [
        f'<option value="{html.escape(v.name)}"{" selected" if v.name == forced else ""}>'
        f"{html.escape(v.name)}</option>"
        for v in flag.variants
    ]
    notes = []
    if flag.killed:
        notes.append("killed")
    if not flag.overridable:
        notes.append("refuses overrides")
    note = f' <span class="pill">{", ".join(notes)}</span>' if notes else ""
    key = html.escape(flag.key)
    served = html.escape(str(d.variant))
    desc = html.escape(flag.description)
    return f"""<article class="card flag" data-flag="{key}" data-served="{served}">
  <div class="flag-head">
    <div><h3><code>{key}</code>{note}</h3><div class="muted">{desc}</div></div>
    <div class="served"><span class="variant-name">{served}</span>
      <span class="pill {d.reason.value}">{d.reason.value}</span></div>
  </div>
  <p class="why">{explain(flag, d, subject, now)}</p>
  <ul class="variants">{variants}</ul>
  {_bucket_html(flag, d, subject, now)}
  {_ramp_html(flag, now)}
  <label class="force">Force
    <select name="{key}" form="force" aria-label="force {key}">{"".join(options)}</select>
  </label>
</article>"""


def _override_value(environ: Mapping[str, Any]) -> str | None:
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if OVERRIDE_PARAM in query:
        return query[OVERRIDE_PARAM].strip() or None
    value = environ.get("HTTP_X_RAMPUP_OVERRIDE") or _cookies(environ).get("rampup_override")
    return value.replace("\\054", ",") if value else None


def _report(flags: Any, value: str | None) -> tuple[str, dict[str, str]]:
    """The override report as a list, and flag -> variant asked for (to preselect the form)."""
    if not value:
        return (
            '<p class="muted" id="report">No override: every flag is decided by its rules.</p>',
            {},
        )
    asked = {}
    for item in value.split(","):
        flag, eq, variant = item.strip().partition("=")
        if eq:
            asked[flag] = variant
    lines = explain_override(flags.snapshot, "", value, subject=flags.subject.key)["report"]
    items = "".join(
        f'<li class="{"served" if line.startswith("served") else "refused"}">'
        f"{html.escape(line)}</li>"
        for line in lines
    )
    return f'<ul class="report" id="report">{items}</ul>', asked


def _page(environ: Mapping[str, Any], flags: Any, flag_file: str) -> bytes:
    now = time.time()
    snapshot = flags.snapshot
    decisions = {key: flags.decision(key) for key in snapshot.flags}  # before start_response
    subject: Subject = flags.subject
    report, asked = _report(flags, _override_value(environ))
    ident = _identity(environ)
    anonymous = environ.get("HTTP_X_USER_ID") is None and not ident.get("id")
    attrs = {k: v for k, v in subject.attributes.items() if k in _HEADERS}
    attributes = (
        '<dl class="attrs">'
        + "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in attrs.items()
        )
        + "</dl>"
        if attrs
        else ""
    )
    presets = "".join(
        f'<form method="post" action="/identity"><button type="submit" title="'
        f'{html.escape(", ".join(f"{k}={v}" for k, v in fields.items()))}">{html.escape(label)}'
        "</button>"
        + "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in fields.items()
        )
        + "</form>"
        for label, fields in PRESETS
    )
    roles = ["", "customer", "admin", "owner"]
    role_options = "".join(
        f'<option value="{r}"{" selected" if ident.get("role") == r else ""}>{r or "none"}</option>'
        for r in roles
    )
    cards = "\n".join(
        _flag_html(snapshot.flags[key], d, subject, asked.get(key), now)
        for key, d in decisions.items()
    )
    host = environ.get("HTTP_HOST", "127.0.0.1:8000")
    curl = (
        f"curl -s {host}/api/flags -H 'X-User-Id: 42' \\\n"
        f"  -H 'X-User-Email: ann@example.com'\n"
        f"curl -si {host}/api/flags \\\n  -H 'X-Rampup-Override: new-checkout=on'\n"
        f"rampup explain {flag_file} \\\n  new-checkout --id 42 --attr email=ann@example.com"
    )
    page = Template(_TEMPLATE).substitute(
        flag_file=html.escape(flag_file),
        now=datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        subject_key=html.escape(str(subject.key)),
        subject_kind=(
            "anonymous: an id kept in the <code>rampup_id</code> cookie"
            if anonymous
            else "signed in (the demo keeps you in a cookie)"
        ),
        attributes=attributes,
        form_id=html.escape(ident.get("id", "")),
        form_email=html.escape(ident.get("email", "")),
        form_app_version=html.escape(ident.get("app_version", "")),
        beta_checked="checked" if ident.get("beta") == "true" else "",
        role_options=role_options,
        presets=presets,
        report=report,
        curl=html.escape(curl),
        count=len(decisions),
        flags=cards,
        outcomes=outcomes_html(environ.get(OUTCOMES_KEY)),
        simulate_count=SIMULATED_REQUESTS,
    )
    return page.encode()


_TEMPLATE = (resources.files("rampup") / "data" / "demo.html").read_text(encoding="utf-8")


def _form(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    try:
        size = min(int(environ.get("CONTENT_LENGTH") or 0), _MAX_BODY)
    except ValueError:
        size = 0
    body = environ["wsgi.input"].read(size) if size > 0 else b""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _see_other(start_response: StartResponse, location: str, *cookies: str) -> list[bytes]:
    headers = [("Location", location), ("Content-Type", "text/plain")]
    headers += [("Set-Cookie", c) for c in cookies]
    start_response("303 See Other", headers)
    return [b"see " + location.encode() + b"\n"]


def demo_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The inner WSGI app: ``/`` (HTML), ``/api/flags`` (JSON), ``/checkout`` (guarded), and
    the page's two forms, ``POST /identity`` and ``POST /override``; with a
    :class:`DemoOutcomes` in the environ (``make_app`` puts it there), ``/api/outcomes`` (JSON)
    and ``POST /simulate`` too."""
    flags = environ["rampup.flags"]
    path = environ.get("PATH_INFO", "/")
    method = environ.get("REQUEST_METHOD", "GET")
    outcomes = environ.get(OUTCOMES_KEY)
    if path == "/simulated":
        simulated = simulated_view(environ, start_response)
        if simulated is not None:
            return simulated
    if outcomes is not None and path == "/api/outcomes":
        data = {"simulated": outcomes.simulated, "outcomes": report(outcomes.book)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data, indent=2).encode() + b"\n"]
    if outcomes is not None and path == "/simulate" and method == "POST":
        outcomes.simulate(environ[_MIDDLEWARE_KEY])
        return _see_other(start_response, "/#outcomes")
    if path == "/api/flags":
        data = {
            "subject": flags.subject.key,
            "flags": {
                k: {"variant": d.variant, "value": d.value, "reason": d.reason.value}
                for k, d in ((k, flags.decision(k)) for k in flags.snapshot.flags)
            },
        }
        body = json.dumps(data, indent=2).encode() + b"\n"
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/checkout":
        if not flags.enabled("new-checkout"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: new-checkout is off for you\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the new checkout\n"]
    if path == "/identity" and method == "POST":
        fields = {k: v.strip()[:256] for k, v in _form(environ) if v.strip()}
        if "anonymous" in fields:
            return _see_other(start_response, "/", f"{IDENTITY_COOKIE}=; Max-Age=0; Path=/")
        kept = urlencode({k: v for k, v in fields.items() if k in {"id", *_HEADERS}})
        cookie = f"{IDENTITY_COOKIE}={kept}; Path=/; HttpOnly; SameSite=Lax"
        return _see_other(start_response, "/", cookie)
    if path == "/override" and method == "POST":
        items = _form(environ)
        spec = ",".join(f"{k}={v}" for k, v in items if v and k != "clear")
        if any(k == "clear" for k, _ in items):
            spec = ""
        return _see_other(start_response, f"/?{OVERRIDE_PARAM}={quote(spec, safe='=,')}")
    if path == "/" and method in ("GET", "HEAD"):
        # Render first: reading the flags before start_response lets a split set the
        # anonymous id cookie, so the visitor keeps their variants on the next reload.
        body = _page(environ, flags, str(flags.snapshot.origin))
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
        )
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


_MIDDLEWARE_KEY = "rampup_demo.middleware"


def make_app(
    flags: Any = None, book: OutcomeBook | None = None, **options: Any
) -> RampupMiddleware:
    """The demo app wrapped in the rampup middleware (debug mode: unsigned overrides honoured;
    the ``?rampup_override=`` link sets the override cookie).

    The page shows the outcomes of ``book`` (default: a new book of this app's own, so the
    numbers are this demo's requests and nothing else in the process)."""
    outcomes = DemoOutcomes(book if book is not None else OutcomeBook())
    options.setdefault("user", demo_user)
    options.setdefault("debug", True)
    options.setdefault("override_query_param", OVERRIDE_PARAM)
    options["listeners"] = [*options.get("listeners", ()), OutcomeRecorder(outcomes.book)]
    middleware: RampupMiddleware | None = None

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[OUTCOMES_KEY] = outcomes
        environ[_MIDDLEWARE_KEY] = middleware  # the simulation sends its requests through it
        return demo_app(environ, start_response)

    middleware = RampupMiddleware(app, flags=flags or demo_flags_path(), **options)
    return middleware
