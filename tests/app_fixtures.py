"""The function app as the API tests see it: its registered functions (indexed once per test session, as
``get_functions()`` allows only one call per app), the local host serving them on an ephemeral loopback
port, and a validator for answers against the app's own OpenAPI document.

Test modules import the fixtures they use from here (``from tests.app_fixtures import ...``).
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import jsonschema
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED_MODEL = REPO_ROOT / "model" / "sentiment.onnx"
JSON_BODY = {"Content-Type": "application/json"}


def model_path() -> Path:
    """The committed model, unless MODEL_PATH points the whole test run at another file."""
    configured = os.environ.get("MODEL_PATH")
    return Path(configured) if configured else COMMITTED_MODEL


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@functools.cache
def _indexed_functions() -> dict[str, Any]:
    import function_app

    return {function.get_function_name(): function for function in function_app.app.get_functions()}


@pytest.fixture(scope="session")
def registered_functions() -> dict[str, Any]:
    """The app's functions by name. The app is imported and indexed once per process (each test module
    that imports this fixture gets its own session fixture, hence the cache underneath)."""
    if not model_path().is_file():
        pytest.fail(f"the model file {model_path()} is missing: the API tests need the committed model")
    return _indexed_functions()


def call_function(
    functions: dict[str, Any],
    name: str,
    method: str = "GET",
    body: bytes | str | dict | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Answer:
    """Invoke a registered function the way the worker does: a real ``func.HttpRequest`` in, the
    ``func.HttpResponse`` out (content type folded into the headers, as the host sends it)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    route = functions[name].get_trigger().route
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{route}",
        headers=headers if headers is not None else (JSON_BODY if body else {}),
        params=params or {},
        route_params={},
        body=body or b"",
    )
    response = functions[name].get_user_function()(request)
    answer_headers = {key.lower(): value for key, value in response.headers.items()}
    if response.mimetype:
        answer_headers["content-type"] = f"{response.mimetype}; charset={response.charset}"
    return Answer(response.status_code, answer_headers, response.get_body())


@pytest.fixture(scope="session")
def local_host(registered_functions) -> Iterator[str]:
    """The local host's HTTP server (uvicorn and its ASGI app) serving the registered functions on
    127.0.0.1:<ephemeral>, in a thread of the test process; yields the base URL."""
    from devtools.local_host import ThreadedHost

    with ThreadedHost(list(registered_functions.values())) as base_url:
        yield base_url


class HttpClient:
    """One keep-alive connection to the local host (reconnects when the server closed it)."""

    def __init__(self, base_url: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers = headers if headers is not None else (dict(JSON_BODY) if body else {})
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
                if response.will_close:
                    self.close()
                return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)


@pytest.fixture
def http_client(local_host) -> Iterator[HttpClient]:
    client = HttpClient(local_host)
    yield client
    client.connection.close()


