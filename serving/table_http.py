"""The ledger's per-request Table Storage calls (point read, insert, entity-group transaction) over
keep-alive HTTP/1.1, one connection per thread, signed with the credential of the SDK's client.

Why not the SDK's own methods: through its pipeline (requests, policies, model serialization) a point
read or an insert costs about 1 ms of CPU in the serving process, six times the call itself, and a
feedback makes two of them. The SDK still builds the client (connection string or managed identity),
creates the tables and serves the training commands; this module only sends the three calls, on the
same endpoint, with the same credential and the same timeouts. No proxy is used (the ledger's account
is reached directly, as from a function app).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from azure.data.tables import TableServiceClient

API_VERSION = "2019-02-02"  # the first Table service version that accepts Microsoft Entra tokens
TOKEN_SCOPE = "https://storage.azure.com/.default"
TOKEN_REFRESH_S = 300  # a token is renewed this long before it expires
MAX_ANSWER_BYTES = 1024 * 1024  # the service's answers to these calls are a few hundred bytes


class TableCallFailed(Exception):
    """The service answered with an error status (``status``), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status or 'no answer'}: {message}")
        self.status = status


class TableHttp:
    """Signed calls to one account's Table service."""

    def __init__(self, service: TableServiceClient, connect_timeout_s: float, read_timeout_s: float) -> None:
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

        self.url = service.url.rstrip("/")
        url = urlsplit(self.url)
        self.https = url.scheme == "https"
        self.host, self.port = url.hostname or "", url.port or (443 if self.https else 80)
        self.base_path = url.path.rstrip("/")  # "/devstoreaccount1" on the emulator, "" on Azure
        self.account = service.account_name
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        credential = service.credential
        self._key: bytes | None = None
        self._sas = ""
        self._token_credential: Any = None
        if isinstance(credential, AzureNamedKeyCredential):
            self._key = base64.b64decode(credential.named_key.key)
        elif isinstance(credential, AzureSasCredential):
            self._sas = credential.signature.lstrip("?")
        elif hasattr(credential, "get_token"):
            self._token_credential = credential
        else:
            raise ValueError(f"unsupported table credential: {type(credential).__name__}")
        self._token: tuple[str, float] = ("", 0.0)
        self._token_lock = threading.Lock()
        self._local = threading.local()

    # ---------------------------------------------------------------------------------- calls
    def get(self, table: str, partition: str, row: str, select: Sequence[str]) -> dict[str, Any] | None:
        """The entity's selected properties, or None when there is no such entity (or table)."""
        path = f"{self.base_path}/{table}(PartitionKey='{_key(partition)}',RowKey='{_key(row)}')"
        status, answer = self._call("GET", path, f"$select={','.join(select)}", b"", {})
        if status == 404:
            return None
        if status != 200:
            raise TableCallFailed(status, answer[:300].decode("utf-8", "replace"))
        entity: dict[str, Any] = json.loads(answer)
        return entity

    def insert(self, table: str, entity: dict[str, Any]) -> None:
        """Insert one entity; TableCallFailed(404) when the table does not exist."""
        body = json.dumps(_typed(entity), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Prefer": "return-no-content"}
        status, answer = self._call("POST", f"{self.base_path}/{table}", "", body, headers)
        if status == 409 and self._local.resent:
            return  # the first attempt was stored before its connection broke (row keys are never reused)
        if status != 204:
            raise TableCallFailed(status, answer[:300].decode("utf-8", "replace"))

    def upsert_batch(self, table: str, entities: Sequence[dict[str, Any]]) -> None:
        """Insert-or-replace ``entities`` (one partition, at most 100) in one entity-group transaction."""
        self.upsert_json(
            table,
            [
                (e["PartitionKey"], e["RowKey"], json.dumps(_typed(e), separators=(",", ":")))
                for e in entities
            ],
        )

    def upsert_json(self, table: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """``upsert_batch`` for rows already serialized: (PartitionKey, RowKey, the entity as JSON). The
        service's ``$batch`` multipart message is written here; only the answer's status lines are read."""
        batch, changeset = f"batch_{os.urandom(8).hex()}", f"changeset_{os.urandom(8).hex()}"
        part = (
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"PUT {self.url}/{table}(PartitionKey='{{}}',RowKey='{{}}') HTTP/1.1\r\n"
            "Content-Type: application/json\r\nAccept: application/json;odata=minimalmetadata\r\n"
            "Prefer: return-no-content\r\nDataServiceVersion: 3.0\r\n\r\n{}\r\n"
        )
        parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
        parts += [part.format(_key(partition), _key(row), body) for partition, row, body in rows]
        parts.append(f"--{changeset}--\r\n--{batch}--\r\n")
        headers = {"Content-Type": f"multipart/mixed; boundary={batch}", "MaxDataServiceVersion": "3.0;NetFx"}
        status, answer = self._call("POST", f"{self.base_path}/$batch", "", "".join(parts).encode(), headers)
        statuses = _STATUS_LINE.findall(answer.decode("utf-8", "replace"))
        if status != 202 or len(statuses) != len(rows) or any(s[0] != "2" for s in statuses):
            raise TableCallFailed(status, answer[:300].decode("utf-8", "replace"))

    # ------------------------------------------------------------------------------ transport
    def _call(
        self, method: str, path: str, query: str, body: bytes, extra: dict[str, str]
    ) -> tuple[int, bytes]:
        """One request on this thread's connection. A kept-alive connection the server has since closed
        (reset or closed before an answer) is replaced and the request sent once more, so a call still takes
        at most one connect and one read timeout (``resent``: an insert answered 409 was stored by then)."""
        if self._sas:
            query = f"{query}&{self._sas}" if query else self._sas
        target = f"{path}?{query}" if query else path
        headers = self._headers(path) | extra
        for attempt in (0, 1):
            self._local.resent = bool(attempt)
            connection, reused = self._connection()
            try:
                connection.request(method, target, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read(MAX_ANSWER_BYTES)
                if answer.will_close or not answer.isclosed():
                    self._drop()
                return answer.status, content
            except (OSError, http.client.HTTPException) as error:
                self._drop()
                if attempt or not (reused and isinstance(error, _STALE)):
                    raise TableCallFailed(0, f"{type(error).__name__}: {error}") from None
        raise AssertionError("unreachable")

    def _headers(self, path: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        headers = {
            "x-ms-date": date,
            "x-ms-version": API_VERSION,
            "DataServiceVersion": "3.0",
            "Accept": "application/json;odata=nometadata",
        }
        if self._key is not None:  # SharedKeyLite: the date and the canonicalized resource, signed
            signed = f"{date}\n/{self.account}{path}".encode()
            signature = base64.b64encode(hmac.new(self._key, signed, hashlib.sha256).digest()).decode()
            headers["Authorization"] = f"SharedKeyLite {self.account}:{signature}"
        elif self._token_credential is not None:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        return headers

    def _bearer(self) -> str:
        token, expires_at = self._token
        if time.time() < expires_at - TOKEN_REFRESH_S:
            return token
        with self._token_lock:
            if time.time() >= self._token[1] - TOKEN_REFRESH_S:
                try:
                    access = self._token_credential.get_token(TOKEN_SCOPE)
                except Exception as error:
                    raise TableCallFailed(0, f"no token: {type(error).__name__}: {error}") from None
                self._token = (access.token, float(access.expires_on))
            return self._token[0]

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        if self.https:
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout_s, context=_tls_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout_s)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise TableCallFailed(0, f"{type(error).__name__}: {error}") from None
        connection.sock.settimeout(self.read_timeout_s)
        self._local.connection = connection
        return connection, False

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


# What a kept-alive connection closed by the server raises when it is used again (RemoteDisconnected is
# a ConnectionResetError); a timeout is not among them, it is never waited out twice.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_STATUS_LINE = re.compile(r"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_TLS: list[ssl.SSLContext] = []


def _tls_context() -> ssl.SSLContext:
    """The default verifying context, with certifi's roots when installed (as the SDK's transport uses)."""
    if not _TLS:
        try:
            import certifi

            _TLS.append(ssl.create_default_context(cafile=certifi.where()))
        except ImportError:
            _TLS.append(ssl.create_default_context())
    return _TLS[0]


def _typed(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity as the service's JSON: floats typed ``Edm.Double`` (so 1.0 is not stored as an integer);
    strings and booleans need no annotation."""
    body = dict(entity)
    for name, value in entity.items():
        if isinstance(value, float):
            body[f"{name}@odata.type"] = "Edm.Double"
    return body


def _key(key: str) -> str:
    """A key inside the OData URL: quotes doubled, then percent-encoded (ids and days need neither)."""
    if key.isascii() and key.isalnum():
        return key
    return quote(key.replace("'", "''"), safe="")
