"""The adversarial request set: the worst legal bodies and hand-made hostile ones.

Shared by the tests (every case answered, never a 5xx) and ``benchmarks/bench_adversarial.py`` (time
and memory per case against the per-request bounds). Each legal body is at most 1 MiB, the API's limit,
and built to maximise one cost: normalizer expansion (symbols become their names), backtracking
(the old URL pattern), padding (texts of very different lengths in one batch), explanations.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field

MAX_BODY_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 5_000
MAX_BATCH = 1_000


@dataclass(frozen=True)
class Case:
    """One request body and what it may be answered with."""

    name: str
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    statuses: frozenset[int] = frozenset({200})


def _symbols(count: int) -> list[str]:
    """The first ``count`` distinct "other symbol" characters (emoji, arrows, dingbats): each becomes
    its name, the normalizer's largest expansion, and distinct ones defeat its caches."""
    found = []
    for code in range(0x2190, 0x1FAFF):
        if unicodedata.category(chr(code)) == "So":
            found.append(chr(code))
            if len(found) == count:
                break
    return found


def _fill(text: str, explain: bool = False, **extra: object) -> bytes:
    """As many copies of ``text`` as fit in a 1 MiB batch body (at most 1,000)."""
    one = len(json.dumps(text, ensure_ascii=False).encode()) + 2
    count = min(MAX_BATCH, (MAX_BODY_BYTES - 64) // one)
    body = {"texts": [text] * count, **({"explain": True} if explain else {}), **extra}
    data = json.dumps(body, ensure_ascii=False).encode()
    assert len(data) <= MAX_BODY_BYTES, (len(data), count)
    return data


def worst_legal_bodies() -> list[Case]:
    """Legal bodies (≤ 1 MiB, ≤ 1,000 texts of ≤ 5,000 characters) that each push one cost to its limit."""
    symbols = "".join(_symbols(MAX_TEXT_CHARS))
    long_ascii = ("delayed flight lost bag awful service " * 200)[:MAX_TEXT_CHARS]
    short_and_long = [long_ascii if index % 50 == 0 else "ok" for index in range(MAX_BATCH)]
    return [
        Case("symbol_names", _fill("\u2b83" * MAX_TEXT_CHARS)),
        Case("symbol_names_explain", _fill("\u2b83" * MAX_TEXT_CHARS, explain=True)),
        Case("distinct_symbols", _fill(symbols)),
        Case("emoji_explain", _fill("\U0001f621" * MAX_TEXT_CHARS, explain=True)),
        Case("url_backtracking", _fill("a." * (MAX_TEXT_CHARS // 2 - 1) + "/")),
        Case("www_backtracking", _fill("www." + "a." * (MAX_TEXT_CHARS // 2 - 3) + "/")),
        Case("long_ascii_explain", _fill(long_ascii, explain=True)),
        Case("repeated_letters", _fill("a" * MAX_TEXT_CHARS)),
        Case(
            "many_short_texts_explain",
            json.dumps({"texts": ["not bad at all"] * MAX_BATCH, "explain": True}).encode(),
        ),
        Case("padding_mix", json.dumps({"texts": short_and_long, "explain": True}).encode()),
        Case("mentions_hashtags", _fill("@a #b " * (MAX_TEXT_CHARS // 6))),
        Case("emoticons", _fill(":) :( " * (MAX_TEXT_CHARS // 6))),
        Case("mojibake", _fill("â€™ï¿½" * (MAX_TEXT_CHARS // 6))),
        Case("html_entities", _fill("&amp;&lt;&#128545;" * (MAX_TEXT_CHARS // 18))),
        Case("one_long_text", json.dumps({"text": symbols, "explain": True}, ensure_ascii=False).encode()),
        Case("uncertain_texts", json.dumps({"texts": uncertain_texts(MAX_BATCH, 1_000)}).encode()),
    ]


def uncertain_texts(count: int, chars: int) -> list[str]:
    """Distinct lukewarm texts (the n-gram model is unsure of them, so the cascade's encoder gets its
    quota) long enough to fill the encoder's token budget; their words vary, defeating token caches."""
    openings = (
        "well the flight was not terrible but not great either",
        "meh, the crew was ok i guess, the seat was whatever",
        "not bad, not good, the delay was short but the food was cold",
        "thanks i suppose, the bag arrived eventually, the wifi kind of worked",
    )
    texts = []
    for index in range(count):
        words = " ".join(f"w{index}x{k}" for k in range(chars // 8))
        texts.append(f"{openings[index % len(openings)]} {words}"[:chars])
    return texts


def hostile_bodies() -> list[Case]:
    """Malformed or tricky bodies: each must get a JSON 4xx (or a 200 where the body is in fact legal),
    never a 5xx."""
    bad = frozenset({400})
    ok_or_bad = frozenset({200, 400})
    return [
        Case("invalid_utf8", b'{"text": "\xff\xfe\xfd"}', statuses=bad),
        Case("overlong_utf8", b'{"text": "\xc0\xaf"}', statuses=bad),
        Case("utf8_encoded_surrogate", b'{"text": "\xed\xa0\x80"}', statuses=bad),
        Case("escaped_lone_surrogate", b'{"text": "\\udc00 x"}', statuses=bad),
        Case("surrogate_pair_escape", b'{"text": "\\ud83d\\ude21"}'),
        Case("deep_array", b"[" * 200_000 + b"]" * 200_000, statuses=bad),
        Case("deep_object", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, statuses=bad),
        Case("huge_exponent", b'{"text": "hi", "x": 1e999}', statuses=ok_or_bad),
        Case("huge_integer", b'{"text": "hi", "x": ' + b"9" * 5_000 + b"}", statuses=bad),
        Case("duplicate_keys", b'{"text": "good", "text": "bad flight"}', statuses=ok_or_bad),
        Case("nul_bytes", b'{"text": "a\\u0000b\\u0000"}'),
        Case("bom_prefixed", b'\xef\xbb\xbf{"text": "hi"}', statuses=ok_or_bad),
        Case("utf16_body", '{"text": "hi"}'.encode("utf-16"), statuses=bad),
        Case("nan_value", b'{"text": "hi", "x": NaN}', statuses=bad),
        Case("many_unknown_keys", json.dumps({"text": "hi", **{f"k{i}": i for i in range(50_000)}}).encode()),
        Case("texts_of_objects", json.dumps({"texts": [{"text": "hi"}] * 1_000}).encode(), statuses=bad),
        Case(
            "batch_too_large",
            json.dumps({"texts": ["a"] * 100_000}).encode()[: MAX_BODY_BYTES - 2] + b'"]',
            statuses=bad,
        ),
        Case(
            "declared_length_over_the_limit",
            b'{"text": "hi"}',
            {"content-type": "application/json", "content-length": str(64 * MAX_BODY_BYTES)},
            frozenset({413}),
        ),
        Case("body_over_the_limit", b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}', statuses=frozenset({413})),
        Case(
            "wrong_charset",
            b'{"text": "hi"}',
            {"content-type": "application/json; charset=latin-1"},
            frozenset({415}),
        ),
        Case(
            "form_body", b"text=hi", {"content-type": "application/x-www-form-urlencoded"}, frozenset({415})
        ),
    ]
