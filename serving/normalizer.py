"""The one tweet normalizer, shared by training and serving.

Training fits the model on ``normalize(text)`` and serving scores ``normalize(text)``, so the two can
never disagree about what a token is. Standard library only: serving must not pay for anything heavier.

Output contract (the ONNX graph relies on it): lowercase ASCII tokens made of ``[a-z0-9_]`` plus the
punctuation tokens ``!`` and ``?``, separated by single spaces, no leading or trailing space. The
function is idempotent: ``normalize(normalize(t)) == normalize(t)``.

Bump ``NORMALIZER_VERSION`` whenever the output for any input changes: the version is stored in the
model, and a model trained with another version must be retrained.
"""

from __future__ import annotations

import html
import re
import unicodedata

NORMALIZER_VERSION = "1"

URL_TOKEN = "url"
USER_TOKEN = "user"
POSITIVE_EMOTICON_TOKEN = "emopos"
NEGATIVE_EMOTICON_TOKEN = "emoneg"

# Double-encoded UTF-8 read as cp1252/latin-1 ("â€™" for "’") and the replacement-character mojibake
# ("ï¿½") that Sentiment140 is full of.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2\u00c3\u00e2]"
    "[\u0080-\u00bf\u20ac\u201a-\u203a\u2122\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc]"
)
_REPLACEMENT = re.compile("(?:\u00ef\u00bf\u00bd|\ufffd)+")

_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[a-z0-9][a-z0-9.-]*\.(?:com|net|org|ly|co|io|me|gl|tv|fm|us|uk|be)/\S*",
    re.IGNORECASE,
)
_MENTION = re.compile(r"@\w+")
_HASHTAG = re.compile(r"#(\w+)")

_EYES = r"[:;=8]"
_NOSE = r"[-o'^]?"
_POSITIVE_EMOTICON = re.compile(
    rf"(?<![\w:;=])(?:{_EYES}{_NOSE}[)\]}}dDpP*>]+|[(\[]{_NOSE}{_EYES}|\^_*\^|<3+)(?![\w])"
)
_NEGATIVE_EMOTICON = re.compile(
    rf"(?<![\w:;=])(?:{_EYES}'?{_NOSE}[(\[{{|/\\@<]+|[)\]]{_NOSE}{_EYES}|D{_NOSE}[:;=8]|</3+|T_T|;_;)(?![\w])"
)

_APOSTROPHE = re.compile("['\u2019\u2018`\u00b4]")
_EXCLAMATIONS = re.compile(r"!+")
_QUESTIONS = re.compile(r"\?+")
_NON_TOKEN = re.compile(r"[^a-z0-9_!? ]+")
_LONG_REPEAT = re.compile(r"([a-z])\1{2,}")
_SPACES = re.compile(r" {2,}")


def _repair_mojibake(text: str) -> str:
    """Undo UTF-8 bytes that were decoded as cp1252/latin-1, when that is what happened."""
    text = _REPLACEMENT.sub(" ", text)
    if not _MOJIBAKE_HINT.search(text):
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            return text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return text


def _symbol_name(char: str) -> str:
    """``"😂"`` -> ``" face_with_tears_of_joy "``: emoji carry sentiment, so keep them as words."""
    name = unicodedata.name(char, "")
    if not name:
        return " "
    return " " + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + " "


def _to_ascii(text: str) -> str:
    """Emoji and symbols become their names; accented letters lose their accents; other scripts go."""
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        category = unicodedata.category(char)
        if category == "So":
            out.append(_symbol_name(char))
        elif category in ("Sk", "Mn", "Me", "Cf"):
            continue  # skin-tone modifiers, variation selectors, zero-width joiners, combining marks
        else:
            folded = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
            out.append(folded if folded.isalnum() else " ")
    return "".join(out)


def normalize(text: str) -> str:
    """Turn a raw tweet into the model's input text (see the module docstring for the contract)."""
    text = html.unescape(text)
    text = _repair_mojibake(text)
    text = _URL.sub(f" {URL_TOKEN} ", text)
    text = _MENTION.sub(f" {USER_TOKEN} ", text)
    text = _HASHTAG.sub(r" \1 ", text)
    text = _POSITIVE_EMOTICON.sub(f" {POSITIVE_EMOTICON_TOKEN} ", text)
    text = _NEGATIVE_EMOTICON.sub(f" {NEGATIVE_EMOTICON_TOKEN} ", text)
    text = _APOSTROPHE.sub("", text)
    if not text.isascii():
        text = _to_ascii(text)
    text = text.lower()
    text = _EXCLAMATIONS.sub(" ! ", text)
    text = _QUESTIONS.sub(" ? ", text)
    text = _NON_TOKEN.sub(" ", text)
    text = _LONG_REPEAT.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()


def normalize_many(texts: list[str]) -> list[str]:
    """Normalize a batch, keeping order."""
    return [normalize(text) for text in texts]
