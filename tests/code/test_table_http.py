"""The ledger's lean Table Storage calls (``serving.table_http``): against Azurite with the account key and
with a SAS, what they store read back through the SDK; a kept-alive connection the server closed; and, on a
loopback HTTP server, the bearer token's reuse and renewal and the bound on a server that never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from serving.table_http import TableCallFailed, TableHttp
from tests.azurite import Azurite, azurite, azurite_server  # noqa: F401 (fixtures)

FIELDS = ("label", "negative_probability", "model_version")


def service_for(connection_string: str):
    from azure.data.tables import TableServiceClient

    return TableServiceClient.from_connection_string(connection_string)


@pytest.fixture
def tables(azurite: Azurite):  # noqa: F811
    azurite.delete_tables()
    service = service_for(azurite.connection_string)
    service.create_table_if_not_exists("predictions")
    return service


def test_insert_then_point_read_round_trip_keys_and_types(tables):
    http = TableHttp(tables, 2, 3)
    odd_key = "O'Brien é %&+=,() 😀"  # '/', '\\', '#' and '?' are not allowed in keys
    row = {"PartitionKey": "20261201", "RowKey": odd_key, "label": "negative", "negative_probability": 1.0}
    http.insert("predictions", row | {"model_version": "v1", "flag": True})
    assert http.get("predictions", "20261201", odd_key, FIELDS) == {
        "label": "negative",
        "negative_probability": 1.0,
        "model_version": "v1",
    }
    stored = tables.get_table_client("predictions").get_entity("20261201", odd_key)
    assert isinstance(stored["negative_probability"], float)  # typed Edm.Double, not stored as an integer
    assert stored["flag"] is True
    assert http.get("predictions", "20261201", "absent", FIELDS) is None
    assert http.get("nosuchtable", "20261201", odd_key, FIELDS) is None


def test_insert_into_a_missing_table_is_a_404_and_a_duplicate_a_409(tables):
    http = TableHttp(tables, 2, 3)
    with pytest.raises(TableCallFailed) as missing:
        http.insert("missing", {"PartitionKey": "p", "RowKey": "r"})
    assert missing.value.status == 404
    http.insert("predictions", {"PartitionKey": "p", "RowKey": "r"})
    with pytest.raises(TableCallFailed) as duplicate:
        http.insert("predictions", {"PartitionKey": "p", "RowKey": "r"})
    assert duplicate.value.status == 409


def test_a_transaction_writes_every_row_or_is_refused(tables):
    http = TableHttp(tables, 2, 3)
    rows = [
        {"PartitionKey": "d", "RowKey": f"r{i:03d}", "text": f"tweet {i} ❤", "p": i / 100} for i in range(100)
    ]
    http.upsert_batch("predictions", rows)
    stored = {e["RowKey"]: e for e in tables.get_table_client("predictions").list_entities()}
    assert sorted(stored) == [r["RowKey"] for r in rows]
    assert stored["r042"]["text"] == "tweet 42 ❤" and stored["r042"]["p"] == pytest.approx(0.42)
    bad = [{"PartitionKey": "d", "RowKey": "new-1"}, {"PartitionKey": "d", "RowKey": "not#allowed"}]
    with pytest.raises(TableCallFailed):
        http.upsert_batch("predictions", bad)  # one row refused: the whole transaction is
    assert len(list(tables.get_table_client("predictions").list_entities())) == 100


def test_a_sas_credential_signs_by_query(azurite: Azurite, tables):  # noqa: F811
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.data.tables import AccountSasPermissions, ResourceTypes, generate_account_sas

    from tests.azurite import ACCOUNT, ACCOUNT_KEY

    sas = generate_account_sas(
        AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY),
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, add=True, update=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    service = service_for(f"TableEndpoint={azurite.table_endpoint};SharedAccessSignature={sas}")
    http = TableHttp(service, 2, 3)
    http.insert("predictions", {"PartitionKey": "p", "RowKey": "sas", "label": "positive",
                                "negative_probability": 0.25, "model_version": "v"})  # fmt: skip
    assert http.get("predictions", "p", "sas", FIELDS)["negative_probability"] == 0.25
    wrong = service_for(f"TableEndpoint={azurite.table_endpoint};SharedAccessSignature={sas[:-4]}AAAA")
    with pytest.raises(TableCallFailed) as refused:
        TableHttp(wrong, 2, 3).get("predictions", "p", "sas", FIELDS)
    assert refused.value.status == 403


def test_a_connection_the_server_closed_is_replaced(azurite: Azurite, tables):  # noqa: F811
    http = TableHttp(tables, 2, 3)
    http.insert("predictions", {"PartitionKey": "p", "RowKey": "before"})
    azurite.stop()
    with pytest.raises(TableCallFailed) as down:
        http.get("predictions", "p", "before", FIELDS)
    assert down.value.status == 0
    azurite.start()  # empty again
    assert http.get("predictions", "p", "before", FIELDS) is None
    # The same thread's connection is kept alive between calls, and replaced when the emulator restarts.
    first = http._local.connection
    assert http.get("predictions", "p", "before", FIELDS) is None
    assert http._local.connection is first
    azurite.stop()
    azurite.start()
    assert http.get("predictions", "p", "before", FIELDS) is None  # the stale connection was not an error
    assert http._local.connection is not first


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request 204 and keeps its Authorization header."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append(self.headers.get("Authorization"))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class _Credential:
    """A token credential whose tokens expire when the test says (the managed identity's stand-in)."""

    def __init__(self, lifetime_s: float):
        self.lifetime_s, self.issued = lifetime_s, 0

    def get_token(self, *scopes: str):
        assert scopes == ("https://storage.azure.com/.default",)
        self.issued += 1
        return SimpleNamespace(token=f"token-{self.issued}", expires_on=int(time.time() + self.lifetime_s))


def _token_service(port: int, credential) -> SimpleNamespace:
    return SimpleNamespace(url=f"http://127.0.0.1:{port}", account_name="acct", credential=credential)


def test_a_bearer_token_is_reused_until_close_to_expiry(recorder):
    lasting = _Credential(lifetime_s=3600)
    http = TableHttp(_token_service(recorder.server_port, lasting), 2, 3)
    for i in range(3):
        http.insert("feedback", {"PartitionKey": "p", "RowKey": str(i)})
    assert lasting.issued == 1 and recorder.seen == ["Bearer token-1"] * 3
    expiring = _Credential(lifetime_s=60)  # inside the renewal margin: a new token for every call
    http = TableHttp(_token_service(recorder.server_port, expiring), 2, 3)
    http.insert("feedback", {"PartitionKey": "p", "RowKey": "a"})
    http.insert("feedback", {"PartitionKey": "p", "RowKey": "b"})
    assert expiring.issued == 2 and recorder.seen[-2:] == ["Bearer token-1", "Bearer token-2"]


def test_a_credential_that_fails_is_a_call_failure(recorder):
    class Broken:
        def get_token(self, *scopes):
            raise RuntimeError("no identity endpoint")

    with pytest.raises(TableCallFailed, match="no identity endpoint"):
        TableHttp(_token_service(recorder.server_port, Broken()), 2, 3).insert("t", {"PartitionKey": "p"})


def test_a_server_that_never_answers_costs_one_read_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        service = SimpleNamespace(
            url=f"http://127.0.0.1:{silent.getsockname()[1]}/acct",
            account_name="acct",
            credential=_Credential(3600),
        )
        http = TableHttp(service, 1, 0.5)
        started = time.monotonic()
        with pytest.raises(TableCallFailed) as failed:
            http.get("predictions", "p", "r", FIELDS)
        elapsed = time.monotonic() - started
    assert failed.value.status == 0 and "timed out" in str(failed.value)
    assert 0.5 <= elapsed < 0.9  # one read timeout, not retried


def test_an_unknown_credential_is_refused_when_built():
    service = SimpleNamespace(url="http://127.0.0.1:1/acct", account_name="acct", credential=object())
    with pytest.raises(ValueError, match="unsupported table credential"):
        TableHttp(service, 1, 1)
