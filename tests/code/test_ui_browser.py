"""The test page in a real browser: headless Debian chromium, driven by Playwright, against the app served
by ``python -m devtools.local_host`` on a free loopback port.

It scores a tweet with the keyboard, reads the label, probability and explanation the page shows (and
checks them against the API's own answer), reports the prediction as wrong and sees the acknowledgement,
all under the Content-Security-Policy the app sends: a single blocked inline script or style, or any
console error, fails the test. It also checks the layout at 390, 768 and 1280 px (no sideways scroll,
explanation bars to scale, the threshold mark from /api/health), the batch mode (paste, files, limits,
split requests, sorting, topic counts, the CSV download) and that a failed request clears the old result.
Screenshots go to docs/images/ when missing there or when UPDATE_UI_SCREENSHOTS is set.
"""

from __future__ import annotations

import contextlib
import csv
import io
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
from serving.contract import read_metadata

expect = playwright_api.expect
pytestmark = pytest.mark.slow  # a browser and two app processes: about 20 s in all

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / "model" / "sentiment.onnx"
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


@contextlib.contextmanager
def watching(browser, width: int = 1000, height: int = 900) -> Iterator[Watched]:
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="en-GB", accept_downloads=True
    )
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


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    with watching(browser) as state:
        yield state


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
    expect(page.locator("#feedback-status")).to_have_text(
        f"Thank you: feedback recorded (wrong). Feedback id {feedback_id}"
    )
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
    expect(page.locator("#feedback-status")).to_contain_text("feedback recorded (correct). Feedback id ")
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

    # A result on screen, then a request that fails: the old result and its feedback buttons go away.
    tweet.fill(TWEET)
    with page.expect_response("**/api/predict"):
        tweet.press("Enter")
    expect(page.locator("#result")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_role("button", name="Wrong")).to_be_enabled()

    # Too long for the API: the browser's own limit is lifted to reach the service's 400.
    page.evaluate("document.getElementById('tweet').removeAttribute('maxlength')")
    tweet.fill("delayed " * 700)
    with page.expect_response("**/api/predict") as refused:
        tweet.press("Enter")
    assert refused.value.status == 400
    message = refused.value.json()["error"]["message"]
    expect(page.get_by_role("alert")).to_contain_text("Error 400")
    expect(page.get_by_role("alert")).to_contain_text(message)
    expect(page.locator("#result")).to_be_hidden()
    expect(page.get_by_role("button", name="Correct")).to_have_count(0)  # hidden: not in the a11y tree
    expect(page.get_by_role("button", name="Wrong")).to_have_count(0)
    assert page.locator("#feedback-wrong").is_disabled(), "no feedback for a result that is not shown"

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


# ---- Layout at phone, tablet and desktop widths ------------------------------------------------------

SCREENSHOTS = REPO_ROOT / "docs" / "images"
WIDTHS = {390: 844, 768: 1024, 1280: 960}
LONG_WORD = "Aaaaaaaargh" + "h" * 120 + "!!!"


def save_screenshot(page, name: str, tmp_path: Path) -> Path:
    """A viewport screenshot for docs/images/: written there when missing or when UPDATE_UI_SCREENSHOTS is
    set (prediction ids differ on every run, so the committed images are not rewritten by each run)."""
    target = SCREENSHOTS / name
    if target.exists() and not os.environ.get("UPDATE_UI_SCREENSHOTS"):
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=target)
    assert 5_000 < target.stat().st_size < 400_000, f"{target}: {target.stat().st_size} bytes"
    print(f"screenshot: {target}")
    return target


def horizontal_overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")


def assert_no_horizontal_overflow(page, when: str) -> None:
    scroll_width, client_width = horizontal_overflow(page)
    assert scroll_width <= client_width, (
        f"{when}: the page scrolls sideways ({scroll_width} > {client_width} px)"
    )


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found is not None, f"{locator} is not rendered"
    return found


