"""The optional shadow model (MODEL_SHADOW_PATH): loaded once at start-up beside the live one, scored on the
same texts, never answered with; the number of texts on which the two labels differ goes on SentimentScored.
Each case runs the app in a fresh interpreter, since both models load at import."""

from __future__ import annotations

import json

import pytest

from tests.app_fixtures import model_path, run_app_in_subprocess

TEXTS = [
    "lost my bag again, worst airline",
    "the crew was lovely, thank you",
    "flight delayed three hours",
    "ok flight",
    "great legroom and a smooth landing",
    "they cancelled and never refunded",
]

SCRIPT = """
import json, logging
import azure.functions as func
import function_app

events = []
class Keep(logging.Handler):
    def emit(self, record):
        if getattr(record, "microsoft.custom_event.name", None) == "SentimentScored":
            events.append({k: getattr(record, k, None) for k in ("texts", "shadow_disagreements")})
logging.getLogger("air_paradis.events").addHandler(Keep())
functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
def call(name, method="POST", body=None):
    req = func.HttpRequest(method=method, url="http://h/api/" + name,
                           body=json.dumps(body).encode() if body else b"",
                           headers={"Content-Type": "application/json"} if body else {})
    answer = functions[name].get_user_function()(req)
    return answer.status_code, json.loads(answer.get_body())
texts = TEXTS
batch = call("predict", body={"texts": texts})
explained = call("predict", body={"texts": texts, "explain": True})
health = call("health", method="GET")
live = function_app.MODEL_STATE.model
probabilities = [p.negative_probability for p in live.predict(texts)]
print(json.dumps({
    "batch": batch, "explained_status": explained[0], "health": health, "events": events,
    "shadow": None if function_app.SHADOW is None else function_app.SHADOW.version,
    "shadow_threshold": None if function_app.SHADOW is None else function_app.SHADOW.threshold,
    "live_threshold": live.threshold, "probabilities": probabilities,
}))
""".replace("texts = TEXTS", f"texts = {TEXTS!r}")


def _model_with(tmp_path, **changes: str):
    """The committed model with some metadata entries replaced: another version, another threshold."""
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_path()))
    props = {p.key: p.value for p in proto.metadata_props} | changes
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    target = tmp_path / "shadow.onnx"
    onnx.save(proto, str(target))
    return target


def test_the_shadow_counts_label_disagreements_and_never_answers(tmp_path):
    shadow = _model_with(tmp_path, model_version=json.dumps("shadow-1"), threshold="0.05")
    found = run_app_in_subprocess(SCRIPT, MODEL_SHADOW_PATH=str(shadow))
    assert found["shadow"] == "shadow-1" and found["shadow_threshold"] == 0.05
    status, body = found["batch"]
    assert status == 200 and found["explained_status"] == 200
    live, low = found["live_threshold"], found["shadow_threshold"]
    expected = sum((p >= live) != (p >= low) for p in found["probabilities"])
    assert expected > 0, "the texts must include some the two thresholds label differently"
    assert [p["label"] for p in body["predictions"]] == [
        "negative" if p >= live else "positive" for p in found["probabilities"]
    ], "the answer is the live model's"
    assert {p["model_version"] for p in body["predictions"]} == {found["health"][1]["model_version"]}
    assert "shadow-1" not in json.dumps(body)
    assert found["events"] == [
        {"texts": str(len(TEXTS)), "shadow_disagreements": str(expected)},
        {"texts": str(len(TEXTS)), "shadow_disagreements": str(expected)},
    ]


def test_the_same_model_as_shadow_disagrees_nowhere():
    found = run_app_in_subprocess(SCRIPT, MODEL_SHADOW_PATH=str(model_path()))
    assert found["shadow"] is not None
    assert [e["shadow_disagreements"] for e in found["events"]] == ["0", "0"]


@pytest.mark.parametrize("broken", ["missing.onnx", "not-a-model"])
def test_a_shadow_that_fails_to_load_is_ignored(tmp_path, broken):
    path = tmp_path / broken
    if broken == "not-a-model":
        path.write_bytes(b"this is not an ONNX file")
    found = run_app_in_subprocess(SCRIPT, MODEL_SHADOW_PATH=str(path))
    assert found["shadow"] is None
    assert found["health"][0] == 200 and found["batch"][0] == 200
    assert [e["shadow_disagreements"] for e in found["events"]] == [None, None]


def test_without_the_setting_there_is_no_shadow():
    found = run_app_in_subprocess(SCRIPT, MODEL_SHADOW_PATH="")
    assert found["shadow"] is None
    assert [e["shadow_disagreements"] for e in found["events"]] == [None, None]
