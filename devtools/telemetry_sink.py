"""A loopback stand-in for the Application Insights ingestion endpoint (``POST /v2.1/track``).

The real Azure Monitor exporter is pointed at it through a connection string, so tests and benchmarks
see exactly the envelopes that would reach Azure. Modes: ``ok`` (accepts everything), ``500`` (answers
Internal Server Error), ``slow`` (accepts after ``delay`` seconds), ``down`` (nothing listens on the port).

    python -m devtools.telemetry_sink --mode ok     # prints the connection string, then serves until Ctrl+C
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "500", "slow", "down")
TRACK_PATH = "/v2.1/track"
DUMMY_IKEY = "00000000-0000-0000-0000-000000000000"

# Keeps the exporter offline: no Azure resource detection, statsbeat, control plane or SDK stats.
OFFLINE_ENV = {
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}


def connection_string(port: int) -> str:
    return f"InstrumentationKey={DUMMY_IKEY};IngestionEndpoint=http://127.0.0.1:{port}/"


def decode_envelopes(body: bytes, content_encoding: str = "") -> list[dict]:
    """Envelopes of one track request: a JSON array or newline-delimited JSON, optionally gzipped."""
    if content_encoding.lower() == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def event_of(envelope: dict) -> dict | None:
    """{name, time, properties} of a custom-event envelope (EventData), else None."""
    data = envelope.get("data") or {}
    if data.get("baseType") != "EventData":
        return None
    base = data.get("baseData") or {}
    return {
        "name": base.get("name"),
        "time": envelope.get("time"),
        "properties": base.get("properties") or {},
    }


class IngestionSink:
    """Threaded HTTP server on 127.0.0.1 (ephemeral port) recording what the exporter sends."""

    def __init__(self, mode: str = "ok", delay: float = 5.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.delay = delay
        self.port = 0
        self.requests = 0  # track requests seen, whatever the answer
        self._envelopes: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self) -> IngestionSink:
        if self.mode == "down":
            self.port = _closed_port()
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingestion-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> IngestionSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def envelopes(self) -> list[dict]:
        """Envelopes the sink accepted (answered 200 for)."""
        with self._lock:
            return list(self._envelopes)

    def events(self, name: str | None = None) -> list[dict]:
        found = [event for event in map(event_of, self.envelopes) if event]
        return [event for event in found if name is None or event["name"] == name]

    def wait_for(self, count: int, name: str | None = None, timeout: float = 30.0) -> list[dict]:
        """Events seen once ``count`` arrived or ``timeout`` passed, whichever comes first."""
        deadline = time.monotonic() + timeout
        while len(found := self.events(name)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def _accept(self, envelopes: list[dict]) -> None:
        with self._lock:
            self._envelopes.extend(envelopes)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class TrackHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink._lock:
                    sink.requests += 1
                if self.path.split("?")[0].rstrip("/") != TRACK_PATH:
                    self._answer(404, {"error": f"unknown path {self.path}"})
                    return
                try:
                    envelopes = decode_envelopes(body, self.headers.get("Content-Encoding", ""))
                except (ValueError, OSError) as error:
                    self._answer(400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": [str(error)]})
                    return
                if sink.mode == "500":
                    self._answer(500, {"itemsReceived": len(envelopes), "itemsAccepted": 0, "errors": []})
                    return
                if sink.mode == "slow":
                    time.sleep(sink.delay)
                sink._accept(envelopes)
                self._answer(
                    200, {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []}
                )

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the exporter gave up (timeout) or its process exited: nothing to answer

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        return TrackHandler


def _closed_port() -> int:
    """A loopback port nobody listens on (bound then released), so connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--delay", type=float, default=5.0, help="seconds before answering in slow mode")
    args = parser.parse_args()
    with IngestionSink(args.mode, args.delay) as sink:
        print(f"APPLICATIONINSIGHTS_CONNECTION_STRING={sink.connection_string}", flush=True)
        try:
            while True:
                time.sleep(1)
                print(f"{len(sink.envelopes)} envelopes, {len(sink.events())} events", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
