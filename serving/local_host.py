"""Serve the function app over HTTP without Azure Functions Core Tools.

``python -m serving.local_host [--host 127.0.0.1] [--port 7071]`` serves the app's own registered
functions (``app.get_functions()``: their routes, methods and code, not a second route table) under
``/api``, the way ``func start`` does: route templates (``{x}``, ``{x?}``, ``{*rest}``), real
``func.HttpRequest`` objects, a JSON 404 for unknown routes and a JSON 405 for methods a route does not
register. Like ``func start``, it does not check function keys: ``auth_level`` is enforced in Azure only.
Standard library only, so it runs wherever the app's own requirements are installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

ROUTE_PREFIX = "api"
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's own default request size limit
log = logging.getLogger("serving.local_host")


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str
    handler: Any


def _template_pattern(template: str) -> re.Pattern[str]:
    """``orders/{id:int}/{rest?}`` -> a regex with one named group per parameter (constraints ignored)."""
    parts = []
    for index, segment in enumerate(template.strip("/").split("/")):
        slash = "/" if index else ""
        match = re.fullmatch(r"\{(\*)?(\w+)(?::[^}?]*)?(\?)?\}", segment)
        if not match:
            parts.append(slash + re.escape(segment))
        elif match.group(1):
            parts.append(f"(?:{slash}(?P<{match.group(2)}>.*))?")
        elif match.group(3):
            parts.append(f"(?:{slash}(?P<{match.group(2)}>[^/]+))?")
        else:
            parts.append(f"{slash}(?P<{match.group(2)}>[^/]+)")
    return re.compile("".join(parts) + "/?", re.IGNORECASE)


def build_routes(functions) -> list[Route]:
    """Routes from the app's indexed functions (call ``app.get_functions()`` once and pass the result)."""
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        if getattr(trigger, "type", None) != "httpTrigger":
            continue
        template = trigger.route or function.get_function_name()
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ("GET", "POST")))
        level = str(getattr(trigger.auth_level, "value", trigger.auth_level))
        routes.append(
            Route(
                function.get_function_name(),
                template,
                _template_pattern(template),
                methods,
                level,
                function.get_user_function(),
            )
        )
    return routes


def _json_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall on keep-alive connections
    wbufsize = 64 * 1024  # headers and body leave in one send (flushed after each request)
    server_version = "serving.local_host"
    routes: ClassVar[list[Route]] = []

    def _dispatch(self) -> None:
        status, headers, body = self._answer()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over the host limit (the connection is then closed)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length)

    def _answer(self) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(self.path)
        path = unquote(url.path)
        prefix = f"/{ROUTE_PREFIX}/"
        route, match = None, None
        if path.lower().startswith(prefix):
            for candidate in self.routes:
                match = candidate.pattern.fullmatch(path[len(prefix) :])
                if match:
                    route = candidate
                    break
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            return _json_error(400, "invalid_body", "the Content-Length or chunked body is malformed")
        if body is None:
            self.close_connection = True
            return _json_error(413, "payload_too_large", f"the request is over {MAX_REQUEST_BYTES} bytes")
        if route is None:
            return _json_error(404, "not_found", f"no function answers {path}")
        if self.command not in route.methods:
            status, headers, payload = _json_error(
                405,
                "method_not_allowed",
                f"{self.command} is not allowed on /{ROUTE_PREFIX}/{route.template}",
            )
            return status, {**headers, "Allow": ", ".join(sorted(route.methods))}, payload
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
            headers={name: ", ".join(self.headers.get_all(name)) for name in self.headers},
            params=dict(parse_qsl(url.query, keep_blank_values=True)),
            route_params={k: v for k, v in match.groupdict().items() if v is not None},
            body=body,
        )
        try:
            response = route.handler(request)
        except Exception:
            log.exception("function %s failed", route.name)
            return _json_error(500, "internal_error", f"function {route.name} raised an exception")
        headers = dict(response.headers)
        if response.mimetype:
            charset = f"; charset={response.charset}" if response.charset else ""
            headers.setdefault("Content-Type", f"{response.mimetype}{charset}")
        return response.status_code, headers, response.get_body() or b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = do_QUERY = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(functions, host: str = "127.0.0.1", port: int = 7071) -> ThreadingHTTPServer:
    """A threading HTTP server for these functions; port 0 picks a free port (see ``server_address``)."""
    handler = type("FunctionHandler", (_Handler,), {"routes": build_routes(functions)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m serving.local_host", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071, like func start)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    from function_app import app

    server = make_server(app.get_functions(), args.host, args.port)
    host, port = server.server_address[:2]
    for route in server.RequestHandlerClass.routes:
        methods = ",".join(sorted(route.methods))
        print(
            f"  {route.name}: [{methods}] http://{host}:{port}/{ROUTE_PREFIX}/{route.template}",
            file=sys.stderr,
        )
    print("Function keys are not checked locally (as with func start). Ctrl+C stops.", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
