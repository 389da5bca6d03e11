"""Every route through the registered function objects, the way the Functions worker calls them."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re

import pytest

from serving.normalizer import normalize
from tests.app_fixtures import (
    ERROR_CASES,
    ErrorCase,
    assert_json_error,
    assert_matches_document,
    call_function,
    model_path,
    openapi_document,  # noqa: F401 (fixture)
    registered_functions,  # noqa: F401 (fixture)
    run_app_in_subprocess,
)

EVENTS_LOGGER = "air_paradis.events"
HEX_ID = re.compile(r"[0-9a-f]{32}")
SIGNED_ID = re.compile(r"[0-9a-f]{56}")


@pytest.fixture(scope="module")
def fns(registered_functions):  # noqa: F811
    return registered_functions


@pytest.fixture(scope="module")
def model():
    import function_app

    assert function_app.MODEL_STATE.model is not None, function_app.MODEL_STATE.reason
    return function_app.MODEL_STATE.model


def _function_for_route(fns, route: str) -> str:
    return next(name for name, f in fns.items() if f.get_trigger().route == route)


def test_the_contract_routes_are_registered_with_their_auth_levels(fns):
    found = {
        name: (f.get_trigger().route, str(f.get_trigger().auth_level.value).upper())
        for name, f in fns.items()
    }
    assert found == {
        "predict": ("predict", "FUNCTION"),
        "feedback": ("feedback", "FUNCTION"),
        "health": ("health", "ANONYMOUS"),
        "ui": ("ui", "ANONYMOUS"),
        "openapi": ("openapi.json", "ANONYMOUS"),
    }


def test_predict_one_text(fns, model, openapi_document):  # noqa: F811
    answer = call_function(fns, "predict", "POST", {"text": "Lost my bag AGAIN, worst airline ever :("})
    assert answer.status == 200
    assert_matches_document(openapi_document, "/predict", "post", answer)
    result = answer.json()
    assert SIGNED_ID.fullmatch(result["prediction_id"])
    assert result["model_version"] == model.version
    expected = "negative" if result["negative_probability"] >= model.threshold else "positive"
    assert result["label"] == expected
    assert "explanation" not in result


def test_predict_labels_follow_the_threshold_on_clear_cases(fns):
    negative = call_function(
        fns, "predict", "POST", {"text": "worst flight ever, delayed and rude staff, I hate it"}
    )
    positive = call_function(
        fns, "predict", "POST", {"text": "great flight, lovely crew, thank you so much!"}
    )
    assert negative.json()["label"] == "negative"
    assert positive.json()["label"] == "positive"
    assert negative.json()["negative_probability"] > positive.json()["negative_probability"]


def test_predict_explains_with_the_strongest_terms_first(fns, openapi_document):  # noqa: F811
    text = "Thanks for the great service, but my flight was delayed and my bag was lost"
    answer = call_function(fns, "predict", "POST", {"text": text, "explain": True})
    assert answer.status == 200
    assert_matches_document(openapi_document, "/predict", "post", answer)
    explanation = answer.json()["explanation"]
    assert 1 <= len(explanation) <= 5
    magnitudes = [abs(term["weight"]) for term in explanation]
    assert magnitudes == sorted(magnitudes, reverse=True)
    normalized = f" {normalize(text)} "
    for term in explanation:
        assert f" {term['term']} " in normalized or all(word in normalized for word in term["term"].split())


def test_predict_batch_answers_in_input_order_like_single_calls(fns, model, openapi_document):  # noqa: F811
    texts = ["I love this crew", "my bag is lost", "日本語だけ", "😂😂😂", "ok", "a" * 5000]
    answer = call_function(fns, "predict", "POST", {"texts": texts, "explain": True})
    assert answer.status == 200
    assert_matches_document(openapi_document, "/predict", "post", answer)
    batch = answer.json()
    assert batch["model_version"] == model.version
    assert len(batch["predictions"]) == len(texts)
    assert len({p["prediction_id"] for p in batch["predictions"]}) == len(texts)
    for text, prediction in zip(texts, batch["predictions"], strict=True):
        single = call_function(fns, "predict", "POST", {"text": text}).json()
        assert prediction["label"] == single["label"]
        assert prediction["negative_probability"] == pytest.approx(single["negative_probability"], abs=1e-6)
        assert "explanation" in prediction


def test_predict_accepts_the_limits_exactly(fns):
    assert call_function(fns, "predict", "POST", {"texts": ["fine"] * 1000}).status == 200
    assert call_function(fns, "predict", "POST", {"text": "x" * 5000}).status == 200
    assert call_function(fns, "predict", "POST", {"texts": ["y"]}).status == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "application/json; charset=utf-8"}, {"content-type": "application/problem+json"}],
    ids=["no-content-type", "json-utf8", "json-suffix"],
)
def test_predict_takes_json_with_or_without_a_content_type(fns, headers):
    answer = call_function(fns, "predict", "POST", b'{"text": "nice"}', headers=headers)
    assert answer.status == 200, answer.body


def test_predict_ignores_unknown_fields(fns):
    assert call_function(fns, "predict", "POST", {"text": "nice", "lang": "en"}).status == 200


def test_feedback_is_accepted(fns, openapi_document):  # noqa: F811
    body = {
        "prediction_id": "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "text": "lost my bag",
        "predicted_label": "positive",
        "negative_probability": 0.12,
        "correct": False,
    }
    answer = call_function(fns, "feedback", "POST", body)
    assert answer.status == 202
    assert_matches_document(openapi_document, "/feedback", "post", answer)
    assert HEX_ID.fullmatch(answer.json()["feedback_id"])
    assert answer.json()["recorded"] is True
    assert answer.json()["matched_prediction"] is False  # an id this service never issued
    minimal = {"text": "fine", "predicted_label": "negative", "correct": True, "prediction_id": None}
    assert call_function(fns, "feedback", "POST", minimal).status == 202


def test_health_names_the_loaded_model(fns, model, openapi_document):  # noqa: F811
    answer = call_function(fns, "health")
    assert answer.status == 200
    assert_matches_document(openapi_document, "/health", "get", answer)
    assert answer.json() == {
        "status": "ok",
        "model_version": model.version,
        "model_loaded": True,
        "threshold": model.threshold,
        "encoder": "on" if model.cascade is not None else "off",
        "labels": list(model.labels),
    }


def test_ui_is_served_under_a_strict_policy_pinned_to_its_inline_code(fns):
    answer = call_function(fns, "ui")
    assert answer.status == 200
    assert answer.content_type.startswith("text/html")
    page = answer.body.decode()
    assert "<html" in page.lower()
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for script in re.findall(r"<script[^>]*>(.*?)</script>", page, re.DOTALL | re.IGNORECASE):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_openapi_route_serves_the_document(fns, openapi_document):  # noqa: F811
    answer = call_function(fns, "openapi")
    assert answer.status == 200
    assert answer.content_type.startswith("application/json")
    assert answer.json() == json.loads(json.dumps(openapi_document))


@pytest.mark.parametrize("case", ERROR_CASES, ids=[case.id for case in ERROR_CASES])
def test_contract_error_cases(fns, openapi_document, case: ErrorCase):  # noqa: F811
    name = _function_for_route(fns, case.route)
    answer = call_function(fns, name, case.method, case.body, headers=case.headers)
    assert_json_error(answer, case.status, case.code)
    assert_matches_document(openapi_document, f"/{case.route}", _documented_method(case.route), answer)
    if case.status == 405:
        assert answer.headers["allow"] in ("GET", "POST")


def _documented_method(route: str) -> str:
    return "post" if route in ("predict", "feedback") else "get"


def _events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "microsoft.custom_event.name", None) == name]


def test_one_scored_event_per_successful_predict(fns, caplog):
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        call_function(fns, "predict", "POST", {"texts": ["I hate delays", "I love this crew", "lost bag"]})
        call_function(fns, "predict", "POST", {"texts": []})
        call_function(fns, "predict", "POST", b"{oops")
    events = _events(caplog, "SentimentScored")
    assert len(events) == 1
    assert events[0].texts == "3"
    assert 0 <= int(events[0].negatives) <= 3
    assert 0.0 <= float(events[0].mean_negative_probability) <= 1.0


def test_feedback_events_carry_the_prediction(fns, caplog):
    body = {"prediction_id": "abc123", "text": "lost my bag", "predicted_label": "positive", "correct": False}
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        call_function(fns, "feedback", "POST", body)
        call_function(fns, "feedback", "POST", {**body, "correct": True})
        call_function(fns, "feedback", "POST", {**body, "correct": "no"})
    wrong, confirmed = _events(caplog, "WrongPrediction"), _events(caplog, "PredictionConfirmed")
    assert len(wrong) == 1 and len(confirmed) == 1
    assert wrong[0].prediction_id == "abc123" and wrong[0].text == "lost my bag"
    assert wrong[0].predicted_label == "positive"
    assert wrong[0].matched_prediction == "false" and confirmed[0].matched_prediction == "false"
    assert not hasattr(confirmed[0], "text")


def test_only_ids_the_service_issued_match(fns, caplog):
    """A signed id from predict matches; the same id altered in one digit, or an id of the right shape
    signed with another key, does not (and so never counts toward the wrong-prediction alert)."""
    from serving.prediction_ids import PredictionIds

    issued = call_function(fns, "predict", "POST", {"text": "lost my bag"}).json()["prediction_id"]
    tampered = issued[:-1] + ("0" if issued[-1] != "0" else "1")
    foreign = PredictionIds(b"another service's key, 32 bytes").issue()
    body = {"text": "lost my bag", "predicted_label": "negative", "correct": False}
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        answers = [
            call_function(fns, "feedback", "POST", {**body, "prediction_id": pid}).json()
            for pid in (issued, tampered, foreign, None)
        ]
    assert [a["matched_prediction"] for a in answers] == [True, False, False, False]
    assert [e.matched_prediction for e in _events(caplog, "WrongPrediction")] == [
        "true",
        "false",
        "false",
        "false",
    ]


UNAVAILABLE_SCRIPT = """
import json
import azure.functions as func
import function_app

functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
calls = {
    "health": ("GET", b""),
    "predict": ("POST", b'{"text": "hello"}'),
    "feedback": ("POST", b'{"text": "hello", "predicted_label": "negative", "correct": true}'),
    "ui": ("GET", b""),
    "openapi": ("GET", b""),
}
out = {}
for name, (method, body) in calls.items():
    request = func.HttpRequest(method=method, url="http://localhost/api/" + name,
                               headers={"Content-Type": "application/json"}, body=body)
    response = functions[name].get_user_function()(request)
    out[name] = {"status": response.status_code, "body": response.get_body().decode()}
print(json.dumps(out))
"""


def _truncated_model(tmp_path):
    data = model_path().read_bytes()
    target = tmp_path / "truncated.onnx"
    target.write_bytes(data[: len(data) // 2])
    return target


def _garbage_model(tmp_path):
    target = tmp_path / "garbage.onnx"
    target.write_bytes(b"\x00junk" * 99)
    return target


def _wrong_input_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["negative_probability"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("negative_probability", TensorProto.FLOAT, ["N"])],
    )
    target = tmp_path / "wrong_input.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "reason_part"),
    [
        ("missing", "model file not found"),
        ("garbage", "model file unreadable"),
        ("truncated", "model file unreadable"),
        ("wrong-input", "breaks the artifact contract"),
    ],
)
def test_without_a_model_the_app_imports_and_says_why(tmp_path, variant, reason_part):
    paths = {
        "missing": lambda: tmp_path / "absent.onnx",
        "garbage": lambda: _garbage_model(tmp_path),
        "truncated": lambda: _truncated_model(tmp_path),
        "wrong-input": lambda: _wrong_input_model(tmp_path),
    }
    out = run_app_in_subprocess(UNAVAILABLE_SCRIPT, MODEL_PATH=str(paths[variant]()))
    health = json.loads(out["health"]["body"])
    assert out["health"]["status"] == 503
    assert health["status"] == "unavailable" and health["model_loaded"] is False
    assert health["model_version"] is None
    assert reason_part in health["reason"]
    # Anonymous callers get the short reason: no path, no library message (those go to the log).
    assert str(tmp_path) not in out["health"]["body"] and "ONNX" not in health["reason"]
    assert out["predict"]["status"] == 503
    error = json.loads(out["predict"]["body"])["error"]
    assert error["code"] == "model_unavailable" and reason_part in error["message"]
    assert str(tmp_path) not in error["message"]
    assert out["feedback"]["status"] == 202
    assert out["ui"]["status"] == 200
    assert out["openapi"]["status"] == 200


def test_an_unexpected_exception_becomes_a_logged_json_503(caplog):
    import azure.functions as func

    from function_app import answers_json_errors

    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("a bug")

    request = func.HttpRequest(method="POST", url="http://localhost/api/predict", body=b"{}")
    with caplog.at_level(logging.ERROR):
        response = answers_json_errors(broken)(request)
    assert response.status_code == 503
    assert json.loads(response.get_body())["error"]["code"] == "service_unavailable"
    assert b"a bug" not in response.get_body() and b"Traceback" not in response.get_body()
    assert any(record.exc_info and "a bug" in str(record.exc_info[1]) for record in caplog.records)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(fns):
    """Content-Length is checked first: a client announcing 50 MiB gets the 413 whatever it sends."""

    answer = call_function(
        fns, "predict", "POST", b"{}", {"content-type": "application/json", "content-length": str(50 << 20)}
    )
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert str(50 << 20) in answer.json()["error"]["message"]


def test_a_request_past_its_time_budget_gets_a_json_503_that_says_to_retry(fns, monkeypatch):
    import function_app

    monkeypatch.setattr(function_app, "REQUEST_BUDGET_S", -1.0)  # already past the deadline
    answer = call_function(fns, "predict", "POST", {"texts": ["late flight"] * 200})
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "over_budget"
    assert answer.headers["retry-after"] == "1"
    monkeypatch.undo()
    assert call_function(fns, "predict", "POST", {"texts": ["late flight"] * 200}).status == 200