def score_with_the_keyboard(page, text: str) -> dict:
    page.get_by_label("Tweet", exact=True).fill(text)
    with page.expect_response("**/api/predict") as predicted:
        page.get_by_label("Tweet", exact=True).press("Enter")
    expect(page.locator("#result")).to_be_visible()
    return predicted.value.json()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_layout_at_phone_tablet_and_desktop_widths(served: LocalHost, browser, tmp_path, width: int):
    _, health = served.get_json("health")
    assert health["threshold"] == pytest.approx(read_metadata(MODEL)["threshold"])
    assert health["labels"] == ["negative", "positive"]
    percent = f"{health['threshold'] * 100:.0f} %"
    with watching(browser, width, WIDTHS[width]) as watched:
        page = open_page(watched, served)
        expect(page.locator("#model-version")).to_have_text(health["model_version"])
        assert_no_horizontal_overflow(page, "before scoring")
        answer = score_with_the_keyboard(page, TWEET)
        assert len(answer["explanation"]) >= 3

        # The threshold from /api/health: a mark at its place on the bar, its value under it, and in words.
        track, mark = box(page.locator(".prob .track")), box(page.locator("#threshold-mark"))
        centre = mark["x"] + mark["width"] / 2
        assert centre == pytest.approx(track["x"] + health["threshold"] * track["width"], abs=2.5)
        assert mark["height"] > track["height"], "the mark stands out of the bar"
        expect(page.locator("#threshold-at")).to_have_text(percent)
        expect(page.locator("#threshold-text")).to_contain_text(f"negative from {percent}")
        fill = box(page.locator("#probability-fill"))
        assert fill["width"] == pytest.approx(answer["negative_probability"] * track["width"], abs=2.5)
        expect(page.get_by_role("heading", name="Words that drove the score")).to_be_visible()

        # Explanation bars are drawn to scale, and the strongest is plainly visible.
        bars = [box(bar)["width"] for bar in page.locator("#result-terms .bar").all()]
        weights = [abs(term["weight"]) for term in answer["explanation"]]
        assert max(bars) >= 20, f"the strongest word's bar is {max(bars):.1f} px wide at {width} px"
        strongest = max(weights)
        for bar, weight in zip(bars, weights, strict=True):
            assert bar == pytest.approx(max(bars) * weight / strongest, abs=1.5)
        for word in page.locator("#result-terms .word").all():
            assert box(word)["x"] + box(word)["width"] <= box(page.locator("#result-terms"))["x"] + width

        # Correct and Wrong side by side, on one line.
        correct, wrong = box(page.locator("#feedback-correct")), box(page.locator("#feedback-wrong"))
        assert abs(correct["y"] - wrong["y"]) < 2 and wrong["x"] >= correct["x"] + correct["width"]
        assert_no_horizontal_overflow(page, "with a result (a 56-character prediction id)")
        with page.expect_response("**/api/feedback"):
            page.get_by_role("button", name="Wrong").click()
        expect(page.locator("#feedback-status")).to_contain_text("feedback recorded (wrong). Feedback id ")
        assert_no_horizontal_overflow(page, "with the feedback message")
        # The picture: the result whole, with as much of the form above it as the height allows.
        page.evaluate(
            "scrollTo(0, Math.max(0, document.getElementById('result').getBoundingClientRect().bottom"
            " + scrollY + 16 - innerHeight))"
        )
        save_screenshot(page, f"ui-{width}.png", tmp_path)

        # A batch with an unbreakable word and the error box with a long message still fit the width.
        page.get_by_label("Tweets, one per line").fill(f"{LONG_WORD}\nlovely crew, thank you\n{TWEET}")
        with page.expect_response("**/api/predict"):
            page.get_by_role("button", name="Score all").click()
        expect(page.locator("#batch-rows tr")).to_have_count(3)
        assert_no_horizontal_overflow(page, "with a batch table")
        page.evaluate("document.getElementById('tweet').removeAttribute('maxlength')")
        page.get_by_label("Tweet", exact=True).fill(LONG_WORD * 40)
        page.get_by_label("Tweet", exact=True).press("Enter")
        expect(page.locator("#error")).to_contain_text("text_too_long")
        assert_no_horizontal_overflow(page, "with an error message")
        assert watched.violations() == []
        # The browser logs the refused request itself; nothing else may reach the console.
        assert [e for e in watched.console_errors if "status of 400" not in e] == []
        assert watched.page_errors == []


# ---- Several tweets ---------------------------------------------------------------------------------

