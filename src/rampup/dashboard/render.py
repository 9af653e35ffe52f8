"""The HTML of the pages: small functions over plain data, every value through ``html.escape``.

No template engine: a page is a few f-strings. Colour means something only: red for a killed
flag and a regressing variant, a swatch where a variant's value is a colour.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from ..model import Flag
from ..rule_text import rule_words, segment_words
from .assets import VERSION
from .edits import Edit
from .live import DASH, Figures, texts
from .views import FILTERS, FlagView, variant_value

__all__ = ["Page", "confirm_page", "error_page", "flag_page", "history_page", "list_page"]


def e(value: Any) -> str:
    """Escape for HTML text and attribute values."""
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Page:
    """What every page needs: the mount root, the user, the source line, the CSRF token."""

    root: str
    user: str
    source: str
    writable: bool
    csrf: str
    label: str  # where live figures come from: "this process" or "fleet-wide"
    alert: str = ""  # e.g. the store is unreachable


def when(epoch: float) -> str:
    """``2026-12-02 13:05 UTC``"""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch)) if epoch else DASH


def flag_url(p: Page, key: str) -> str:
    """The flag page's URL."""
    return f"{p.root}/flag/{quote(key, safe='')}"


def layout(p: Page, title: str, body: str, active: str = "", live: str = "") -> str:
    """The whole document around ``body``."""
    nav = "".join(
        f'<a href="{e(p.root)}{href}" class="{"on" if name == active else ""}">{name}</a>'
        for name, href in (("Flags", "/"), ("History", "/history"))
    )
    mode = "writable" if p.writable else "read-only"
    live_attr = f' data-live="{e(live)}"' if live else ""
    alert = f'<div class="notice error">{e(p.alert)}</div>' if p.alert else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)} · rampup</title>"
        f'<link rel="stylesheet" href="{e(p.root)}/static/dashboard.css?v={VERSION}">'
        f'<script src="{e(p.root)}/static/dashboard.js?v={VERSION}" defer></script>'
        f"</head><body{live_attr}>"
        f'<header class="top"><span class="brand">rampup</span><nav>{nav}</nav>'
        f'<span class="src"><b>{e(p.source)}</b> · {mode} · {e(p.user)}</span></header>'
        f"<main>{alert}{body}</main></body></html>"
    )


def badges(view: FlagView) -> str:
    """The state badges: killed, rollout, stale."""
    return "".join(f'<span class="badge {b}">{b}</span>' for b in view.badges)


def swatch(colour: str | None) -> str:
    """A colour sample: an SVG fill, because the CSP forbids inline style attributes (the
    colour is a checked hex value)."""
    if not colour:
        return ""
    return (
        '<svg class="swatch" viewBox="0 0 1 1" aria-hidden="true">'
        f'<rect width="1" height="1" fill="{e(colour)}"/></svg> '
    )


def chip(name: str, value: Any) -> str:
    """A variant and its value (a swatch for a colour)."""
    shown = variant_value(value)
    sw = swatch(shown["colour"])
    return f'<span class="chip">{sw}{e(name)}</span>'


def _mini(key: str, figs: Mapping[str, Figures]) -> str:
    parts = []
    for name, f in figs.items():
        t = texts(f)
        cls = "regressing" if f.regressing else ""
        parts.append(
            f'<div data-row="{e(key)}|{e(name)}" class="{cls}">{e(name)} '
            f'<span data-cell="{e(key)}|{e(name)}|requests">{e(t["requests"])}</span> req · '
            f'<span data-cell="{e(key)}|{e(name)}|error_rate">{e(t["error_rate"])}</span></div>'
        )
    return "".join(parts) or f'<span class="muted">{DASH}</span>'


