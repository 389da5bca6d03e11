"""The OpenAPI document is valid 3.1, describes exactly the registered routes, and agrees with the checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from serving import http as api_http
from serving.openapi import ERROR_CODES, document
from tests.app_fixtures import registered_functions  # noqa: F401 (fixture)


def test_the_document_is_valid_openapi_3_1():
    spec = document()
    assert spec["openapi"] == "3.1.0"
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_the_document_survives_json_and_is_fresh_each_time():
    first = document()
    first["components"]["schemas"]["Error"]["type"] = "mutated"
    assert document()["components"]["schemas"]["Error"]["type"] == "object"
    assert json.loads(json.dumps(document())) == document()


def test_the_paths_are_the_registered_routes_with_their_auth(registered_functions):  # noqa: F811
    spec = document()
    registered = {f"/{f.get_trigger().route}": f for f in registered_functions.values()}
    assert set(spec["paths"]) == set(registered)
    for path, function in registered.items():
        (method,) = spec["paths"][path]
        operation = spec["paths"][path][method]
        needs_key = str(function.get_trigger().auth_level.value).upper() == "FUNCTION"
        assert bool(operation["security"]) == needs_key, path
        assert "405" in operation["responses"]


def test_every_error_code_the_app_raises_is_documented():
    sources = [Path(api_http.__file__), Path(api_http.__file__).parent.parent / "function_app.py"]
    raised = set()
    for source in sources:
        raised |= set(re.findall(r'ApiError\(\s*\d{3},\s*"([a-z_]+)"', source.read_text()))
    assert raised, "no error codes found: the pattern above no longer matches the code"
    assert raised <= set(ERROR_CODES)
    assert {
        "invalid_json",
        "missing_field",
        "text_too_long",
        "payload_too_large",
        "model_unavailable",
    } <= raised


def _schema(name: str) -> jsonschema.Draft202012Validator:
    spec = document()
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


@pytest.mark.parametrize(
    ("name", "instance", "valid"),
    [
        ("PredictOneRequest", {"text": "hi", "explain": True}, True),
        ("PredictOneRequest", {"text": ""}, False),
        ("PredictOneRequest", {"text": "x" * (api_http.MAX_TEXT_CHARS + 1)}, False),
        ("PredictBatchRequest", {"texts": ["a"] * api_http.MAX_BATCH}, True),
        ("PredictBatchRequest", {"texts": ["a"] * (api_http.MAX_BATCH + 1)}, False),
        ("PredictBatchRequest", {"texts": []}, False),
        ("FeedbackRequest", {"text": "t", "predicted_label": "negative", "correct": False}, True),
        ("FeedbackRequest", {"text": "t", "predicted_label": "neutral", "correct": False}, False),
        ("FeedbackRequest", {"text": "t", "predicted_label": "negative"}, False),
        ("Error", {"error": {"code": "invalid_json", "message": "bad"}}, True),
        ("Error", {"error": {"code": "InvalidJson", "message": "bad"}}, False),
        (
            "Health",
            {"status": "unavailable", "model_version": None, "model_loaded": False, "reason": "x"},
            True,
        ),
    ],
)
def test_schemas_encode_the_contract_limits(name, instance, valid):
    assert _schema(name).is_valid(instance) is valid


def test_the_blank_text_pattern_and_the_app_agree_on_every_character():
    """The document's ``pattern`` finds a character exactly where the app's strip leaves one, under
    Python's regex dialect (the validator here) and by construction ECMAScript's (``\\s`` + the rest)."""
    import re

    from serving.http import BLANK_CHARS, NOT_BLANK_PATTERN

    assert document()["components"]["schemas"]["PredictOneRequest"]["properties"]["text"]["pattern"] == (
        NOT_BLANK_PATTERN
    )
    python_blank = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert set(BLANK_CHARS) == python_blank | {"\ufeff"}
    pattern = re.compile(NOT_BLANK_PATTERN)
    for code in range(0x110000):
        if not 0xD800 <= code < 0xE000:
            char = chr(code)
            assert (pattern.search(char) is None) == (char in BLANK_CHARS), hex(code)
