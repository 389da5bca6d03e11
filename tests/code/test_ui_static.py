"""The test page as a file: self-contained, CSP-friendly and labelled.

The page must work offline and under a strict Content-Security-Policy that allows only the hashes of its
one inline ``<script>`` and one inline ``<style>``: any external URL, inline event handler, ``style``
attribute or string-to-code call would be blocked in the browser, so it is refused here first.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "serving" / "static" / "ui.html"
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcset", "poster", "data", "background", "ping"}
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
LABELLABLE = {"input", "textarea", "select"}


class PageParser(HTMLParser):
    """Collects every element with its attributes, and the bodies of inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.bodies: dict[str, list[str]] = {"script": [], "style": []}
        self._open: str | None = None
        self._text: list[str] = []
        self.label_texts: dict[str, str] = {}
        self._label_for: str | None = None
        self.button_texts: list[str] = []
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in self.bodies:
            self._open, self._text = tag, []
        elif tag == "label":
            self._label_for, self._text = dict(attrs).get("for"), []
        elif tag == "button":
            self._in_button, self._text = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.bodies and self._open == tag:
            self.bodies[tag].append("".join(self._text))
            self._open = None
        elif tag == "label" and self._label_for:
            self.label_texts[self._label_for] = "".join(self._text).strip()
            self._label_for = None
        elif tag == "button":
            self.button_texts.append("".join(self._text).strip())
            self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._open or self._label_for or self._in_button:
            self._text.append(data)


