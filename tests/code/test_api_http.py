"""Every route again over real HTTP, through the local host serving the app's registered functions."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import pytest

from tests.app_fixtures import (
    ERROR_CASES,
    REPO_ROOT,
    ErrorCase,
    HttpClient,
    assert_json_error,
    assert_matches_document,
    http_client,  # noqa: F401 (fixture)
    local_host,  # noqa: F401 (fixture)
    model_path,
    openapi_document,  # noqa: F401 (fixture)
    registered_functions,  # noqa: F401 (fixture)
)


def test_predict_over_http(http_client, openapi_document):  # noqa: F811
    answer = http_client.request(
        "POST", "/api/predict", {"text": "my flight was cancelled :(", "explain": True}
    )
    assert answer.status == 200
    assert answer.content_type == "application/json; charset=utf-8"
    assert_matches_document(openapi_document, "/predict", "post", answer)
    assert answer.json()["label"] in ("negative", "positive")
    assert isinstance(answer.json()["explanation"], list)


def test_batch_over_http(http_client, openapi_document):  # noqa: F811
    texts = [f"tweet number {i} about a late flight" for i in range(50)]
    answer = http_client.request("POST", "/api/predict", {"texts": texts})
    assert answer.status == 200
    assert_matches_document(openapi_document, "/predict", "post", answer)
    assert len(answer.json()["predictions"]) == 50


def test_feedback_over_http(http_client, openapi_document):  # noqa: F811
    body = {
        "text": "lost my bag",
        "predicted_label": "negative",
        "negative_probability": 0.9,
        "correct": True,
    }
    answer = http_client.request("POST", "/api/feedback", body)
    assert answer.status == 202
    assert_matches_document(openapi_document, "/feedback", "post", answer)
    assert answer.json()["recorded"] is True


def test_health_ui_and_openapi_over_http(http_client, openapi_document):  # noqa: F811
    health = http_client.request("GET", "/api/health")
    assert health.status == 200 and health.json()["status"] == "ok"
    assert_matches_document(openapi_document, "/health", "get", health)
    page = http_client.request("GET", "/api/ui")
    assert page.status == 200 and page.content_type.startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    spec = http_client.request("GET", "/api/openapi.json")
    assert spec.status == 200 and spec.json()["openapi"] == "3.1.0"


def test_routes_match_case_insensitively_with_query_and_trailing_slash(http_client):  # noqa: F811
    assert http_client.request("GET", "/api/Health/?probe=1").status == 200
    assert http_client.request("GET", "/API/health").status == 200


@pytest.mark.parametrize(
    "path", ["/api/nope", "/health", "/", "/api/", "/api/predict/extra", "/apihealth"], ids=str
)
def test_unknown_routes_get_a_json_404(http_client, path):  # noqa: F811
    assert_json_error(http_client.request("GET", path), 404, "not_found")


def test_a_method_no_route_registers_gets_a_json_405_from_the_host(http_client):  # noqa: F811
    answer = http_client.request("TRACE", "/api/predict")
    assert_json_error(answer, 405, "method_not_allowed")
    assert "POST" in answer.headers["allow"]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[case.id for case in ERROR_CASES])
def test_contract_error_cases_over_http(http_client, openapi_document, case: ErrorCase):  # noqa: F811
    answer = http_client.request(case.method, f"/api/{case.route}", case.body, headers=case.headers)
    assert_json_error(answer, case.status, case.code)
    method = "post" if case.route in ("predict", "feedback") else "get"
    assert_matches_document(openapi_document, f"/{case.route}", method, answer)


def test_keep_alive_connection_serves_many_requests(local_host):  # noqa: F811
    client = HttpClient(local_host)
    first = client.connection
    for _ in range(20):
        assert client.request("POST", "/api/predict", {"text": "again"}).status == 200
    assert client.connection is first  # no reconnect was needed
    client.connection.close()


def test_chunked_request_body_is_read(local_host):  # noqa: F811
    host, port = local_host.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = iter([b'{"text": ', b'"chunked ', b'body"}'])
    connection.request(
        "POST", "/api/predict", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["label"] in ("negative", "positive")
    connection.close()


def _raw_exchange(base_url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes or stops sending: (head, body)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        connection.settimeout(2)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_a_body_over_the_host_limit_is_refused_with_a_json_413_before_it_is_read(local_host):  # noqa: F811
    head, body = _raw_exchange(
        local_host,
        b"POST /api/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 104857601\r\n\r\n{",
    )
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_a_chunked_body_over_the_host_limit_is_refused_with_a_json_413(template_host, monkeypatch):
    from devtools import local_host as host_module

    monkeypatch.setattr(host_module, "MAX_REQUEST_BYTES", 1000)
    chunk = b"258\r\n" + b"x" * 600 + b"\r\n"  # 0x258 = 600 bytes
    head, body = _raw_exchange(
        f"http://{template_host.host}:{template_host.port}",
        b"GET /api/items/1 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 3
        + b"0\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_head_gets_the_headers_without_the_body(http_client):  # noqa: F811
    get = http_client.request("GET", "/api/openapi.json")
    head = http_client.request("HEAD", "/api/openapi.json")
    assert get.status == 200
    assert head.status == 405  # the function answers GET only, and says so
    assert head.body == b""
    assert int(head.headers["content-length"]) > 0


def test_query_parameters_reach_the_function_one_value_per_name(template_host):
    answer = template_host.request("GET", "/api/items/1?a=1&b=&a=2")
    assert answer.status == 200
    assert answer.json()["params"] == {"a": "2", "b": ""}  # blank values kept; a repeated name: the last


def test_a_function_that_raises_gets_a_json_500_from_the_host(template_host):
    assert_json_error(template_host.request("GET", "/api/broken"), 500, "internal_error")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_module_command_serves_the_app(tmp_path):
    """``python -m devtools.local_host --port N`` is what the README and scripts/serve.sh run."""
    port = _free_port()
    env_model = str(model_path())
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.local_host", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "MODEL_PATH": env_model, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        client = HttpClient(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = client.request("GET", "/api/health")
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "local host did not start within 60 s"
                time.sleep(0.1)
        assert answer.status == 200 and answer.json()["model_loaded"] is True
        assert client.request("POST", "/api/predict", {"text": "hello"}).status == 200
        client.connection.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert b"/api/predict" in stderr
    assert b"not checked locally" in stderr


@pytest.fixture(scope="module")
def template_host():
    """A separate little app with route templates, served by the same local host code."""
    import azure.functions as func

    from devtools.local_host import ThreadedHost

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    def echo(req: func.HttpRequest) -> func.HttpResponse:
        payload = {"route": dict(req.route_params), "params": dict(req.params), "method": req.method}
        return func.HttpResponse(json.dumps(payload), mimetype="application/json", status_code=200)

    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("a bug")

    for name, template in [("one", "items/{id}"), ("optional", "pages/{name?}"), ("rest", "files/{*path}")]:
        app.function_name(name)(app.route(route=template, methods=["GET"])(echo))
    app.function_name("broken")(app.route(route="broken", methods=["GET"])(broken))
    with ThreadedHost(app.get_functions()) as base_url:
        client = HttpClient(base_url)
        yield client
        client.connection.close()


@pytest.mark.parametrize(
    ("path", "route_params"),
    [
        ("/api/items/42", {"id": "42"}),
        ("/api/items/a%20b", {"id": "a b"}),
        ("/api/pages", {}),
        ("/api/pages/home", {"name": "home"}),
        ("/api/files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("/api/files", {}),
    ],
)
def test_route_templates_fill_route_params(template_host, path, route_params):
    answer = template_host.request("GET", f"{path}?q=1")
    assert answer.status == 200, answer.body
    assert answer.json() == {"route": route_params, "params": {"q": "1"}, "method": "GET"}


def test_the_host_answers_405_for_methods_a_route_does_not_register(template_host):
    answer = template_host.request("POST", "/api/items/1", b"{}")
    assert_json_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "GET"
    assert_json_error(template_host.request("GET", "/api/items"), 404, "not_found")
    assert_json_error(template_host.request("GET", "/api/items/1/2"), 404, "not_found")
