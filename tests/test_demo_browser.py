"""The demo in a real browser: headless Debian chromium, driven by the playwright package.

The demo is served by `rampup demo` (a real server, a subprocess) on a free port of 127.0.0.1.
The screenshot goes to the pytest tmp dir, and to test-artifacts/ (ignored by git) for a look.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from browser import ARGS, CHROMIUM

if TYPE_CHECKING:
    from playwright.sync_api import Page

playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium not installed (.ci/run installs it)"
)


@pytest.fixture
def demo_url() -> Iterator[str]:
    """`rampup demo --port 0` as a subprocess; yields its URL, always stops it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rampup", "demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "the demo did not print its URL"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh page in headless Debian chromium (never a downloaded browser)."""
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def _served(page: Page) -> dict[str, str]:
    cards = page.locator("article.flag")
    return {
        cards.nth(i).get_attribute("data-flag"): cards.nth(i).get_attribute("data-served")
        for i in range(cards.count())
    }


def test_demo_is_sticky_and_forces_an_override_in_a_browser(
    demo_url: str, page: Page, tmp_path: Path
) -> None:
    """First visit sets rampup_id; three reloads serve the same variants; a variant forced
    from the page is served with reason OVERRIDE and reported, a refused one with its reason."""
    p = page
    p.goto(demo_url + "/")
    cookies = {c["name"]: c["value"] for c in p.context.cookies()}
    assert re.fullmatch(r"[0-9a-f]{32}", cookies.get("rampup_id", "")), cookies
    first = _served(p)
    assert set(first) >= {"new-checkout", "checkout-button", "recommendations"}
    subject = p.locator("#subject-key").inner_text()
    assert subject == cookies["rampup_id"]

    for _ in range(3):
        p.reload()
        assert _served(p) == first
        assert p.locator("#subject-key").inner_text() == subject
    assert {c["name"]: c["value"] for c in p.context.cookies()}["rampup_id"] == subject

    forced = "orange" if first["checkout-button"] != "orange" else "green"
    p.select_option('select[name="checkout-button"]', forced)
    p.select_option('select[name="admin-panel"]', "on")
    with p.expect_navigation():
        p.click("#force-button")
    card = p.locator('article[data-flag="checkout-button"]')
    assert card.get_attribute("data-served") == forced
    assert "OVERRIDE" in card.locator(".pill").last.inner_text()
    report = p.locator("#report").inner_text()
    assert f"served checkout-button={forced}" in report
    assert "refused admin-panel=on" in report
    assert "not overridable" in report
    assert _served(p)["admin-panel"] == first["admin-panel"]

    p.reload()
    assert _served(p)["checkout-button"] == forced  # the override cookie keeps it

    shot = tmp_path / "demo.png"
    p.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(shot, artifacts / "demo.png")


def test_switching_identity_from_the_page_changes_the_decision(demo_url: str, page: Page) -> None:
    """The QA preset makes new-checkout 'on' by its QA rule; 'Be anonymous' goes back."""
    p = page
    p.goto(demo_url + "/")
    with p.expect_navigation():
        p.click("text=QA tester")
    assert p.locator("#subject-key").inner_text() == "qa-alice"
    card = p.locator('article[data-flag="new-checkout"]')
    assert card.get_attribute("data-served") == "on"
    assert "QA first" in card.locator(".why").inner_text()

    p.fill("#id", "")
    p.fill("#email", "ann@example.com")
    p.fill("#id", "42")
    with p.expect_navigation():
        p.click("text=Switch identity")
    assert p.locator("#subject-key").inner_text() == "42"
    assert "then staff" in card.locator(".why").inner_text()

    with p.expect_navigation():
        p.click("text=Be anonymous")
    assert re.fullmatch(
        r"[0-9a-f]{32}",
        p.locator("#subject-key").inner_text(),
    )


def test_the_outcome_panel_fills_when_traffic_is_simulated(
    demo_url: str, page: Page, tmp_path: Path
) -> None:
    """A fresh demo says 'no traffic yet'; the Simulate button sends 200 requests and the panel
    shows each split flag's variants with requests, error rate and p99, labelled simulated."""
    p = page
    p.goto(demo_url + "/")
    assert "No traffic yet" in p.locator("#outcomes").inner_text()
    with p.expect_navigation():
        p.click("#simulate")
    panel = p.locator("#outcomes")
    assert "Includes 200 simulated requests (1 run)." in panel.inner_text()
    on = p.locator('#outcomes-table tr[data-flag="new-checkout"][data-variant="on"]')
    off = p.locator('#outcomes-table tr[data-flag="new-checkout"][data-variant="off"]')
    requests_on = int(on.locator(".requests").inner_text().replace(",", ""))
    requests_off = int(off.locator(".requests").inner_text().replace(",", ""))
    assert requests_on + requests_off == 201  # the simulation, and the first page view
    errors_on = int(on.locator(".errors").inner_text())
    assert errors_on == requests_on // 10
    assert on.locator(".error-rate").inner_text() == f"{errors_on / requests_on:.1%}"
    assert re.fullmatch(r"\d+\.\d+ ms", on.locator(".p99").inner_text())
    assert off.locator(".errors").inner_text() == "0"
    assert p.locator('#outcomes-table tr[data-flag="checkout-button"]').count() == 3
    assert p.locator('#outcomes-table tr[data-flag="dark-mode"]').count() == 0  # one constant

    panel.scroll_into_view_if_needed()
    shot = tmp_path / "demo-outcomes.png"
    p.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(shot, artifacts / "demo-outcomes.png")
