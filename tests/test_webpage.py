"""The gateway's web page in headless Chromium: draw a digit, score a NAB CSV, keyboard clear, CSP-clean.

Screenshots go to artifacts/webpage/ for a person to look at.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from serving.gateway.apikeys import digest
from tests.fixtures_gateway import start_gateway
from tests.processes import REPO_ROOT, missing_tool

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "artifacts" / "webpage"
JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"
DIGIT = re.compile(r"^[0-9]$")
NO_DIGIT = "\u2013"  # the en dash the page shows when there is no prediction
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        missing_tool(f"{CHROMIUM} not found: apt-get install chromium (listed in .ci/apt-packages.txt)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """Console errors and warnings, uncaught exceptions and requests to other origins seen by a page."""

    def __init__(self, page, origin: str) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))
        page.on("request", lambda request: self._request(request.url, origin))

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.messages.append(f"console {message.type}: {message.text}")

    def _request(self, url: str, origin: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("data", "blob") and f"{parts.scheme}://{parts.netloc}" != origin:
            self.messages.append(f"request to another origin: {url}")


@pytest.fixture
def page(browser, gateway) -> Iterator[tuple[object, PageProblems]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = PageProblems(page, gateway.url.rstrip("/"))
    response = page.goto(gateway.url)
    assert response is not None and response.ok
    assert "default-src 'self'" in response.headers.get("content-security-policy", "")
    page.locator("#service-status").filter(has_text="Service ready").wait_for()
    yield page, problems
    context.close()


def draw_seven(page, release: bool = True) -> None:
    """A '7' with the mouse: the bar left to right, then the stem down to the lower left."""
    box = page.locator("#pad").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.25 * w, y + 0.22 * h)
    page.mouse.down()
    page.mouse.move(x + 0.75 * w, y + 0.22 * h, steps=12)
    page.mouse.move(x + 0.45 * w, y + 0.82 * h, steps=16)
    if release:
        page.mouse.up()


def canvas_ink(page) -> int:
    """Sum of the red channel over the drawing canvas (0 when blank), read from a copy of it."""
    return page.evaluate(
        """() => { const pad = document.getElementById('pad');
                   const copy = document.createElement('canvas');
                   copy.width = pad.width; copy.height = pad.height;
                   const ctx = copy.getContext('2d', {willReadFrequently: true});
                   ctx.drawImage(pad, 0, 0);
                   const d = ctx.getImageData(0, 0, copy.width, copy.height).data;
                   let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }"""
    )


def probability_texts(page) -> list[str]:
    return page.locator("#probabilities .probability-value").all_text_contents()


def test_draw_a_digit_and_clear_with_the_keyboard(page) -> None:
    page, problems = page
    assert page.locator("#digit").text_content() == NO_DIGIT
    draw_seven(page, release=False)
    # The prediction appears while the pointer is still down (debounced requests as you draw).
    page.locator("#digit").filter(has_text=DIGIT).wait_for()
    page.mouse.up()
    page.wait_for_load_state("networkidle")
    digit = int(page.locator("#digit").text_content())
    assert digit == 7, page.locator("#digit-text").text_content()
    probabilities = [float(t.rstrip("%")) / 100 for t in probability_texts(page)]
    assert len(probabilities) == 10
    assert math.isclose(sum(probabilities), 1.0, abs_tol=0.01)
    assert probabilities[7] == max(probabilities)
    assert page.locator("#probabilities li.top").text_content().startswith("7")
    assert "reads a 7" in page.locator("#digit-result").text_content()
    page.screenshot(path=str(ARTIFACTS / "digit-drawn.png"), full_page=True)

    page.locator("#pad").focus()
    page.keyboard.press("Escape")
    assert page.locator("#digit").text_content() == NO_DIGIT
    assert canvas_ink(page) == 0
    assert probability_texts(page) == [NO_DIGIT] * 10

    draw_seven(page)
    page.locator("#digit").filter(has_text=DIGIT).wait_for()
    page.keyboard.press("Tab")  # from the canvas to the Clear button
    assert page.evaluate("document.activeElement.id") == "clear"
    page.keyboard.press("Enter")
    assert canvas_ink(page) == 0 and page.locator("#digit").text_content() == NO_DIGIT
    page.screenshot(path=str(ARTIFACTS / "digit-cleared.png"), full_page=True)
    assert problems.messages == []


def test_draw_a_one_with_touch(browser, gateway) -> None:
    """Touch input on a phone-sized screen reaches the pad as Pointer Events too."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        problems = PageProblems(page, gateway.url.rstrip("/"))
        page.goto(gateway.url)
        box = page.locator("#pad").bounding_box()
        x, top = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15
        touch = context.new_cdp_session(page)
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": top}]})
        for step in range(1, 15):
            point = {"x": x, "y": top + step * box["height"] * 0.05}
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.locator("#digit").filter(has_text=DIGIT).wait_for()
        page.wait_for_load_state("networkidle")
        assert page.locator("#digit").text_content() == "1"
        page.screenshot(path=str(ARTIFACTS / "digit-touch-phone.png"))
        assert problems.messages == []
    finally:
        context.close()