BATCH = [
    "@AirParadis lost my bag again, flight delayed 3 hours",
    'thanks for the "upgrade", lovely crew',
    "the seat was ok",
]


def table_rows(page) -> list[list[str]]:
    """Each cell's own text (on phones a tweet's cell also lists its topics, in a child element)."""
    return page.locator("#batch-rows tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.firstChild ? c.firstChild.textContent : ''))"
    )


def sort_header(page, name: str):
    return page.locator("#batch-table thead th").filter(has=page.get_by_role("button", name=name, exact=True))


def test_batch_paste_sort_and_download(served: LocalHost, browser, tmp_path):
    with watching(browser, 1280, 900) as watched:
        page = open_page(watched, served)
        expect(page.locator("#model-version")).not_to_have_text("checking…")
        expect(page.locator("#batch-result")).to_be_hidden()
        box_ = page.get_by_label("Tweets, one per line")
        box_.fill(f"{BATCH[0]}\n\n{BATCH[1]}\n   \n{BATCH[2]}\n")  # blank lines are skipped
        expect(page.locator("#batch-count")).to_have_text("3 tweets")
        with page.expect_response("**/api/predict") as predicted:
            page.get_by_role("button", name="Score all").click()
        assert predicted.value.request.post_data_json == {"texts": BATCH}
        predictions = predicted.value.json()["predictions"]
        assert len(predictions) == 3

        rows = table_rows(page)
        has_topics = any(p.get("topics") for p in predictions)
        expected = [
            [str(i + 1), text, p["label"], f"{p['negative_probability'] * 100:.1f} %"]
            + ([", ".join(p.get("topics", [])).replace("_", " ") or "–"] if has_topics else [])
            for i, (text, p) in enumerate(zip(BATCH, predictions, strict=True))
        ]
        assert rows == expected
        negatives = sum(p["label"] == "negative" for p in predictions)
        assert 0 < negatives < 3, f"the three tweets should not all read alike: {predictions}"
        expect(page.locator("#batch-summary")).to_have_text(
            f"3 tweets scored. Negative share: {negatives / 3 * 100:.1f} % ({negatives} of 3)."
        )
        expect(page.locator("#batch-live")).to_have_attribute("aria-live", "polite")
        threshold = read_metadata(MODEL)["threshold"]
        expect(page.locator("#batch-threshold-text")).to_contain_text(
            f"negative from {threshold * 100:.0f} %"
        )
        expect(page.locator("#batch-topics")).to_be_visible() if has_topics else expect(
            page.locator("#batch-topics")
        ).to_be_hidden()

        # Sorting: by row number first; a click sorts by probability ascending, Enter flips it.
        expect(sort_header(page, "#")).to_have_attribute("aria-sort", "ascending")
        probability = sort_header(page, "Negative probability")
        probability.get_by_role("button").click()
        expect(probability).to_have_attribute("aria-sort", "ascending")
        expect(sort_header(page, "#")).not_to_have_attribute("aria-sort", re.compile("."))
        by_probability = sorted(predictions, key=lambda p: p["negative_probability"])
        shown = [row[3] for row in table_rows(page)]
        assert shown == [f"{p['negative_probability'] * 100:.1f} %" for p in by_probability]
        probability.get_by_role("button").press("Enter")
        expect(probability).to_have_attribute("aria-sort", "descending")
        assert [row[3] for row in table_rows(page)] == shown[::-1]
        sort_header(page, "Tweet").get_by_role("button").click()
        assert [row[1] for row in table_rows(page)] == sorted(BATCH, key=str.lower)
        probability.get_by_role("button").click()
        page.evaluate(
            "scrollTo(0, document.getElementById('batch-result').getBoundingClientRect().top + scrollY - 16)"
        )
        save_screenshot(page, "ui-batch.png", tmp_path)

        # The download is built in the page (Blob + object URL) and holds every row in input order.
        with page.expect_download() as downloading:
            page.get_by_role("button", name="Download CSV").click()
        download = downloading.value
        assert download.suggested_filename == "air-paradis-sentiment.csv"
        content = Path(download.path()).read_bytes().decode("utf-8-sig")
        records = list(csv.DictReader(io.StringIO(content, newline="")))
        assert [r["index"] for r in records] == ["1", "2", "3"]
        assert [r["text"] for r in records] == ["'" + BATCH[0], BATCH[1], BATCH[2]], "formula guard on '@'"
        for record, p in zip(records, predictions, strict=True):
            assert record["label"] == p["label"]
            assert float(record["negative_probability"]) == p["negative_probability"]
            assert record["prediction_id"] == p["prediction_id"]
            assert record["model_version"] == p["model_version"]
            assert record["topics"] == ";".join(p.get("topics", []))
        assert watched.violations() == []
        assert watched.console_errors == []
        assert watched.page_errors == []


