"""The dashboard in a real browser: headless Debian chromium (driven by playwright) against a
Flask app under wsgiref and a FastAPI app under uvicorn on 127.0.0.1, each reading a real
redis-server. Kill a flag with the button, confirm, and see the page mark it, the app serve
``off`` and the audit entry; an unauthorised user gets 403. Screenshots go to the test's tmp dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
pytest.importorskip("flask")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx
from playwright.sync_api import Browser, expect, sync_playwright

from browser import ARGS, CHROMIUM
from dashboard.clients import PREFIX
from dashboard.conftest import redis_server, redis_url, store_url  # noqa: F401 (fixtures)
from dashboard.servers import fastapi_app, flask_app, serve_asgi, serve_wsgi

#: a guard against hanging, not a timing assertion: the watcher normally swaps within a second
HANG_GUARD = 20.0

if not os.path.exists(CHROMIUM):  # pragma: no cover - CI installs it (.ci/run)
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium for the module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _traffic(base: str) -> None:
    """Some requests from different users, so the live figures have something to show."""
    with httpx.Client(base_url=base, timeout=HANG_GUARD, trust_env=False) as c:
        for i in range(120):
            c.get("/checkout", headers={"X-User-Id": f"user-{i}"})
            c.get("/banner", headers={"X-User-Id": f"user-{i}"})


def _banner(base: str) -> Any:
    with httpx.Client(base_url=base, timeout=HANG_GUARD, trust_env=False) as c:
        return c.get("/banner", headers={"X-User-Id": "someone"}).json()["winter_banner"]


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_kill_from_the_browser(
    framework: str,
    browser: Browser,
    store_url: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """Open the list, open a flag, kill it with the button, confirm: the page marks it killed
    with the reason, the app's next requests serve off, the history holds the audit entry;
    the unauthorised user gets 403. No CSP violation is reported by the browser."""
    if framework == "flask":
        server = serve_wsgi(flask_app(store_url))
    else:
        server = serve_asgi(fastapi_app(store_url))
    with server as base:
        _traffic(base)
        assert _banner(base) is True
        context = browser.new_context(
            extra_http_headers={"X-User": "alice"}, viewport={"width": 1280, "height": 900}
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}{PREFIX}/")
        expect(page.get_by_role("link", name="winter-banner")).to_be_visible()
        expect(page.get_by_role("link", name="recommendations")).to_be_visible()
        page.screenshot(path=str(tmp_path / f"{framework}-list.png"), full_page=True)

        page.get_by_role("link", name="checkout-button").click()
        expect(page.locator("tr.regressing", has_text="orange")).to_be_visible()
        page.screenshot(path=str(tmp_path / f"{framework}-flag.png"), full_page=True)
        # the script refreshes the figures from the JSON endpoint (CSP allows it): more
        # traffic shows up without a reload
        cell = page.locator('[data-cell="checkout-button|blue|requests"]')
        before = cell.inner_text()
        _traffic(base)
        expect(cell).not_to_have_text(before, timeout=HANG_GUARD * 1000)

        page.goto(f"{base}{PREFIX}/flag/winter-banner")
        page.get_by_label("Reason").fill("banner breaks the mobile layout")
        page.get_by_role("button", name="Kill…").click()
        expect(page.get_by_role("heading", name="Kill winter-banner")).to_be_visible()
        page.get_by_role("button", name="Kill winter-banner").click()
        # (a) the dashboard marks it killed, with who and why
        expect(page.get_by_text("Killed by alice (dashboard)")).to_be_visible()
        expect(page.locator("b", has_text="banner breaks the mobile layout")).to_be_visible()
        expect(page.locator(".badge.killed")).to_be_visible()
        page.screenshot(path=str(tmp_path / f"{framework}-killed.png"), full_page=True)
        # (b) the app's next requests serve off, once its watcher swapped the snapshot
        deadline = time.monotonic() + HANG_GUARD
        while _banner(base) is not False:
            assert time.monotonic() < deadline, "the app still serves the killed flag"
            time.sleep(0.05)
        # (c) the audit entry
        page.get_by_role("link", name="History").click()
        row = page.locator("tr", has_text="kill winter-banner: banner breaks the mobile layout")
        expect(row).to_contain_text("alice (dashboard)")
        expect(row).to_contain_text("winter-banner: killed")
        page.screenshot(path=str(tmp_path / f"{framework}-history.png"), full_page=True)
        assert not [p for p in problems if "Content Security Policy" in p], problems
        context.close()

        # without JavaScript the page is whole: flags, states and figures are in the HTML
        no_js = browser.new_context(java_script_enabled=False, extra_http_headers={"X-User": "bob"})
        plain = no_js.new_page()
        plain.goto(f"{base}{PREFIX}/?filter=killed")
        expect(plain.get_by_role("link", name="winter-banner")).to_be_visible()
        expect(plain.get_by_role("link", name="checkout-button")).to_have_count(0)
        plain.goto(f"{base}{PREFIX}/flag/checkout-button")
        expect(plain.locator("tr.regressing", has_text="orange")).to_be_visible()
        no_js.close()

        stranger = browser.new_context()
        response = stranger.new_page().goto(f"{base}{PREFIX}/")
        assert response is not None
        assert response.status == 403
        stranger.close()