def test_upload_a_nab_csv_and_see_the_anomaly(page, nab_dir: Path) -> None:
    page, problems = page
    page.set_input_files("#series-file", str(nab_dir / JUMPSUP))
    page.locator("#segments li").first.wait_for()
    status = page.locator("#series-status").text_content()
    assert status.startswith("4032 points"), status
    segments = page.locator("#segments li.segment")
    assert segments.count() >= 1
    # The labelled window of this file is 2014-04-10 16:15 .. 2014-04-12 01:45.
    assert any(re.match(r"2014-04-1[0-2]", text) for text in segments.all_text_contents())
    bands = page.locator("#chart svg rect.anomaly-band")
    assert bands.count() == segments.count()
    band = bands.first.bounding_box()
    assert band["width"] >= 3 and band["height"] > 100
    assert page.locator("#chart svg path.series-line").count() == 1
    assert len(page.locator("#chart svg path.score-line").get_attribute("d")) > 1000
    line = page.locator("#chart svg line.threshold-line").bounding_box()
    panel = page.locator("#chart svg rect.panel").nth(1).bounding_box()
    assert panel["y"] + 5 < line["y"] < panel["y"] + panel["height"] - 5  # inside the panel, not on its edge
    assert page.locator("#model option").all_text_contents() == ["anomaly"]
    page.screenshot(path=str(ARTIFACTS / "series-scored.png"), full_page=True)
    assert problems.messages == []


def test_replay_a_csv_as_a_live_stream(page, nab_dir: Path) -> None:
    page, problems = page
    lines = (nab_dir / JUMPSUP).read_text().splitlines()
    page.fill("#series-text", "\n".join(lines[:1] + lines[2500:3500]))  # the labelled jump is at row ~2800
    page.click("#replay")
    page.locator("#series-status", has_text="Replayed").wait_for(timeout=120_000)
    assert page.locator("#series-status").text_content().startswith("Replayed 1000 points as a live stream")
    assert any(re.match(r"2014-04-1[0-2]", text) for text in page.locator("#segments li.segment").all_text_contents())
    assert len(page.locator("#chart svg path.score-line").get_attribute("d")) > 1000
    page.screenshot(path=str(ARTIFACTS / "series-replayed.png"), full_page=True)
    assert problems.messages == []


def test_paste_plain_values(page) -> None:
    page, problems = page
    daily = [50 + 30 * math.sin(2 * math.pi * i / 288) for i in range(900)]
    page.fill("#series-text", "\n".join(f"{v:.3f}" for v in daily))
    page.fill("#threshold", "1")
    page.keyboard.press("Tab")
    page.click("#score")
    page.locator("#segments li").first.wait_for()
    assert page.locator("#series-status").text_content().startswith("900 points")
    assert "threshold 1:" in page.locator("#series-status").text_content()
    assert page.locator("#segments li").first.text_content() == "No event."
    page.fill("#series-text", "1\n2\nnot a number\n")
    page.click("#score")
    assert "line 3 is not a number" in page.locator("#series-status").text_content()
    assert problems.messages == []


def test_form_controls_are_labelled(page) -> None:
    page, problems = page
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, textarea, select')]
                 .filter(el => el.labels.length === 0).map(el => el.id)"""
    )
    assert unlabelled == []
    assert page.locator("[aria-live]").count() >= 2
    assert page.locator("#pad").get_attribute("tabindex") == "0"
    assert problems.messages == []


def test_the_page_asks_for_an_api_key_when_the_gateway_requires_one(browser, model_server, tmp_path: Path) -> None:
    key = "page-test-key-0123456789abcdef"
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"keys": [{"name": "web", "sha256": digest(key)}]}))
    gateway = start_gateway(model_server.grpc_target, log_dir=tmp_path, api_keys_file=key_file)
    try:
        gateway.wait_ready()
        context = browser.new_context(viewport={"width": 1100, "height": 1400})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        prompts: list[str] = []

        def answer(dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept(key)

        page.on("dialog", answer)
        page.goto(gateway.url)
        page.locator("#service-status").filter(has_text="Service ready").wait_for()
        draw_seven(page)
        page.locator("#digit").filter(has_text=DIGIT).wait_for()
        assert int(page.locator("#digit").text_content()) == 7
        assert len(prompts) == 1 and "API key" in prompts[0]
        context.close()
    finally:
        gateway.stop()