@pytest.fixture(scope="session")
def openapi_document() -> dict[str, Any]:
    from serving.openapi import document

    return document()


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any] | None:
    """The JSON schema the document gives for this answer (None when it documents no JSON body)."""
    responses = document["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status))
    assert response is not None, f"{method} {path} answered {status}, which the document does not list"
    content = response.get("content", {}).get("application/json")
    return None if content is None else content["schema"]


def assert_matches_document(document: dict[str, Any], path: str, method: str, answer: Answer) -> None:
    """The answer's status is documented and, when JSON, its body validates against the schema."""
    schema = response_schema(document, path, method, answer.status)
    if schema is None:
        return
    assert answer.content_type.startswith("application/json"), answer.content_type
    # Refs like "#/components/schemas/Error" resolve against this root, which carries the components.
    root = {**schema, "components": document["components"]}
    jsonschema.Draft202012Validator(root).validate(answer.json())


def assert_json_error(answer: Answer, status: int, code: str | None = None) -> dict[str, Any]:
    """The CONTRACT error shape: ``{"error": {"code": snake_case, "message": non-empty}}``."""
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.content_type.startswith("application/json"), answer.content_type
    error = answer.json()["error"]
    assert set(error) == {"code", "message"}
    assert error["code"].replace("_", "").isalpha() and error["code"].islower()
    assert error["message"].strip()
    if code is not None:
        assert error["code"] == code, error
    return error


def run_app_in_subprocess(script: str, timeout: float = 120, **settings: str) -> dict[str, Any]:
    """Run ``script`` (which prints one JSON document) in a fresh interpreter with these settings (e.g.
    ``MODEL_PATH``) and no Application Insights setting of the caller's: the only honest way to test
    import-time behaviour, since the app loads its model and telemetry once per process."""
    env = {key: value for key, value in os.environ.items() if "APPLICATIONINSIGHTS" not in key}
    env.update(PYTHONPATH=str(REPO_ROOT), **settings)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class ErrorCase:
    """One way to be wrong from CONTRACT, with the answer it must get."""

    id: str
    route: str
    method: str
    body: bytes
    headers: dict[str, str]
    status: int
    code: str


def _case(case_id, route, body, status, code, method="POST", headers=None) -> ErrorCase:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ErrorCase(case_id, route, method, raw, JSON_BODY if headers is None else headers, status, code)


_FEEDBACK = {"text": "lost my bag", "predicted_label": "negative", "correct": False}
ERROR_CASES = [
    _case("predict-malformed-json", "predict", b'{"text": "hi"', 400, "invalid_json"),
    _case("predict-empty-body", "predict", b"", 400, "invalid_json"),
    _case("predict-not-utf8", "predict", b'{"text": "\xff\xfe"}', 400, "invalid_json"),
    _case("predict-nan", "predict", b'{"text": "hi", "x": NaN}', 400, "invalid_json"),
    _case("predict-deep-nesting", "predict", b"[" * 100_000, 400, "invalid_json"),
    _case("predict-array-body", "predict", ["hi"], 400, "invalid_body"),
    _case("predict-no-text", "predict", {"explain": True}, 400, "missing_field"),
    _case("predict-text-and-texts", "predict", {"text": "a", "texts": ["b"]}, 400, "invalid_body"),
    _case("predict-text-number", "predict", {"text": 42}, 400, "invalid_field"),
    _case("predict-text-null", "predict", {"text": None}, 400, "invalid_field"),
    _case("predict-empty-text", "predict", {"text": ""}, 400, "empty_text"),
    _case("predict-blank-text", "predict", {"text": " \t\n\u3000"}, 400, "empty_text"),
    _case("predict-text-too-long", "predict", {"text": "a" * 5001}, 400, "text_too_long"),
    _case("predict-lone-surrogate", "predict", b'{"text": "\\ud800"}', 400, "invalid_field"),
    _case("predict-texts-not-list", "predict", {"texts": "hi"}, 400, "invalid_field"),
    _case("predict-empty-batch", "predict", {"texts": []}, 400, "empty_batch"),
    _case("predict-batch-too-large", "predict", {"texts": ["ok"] * 1001}, 400, "batch_too_large"),
    _case("predict-batch-item-empty", "predict", {"texts": ["ok", " "]}, 400, "empty_text"),
    _case("predict-batch-item-number", "predict", {"texts": ["ok", 1]}, 400, "invalid_field"),
    _case("predict-batch-item-too-long", "predict", {"texts": ["b" * 5001]}, 400, "text_too_long"),
    _case("predict-explain-not-bool", "predict", {"text": "hi", "explain": "yes"}, 400, "invalid_field"),
    _case("predict-explain-number", "predict", {"text": "hi", "explain": 1}, 400, "invalid_field"),
    _case("predict-body-over-1mib", "predict", {"texts": ["x" * 4000] * 300}, 413, "payload_too_large"),
    _case(
        "predict-text-plain",
        "predict",
        {"text": "hi"},
        415,
        "unsupported_media_type",
        headers={"Content-Type": "text/plain"},
    ),
    _case(
        "predict-form",
        "predict",
        b"text=hi",
        415,
        "unsupported_media_type",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    _case(
        "predict-latin1-charset",
        "predict",
        {"text": "hi"},
        415,
        "unsupported_media_type",
        headers={"Content-Type": "application/json; charset=iso-8859-1"},
    ),
    _case("predict-get", "predict", b"", 405, "method_not_allowed", method="GET", headers={}),
    _case("predict-put", "predict", {"text": "hi"}, 405, "method_not_allowed", method="PUT"),
    _case("feedback-get", "feedback", b"", 405, "method_not_allowed", method="GET", headers={}),
    _case("feedback-delete", "feedback", b"", 405, "method_not_allowed", method="DELETE", headers={}),
    _case("health-post", "health", b"", 405, "method_not_allowed", headers={}),
    _case("ui-post", "ui", b"", 405, "method_not_allowed", headers={}),
    _case("openapi-patch", "openapi.json", b"", 405, "method_not_allowed", method="PATCH", headers={}),
    _case("feedback-malformed-json", "feedback", b"{", 400, "invalid_json"),
    _case("feedback-string-body", "feedback", "hello", 400, "invalid_body"),
    _case("feedback-text-null", "feedback", {**_FEEDBACK, "text": None}, 400, "invalid_field"),
    _case(
        "feedback-missing-text",
        "feedback",
        {k: v for k, v in _FEEDBACK.items() if k != "text"},
        400,
        "missing_field",
    ),
    _case(
        "feedback-missing-label",
        "feedback",
        {k: v for k, v in _FEEDBACK.items() if k != "predicted_label"},
        400,
        "missing_field",
    ),
    _case(
        "feedback-missing-correct",
        "feedback",
        {k: v for k, v in _FEEDBACK.items() if k != "correct"},
        400,
        "missing_field",
    ),
    _case(
        "feedback-unknown-label",
        "feedback",
        {**_FEEDBACK, "predicted_label": "neutral"},
        400,
        "invalid_field",
    ),
    _case("feedback-correct-string", "feedback", {**_FEEDBACK, "correct": "false"}, 400, "invalid_field"),
    _case(
        "feedback-probability-high",
        "feedback",
        {**_FEEDBACK, "negative_probability": 1.5},
        400,
        "invalid_field",
    ),
    _case(
        "feedback-probability-bool",
        "feedback",
        {**_FEEDBACK, "negative_probability": True},
        400,
        "invalid_field",
    ),
    _case(
        "feedback-prediction-id-object",
        "feedback",
        {**_FEEDBACK, "prediction_id": {"a": 1}},
        400,
        "invalid_field",
    ),
    _case(
        "feedback-prediction-id-spaces",
        "feedback",
        {**_FEEDBACK, "prediction_id": "a b"},
        400,
        "invalid_field",
    ),
    _case("feedback-empty-text", "feedback", {**_FEEDBACK, "text": "   "}, 400, "empty_text"),
    _case("feedback-text-too-long", "feedback", {**_FEEDBACK, "text": "c" * 5001}, 400, "text_too_long"),
    _case(
        "feedback-body-over-1mib",
        "feedback",
        {**_FEEDBACK, "pad": "p" * (1024 * 1024)},
        413,
        "payload_too_large",
    ),
    _case(
        "feedback-xml",
        "feedback",
        b"<a/>",
        415,
        "unsupported_media_type",
        headers={"Content-Type": "application/xml"},
    ),
]
