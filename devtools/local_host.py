"""Serve the function app over HTTP without Azure Functions Core Tools.

``python -m devtools.local_host [--host 127.0.0.1] [--port 7071] [--workers N] [--verbose]`` serves the
app's own registered functions (``app.get_functions()``: their routes, methods and code, not a second
route table) under ``/api``, the way ``func start`` does: route templates (``{x}``, ``{x?}``,
``{*rest}``), real ``func.HttpRequest`` objects, a JSON 404 for unknown routes, a JSON 405 for methods a
route does not register and a JSON 413 over the host's request size limit. Like ``func start``, it does
not check function keys: ``auth_level`` is enforced in Azure only.

HTTP is uvicorn's (the httptools parser and the uvloop event loop when installed), with each response's
head and body sent together; ``FunctionsApp`` is the ASGI application that routes a request to its
function. Scoring is CPU-bound and one Python process runs one request at a time, so the host runs N
worker processes (default: one per CPU), each of which imports the app, so loads the model, once. This
process supervises them: it accepts the connections and hands them to the workers in turn (with a
shared listening socket, the worker that wakes first takes a whole burst of connections, and one process
ends up serving most clients), prints the routes once every worker is ready, replaces a worker that dies
and stops them all on SIGTERM or Ctrl+C. With ``--workers 1`` it serves in this process (the only choice
where Unix descriptor passing is missing).

For development and tests only: uvicorn comes from requirements-local.txt, not requirements.txt, and
this file is not deployed (.funcignore).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

ROUTE_PREFIX = "api"
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's own default request size limit
KEEP_ALIVE_S = 130  # the Functions host's (Kestrel's) idle keep-alive timeout
STARTUP_TIMEOUT_S = 120  # import + model load of one worker, on a busy machine
STOP_TIMEOUT_S = 10
SHUTDOWN_FLUSH_MS = 5_000  # telemetry flush on stop, within the supervisor's patience
log = logging.getLogger("devtools.local_host")

_PREFIX = f"/{ROUTE_PREFIX}/"
_JSON = (b"content-type", b"application/json; charset=utf-8")
_CLOSE = (b"connection", b"close")


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


def _json_error(
    status: int, code: str, message: str, *extra: tuple[bytes, bytes]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, [_JSON, *extra], body


class FunctionsApp:
    """ASGI application that serves Azure Functions HTTP functions: match the route, read the body, build
    the ``func.HttpRequest``, call the function, send its ``func.HttpResponse``.

    The function runs in the event loop itself: it is CPU-bound, and a worker process is meant to run
    one request at a time (parallelism comes from the worker processes)."""

    def __init__(self, functions: Iterable, on_shutdown: Callable[[], object] | None = None) -> None:
        import azure.functions as func

        self._request_type = func.HttpRequest
        self.routes = build_routes(functions)
        self.on_shutdown = on_shutdown

    def _route(self, path: str) -> tuple[Route | None, re.Match[str] | None]:
        if path[: len(_PREFIX)].lower() == _PREFIX:
            rest = path[len(_PREFIX) :]
            for route in self.routes:
                match = route.pattern.fullmatch(rest)
                if match:
                    return route, match
        return None, None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":  # nothing to start (the app loaded at import); on_shutdown at the end
            while True:
                kind = (await receive())["type"]
                if kind == "lifespan.shutdown" and self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        status, headers, body = await self._answer(scope, receive)
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: dict, receive: Callable) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:  # names arrive lower-cased
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body = await self._read_body(headers.get("content-length"), receive)
        if body is None:
            message = f"the request is over {MAX_REQUEST_BYTES} bytes"
            return _json_error(413, "payload_too_large", message, _CLOSE)
        path, method = scope["path"], scope["method"]
        route, match = self._route(path)
        if route is None:
            return _json_error(404, "not_found", f"no function answers {path}")
        if method not in route.methods:
            message = f"{method} is not allowed on /{ROUTE_PREFIX}/{route.template}"
            allow = ", ".join(sorted(route.methods)).encode()
            return _json_error(405, "method_not_allowed", message, (b"allow", allow))
        query = scope["query_string"].decode("latin-1")
        target = scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        request = self._request_type(
            method=method,
            url=f"http://{headers.get('host', 'localhost')}{target}",
            headers=headers,
            params=dict(parse_qsl(query, keep_blank_values=True)) if query else {},
            route_params={k: v for k, v in match.groupdict().items() if v is not None},
            body=body,
        )
        try:
            response = route.handler(request)
            answer, typed = [], False
            for name, value in response.headers.items():  # every value of a repeated header
                lowered = name.lower()
                typed = typed or lowered == "content-type"
                answer.append((lowered.encode("latin-1"), value.encode("latin-1")))
            if response.mimetype and not typed:
                charset = f"; charset={response.charset}" if response.charset else ""
                answer.append((b"content-type", f"{response.mimetype}{charset}".encode("latin-1")))
            return response.status_code, answer, response.get_body() or b""
        except Exception:
            log.exception("function %s failed", route.name)
            return _json_error(500, "internal_error", f"function {route.name} raised an exception")

    @staticmethod
    async def _read_body(content_length: str | None, receive: Callable) -> bytes | None:
        """The whole body (chunked or not: the server decodes it); None when over the size limit."""
        if (
            content_length is not None
            and content_length.isdigit()
            and int(content_length) > MAX_REQUEST_BYTES
        ):
            return None  # refused before reading it
        message = await receive()
        body = message.get("body", b"")
        if len(body) > MAX_REQUEST_BYTES:
            return None
        if not message.get("more_body"):
            return body
        chunks, total = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the answer goes nowhere
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > MAX_REQUEST_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


# ----------------------------------------------------------------------------------------- server setup
class _OneSendTransport:
    """The connection's transport, except that the writes made during one event-loop step leave in one
    send: uvicorn writes a response's head and its body separately, which costs a second system call
    and a second TCP segment that wakes the client twice."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop, self._pending = transport, loop, None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneSendHTTPProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools when installed) over a ``_OneSendTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_OneSendTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]