@pytest.fixture(scope="module")
def html() -> str:
    return PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def csp_hash(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"


def test_one_inline_script_and_style_without_attributes(html: str, page: PageParser) -> None:
    scripts = [attrs for tag, attrs in page.elements if tag == "script"]
    styles = [attrs for tag, attrs in page.elements if tag == "style"]
    assert scripts == [{}], "one inline <script> without src or type: its hash is the whole script policy"
    assert styles == [{}], "exactly one inline <style>: its hash is the whole style policy"
    # The bare-tag form is what the served CSP hashes; the parser and a plain regex must agree on the body.
    bare = re.findall(r"<(script|style)>(.*?)</\1>", html, re.DOTALL)
    assert [body for kind, body in bare if kind == "script"] == page.bodies["script"]
    assert [body for kind, body in bare if kind == "style"] == page.bodies["style"]
    assert not any(tag == "link" and attrs.get("rel") == "stylesheet" for tag, attrs in page.elements)


def test_no_external_urls(html: str, page: PageParser) -> None:
    for tag, attrs in page.elements:
        for name, value in attrs.items():
            if name in URL_ATTRIBUTES and value and EXTERNAL.match(value):
                assert value.startswith("data:"), f"<{tag} {name}={value!r}> loads something from elsewhere"
    style = "".join(page.bodies["style"])
    assert "@import" not in style
    assert all(url.strip("'\" ").startswith("data:") for url in re.findall(r"url\(([^)]*)\)", style))
    script = "".join(page.bodies["script"])
    assert not re.search(r"https?://|wss?://", script), "the script calls only its own origin"
    assert not re.search(r"\bimport\s*\(|importScripts|new\s+Worker", script)


def test_no_inline_handlers_style_attributes_or_string_code(page: PageParser) -> None:
    for tag, attrs in page.elements:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"<{tag}> has inline handlers {handlers}: the CSP blocks them"
        assert "style" not in attrs, f"<{tag}> has a style attribute: the CSP blocks it"
        for name in URL_ATTRIBUTES & attrs.keys():
            assert not (attrs[name] or "").lower().startswith("javascript:")
    script = "".join(page.bodies["script"])
    for forbidden in (
        r"\beval\s*\(",
        r"new\s+Function\s*\(",
        r"set(?:Timeout|Interval)\s*\(\s*['\"`]",
        r"\.innerHTML\b",
        r"\.outerHTML\b",
        r"insertAdjacentHTML",
        r"document\.write",
    ):
        assert not re.search(forbidden, script), (
            f"script uses {forbidden}: code from strings, or HTML injection"
        )
    assert '"use strict"' in script


def test_every_field_is_labelled_and_ids_are_unique(page: PageParser) -> None:
    ids = [attrs["id"] for _, attrs in page.elements if attrs.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids break labels and aria references"
    fields = [(tag, attrs) for tag, attrs in page.elements if tag in LABELLABLE]
    assert {attrs.get("id") for _, attrs in fields} >= {"tweet", "function-key", "batch-text", "batch-file"}
    for tag, attrs in fields:
        field_id = attrs.get("id")
        assert field_id and page.label_texts.get(field_id), f"<{tag} id={field_id!r}> has no <label for>"
    for _, attrs in page.elements:
        for reference in ("aria-labelledby", "aria-describedby"):
            for target in (attrs.get(reference) or "").split():
                assert target in ids, f"{reference} points at missing id {target!r}"
    assert all(page.button_texts), "every button has visible text"
    assert {"Correct", "Wrong"} <= set(page.button_texts)


def test_keyboard_and_screen_reader_affordances(html: str, page: PageParser) -> None:
    live = [attrs for _, attrs in page.elements if attrs.get("aria-live") or attrs.get("role") == "alert"]
    assert any(attrs.get("id") == "result-live" and attrs.get("aria-live") == "polite" for attrs in live)
    assert any(attrs.get("id") == "error" and attrs.get("role") == "alert" for attrs in live)
    assert any(attrs.get("id") == "batch-live" and attrs.get("aria-live") == "polite" for attrs in live)
    assert any(attrs.get("id") == "batch-error" and attrs.get("role") == "alert" for attrs in live)
    assert ":focus-visible" in "".join(page.bodies["style"]), "keyboard focus must stay visible"
    assert not any(int(attrs.get("tabindex") or 0) > 0 for _, attrs in page.elements), "no tab order hacks"
    assert ("html", {"lang": "en"}) in page.elements


def test_function_key_lives_in_session_storage_only(page: PageParser) -> None:
    script = "".join(page.bodies["script"])
    assert "sessionStorage" in script
    assert "localStorage" not in script and "document.cookie" not in script
    assert '"x-functions-key"' in script
    key_field = next(attrs for tag, attrs in page.elements if attrs.get("id") == "function-key")
    assert key_field.get("type") == "password" and key_field.get("autocomplete") == "off"


def test_page_hashes_are_stable_csp_sources(page: PageParser) -> None:
    """The served policy lists these two hashes; each is a well-formed CSP hash source."""
    sources = [csp_hash(body) for body in page.bodies["script"] + page.bodies["style"]]
    assert len(set(sources)) == 2
    assert all(re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", source) for source in sources)


def test_served_policy_pins_exactly_the_page_code(html: str, page: PageParser) -> None:
    """The policy the app sends with this page allows its own two blocks and nothing inline besides."""
    from serving.http import content_security_policy

    policy = {}
    for directive in content_security_policy(html).split("; "):
        name, _, sources = directive.partition(" ")
        policy[name] = sources
    assert policy["default-src"] == "'none'"
    assert policy["script-src"].split() == [csp_hash(body) for body in page.bodies["script"]]
    assert policy["style-src"].split() == [csp_hash(body) for body in page.bodies["style"]]
    assert policy["connect-src"] == "'self'"
    assert "unsafe" not in content_security_policy(html)


def test_threshold_heading_and_sortable_table_are_in_the_markup(html: str, page: PageParser) -> None:
    ids = {attrs["id"]: (tag, attrs) for tag, attrs in page.elements if attrs.get("id")}
    # The threshold is drawn (mark and value) and stated in words, all hidden until /api/health gives it.
    for name in ("threshold-mark", "threshold-scale", "threshold-text"):
        assert "hidden" in ids[name][1], f"#{name} stays hidden until the service states a threshold"
    assert re.search(r'<h3 id="terms-title">Words that drove the score</h3>', html)
    script = "".join(page.bodies["script"])
    assert '"health"' in script and "h.threshold" in script and "h.labels" in script
    # Sortable columns: a real button in each header (Enter and Space work), one aria-sort at a time.
    headers = [attrs for tag, attrs in page.elements if tag == "th" and attrs.get("data-key")]
    assert [h["data-key"] for h in headers] == ["index", "text", "label", "negative_probability", "topics"]
    assert [h.get("aria-sort") for h in headers].count("ascending") == 1
    assert {"Score all", "Download CSV", "#", "Tweet", "Label", "Negative probability"} <= set(
        page.button_texts
    )
    # The file is read in the page; the CSV is built as a Blob: no request carries either.
    assert "FileReader" in script and "URL.createObjectURL" in script and "revokeObjectURL" in script