def list_page(
    p: Page,
    *,
    views: Sequence[FlagView],
    total: int,
    counts: Mapping[str, int],
    figs: Mapping[str, Mapping[str, Figures]],
    q: str,
    filt: str,
    notice: str = "",
) -> str:
    """Every flag, searchable and filtered by the query string (no JavaScript needed)."""
    tabs = "".join(
        f'<a class="{"on" if f == filt else ""}" '
        f'href="{e(p.root)}/?{e(urlencode({"q": q, "filter": f}))}">'
        f"{e(label)} <span class='muted'>{counts.get(f, 0)}</span></a>"
        for f, label in FILTERS.items()
    )
    rows = []
    for v in views:
        f = v.flag
        variants = "".join(chip(x.name, x.value) for x in f.variants)
        state = badges(v) + (f'<div class="small">{e(v.now)}</div>' if v.now else "")
        if v.kill is not None:
            state += (
                f'<div class="small">by {e(v.kill.by)}: {e(v.kill.reason or "no reason")}</div>'
            )
        rows.append(
            f'<tr class="{"state-killed" if f.killed else ""}">'
            f'<td><a class="key" href="{e(flag_url(p, f.key))}">{e(f.key)}</a>'
            f'<div class="small muted">{e(f.description)}</div></td>'
            f"<td>{state}</td><td>{variants}</td>"
            f'<td class="live-mini">{_mini(f.key, figs.get(f.key, {}))}</td></tr>'
        )
    shown = f"{len(views):,} of {total:,} flags"
    body = (
        (f'<div class="notice">{e(notice)}</div>' if notice else "")
        + f'<form class="search" method="get" action="{e(p.root)}/">'
        f'<input type="search" name="q" value="{e(q)}" placeholder="Search flags" '
        'aria-label="Search flags">'
        f'<input type="hidden" name="filter" value="{e(filt)}"><button>Search</button>'
        f'<span class="tabs">{tabs}</span></form>'
        f'<div class="card"><div class="row"><h2>Flags</h2><span class="muted small">{shown} · '
        f"live: {e(p.label)}, updated <span data-live-at>{time.strftime('%H:%M:%S')}</span>"
        "</span></div>"
        '<table class="list"><thead><tr><th>Flag</th><th>State</th><th>Variants</th>'
        f"<th>Live ({e(p.label)})</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + ("" if rows else '<p class="muted">No flag matches.</p>')
        + "</div>"
    )
    return layout(p, "Flags", body, "Flags", f"{p.root}/api/live.json")


def _form(p: Page, action: str, fields: str, button: str, cls: str = "") -> str:
    return (
        f'<form method="post" action="{e(p.root)}{e(action)}" class="row">'
        f'<input type="hidden" name="csrf" value="{e(p.csrf)}">{fields}'
        f'<button class="{cls}">{e(button)}</button></form>'
    )


def _edit(edit: Edit, ident: str) -> str:
    return (
        f'<p class="small">The source is read-only. {e(edit.target)}</p>'
        f'<pre class="edit" id="{e(ident)}">{e(edit.text)}</pre>'
        f'<button type="button" data-copy="{e(ident)}" hidden>Copy</button>'
    )


def _reason(required: bool, placeholder: str) -> str:
    req = " required" if required else ""
    return (
        f'<input type="text" name="reason" maxlength="500" placeholder="{e(placeholder)}"'
        f' aria-label="Reason"{req}>'
    )