def test_batch_topic_counts_follow_the_predictions(served: LocalHost, watched: Watched):
    """Per-topic counts from the predictions' ``topics``; the section is hidden when none carries one."""
    page = open_page(watched, served)
    topics: list[list[str]] = [[], [], []]

    def with_topics(route):
        response = route.fetch()
        answer = response.json()
        for prediction, names in zip(answer["predictions"], topics, strict=True):
            prediction["topics"] = names
        route.fulfill(response=response, json=answer)

    page.route("**/api/predict", with_topics)
    page.get_by_label("Tweets, one per line").fill("\n".join(BATCH))
    with page.expect_response("**/api/predict") as predicted:
        page.get_by_role("button", name="Score all").click()
    expect(page.locator("#batch-rows tr")).to_have_count(3)
    expect(page.locator("#batch-topics")).to_be_hidden()
    expect(page.locator("#batch-topics-column")).to_be_hidden()

    topics[:] = [["baggage", "delay"], ["crew", "customer_service"], ["comfort", "crew"]]
    with page.expect_response("**/api/predict") as predicted:
        page.get_by_role("button", name="Score all").click()
    labels = [p["label"] for p in predicted.value.json()["predictions"]]
    expect(page.locator("#batch-topics")).to_be_visible()
    shown = page.locator("#batch-topics-body tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )

    def counted(topic: str) -> list[str]:
        tweets = [label for label, names in zip(labels, topics, strict=True) if topic in names]
        negative = tweets.count("negative")
        return [
            topic.replace("_", " "),
            str(len(tweets)),
            str(negative),
            f"{negative / len(tweets) * 100:.1f} %",
        ]

    assert shown == [counted("crew")] + [
        counted(t) for t in ("baggage", "comfort", "customer_service", "delay")
    ]
    expect(page.locator("#batch-topics-column")).to_be_visible()
    assert [row[4] for row in table_rows(page)] == [
        "baggage, delay",
        "crew, customer service",
        "comfort, crew",
    ]
    assert watched.violations() == []


def test_batch_files_limits_and_large_batches(served: LocalHost, watched: Watched):
    page = open_page(watched, served)
    requests = []
    page.on("request", lambda request: "/api/predict" in request.url and requests.append(request))
    box_ = page.get_by_label("Tweets, one per line")
    chooser = page.get_by_label("Or read a file")

    # A CSV: its "text" column, quoted commas, doubled quotes and a line break inside a field.
    chooser.set_input_files(
        files=[
            {
                "name": "tweets.csv",
                "mimeType": "text/csv",
                "buffer": b'\xef\xbb\xbfid,Text\r\n1,"lost my bag, again"\r\n2,"great ""crew""\nthanks"\r\n',
            }
        ]
    )
    expect(box_).to_have_value('lost my bag, again\ngreat "crew" thanks')
    expect(page.locator("#batch-file-status")).to_have_text(
        "Read 2 tweets from tweets.csv (the text column). Press Score all to score them."
    )
    # Without a text column: the first column of every row.
    chooser.set_input_files(
        files=[{"name": "b.csv", "mimeType": "text/csv", "buffer": b"hello there,1\nbye,2\n"}]
    )
    expect(box_).to_have_value("hello there\nbye")
    # Plain text: one tweet per non-blank line.
    chooser.set_input_files(
        files=[{"name": "c.txt", "mimeType": "text/plain", "buffer": b"one\r\n\r\ntwo\n"}]
    )
    expect(box_).to_have_value("one\ntwo")

    # Refused files leave the box as it was, with the reason in the alert.
    lines = "".join(f"tweet number {i}\n" for i in range(1001)).encode()
    chooser.set_input_files(files=[{"name": "many.txt", "mimeType": "text/plain", "buffer": lines}])
    expect(page.locator("#batch-error")).to_have_text(
        "Too many tweetsmany.txt has 1,001 tweets; the limit is 1000 per batch. Split the file."
    )
    expect(page.get_by_role("alert")).to_be_visible()
    chooser.set_input_files(
        files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": b"x" * (1024 * 1024 + 1)}]
    )
    expect(page.locator("#batch-error")).to_contain_text("big.csv is 1.0 MiB; the limit is 1 MiB")
    expect(box_).to_have_value("one\ntwo")

    # Pasted: over 1000 lines, or a line over 5000 characters, is refused before any request.
    box_.fill("\n".join(f"line {i}" for i in range(1001)))
    page.get_by_role("button", name="Score all").click()
    expect(page.locator("#batch-error")).to_contain_text("There are 1,001 tweets; the limit is 1000")
    box_.fill("fine\n" + "x" * 5001)
    box_.press("Control+Enter")
    expect(page.locator("#batch-error")).to_contain_text("Tweet 2 has 5,001 characters; the limit is 5000.")
    assert requests == []

    # Over 1 MiB of JSON: split into several requests, each within the limit, one table in input order.
    texts = [f"{i} " + ("the flight was late and the crew was kind " * 100)[:3995] for i in range(270)]
    box_.fill("\n".join(texts))
    with page.expect_response(
        lambda r: "/api/predict" in r.url and r.request.post_data_json["texts"][-1] == texts[-1]
    ):
        page.get_by_role("button", name="Score all").click()
    expect(page.locator("#batch-rows tr")).to_have_count(270)
    assert len(requests) >= 2
    assert all(len(r.post_data_buffer) <= 1024 * 1024 for r in requests)
    assert [t for r in requests for t in r.post_data_json["texts"]] == texts
    assert table_rows(page)[269][:2] == ["270", texts[269]]
    expect(page.locator("#batch-error")).to_be_hidden()

    # A failing request clears the previous table: no stale rows under a new error.
    page.route(
        "**/api/predict",
        lambda route: route.fulfill(
            status=503, json={"error": {"code": "over_budget", "message": "retry, or send fewer texts"}}
        ),
    )
    box_.fill("one\ntwo")
    page.get_by_role("button", name="Score all").click()
    expect(page.get_by_role("alert")).to_contain_text("Error 503 (over_budget)retry, or send fewer texts")
    expect(page.locator("#batch-result")).to_be_hidden()
    assert watched.violations() == []
    assert watched.page_errors == []


def test_batch_with_the_keyboard_only(served: LocalHost, watched: Watched):
    page = open_page(watched, served)
    expect(page.locator("#model-version")).not_to_have_text("checking…")

    def tab_to() -> str:
        page.keyboard.press("Tab")
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        return page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")

    # From the top: the single-tweet form, then (no result yet) the batch form, then the key.
    order = [tab_to() for _ in range(7)]
    assert order == [
        "Skip to the tweet box",
        "tweet",
        "score-button",
        "batch-text",
        "batch-file",
        "batch-button",
        "key-title",
    ], order
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "batch-text"
    page.keyboard.type("lost my bag")
    page.keyboard.press("Enter")  # Enter adds a line here
    page.keyboard.type("lovely crew")
    with page.expect_response("**/api/predict"):
        page.keyboard.press("Control+Enter")
    expect(page.locator("#batch-rows tr")).to_have_count(2)
    order = [tab_to() for _ in range(7)]
    assert order == [
        "batch-file",
        "batch-button",
        "batch-download",
        "#",
        "Tweet",
        "Label",
        "Negative probability",
    ]
    page.keyboard.press("Enter")
    expect(sort_header(page, "Negative probability")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#batch-progress")).to_have_text("Sorted by negative probability, ascending.")
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "batch-download"
    with page.expect_download() as downloading:
        page.keyboard.press("Enter")
    assert downloading.value.suggested_filename.endswith(".csv")
    assert watched.violations() == []
    assert watched.console_errors == []
