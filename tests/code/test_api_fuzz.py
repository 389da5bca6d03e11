"""Generated requests over real HTTP: no input produces a 5xx, and every refusal is the JSON error.

Two generators, both bounded: schemathesis derives valid and invalid requests from the served OpenAPI
document (and checks each answer against it); a hypothesis strategy throws raw bytes, odd content types,
wrong methods and near-miss JSON at the parser. Each test counts the requests it really sent.
"""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.app_fixtures import (
    HttpClient,
    assert_matches_document,
    local_host,  # noqa: F401 (fixture)
    openapi_document,  # noqa: F401 (fixture)
    registered_functions,  # noqa: F401 (fixture)
)

SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,  # every request the document allows is accepted (blank texts included)
]
FUZZ_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": True,
    "phases": [Phase.explicit, Phase.generate],
    "suppress_health_check": list(HealthCheck),
}


@pytest.fixture(scope="module")
def api_schema(local_host):  # noqa: F811
    schema = schemathesis.openapi.from_url(f"{local_host}/api/openapi.json")
    # Function keys are checked by Azure, not by the app: invalid keys would make "invalid" requests
    # that the app rightly accepts.
    schema.config.generation.update(with_security_parameters=False)
    return schema


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "method", "mode", "examples"),
    [
        ("/predict", "POST", GenerationMode.POSITIVE, 250),
        ("/predict", "POST", GenerationMode.NEGATIVE, 250),
        ("/feedback", "POST", GenerationMode.POSITIVE, 250),
        ("/feedback", "POST", GenerationMode.NEGATIVE, 250),
    ],
    ids=["predict-valid", "predict-invalid", "feedback-valid", "feedback-invalid"],
)
def test_schema_generated_requests(api_schema, local_host, path, method, mode, examples):  # noqa: F811
    operation = api_schema[path][method]
    session = requests.Session()
    statuses: list[int] = []

    @settings(max_examples=examples, **FUZZ_SETTINGS)
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case):
        response = case.call(base_url=f"{local_host}/api", session=session)
        statuses.append(response.status_code)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        case.validate_response(response, checks=SCHEMA_CHECKS)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["code"] and error["message"]

    send()
    session.close()
    assert len(statuses) >= examples, f"only {len(statuses)} requests were generated"
    if mode is GenerationMode.POSITIVE:
        assert any(status < 300 for status in statuses), "no generated valid request was accepted"
    else:  # negative_data_rejection above already failed any invalid request that was accepted
        assert sum(status >= 400 for status in statuses) >= len(statuses) * 0.9


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
JSON_VALUES = (
    SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=6), SCALARS, max_size=3)
)


FIELDS = ["text", "texts", "explain", "prediction_id", "predicted_label", "negative_probability", "correct"]


@st.composite
def near_miss_bodies(draw) -> bytes:
    """Objects with the real field names and arbitrary values, raw JSON values, and broken bytes."""
    kind = draw(st.sampled_from(["object", "value", "bytes", "truncated"]))
    if kind == "object":
        keys = draw(st.lists(st.sampled_from(FIELDS) | st.text(max_size=6), max_size=5, unique=True))
        document = {key: draw(JSON_VALUES) for key in keys}
        return json.dumps(document).encode()
    if kind == "value":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    valid = json.dumps({"text": draw(st.text(max_size=40)), "explain": draw(st.booleans())}).encode()
    return valid[: draw(st.integers(0, len(valid)))]


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    ";;",
    "application/merge-patch+json",
]


@pytest.mark.slow
def test_raw_generated_requests(local_host, openapi_document):  # noqa: F811
    client = HttpClient(local_host)
    routes = {"predict": "post", "feedback": "post", "health": "get", "ui": "get", "openapi.json": "get"}
    statuses: list[int] = []

    @settings(max_examples=1000, **FUZZ_SETTINGS)
    @given(
        route=st.sampled_from(sorted(routes)),
        method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        body=near_miss_bodies(),
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    def send(route, method, body, content_type):
        headers = {} if content_type is None else {"Content-Type": content_type}
        answer = client.request(method, f"/api/{route}", body, headers=headers)
        statuses.append(answer.status)
        assert answer.status < 500, (answer.status, answer.body[:300])
        documented_method = routes[route]
        if answer.status == 405:
            assert method.lower() != documented_method
        if method.lower() == documented_method:
            assert_matches_document(openapi_document, f"/{route}", documented_method, answer)
        if answer.status >= 400:
            error = answer.json()["error"]
            assert error["code"] and error["message"]

    send()
    client.connection.close()
    assert len(statuses) >= 1000, f"only {len(statuses)} requests were generated"
    assert {200, 400, 405, 415} <= set(statuses)