def flag_page(
    p: Page,
    *,
    view: FlagView,
    segments: Mapping[str, Any],
    figs: Mapping[str, Figures],
    guard: Any,
    history: Iterable[tuple[Any, list[tuple[str, str]]]],
    edits: Mapping[str, Edit | None],
    notice: str = "",
    error: str = "",
) -> str:
    """One flag: kill switch, variants with live figures, rules in words, rollout, history."""
    f: Flag = view.flag
    key = f.key
    head = (
        (f'<div class="notice">{e(notice)}</div>' if notice else "")
        + (f'<div class="notice error">{e(error)}</div>' if error else "")
        + f'<p class="small"><a href="{e(p.root)}/">← all flags</a></p>'
        + f'<h1 class="key">{e(key)} {badges(view)}</h1>'
        + f'<p class="muted">{e(f.description or "No description.")}</p>'
    )
    # -- kill switch
    if f.killed:
        who = (
            f"Killed by {e(view.kill.by)} on {when(view.kill.at)}: "
            f"<b>{e(view.kill.reason or 'no reason given')}</b> (v{view.kill.version})."
            if view.kill is not None
            else "Killed (the source does not record by whom)."
        )
        kill = f"<p>{who} Everyone gets <b>{e(f.off_variant)}</b>.</p>"
        if p.writable:
            kill += _form(p, f"/flag/{quote(key, safe='')}/unkill", _reason(False, "why"), "Unkill")
        elif edits.get("unkill"):
            kill += _edit(edits["unkill"], "edit-unkill")  # type: ignore[arg-type]
    else:
        kill = (
            f"<p>Live. A kill serves <b>{e(f.off_variant)}</b> to everyone, in every "
            "process, within seconds.</p>"
        )
        if p.writable:
            kill += _form(
                p,
                f"/flag/{quote(key, safe='')}/kill",
                _reason(True, "why (required)"),
                "Kill…",
                "danger",
            )
        elif edits.get("kill"):
            kill += _edit(edits["kill"], "edit-kill")  # type: ignore[arg-type]
    kill_card = (
        f'<div class="card {"state-killed" if f.killed else ""}"><h2>Kill switch</h2>{kill}</div>'
    )
    # -- variants with live figures
    rows = []
    for v in f.variants:
        fig = figs.get(v.name)
        t = (
            texts(fig)
            if fig is not None
            else dict.fromkeys(("requests", "error_rate", "p50", "p99"), DASH)
        )
        shown = variant_value(v.value)
        sw = swatch(shown["colour"])
        default = ' <span class="badge">default</span>' if v.name == f.default else ""
        cells = "".join(
            f'<td class="num {"err" if c == "error_rate" else ""}" '
            f'data-cell="{e(key)}|{e(v.name)}|{c}">{e(t[c])}</td>'
            for c in ("requests", "error_rate", "p50", "p99")
        )
        rows.append(
            f'<tr data-row="{e(key)}|{e(v.name)}" '
            f'class="{"regressing" if fig is not None and fig.regressing else ""}">'
            f'<td class="key">{e(v.name)}{default}</td><td>{sw}<span class="key">'
            f"{e(shown['text'])}</span></td>{cells}</tr>"
        )
    variants = (
        f'<div class="card"><div class="row"><h2>Variants</h2><span class="small muted">live: '
        f"{e(p.label)}, updated <span data-live-at>{time.strftime('%H:%M:%S')}</span></span>"
        "</div><table><thead><tr><th>Variant</th><th>Value</th><th class='num'>Requests</th>"
        "<th class='num'>Error rate (95 % interval)</th><th class='num'>p50</th>"
        f"<th class='num'>p99</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (
            ""
            if figs
            else '<p class="small muted">No request counted yet. The outcome book counts only '
            "flags whose decision can differ between subjects (a split, a ramp, a rule).</p>"
        )
        + "</div>"
    )
    # -- rules in words
    items = "".join(f"<li>{e(rule_words(r, f))}</li>" for r in f.rules)
    items += f"<li>otherwise: serve {e(f.default)}</li>"
    used = sorted({s for r in f.rules for s in r.segments})
    segs = "".join(
        f"<dt>{e(name)}</dt><dd>{e(segment_words(segments[name]))}</dd>"
        for name in used
        if name in segments
    )
    rules = (
        f'<div class="card"><h2>Rules</h2><ol class="rules">{items}</ol>'
        + (f'<h2 class="sub">Segments</h2><dl class="kv">{segs}</dl>' if segs else "")
        + "</div>"
    )
    # -- rollout
    rollout = ""
    if view.kind in ("rollout", "ramp"):
        dl = f"<dt>Now</dt><dd>{e(view.now)}</dd><dt>Waits for</dt><dd>{e(view.waits)}</dd>"
        if guard is not None:
            cls = "verdict-halt" if guard.verdict == "halt" else ""
            dl += (
                f'<dt>Guard</dt><dd class="{cls}">{e(guard.verdict)}'
                f"{': ' + e(guard.reason) if guard.reason else ''}</dd>"
                f"<dt>Evidence</dt><dd>E {guard.e:.3g} (halts at {guard.halt_at:g}) · "
                f"E<sub>adv</sub> {guard.e_adv:.3g} (advances at 20) · SRM p {guard.srm_p:.3g}"
                "</dd>"
            )
            dl += "".join(f"<dt></dt><dd>waits for {e(w)}</dd>" for w in guard.waiting_for)
        elif view.kind == "rollout":
            dl += (
                "<dt>Guard</dt><dd class='muted'>no guard attached to this dashboard "
                "(pass guard= to see its evidence and verdict)</dd>"
            )
        act = ""
        ro = next((r.rollout for r in f.rules if r.rollout is not None), None)
        last = ro is None or ro.stage + 1 >= len(ro.stages)
        if ro is not None and not last:
            if p.writable:
                act = _form(
                    p,
                    f"/flag/{quote(key, safe='')}/advance",
                    f'<input type="hidden" name="stage" value="{ro.stage}">'
                    + _reason(False, "why advance now"),
                    "Advance to the next stage",
                    "primary",
                )
            elif edits.get("advance"):
                act = _edit(edits["advance"], "edit-advance")  # type: ignore[arg-type]
        if ro is not None and (not last or ro.held):
            # Hold pauses advancing only: the guard still halts on evidence of harm.
            if p.writable and ro.held:
                act += _form(
                    p,
                    f"/flag/{quote(key, safe='')}/release",
                    _reason(False, "why release"),
                    "Release the hold",
                )
            elif p.writable:
                act += _form(
                    p,
                    f"/flag/{quote(key, safe='')}/hold",
                    _reason(True, "why hold (required)"),
                    "Hold at this stage",
                )
            elif edits.get("hold"):
                act += _edit(edits["hold"], "edit-hold")  # type: ignore[arg-type]
            act += (
                '<p class="small muted">Hold: the guard keeps watching and still halts on harm, '
                "but does not advance until released. To stop a rollout, kill the flag.</p>"
            )
        rollout = f'<div class="card"><h2>Rollout</h2><dl class="kv">{dl}</dl>{act}</div>'
    # -- history of this flag
    hist = _history_items(p, history, show_rollback=False)
    hist_card = (
        f'<div class="card"><h2>History of this flag</h2>{hist}</div>'
        if hist
        else '<div class="card"><h2>History</h2><p class="muted small">No store history: the '
        "source keeps none.</p></div>"
    )
    body = head + kill_card + variants + f'<div class="grid">{rules}{rollout}</div>' + hist_card
    return layout(p, key, body, "", f"{p.root}/api/live.json?flag={quote(key, safe='')}")


