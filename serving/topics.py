"""Airline topics a tweet mentions, from the versioned lexicon ``serving/lexicon/topics.json``.

The lexicon is data: each topic lists whole tokens (``terms``), token starts (``prefixes``) and runs of
consecutive tokens (``phrases``), all in the normalizer's output form. A topic is what a tweet talks
about, negated or not ("no delay" is about delays), so the normalizer's negation marks ("no neg_delay")
are left out of both the entries and the text before matching. Matching works on the normalized text
and is linear in it: one split, one set intersection of its tokens with the lexicon's
keys, then fixed-length substring searches (see ``TopicMatcher``); no regular expression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from serving.normalizer import NEGATION_PREFIX, without_negation_marks

LEXICON_PATH = Path(__file__).resolve().parent / "lexicon" / "topics.json"
MAX_PHRASE_TOKENS = 4
MAX_PREFIX_CHARS = 32


class LexiconError(ValueError):
    """The lexicon file breaks its format; the message says where."""


@dataclass(frozen=True, slots=True)
class TopicMatcher:
    """Look-up tables built once from the lexicon.

    ``keys`` holds every term and every phrase anchor (a phrase's longest token): one C-level set
    intersection with the text's tokens finds the few tokens worth a look. A phrase is then searched as
    `` <phrase> `` in `` <text> `` (tokens are separated by single spaces), a prefix as `` <prefix>``.
    Phrases whose every topic a term of theirs already gives are dropped: they cannot add a topic."""

    version: str
    names: tuple[str, ...]
    terms: dict[str, frozenset[str]]
    prefixes: tuple[tuple[str, frozenset[str]], ...]
    anchors: dict[str, tuple[tuple[str, frozenset[str]], ...]]
    keys: frozenset[str]
    # key -> (its term's topics, the phrases it anchors): one look-up per token found
    entries: dict[str, tuple[frozenset[str], tuple[tuple[str, frozenset[str]], ...]]]

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TopicMatcher:
        version = document.get("version")
        topics = document.get("topics")
        if not isinstance(version, str) or not version or not isinstance(topics, dict) or not topics:
            raise LexiconError("the lexicon needs a string 'version' and a non-empty 'topics' object")
        tables: dict[str, dict[str, set[str]]] = {"terms": {}, "prefixes": {}, "phrases": {}}
        for topic, entry in topics.items():
            if not isinstance(entry, dict) or set(entry) - set(tables):
                raise LexiconError(f"topic {topic!r}: expected an object with terms, prefixes, phrases")
            for kind, table in tables.items():
                for raw in entry.get(kind, []):
                    key = without_negation_marks(_checked(topic, kind, raw))
                    table.setdefault(key, set()).add(topic)
        terms = {key: frozenset(value) for key, value in tables["terms"].items()}
        anchors: dict[str, list[tuple[str, frozenset[str]]]] = {}
        for phrase, found in tables["phrases"].items():
            tokens = phrase.split(" ")
            if found <= set().union(*(terms.get(token, frozenset()) for token in tokens)):
                continue  # a term of the phrase already gives all its topics
            anchor = max(reversed(tokens), key=len)
            anchors.setdefault(anchor, []).append((f" {phrase} ", frozenset(found)))
        keys = frozenset(terms) | frozenset(anchors)
        return cls(
            version=version,
            names=tuple(sorted(topics)),
            terms=terms,
            prefixes=tuple((f" {key}", frozenset(value)) for key, value in tables["prefixes"].items()),
            anchors={key: tuple(value) for key, value in anchors.items()},
            keys=keys,
            entries={key: (terms.get(key, frozenset()), tuple(anchors.get(key, ()))) for key in keys},
        )

    def match(self, normalized: str) -> list[str]:
        """Sorted topics of one normalized text (``[]`` when none), negation marks left out. Linear in the
        text: one replace, one split, one set intersection, one substring search per prefix, and one per
        phrase of each anchor present (needles of at most a few dozen characters)."""
        if not normalized:
            return []
        normalized = without_negation_marks(normalized)
        found: set[str] = set()
        padded = f" {normalized} "
        for prefix, topics in self.prefixes:
            if prefix in padded:
                found |= topics
        entries = self.entries
        for token in self.keys.intersection(normalized.split(" ")):
            hit, phrases = entries[token]
            found |= hit
            for phrase, topics in phrases:
                if phrase in padded:
                    found |= topics
        return sorted(found) if found else []


def _checked(topic: str, kind: str, raw: object) -> str:
    """An entry as the matcher compares it: lowercase ASCII tokens separated by single spaces."""
    if not isinstance(raw, str) or not raw or raw != raw.strip() or "  " in raw or raw != raw.lower():
        raise LexiconError(f"topic {topic!r}: {kind} entry {raw!r} is not in normalized form")
    tokens = raw.split(" ")
    if not raw.isascii() or any(not t.replace("_", "").isalnum() or t == NEGATION_PREFIX for t in tokens):
        raise LexiconError(f"topic {topic!r}: {kind} entry {raw!r} has characters the normalizer drops")
    if kind != "phrases" and len(tokens) != 1:
        raise LexiconError(f"topic {topic!r}: {kind} entry {raw!r} must be one token (use phrases)")
    if kind == "phrases" and not 2 <= len(tokens) <= MAX_PHRASE_TOKENS:
        raise LexiconError(f"topic {topic!r}: phrase {raw!r} must have 2 to {MAX_PHRASE_TOKENS} tokens")
    if kind == "prefixes" and len(raw) > MAX_PREFIX_CHARS:
        raise LexiconError(f"topic {topic!r}: prefix {raw!r} is longer than {MAX_PREFIX_CHARS} characters")
    return raw


def load_matcher(path: str | Path = LEXICON_PATH) -> TopicMatcher:
    """Read and check a lexicon file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LexiconError(f"lexicon {Path(path).name} cannot be read: {error}") from None
    if not isinstance(document, dict):
        raise LexiconError("the lexicon must be a JSON object")
    return TopicMatcher.from_document(document)


@cache
def default_matcher() -> TopicMatcher:
    """The repository's lexicon, loaded once per process."""
    return load_matcher()


def topics_of(normalized: str) -> list[str]:
    """Topics of a normalized text with the repository's lexicon."""
    return default_matcher().match(normalized)
