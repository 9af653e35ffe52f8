"""The dashboard: routes, and the WSGI and ASGI apps around them. No framework is imported here.

::

    GET  /                    every flag (``?q=`` search, ``?filter=killed|rollout|stale``)
    GET  /flag/KEY            one flag
    GET  /history             the store's versions with their diffs
    GET  /api/live.json       live figures (``?flag=KEY`` for one), polled by the page's script
    GET  /static/dashboard.{css,js}
    POST /flag/KEY/kill       reason, csrf; answered by a confirmation page until confirm=yes
    POST /flag/KEY/unkill     reason, csrf
    POST /flag/KEY/advance    stage (the stage seen), reason, csrf
    POST /flag/KEY/hold       reason (required), csrf: the guard stops advancing it
    POST /flag/KEY/release    reason, csrf: lifts the hold
    POST /rollback            version, reason, csrf (a rollback that lifts a kill is confirmed)

Writes need a writable source (the Redis store); with a file or HTTP source the pages show the
edit to make instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode

from ..config import load
from ..engine import Snapshot
from ..errors import StoreError
from ..outcomes import OutcomeSnapshot
from ..outcomes import book as process_book
from ..sources import as_source
from . import actions, history, render
from .assets import CSS, JS
from .edits import Edit, held_edit, kill_edit, stage_edit
from .http import Request, Response, asgi_app, wsgi_app
from .live import OutcomeProvider, figures, live_json
from .security import SECURITY_HEADERS, SESSION_COOKIE, Authorize, Csrf, check_mount, who
from .views import FILTERS, FlagView, KillRecord, flag_view, kill_records, matches

__all__ = ["Dashboard"]

log = logging.getLogger("rampup.dashboard")

#: the live figures' label when they are the fleet's sums from Redis
FLEET_LABEL = "fleet-wide"


class Dashboard:
    """A control page over a flag source.

    ``flags``: the app's source (the same object given to the middleware, or anything
    ``flags=`` takes); a :class:`~rampup.redis_source.RedisSource` or a ``redis://`` URL makes
    it writable. ``authorize``: given the :class:`~rampup.dashboard.http.Request`, return the
    user or None (403); required unless ``debug=True`` (then loopback clients only).
    ``secret``: the CSRF key, shared by every worker of a multi-process server (default: one
    random per process). ``outcomes``/``outcomes_label``: where live figures come from. By
    default, with a store, the fleet's sums that ``rampup.guard_fleet`` flushes to Redis
    (labelled "fleet-wide"), else (nothing flushed for the flags shown, Redis down, no store)
    this process's outcome book (labelled "this process"). ``guard``: a
    :class:`~rampup.guard.Guard` whose evidence and verdict to show.
    """

    def __init__(
        self,
        flags: Any,
        *,
        authorize: Authorize | None = None,
        debug: bool = False,
        secret: str | bytes | None = None,
        outcomes: OutcomeProvider | None = None,
        outcomes_label: str = "this process",
        guard: Any = None,
    ) -> None:
        check_mount(authorize, debug)
        self.authorize = authorize
        self.debug = debug
        self.source = as_source(flags, watch=not _is_redis_url(flags))
        self.store: Any = getattr(self.source, "store", None)
        self.outcomes: OutcomeProvider = outcomes or process_book.snapshot
        self.outcomes_label = outcomes_label
        #: read the fleet's sums from Redis first (only when the caller chose no provider)
        self.fleet = outcomes is None and self.store is not None
        self.guard = guard
        self.csrf = Csrf(secret)
        self._cache: tuple[int, Snapshot, list[Any]] | None = None
        self._lock = threading.Lock()
        #: the WSGI application
        self.wsgi: Callable[..., Any] = wsgi_app(self.handle)
        #: the ASGI application
        self.asgi: Callable[..., Any] = asgi_app(self.handle)

    @property
    def writable(self) -> bool:
        """True when actions can write (a store is behind the source)."""
        return self.store is not None

    # -- reading -------------------------------------------------------------------------------
    def state(self) -> tuple[Snapshot, list[Any], str]:
        """(snapshot, store history newest first, outage note). With a store, read from Redis
        (cached per version), so a write shows at once; when Redis is unreachable, the last
        good flags with a note saying so. Otherwise the source's snapshot and no history."""
        if self.store is None:
            return self.source.snapshot, [], ""
        try:
            head = self.store.head()
            cached = self._cache
            if head is None:
                return self.source.snapshot, [], ""
            if cached is not None and cached[0] == head[0]:
                return cached[1], cached[2], ""
            hist = self.store.history()
            live = hist[0] if hist else self.store.get()
            snap = load(live.data) if live is not None else self.source.snapshot
        except Exception as exc:  # Redis down: show what we last knew, say so, do not fail
            log.warning("rampup.dashboard: the flag store is unreachable: %s", exc)
            note = (
                f"The flag store is unreachable ({type(exc).__name__}): showing the last good "
                "flags; actions fail until it is back."
            )
            if self._cache is not None:
                return self._cache[1], self._cache[2], note
            return self.source.snapshot, [], note
        with self._lock:
            self._cache = (head[0], snap, hist)
        return snap, hist, ""

    def live_outcomes(self, keys: list[str]) -> tuple[OutcomeSnapshot, str]:
        """(outcome snapshot, its label) for the flags ``keys``: the fleet's sums in Redis when
        any of them has some, else this process's book (or the caller's provider)."""
        if self.fleet:
            from ..guard_fleet import FleetReader

            try:
                fleet = FleetReader(self.store).snapshot(keys)
            except Exception as exc:  # Redis down: this process's figures, labelled so
                log.warning("rampup.dashboard: reading the fleet's outcome sums failed: %s", exc)
            else:
                if fleet.flags:
                    return fleet, FLEET_LABEL
        return self.outcomes(), self.outcomes_label

    def source_label(self, hist: list[Any]) -> str:
        """``Redis store shop · v12`` or ``flags.toml``: what the header names."""
        if self.store is not None:
            return f"Redis store {self.store.namespace}" + (
                f" · v{hist[0].version}" if hist else ""
            )
        path = getattr(self.source, "path", None)
        if path is not None:
            return str(path)
        url = getattr(self.source, "url", None)
        return str(url) if url else "flags in code"

    # -- the request ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one request; never raises (a failure is a logged 500)."""
        try:
            return self._handle(request)
        except Exception:
            log.exception("rampup.dashboard: %s %s failed", request.method, request.path)
            return self._secure(Response(500, render.error_page(None, 500, "internal error")))

    def _secure(self, response: Response) -> Response:
        response.headers.extend(SECURITY_HEADERS)
        return response

    def _handle(self, request: Request) -> Response:
        path = request.path
        if request.method == "GET" and path.startswith("/static/"):
            return self._static(path)
        user = who(request, self.authorize)
        if user is None:
            return self._secure(
                Response(403, render.error_page(None, 403, "You may not use this dashboard."))
            )
        request.user = user
        session = request.cookies.get(SESSION_COOKIE, "")
        new_cookie = None
        if not session:
            session = self.csrf.new_session()
            new_cookie = Csrf.cookie(session, request)
        snap, hist, outage = self.state()
        page = render.Page(
            request.root,
            user,
            self.source_label(hist),
            self.writable,
            self.csrf.token(session, user),
            self.outcomes_label,
            outage,
        )
        if request.method == "POST":
            response = self._post(request, page, snap)
        elif request.method in ("GET", "HEAD"):
            response = self._get(request, page, snap, hist)
        else:
            response = Response(405, render.error_page(page, 405, "GET or POST only"))
            response.headers.append(("Allow", "GET, POST"))
        if new_cookie is not None:
            response.headers.append(new_cookie)
        return self._secure(response)

    def _static(self, path: str) -> Response:
        if path == "/static/dashboard.css":
            body, ctype = CSS, "text/css; charset=utf-8"
        elif path == "/static/dashboard.js":
            body, ctype = JS, "text/javascript; charset=utf-8"
        else:
            return self._secure(Response(404, "not found", "text/plain; charset=utf-8"))
        # the URLs carry the assets' hash: safe to cache
        return Response(
            200,
            body,
            ctype,
            [("Cache-Control", "public, max-age=86400"), ("X-Content-Type-Options", "nosniff")],
        )

    def _get(
        self, request: Request, page: render.Page, snap: Snapshot, hist: list[Any]
    ) -> Response:
        path, q = request.path, request.query
        if path in ("/", ""):
            return Response(200, self._list(page, snap, hist, q))
        if path == "/history":
            pairs = [
                (d, history.diff(hist[i + 1] if i + 1 < len(hist) else None, d))
                for i, d in enumerate(hist)
            ]
            serving = ""
            if self.store is not None and hist:
                serving = render.processes(self.store.live(), hist[0].sha, time.time())
            return Response(200, render.history_page(page, pairs, self._notice(q), serving))
        if path == "/api/live.json":
            keys = [q["flag"]] if q.get("flag") else None
            outcomes, label = self.live_outcomes(keys if keys is not None else list(snap.flags))
            data = live_json(snap.flags, outcomes, label, keys)
            return Response(200, json.dumps(data), "application/json")
        if path.startswith("/flag/") and path.count("/") == 2:
            key = unquote(path[len("/flag/") :])
            if key not in snap.flags:
                return Response(404, render.error_page(page, 404, "no such flag"))
            return Response(
                200,
                self._flag(page, snap=snap, hist=hist, key=key, notice=self._notice(q), error=""),
            )
        return Response(404, render.error_page(page, 404, "no such page"))

    def _list(
        self, page: render.Page, snap: Snapshot, hist: list[Any], q: Mapping[str, str]
    ) -> str:
        text = q.get("q", "")[:100]
        filt = q.get("filter", "")
        if filt not in FILTERS:
            filt = ""
        kills = kill_records(hist)
        views = [flag_view(f, kills.get(k)) for k, f in sorted(snap.flags.items())]
        counts = {f: sum(1 for v in views if matches(v, "", f)) for f in FILTERS}
        shown = [v for v in views if matches(v, text, filt)]
        outcomes, label = self.live_outcomes([v.key for v in shown])
        page = dataclasses.replace(page, label=label)
        figs = {v.key: figures(v.flag, outcomes.read(v.key)) for v in shown if outcomes.read(v.key)}
        return render.list_page(
            page,
            views=shown,
            total=len(views),
            counts=counts,
            figs=figs,
            q=text,
            filt=filt,
            notice=self._notice(q),
        )

    def _flag(
        self,
        page: render.Page,
        *,
        snap: Snapshot,
        hist: list[Any],
        key: str,
        notice: str,
        error: str,
    ) -> str:
        flag = snap.flags[key]
        kill: KillRecord | None = kill_records(hist).get(key)
        view: FlagView = flag_view(flag, kill)
        outcomes, label = self.live_outcomes([key])
        page = dataclasses.replace(page, label=label)
        figs = figures(flag, outcomes.read(key))
        guard = None
        if self.guard is not None:
            try:
                guard = next((s for s in self.guard.status() if s.flag == key), None)
            except Exception:
                log.exception("rampup.dashboard: reading the guard's status failed")
        entries = []
        for i, d in enumerate(hist):
            lines = history.diff(hist[i + 1] if i + 1 < len(hist) else None, d)
            if i + 1 == len(hist) or history.touches(lines, key):
                entries.append(
                    (d, [x for x in lines if x[1].startswith(f"{key}: ") or i + 1 == len(hist)])
                )
        edits: dict[str, Edit | None] = {}
        if not self.writable:
            edits["kill"] = kill_edit(self.source, flag, True)
            edits["unkill"] = kill_edit(self.source, flag, False)
            if view.kind == "rollout":
                stage = next(r.rollout.stage for r in flag.rules if r.rollout is not None)
                edits["advance"] = stage_edit(self.source, flag, stage + 1)
                edits["hold"] = held_edit(self.source, flag)
        return render.flag_page(
            page,
            view=view,
            segments=snap.segments,
            figs=figs,
            guard=guard,
            history=entries,
            edits=edits,
            notice=notice,
            error=error,
        )

    def _notice(self, q: Mapping[str, str]) -> str:
        return self.csrf.verified(q.get("done", "")[:300], q.get("sig", ""))

    def _see(self, location: str, message: str) -> Response:
        query = urlencode({"done": message, "sig": self.csrf.sign(message)})
        return Response(303, "", "text/plain; charset=utf-8", [("Location", f"{location}?{query}")])

    # -- actions -------------------------------------------------------------------------------
    def _post(self, request: Request, page: render.Page, snap: Snapshot) -> Response:
        form = request.form()
        refused = self.csrf.check(request, form)
        if refused is not None:
            return Response(403, render.error_page(page, 403, refused))
        if not self.writable:
            return Response(
                409,
                render.error_page(
                    page, 409, "this source is read-only: edit the flag file (the page shows how)"
                ),
            )
        path = request.path
        try:
            if path == "/rollback":
                return self._rollback(request, page, form)
            parts = path.split("/")
            if (
                len(parts) != 4
                or parts[1] != "flag"
                or parts[3] not in ("kill", "unkill", "advance", "hold", "release")
            ):
                return Response(404, render.error_page(page, 404, "no such action"))
            key, verb = unquote(parts[2]), parts[3]
            if key not in snap.flags:
                raise actions.Invalid(f"no flag {key[:100]!r}")
            if verb == "kill":
                reason = actions.reason_of(form, required=True)
                if form.get("confirm") != "yes":
                    flag = snap.flags[key]
                    what = (
                        f"Every process serves <b>{render.e(flag.off_variant)}</b> for "
                        f"<span class='key'>{render.e(key)}</span> to everyone, within seconds. "
                        f"Reason: <b>{render.e(reason)}</b>. Recorded as "
                        f"{render.e(request.user)}."
                    )
                    action = f"/flag/{quote(key, safe='')}/kill"
                    return Response(
                        200,
                        render.confirm_page(
                            page,
                            f"Kill {key}",
                            what,
                            action,
                            {"reason": reason},
                            back=f"/flag/{quote(key, safe='')}",
                        ),
                    )
                done = actions.kill(self.store, key, reason, request.user)
            elif verb == "unkill":
                done = actions.unkill(self.store, key, actions.reason_of(form, False), request.user)
            elif verb in ("hold", "release"):
                held = verb == "hold"
                reason = actions.reason_of(form, required=held)
                done = actions.hold(self.store, key, held, reason, request.user)
            else:
                stage = actions.int_of(form, "stage")
                done = actions.advance(
                    self.store, key, stage, actions.reason_of(form, False), request.user
                )
            return self._see(f"{request.root}/flag/{quote(key, safe='')}", done.message)
        except actions.Invalid as exc:
            return Response(400, render.error_page(page, 400, str(exc)))
        except StoreError as exc:
            return Response(409, render.error_page(page, 409, str(exc)))
        except Exception as exc:  # Redis down or timing out: nothing was written
            log.warning("rampup.dashboard: %s failed: %s", path, exc)
            message = f"the flag store did not answer ({type(exc).__name__}); nothing was written"
            return Response(503, render.error_page(page, 503, message))

    def _rollback(self, request: Request, page: render.Page, form: Mapping[str, str]) -> Response:
        from ..store import undone_kills

        version = actions.int_of(form, "version")
        reason = actions.reason_of(form, required=False)
        _, hist, _ = self.state()
        target = next((d for d in hist if d.version == version), None)
        if target is None:
            raise actions.Invalid(f"version {version} is not in the kept history")
        lifted = undone_kills(hist[0] if hist else None, target.data)
        if lifted and form.get("confirm") != "yes":
            what = (
                f"v{version} does not kill {render.e(', '.join(lifted))}: rolling back lifts "
                "the kill switch and serves the flag again."
            )
            fields = {"version": str(version), "reason": reason}
            return Response(
                200,
                render.confirm_page(
                    page, f"Roll back to v{version}", what, "/rollback", fields, back="/history"
                ),
            )
        done = actions.rollback(self.store, version, reason, request.user)
        return self._see(f"{request.root}/history", done.message)


def _is_redis_url(flags: Any) -> bool:
    return isinstance(flags, str) and flags.lower().startswith(("redis://", "rediss://"))