def _history_items(
    p: Page, history: Iterable[tuple[Any, list[tuple[str, str]]]], show_rollback: bool
) -> str:
    out = []
    for i, (doc, lines) in enumerate(history):
        diff = "".join(f'<li class="{e(k)}">{e(line)}</li>' for k, line in lines)
        back = ""
        if show_rollback and i > 0 and p.writable:
            back = _form(
                p,
                "/rollback",
                f'<input type="hidden" name="version" value="{doc.version}">'
                + _reason(False, "why"),
                f"Roll back to v{doc.version}",
            )
        live = ' <span class="badge">live</span>' if i == 0 and show_rollback else ""
        out.append(
            f"<tr><td class='num'>v{doc.version}{live}</td><td class='small'>{when(doc.updated_at)}"
            f"</td><td class='small'>{e(doc.by)}</td><td>{e(doc.reason or DASH)}"
            f'<ul class="diff">{diff}</ul>{back}</td></tr>'
        )
    if not out:
        return ""
    return (
        "<table><thead><tr><th class='num'>Version</th><th>When</th><th>Who</th>"
        f"<th>What and why</th></tr></thead><tbody>{''.join(out)}</tbody></table>"
    )


_BEHIND = '<b class="behind">behind</b>'


def processes(acks: Sequence[Any], live_sha: str, now: float) -> str:
    """The serving processes heard from lately: which version each serves, and how long ago."""
    if not acks:
        return ""
    rows = "".join(
        f"<tr><td class='key'>{e(a.process)}</td><td class='key'>{e(a.sha[:12])}</td>"
        f"<td>{'live version' if a.sha == live_sha else _BEHIND}</td>"
        f"<td class='num'>{now - a.at:.0f} s ago</td></tr>"
        for a in acks
    )
    behind = sum(1 for a in acks if a.sha != live_sha)
    head = f"{len(acks)} process{'es' if len(acks) != 1 else ''}" + (
        f", {behind} behind" if behind else ", all on the live version"
    )
    return (
        f'<div class="card"><div class="row"><h2>Serving processes</h2><span class="small muted">'
        f"{head} (heard from in the last 10 s)</span></div><table><thead><tr><th>Process</th>"
        "<th>Serves</th><th></th><th class='num'>Last heard</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def history_page(
    p: Page,
    history: Iterable[tuple[Any, list[tuple[str, str]]]],
    notice: str = "",
    serving: str = "",
) -> str:
    """Every kept version, newest first, with its diff, author and reason."""
    items = _history_items(p, history, show_rollback=True)
    body = (f'<div class="notice">{e(notice)}</div>' if notice else "") + (
        f'<div class="card"><h2>Store history</h2>{items}</div>'
        if items
        else '<div class="card"><h2>Store history</h2><p class="muted">This source keeps no '
        "history: only the Redis store records versions (who, when, why).</p></div>"
    )
    return layout(p, "History", body + serving, "History")


def confirm_page(
    p: Page, title: str, what: str, action: str, fields: Mapping[str, str], *, back: str = "/"
) -> str:
    """The confirmation step: the same POST again with ``confirm=yes``."""
    hidden = "".join(
        f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in fields.items()
    )
    body = (
        f'<div class="card state-killed"><h1>{e(title)}</h1><p>{what}</p>'
        + _form(
            p, action, hidden + '<input type="hidden" name="confirm" value="yes">', title, "danger"
        )
        + f'<p class="small"><a href="{e(p.root)}{e(back)}">Cancel</a></p></div>'
    )
    return layout(p, title, body)


def error_page(p: Page | None, status: int, message: str) -> str:
    """A short page for 4xx answers."""
    body = f'<div class="card"><h1>{status}</h1><p>{e(message)}</p></div>'
    if p is None:
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title>'
            f"</head><body><main>{body}</main></body></html>"
        )
    return layout(p, str(status), body)