def server_description(workers: int) -> str:
    """What serves the requests, as printed at start-up (the benchmark reports it)."""
    parser = "httptools" if AutoHTTPProtocol.__name__ == "HttpToolsProtocol" else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    where = "in this process" if workers == 1 else f"in {workers} worker processes given connections in turn"
    parts = f"{parser} {_version(parser)} parser, {loop} {_version(loop)} event loop"
    return f"uvicorn {_version('uvicorn')} ({parts}) {where}"


def _version(package: str) -> str:
    if package == "asyncio":
        return sys.version.split()[0]
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def uvicorn_config(app: FunctionsApp, verbose: bool = False) -> uvicorn.Config:
    """One worker's server: HTTP/1.1, no proxy headers, access log only when verbose."""
    return uvicorn.Config(
        app,
        loop="auto",  # uvloop when installed
        http=OneSendHTTPProtocol,
        lifespan="on",  # the shutdown event flushes the app's queued telemetry
        ws="none",
        interface="asgi3",
        proxy_headers=False,
        server_header=False,
        access_log=verbose,
        log_config=None,  # logging is configured by configure_logging, once per process
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=STOP_TIMEOUT_S,
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket; port 0 picks a free port (read it back with ``getsockname()``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ThreadedHost:
    """The app's functions served by uvicorn in a background thread of this process (tests).

    ``with ThreadedHost(functions) as base_url: ...`` -> ``http://127.0.0.1:<free port>``."""

    def __init__(self, functions: Iterable, host: str = "127.0.0.1", port: int = 0) -> None:
        self.socket = bind(host, port)
        self.server = uvicorn.Server(uvicorn_config(FunctionsApp(functions)))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="local-host", daemon=True
        )
        self.base_url = _base_url(*self.socket.getsockname()[:2])

    def start(self) -> str:
        self.thread.start()
        return self.base_url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STOP_TIMEOUT_S + 5)
        self.socket.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def configure_logging(verbose: bool) -> None:
    """Start-up lines, warnings and errors on stderr; with ``--verbose`` also every request and every
    telemetry event (one log line per request otherwise slows the host under load)."""
    from serving.telemetry import EVENTS_LOGGER_NAME

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    if not verbose:
        handler.addFilter(lambda record: record.name != EVENTS_LOGGER_NAME or record.levelno > logging.INFO)
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def _load_app() -> FunctionsApp:
    """The function app, indexed; on shutdown its queued telemetry events are sent (a stopped host
    would otherwise lose the last few seconds of them)."""
    from function_app import app
    from serving import telemetry

    return FunctionsApp(app.get_functions(), on_shutdown=lambda: telemetry.flush(SHUTDOWN_FLUSH_MS))


def _route_lines(app: FunctionsApp) -> list[tuple[str, str, str]]:
    return [(route.name, ",".join(sorted(route.methods)), route.template) for route in app.routes]


