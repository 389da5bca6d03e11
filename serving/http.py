"""HTTP request checks and JSON answers for the function app.

Every way a request can be wrong maps to one ``ApiError`` (status, snake_case code, a message that says
how to fix it), so that the routes stay a few lines long and no input reaches the model unchecked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from serving.contract import LABELS

MAX_BODY_BYTES = 1024 * 1024
MAX_TEXT_CHARS = 5_000
MAX_BATCH = 1_000
MAX_ID_CHARS = 64
JSON_MEDIA_TYPE = "application/json"

# A text is blank when it holds only these: Python's whitespace (what str.strip() removes) and U+FEFF,
# which JSON Schema's (ECMAScript) ``\s`` also counts. BLANK_PATTERN, which the OpenAPI document gives
# clients, finds a character outside the set under both regex dialects, so document and check agree.
BLANK_CHARS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
BLANK_CHARS += "\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK_PATTERN = "[^\\s\\x1c-\\x1f\\x85\\ufeff]"
_PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8"})
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# Built once: json.dumps/json.loads with options build a new encoder/decoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


@dataclass(frozen=True)
class ApiError(Exception):
    """A request the service refuses, with the answer the client gets."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PredictRequest:
    texts: list[str]
    batch: bool
    explain: bool


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    text: str
    predicted_label: str
    correct: bool
    prediction_id: str | None
    negative_probability: float | None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    body = _ENCODER.encode(payload)
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype=JSON_MEDIA_TYPE,
        charset="utf-8",
        headers={**_JSON_HEADERS, **(headers or {})},
    )


def error_response(error: ApiError) -> func.HttpResponse:
    return json_response(
        {"error": {"code": error.code, "message": error.message}}, error.status, dict(error.headers)
    )


def require_method(req: func.HttpRequest, *allowed: str) -> None:
    """Routes accept every method so that a wrong one gets this JSON 405 rather than the host's."""
    if req.method.upper() not in allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{req.method.upper()} is not allowed here; use {' or '.join(allowed)}",
            (("Allow", ", ".join(allowed)),),
        )


def read_json_object(req: func.HttpRequest) -> dict[str, Any]:
    """The body as a JSON object, after the content-type and size checks."""
    content_type = req.headers.get("content-type")
    if content_type is not None and content_type not in _PLAIN_JSON and content_type.strip():
        media_type, _, parameters = content_type.partition(";")
        media_type = media_type.strip().lower()
        if media_type != JSON_MEDIA_TYPE and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"content type {media_type[:100]!r} is not JSON; send application/json",
            )
        charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", parameters, re.IGNORECASE)
        if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
            raise ApiError(415, "unsupported_media_type", "JSON must be UTF-8 encoded; send charset=utf-8")
    declared = req.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(  # refused on the header, before the body is touched
            413, "payload_too_large", f"the body is {int(declared)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(
            413, "payload_too_large", f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    if not body.strip():
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object")
    try:
        document = _parse_json(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8 text; send UTF-8 encoded JSON") from None
    except ValueError as error:  # JSONDecodeError, and integers with too many digits
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the JSON document is nested too deeply") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object, not {_json_kind(document)}")
    return document


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(text: str) -> Any:
    """``json.loads(text, parse_constant=_reject_constant)``, same errors, with the decoder built once."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _text(value: Any, field: str) -> str:
    """A tweet: a string, non-empty after stripping, at most ``MAX_TEXT_CHARS`` characters, valid Unicode."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", f"'{field}' must be a string, not {_json_kind(value)}")
    if not value.strip(BLANK_CHARS):
        raise ApiError(400, "empty_text", f"'{field}' is empty; send the tweet text")
    if len(value) > MAX_TEXT_CHARS:
        raise ApiError(
            400, "text_too_long", f"'{field}' has {len(value)} characters; the limit is {MAX_TEXT_CHARS}"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "invalid_field", f"'{field}' holds an unpaired surrogate escape") from None
    return value


