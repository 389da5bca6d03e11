"""The adversarial set through the registered predict function: every worst legal body is answered
(200, one finite probability per text) and every hostile body gets its JSON 4xx, never a 5xx. The time
and memory each case costs are measured by benchmarks/bench_adversarial.py, not here."""

from __future__ import annotations

import json
import math
import socket
import time

import pytest

from devtools.adversarial import MAX_BODY_BYTES, hostile_bodies, worst_legal_bodies
from tests.app_fixtures import (
    HttpClient,
    call_function,
    local_host,  # noqa: F401 (fixture)
    registered_functions,  # noqa: F401 (fixture)
)

WORST = worst_legal_bodies()
HOSTILE = hostile_bodies()


@pytest.fixture(scope="module")
def fns(registered_functions):  # noqa: F811
    return registered_functions


def test_the_worst_legal_bodies_are_legal():
    for case in WORST:
        assert len(case.body) <= MAX_BODY_BYTES, case.name
        document = json.loads(case.body)
        texts = document.get("texts") or [document["text"]]
        assert 1 <= len(texts) <= 1_000 and all(0 < len(text) <= 5_000 for text in texts), case.name


@pytest.mark.parametrize("case", WORST, ids=lambda case: case.name)
def test_every_worst_legal_body_is_scored(fns, case):
    answer = call_function(fns, "predict", "POST", case.body, case.headers)
    assert answer.status == 200, answer.body[:300]
    document = json.loads(case.body)
    predictions = answer.json()["predictions"] if "texts" in document else [answer.json()]
    assert len(predictions) == len(document.get("texts") or [1])
    for prediction in predictions:
        assert (
            math.isfinite(prediction["negative_probability"]) and 0 <= prediction["negative_probability"] <= 1
        )
        if document.get("explain"):
            assert len(prediction["explanation"]) <= 5


@pytest.mark.parametrize("case", HOSTILE, ids=lambda case: case.name)
def test_every_hostile_body_gets_its_json_answer(fns, case):
    answer = call_function(fns, "predict", "POST", case.body, case.headers)
    assert answer.status in case.statuses, (answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/json")
    if answer.status >= 400:
        error = answer.json()["error"]
        assert error["code"] and error["message"]


def test_slow_and_lying_clients_do_not_stop_the_local_host(local_host):  # noqa: F811
    """Connections that send half a request head, or announce a body they never send, each hold only a
    socket: the host keeps answering others while they hang (and the test closes them after)."""
    host, port = local_host.removeprefix("http://").split(":")
    stalled = []
    try:
        for index in range(40):
            connection = socket.create_connection((host, int(port)), timeout=5)
            if index % 2:
                connection.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Le")
            else:
                head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                connection.sendall(head + b'Content-Length: 1000\r\n\r\n{"text": "')
            stalled.append(connection)
        client = HttpClient(local_host)
        for _ in range(20):
            started = time.monotonic()
            answer = client.request("GET", "/api/health")
            assert answer.status == 200 and time.monotonic() - started < 2
        assert client.request("POST", "/api/predict", {"text": "still here"}).status == 200
    finally:
        for connection in stalled:
            connection.close()