def _print_routes(routes: list[tuple[str, str, str]], base_url: str, description: str) -> None:
    for name, methods, template in routes:
        print(f"  {name}: [{methods}] {base_url}/{ROUTE_PREFIX}/{template}", file=sys.stderr)
    print(f"Serving with {description}.", file=sys.stderr)
    print("Function keys are not checked locally (as with func start). Ctrl+C stops.", file=sys.stderr)


# --------------------------------------------------------------------------------------- worker processes
class HandoffServer(uvicorn.Server):
    """A uvicorn server with no listening socket of its own: it serves the connections the supervisor
    accepted and passed over ``channel`` (a Unix socket; one descriptor per message, SCM_RIGHTS). The end
    of ``channel`` means the supervisor is gone: the server stops, so no worker outlives it."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self.adopting: set[asyncio.Task] = set()  # referenced until done, as asyncio asks

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        loop = asyncio.get_running_loop()
        protocol = functools.partial(
            self.config.http_protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._adopt, loop, protocol)

    def _adopt(self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol]) -> None:
        try:
            message, descriptors, _flags, _address = socket.recv_fds(self.channel, 16, 16)
        except BlockingIOError:
            return
        except OSError:
            message, descriptors = b"", []
        if not message:
            for descriptor in descriptors:
                os.close(descriptor)
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        for descriptor in descriptors:
            connection = socket.socket(fileno=descriptor)
            connection.setblocking(False)
            task = loop.create_task(_serve_connection(loop, protocol, connection))
            self.adopting.add(task)
            task.add_done_callback(self.adopting.discard)


async def _serve_connection(
    loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol], connection: socket.socket
) -> None:
    try:
        await loop.connect_accepted_socket(protocol, connection)
    except OSError:  # the client left before the worker took the connection
        connection.close()


def _worker(channel: socket.socket, verbose: bool) -> None:
    """One worker process: load the app, tell the supervisor (with the routes), serve what it hands over."""
    configure_logging(verbose)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C reaches every process of the group
        app = _load_app()
        server = HandoffServer(uvicorn_config(app, verbose), channel)
        channel.sendall(json.dumps({"routes": _route_lines(app)}).encode())
        server.run()


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    channel: socket.socket
    ready: bool = False


class Supervisor:
    """Accepts connections on ``listener`` and hands them to ``count`` worker processes in turn, so that
    each serves an equal share of them (with one shared listening socket, the worker that wakes first
    accepts a whole burst, and one process ends up serving most of the clients); replaces a worker that
    dies; stops them all on request."""

    def __init__(self, listener: socket.socket, count: int, verbose: bool) -> None:
        self.listener, self.count, self.verbose = listener, count, verbose
        self.context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked ONNX session
        self.workers: list[_Worker] = []
        self.stopping = False  # set by signal handlers: a plain flag, since a handler must take no lock
        self.wakeup, self._wakeup_writer = socket.socketpair()  # wakes the waits below on a signal
        self.wakeup.setblocking(False)
        self.routes: list[tuple[str, str, str]] = []
        self.turn = 0

    def wakeup_fd(self) -> int:
        """For ``signal.set_wakeup_fd``: a signal then also ends the current wait at once."""
        self._wakeup_writer.setblocking(False)
        return self._wakeup_writer.fileno()

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self.context.Process(
            target=_worker, args=(theirs, self.verbose), name="local-host-worker", daemon=True
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        return _Worker(process, ours)

    def _read_ready(self, worker: _Worker) -> None:
        """The worker's one message: it has loaded the app (and these are the app's routes)."""
        try:
            message = worker.channel.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message = b""
        if message:
            worker.ready, self.routes = True, [tuple(route) for route in json.loads(message)["routes"]]

    def start(self) -> bool:
        """Start every worker and wait until all have loaded the app; False if one failed to."""
        self.workers = [self._spawn() for _ in range(self.count)]
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(w.ready for w in self.workers):
            if self.stopping or time.monotonic() > deadline:
                return False
            waiting = [w for w in self.workers if not w.ready]
            watched = [self.wakeup] + [w.channel for w in waiting] + [w.process.sentinel for w in waiting]
            for ready in wait(watched, 0.5):
                if ready is self.wakeup:
                    with contextlib.suppress(OSError):
                        self.wakeup.recv(4096)
                    continue
                worker = next(w for w in waiting if ready in (w.channel, w.process.sentinel))
                self._read_ready(worker)
                if not worker.ready and not worker.process.is_alive():
                    log.error("a worker exited with code %s before it was ready", worker.process.exitcode)
                    return False
        return True

    def run(self) -> None:
        """Until asked to stop: hand each new connection to the next worker; replace a worker that exits
        (its connections are lost with it; the others keep serving)."""
        self.listener.setblocking(False)
        while not self.stopping:
            sentinels = {w.process.sentinel: w for w in self.workers}
            starting = {w.channel.fileno(): w for w in self.workers if not w.ready}
            for ready in wait([self.wakeup, self.listener, *sentinels, *starting], timeout=0.5):
                if ready is self.wakeup:
                    with contextlib.suppress(OSError):
                        self.wakeup.recv(4096)
                    continue
                if ready is self.listener:
                    self._accept()
                elif ready in starting:
                    self._read_ready(starting[ready])
                elif ready in sentinels and not self.stopping:
                    self._replace(sentinels[ready])

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors, or the client reset before accept
                log.warning("accept failed: %s", error)
                return
            with connection:
                if connection.family != socket.AF_UNIX:
                    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._hand_over(connection)

    def _hand_over(self, connection: socket.socket) -> None:
        for _ in range(len(self.workers)):
            worker = self.workers[self.turn % len(self.workers)]
            self.turn += 1
            if not worker.ready:
                continue
            try:
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
                return
            except OSError:  # that worker is gone or not keeping up: try the next one
                continue
        log.warning("no worker could take a connection; it is closed")

    def _replace(self, worker: _Worker) -> None:
        worker.process.join()
        log.error(
            "worker %s exited with code %s; starting another", worker.process.pid, worker.process.exitcode
        )
        worker.channel.close()
        self.workers[self.workers.index(worker)] = self._spawn()

    def stop(self) -> None:
        """No new connections; SIGTERM every worker (uvicorn finishes the requests in flight), then kill
        what is left."""
        self.stopping = True
        self.listener.close()
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S + 5
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
            worker.channel.close()
        self.wakeup.close()
        self._wakeup_writer.close()


def serve(host: str, port: int, workers: int, verbose: bool) -> int:
    """Run the host until SIGTERM/SIGINT; the process exit code."""
    sock = bind(host, port)
    base_url = _base_url(*sock.getsockname()[:2])
    description = server_description(workers)
    try:
        if workers == 1:
            app = _load_app()
            server = uvicorn.Server(uvicorn_config(app, verbose))
            _print_routes(_route_lines(app), base_url, description)
            server.run(sockets=[sock])
            return 0
        supervisor = Supervisor(sock, workers, verbose)

        def request_stop(*_: object) -> None:
            supervisor.stopping = True

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous_wakeup = signal.set_wakeup_fd(supervisor.wakeup_fd(), warn_on_full_buffer=False)
        try:
            if not supervisor.start():
                return 1
            _print_routes(supervisor.routes, base_url, description)
            supervisor.run()
            return 0
        finally:
            supervisor.stop()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        sock.close()


def default_workers() -> int:
    """One worker per CPU this process may use; 1 where connections cannot be handed to workers."""
    if not hasattr(socket, "send_fds"):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class HostProcess:
    """``python -m devtools.local_host --host 127.0.0.1 --port 0 ARGS`` as a child process, for tests and
    benchmarks: returns once the host printed its last start-up line (every worker is then ready), with
    the base URL and the server it printed, and the start of what it wrote to stderr."""

    LOG_LINES = 1000

    def __init__(self, *args: str, env: dict[str, str], new_session: bool = False, timeout_s: float = 120):
        self.command = ["python", "-m", "devtools.local_host", "--host", "127.0.0.1", "--port", "0", *args]
        self.process = subprocess.Popen(
            [sys.executable, *self.command[1:]],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.base, self.server, self.log = "", "", []
        ready = threading.Event()

        def drain() -> None:
            for line in self.process.stderr:
                if len(self.log) < self.LOG_LINES:
                    self.log.append(line)
                found = re.search(r"(http://127\.0\.0\.1:\d+)/api/", line)
                if found and not self.base:
                    self.base = found[1]
                served = re.match(r"Serving with (.*)\.$", line.strip())
                if served:
                    self.server = served[1]
                if "Ctrl+C stops" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(timeout_s) or not self.base:
            self.process.kill()
            raise RuntimeError("the local host did not start:\n" + self.text())

    def text(self) -> str:
        return "".join(self.log)

    def stop(self) -> None:
        """SIGTERM (the host stops its workers), then SIGKILL if it is still there after 10 s."""
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_host", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071, like func start; 0: any)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="worker processes, each with its own copy of the model (default: one per CPU)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request and telemetry event")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and not hasattr(socket, "send_fds"):
        parser.error("several workers need Unix descriptor passing; use --workers 1 here")
    configure_logging(args.verbose)
    try:
        code = serve(args.host, args.port, args.workers, args.verbose)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