def _boolean(document: dict[str, Any], field: str, *, required: bool, default: bool = False) -> bool:
    if field not in document:
        if required:
            raise ApiError(400, "missing_field", f"'{field}' is required (true or false)")
        return default
    value = document[field]
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_field", f"'{field}' must be true or false, not {_json_kind(value)}")
    return value


def parse_predict(document: dict[str, Any]) -> PredictRequest:
    """``{"text": ...}`` or ``{"texts": [...]}`` (exactly one), and an optional boolean ``explain``."""
    explain = _boolean(document, "explain", required=False)
    has_text, has_texts = "text" in document, "texts" in document
    if has_text == has_texts:
        raise ApiError(
            400,
            "missing_field" if not has_text else "invalid_body",
            "send either 'text' (one tweet) or 'texts' (a list of tweets), not both"
            if has_text
            else "'text' (one tweet) or 'texts' (a list of tweets) is required",
        )
    if has_text:
        return PredictRequest([_text(document["text"], "text")], False, explain)
    texts = document["texts"]
    if not isinstance(texts, list):
        raise ApiError(400, "invalid_field", f"'texts' must be an array of strings, not {_json_kind(texts)}")
    if not texts:
        raise ApiError(400, "empty_batch", f"'texts' is empty; send 1 to {MAX_BATCH} tweets")
    if len(texts) > MAX_BATCH:
        raise ApiError(
            400,
            "batch_too_large",
            f"'texts' has {len(texts)} items; the limit is {MAX_BATCH}: split the batch",
        )
    return PredictRequest([_text(text, f"texts[{i}]") for i, text in enumerate(texts)], True, explain)


def parse_feedback(document: dict[str, Any], labels: tuple[str, ...] = LABELS) -> FeedbackRequest:
    """``text``, ``predicted_label`` (one of the model's ``labels``) and ``correct`` are required; the id
    and probability are optional."""
    if "text" not in document:
        raise ApiError(400, "missing_field", "'text' is required: the tweet the prediction was about")
    text = _text(document["text"], "text")
    if "predicted_label" not in document:
        raise ApiError(400, "missing_field", f"'predicted_label' is required: one of {', '.join(labels)}")
    label = document["predicted_label"]
    if not isinstance(label, str) or label not in labels:
        raise ApiError(400, "invalid_field", f"'predicted_label' must be one of {', '.join(labels)}")
    correct = _boolean(document, "correct", required=True)
    prediction_id = document.get("prediction_id")
    if prediction_id is not None and not (
        isinstance(prediction_id, str) and _ID_PATTERN.fullmatch(prediction_id)
    ):
        raise ApiError(
            400,
            "invalid_field",
            f"'prediction_id' must be a predict id (1 to {MAX_ID_CHARS} letters, digits, - or _)",
        )
    probability = document.get("negative_probability")
    if probability is not None and (
        isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1
    ):
        raise ApiError(400, "invalid_field", "'negative_probability' must be a number between 0 and 1")
    return FeedbackRequest(
        text, label, correct, prediction_id, None if probability is None else float(probability)
    )


_INLINE_BLOCK = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def content_security_policy(page: str) -> str:
    """A strict policy for a self-contained page: nothing loads from anywhere, and only the page's own
    inline ``<script>``/``<style>`` blocks run, pinned by their SHA-256 (inline handlers and ``style=``
    attributes stay blocked). Requests go back to this origin only."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, attributes, content in _INLINE_BLOCK.findall(page):
        if kind.lower() == "script" and re.search(r"\bsrc\s*=", attributes, re.IGNORECASE):
            continue
        digest = base64.b64encode(hashlib.sha256(content.encode("utf-8")).digest()).decode("ascii")
        hashes[kind.lower()].append(f"'sha256-{digest}'")
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(hashes['script']) or "'none'"}",
            f"style-src {' '.join(hashes['style']) or "'none'"}",
            "img-src data:",
            "connect-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def html_response(page: str) -> func.HttpResponse:
    return func.HttpResponse(
        page,
        status_code=200,
        mimetype="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": content_security_policy(page),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
