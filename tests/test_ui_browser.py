"""The test page in a real browser: headless Debian chromium, driven by Playwright, against the app served
by ``python -m devtools.local_host`` on a free loopback port.

It scores a tweet with the keyboard, reads the label, probability and explanation the page shows (and
checks them against the API's own answer), reports the prediction as wrong and sees the acknowledgement,
all under the Content-Security-Policy the app sends: a single blocked inline script or style, or any
console error, fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

from devtools.local_host import HostProcess
from devtools.telemetry_sink import OFFLINE_ENV

expect = playwright_api.expect
pytestmark = pytest.mark.slow  # a browser and two app processes: about 20 s in all

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TWEET = "Lost my bag again and the flight was delayed 3 hours. Worst airline ever @AirParadis"
FUNCTION_KEY = "local-test-key"
# Recorded before any page script runs: every CSP violation the page causes, with what was blocked.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const blocked = e.blockedURI || "inline";
  window.__cspViolations.push(e.violatedDirective + " blocked " + blocked + " line " + e.lineNumber);
});
"""


class LocalHost(HostProcess):
    """The app on a loopback port, with everything it wrote to stderr (shown when a test fails)."""

    def get_json(self, route: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{self.base}/api/{route}", timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def post_json(self, route: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}/api/{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)


def start_local_host(**settings: str) -> LocalHost:
    """``python -m devtools.local_host --port 0``; the port it picked is read from its start-up lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONNECTION")}
    env.update(OFFLINE_ENV, PYTHONUNBUFFERED="1", **settings)
    host = LocalHost(env=env)
    process = host.process
    deadline = time.monotonic() + 30
    while True:
        try:
            host.get_json("health")
            return host
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the local host does not answer /api/health:\n" + "".join(host.log))
            time.sleep(0.1)


@pytest.fixture(scope="module")
def served() -> Iterator[LocalHost]:
    host = start_local_host()
    try:
        status, health = host.get_json("health")
        if status != 200 or not health.get("model_loaded"):
            pytest.fail(f"the app has no model (model/sentiment.onnx is part of the repository): {health}")
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        print(f"chromium not found at {CHROMIUM}: install it with scripts/setup-system.sh")
        pytest.skip(f"chromium not found at {CHROMIUM} (scripts/setup-system.sh installs Debian's chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page with its console errors and uncaught exceptions collected as they happen."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations")


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1000, "height": 900}, locale="en-GB")
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    state = Watched(page)
    page.on("console", lambda message: message.type == "error" and state.console_errors.append(message.text))
    page.on("pageerror", lambda error: state.page_errors.append(str(error)))
    try:
        yield state
    finally:
        context.close()


def open_page(watched: Watched, host: LocalHost, route: str = "ui"):
    response = watched.page.goto(f"{host.base}/api/{route}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "unsafe" not in policy, policy
    assert re.search(r"script-src 'sha256-[^']+'", policy), "the page's script is pinned by its hash"
    return watched.page


def test_score_a_tweet_with_the_keyboard_and_report_it_wrong(served: LocalHost, watched: Watched, tmp_path):
    page = open_page(watched, served)
    _, health = served.get_json("health")
    expect(page.locator("#model-version")).to_have_text(health["model_version"])

    page.get_by_text("Function key (only when").click()
    page.get_by_label("Function key", exact=True).fill(FUNCTION_KEY)
    assert page.evaluate("sessionStorage.length") == 1
    assert page.evaluate("localStorage.length") == 0

    # The key survives a reload within the tab; focus then starts from the top of the fresh page.
    page.reload()
    expect(page.get_by_label("Function key", exact=True)).to_have_value(FUNCTION_KEY)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the tweet box"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "tweet"
    page.keyboard.type(TWEET)
    with page.expect_response("**/api/predict") as predicted:
        page.keyboard.press("Enter")
    answer = predicted.value.json()
    sent = predicted.value.request
    assert sent.headers["x-functions-key"] == FUNCTION_KEY
    assert sent.post_data_json == {"text": TWEET, "explain": True}

    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#result-label")).to_have_text(answer["label"])
    shown_probability = f"{answer['negative_probability'] * 100:.1f} %"
    expect(page.locator("#result-probability")).to_have_text(shown_probability)
    expect(page.locator("#result-id")).to_have_text(answer["prediction_id"])
    expect(page.locator("#result-live")).to_have_attribute("aria-live", "polite")
    terms = page.locator("#result-terms li")
    assert answer["explanation"], "an airline complaint has words the model knows"
    expect(terms).to_have_count(len(answer["explanation"]))
    for index, term in enumerate(answer["explanation"]):
        row = terms.nth(index)
        expect(row.locator(".word")).to_have_text(term["term"])
        expect(row).to_have_class(re.compile("negative" if term["weight"] < 0 else "positive"))
        assert row.locator(".bar").bounding_box()["width"] > 0, "each term has a visible bar"
    # The page shows what the API answers for the same text, not a cached or rounded-away result.
    _, direct = served.post_json("predict", {"text": TWEET, "explain": True})
    assert (direct["label"], direct["negative_probability"]) == (
        answer["label"],
        answer["negative_probability"],
    )

    with page.expect_response("**/api/feedback") as acknowledged:
        page.get_by_role("button", name="Wrong").click()
    feedback = acknowledged.value.request.post_data_json
    assert feedback == {
        "prediction_id": answer["prediction_id"],
        "text": TWEET,
        "predicted_label": answer["label"],
        "negative_probability": answer["negative_probability"],
        "correct": False,
    }
    assert acknowledged.value.status == 202
    feedback_id = acknowledged.value.json()["feedback_id"]
    expect(page.locator("#feedback-status")).to_contain_text(f"feedback recorded (wrong, id {feedback_id})")
    expect(page.get_by_role("button", name="Wrong")).to_be_disabled()

    screenshot = tmp_path / "ui-scored.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
    assert watched.violations() == []
    assert watched.console_errors == []
    assert watched.page_errors == []


def test_keyboard_only_with_visible_focus(served: LocalHost, watched: Watched):
    page = open_page(watched, served, "ui/")  # the API is found from either form of the page's address
    tweet = page.get_by_label("Tweet", exact=True)
    tweet.focus()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.type("thank you for the upgrade, lovely crew")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("see you next trip")
    assert tweet.input_value().count("\n") == 1, "Shift+Enter adds a line instead of submitting"
    expect(page.locator("#result")).to_be_hidden()
    with page.expect_response("**/api/predict"):
        page.keyboard.press("Control+Enter")
    expect(page.locator("#result")).to_be_visible()

    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    assert order == ["score-button", "feedback-correct", "feedback-wrong"]
    page.keyboard.press("Shift+Tab")
    with page.expect_response("**/api/feedback"):
        page.keyboard.press("Enter")
    expect(page.locator("#feedback-status")).to_contain_text("feedback recorded (correct")
    assert watched.violations() == []
    assert watched.console_errors == []


def test_errors_are_shown_with_the_service_message(served: LocalHost, watched: Watched):
    page = open_page(watched, served)
    requests = []
    page.on("request", lambda request: "/api/predict" in request.url and requests.append(request))
    tweet = page.get_by_label("Tweet", exact=True)
    tweet.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Type a tweet first")
    assert requests == [], "an empty tweet is refused before any request"

    # Too long for the API: the browser's own limit is lifted to reach the service's 400.
    page.evaluate("document.getElementById('tweet').removeAttribute('maxlength')")
    tweet.fill("delayed " * 700)
    with page.expect_response("**/api/predict") as refused:
        tweet.press("Enter")
    assert refused.value.status == 400
    message = refused.value.json()["error"]["message"]
    expect(page.get_by_role("alert")).to_contain_text("Error 400")
    expect(page.get_by_role("alert")).to_contain_text(message)

    # The deployed app answers 401 with an empty body when the function key is missing or wrong.
    page.route("**/api/predict", lambda route: route.fulfill(status=401, body=""))
    tweet.fill("where is my bag")
    tweet.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("needs a function key")
    expect(page.get_by_label("Function key", exact=True)).to_be_focused()
    assert watched.violations() == []
    assert watched.page_errors == []


def test_a_missing_model_is_explained_on_the_page(watched: Watched, tmp_path):
    host = start_local_host(MODEL_PATH=str(tmp_path / "absent.onnx"))
    try:
        page = open_page(watched, host)
        expect(page.locator("#model-version")).to_contain_text("unavailable")
        page.get_by_label("Tweet", exact=True).fill("hello")
        page.get_by_role("button", name="Score tweet").click()
        expect(page.get_by_role("alert")).to_contain_text("Error 503 (model_unavailable)")
        expect(page.get_by_role("alert")).to_contain_text("model file not found")
        expect(page.locator("#result")).to_be_hidden()
        assert watched.violations() == []
        assert watched.page_errors == []
    finally:
        host.stop()


def test_the_policy_blocks_injected_inline_code(served: LocalHost, watched: Watched):
    """The violation check above is not vacuous: inline code the page did not ship is refused."""
    page = open_page(watched, served)
    page.evaluate(
        """() => {
        const s = document.createElement("script");
        s.textContent = "window.__injected = true";
        document.body.append(s);
    }"""
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__injected") is None
    assert any(v.startswith("script-src") for v in watched.violations())
