"""``python -m devtools.local_host`` as a process tree over real HTTP on 127.0.0.1: worker processes start,
each loads the app once and serves; a worker that dies is replaced; SIGTERM, Ctrl+C or the supervisor's
death stops every worker and frees the port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from devtools.local_host import HostProcess
from devtools.telemetry_sink import OFFLINE_ENV, IngestionSink
from tests.app_fixtures import REPO_ROOT, HttpClient, model_path

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 120


def workers_of(host: HostProcess) -> list[psutil.Process]:
    """The worker processes (multiprocessing's resource tracker is a child too, but serves nothing)."""
    children = psutil.Process(host.process.pid).children()
    return [child for child in children if "spawn_main" in " ".join(_cmdline(child))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def start_host(*args: str, new_session: bool = False, **settings: str) -> HostProcess:
    """``python -m devtools.local_host --port 0 ARGS``; returns once it printed its start-up lines."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MODEL_PATH": str(model_path()),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    return HostProcess(*args, env=env, new_session=new_session, timeout_s=START_TIMEOUT_S)


def stop_host(host: HostProcess) -> None:
    """Whatever a test did, leave no process behind."""
    tree = [host.process.pid]
    with contextlib.suppress(psutil.Error):
        tree += [child.pid for child in psutil.Process(host.process.pid).children(recursive=True)]
    host.process.kill()
    host.process.wait(30)
    for pid in tree[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def two_workers() -> Iterator[HostProcess]:
    host = start_host("--workers", "2")
    yield host
    stop_host(host)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(5)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def predict_many(base: str, clients: int, per_client: int) -> list[int]:
    """``clients`` keep-alive connections at once, each sending ``per_client`` predictions."""

    def one_client(index: int) -> list[int]:
        client = HttpClient(base)
        statuses = [
            client.request("POST", "/api/predict", {"text": f"flight {index}-{n} was late"}).status
            for n in range(per_client)
        ]
        client.connection.close()
        return statuses

    with ThreadPoolExecutor(clients) as pool:
        return [status for statuses in pool.map(one_client, range(clients)) for status in statuses]


def test_workers_each_load_the_app_serve_and_stop_cleanly_on_sigterm(two_workers: HostProcess):
    host = two_workers
    workers = workers_of(host)
    assert len(workers) == 2, host.text()
    assert host.text().count("loaded from") == 2, host.text()  # one model load per worker, none in the parent
    assert "in 2 worker processes" in host.text(), host.text()
    assert "not checked locally" in host.text()
    assert predict_many(host.base, clients=8, per_client=5) == [200] * 40

    for _ in range(3):  # a signal that arrives while the first one is handled must not wedge the stop
        host.process.terminate()
    assert host.process.wait(30) == 0, host.text()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive
    assert refuses_connections(port_of(host.base))


def test_a_worker_that_dies_is_replaced(two_workers: HostProcess):
    host = two_workers
    first, second = workers_of(host)
    first.kill()
    wait_until(
        lambda: len(workers_of(host)) == 2 and first.pid not in {w.pid for w in workers_of(host)},
        60,
        "a new worker",
    )
    assert second.is_running()
    wait_until(lambda: host.text().count("loaded from") == 3, 60, "the new worker to load the app")
    assert predict_many(host.base, clients=4, per_client=3) == [200] * 12
    assert "starting another" in host.text()


def test_workers_stop_when_the_supervisor_is_killed(two_workers: HostProcess):
    host = two_workers
    workers = workers_of(host)
    host.process.kill()  # no chance to stop them: they notice the closed pipe themselves
    host.process.wait(10)
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [w.pid for w in alive]
    wait_until(lambda: refuses_connections(port_of(host.base)), 10, "the port to close")


def test_ctrl_c_stops_the_supervisor_and_every_worker():
    host = start_host("--workers", "2", new_session=True)
    try:
        workers = workers_of(host)
        assert predict_many(host.base, clients=2, per_client=2) == [200] * 4
        os.killpg(host.process.pid, signal.SIGINT)  # what a terminal sends to the whole process group
        assert host.process.wait(30) == 0, host.text()
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive
        assert "Traceback" not in host.text(), host.text()
        assert refuses_connections(port_of(host.base))
    finally:
        stop_host(host)


def test_one_worker_serves_in_the_supervisor_process():
    host = start_host("--workers", "1")
    try:
        assert workers_of(host) == []
        assert "in this process" in host.text()
        client = HttpClient(host.base)
        assert client.request("GET", "/api/health").json()["model_loaded"] is True
        assert client.request("POST", "/api/predict", {"text": "hello"}).status == 200
        client.connection.close()
        host.process.terminate()
        host.process.wait(30)
        assert refuses_connections(port_of(host.base))
    finally:
        stop_host(host)


def test_workers_must_be_positive():
    done = subprocess.run(
        [sys.executable, "-m", "devtools.local_host", "--workers", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers must be at least 1" in done.stderr


def test_a_worker_that_cannot_load_the_app_stops_the_host(tmp_path):
    (tmp_path / "function_app.py").write_text("raise RuntimeError('broken app')\n")
    done = subprocess.run(
        [sys.executable, "-m", "devtools.local_host", "--port", "0", "--workers", "2"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": f"{tmp_path}:{REPO_ROOT}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "broken app" in done.stderr
    assert "before it was ready" in done.stderr
    assert "/api/" not in done.stderr  # no URL printed: nothing serves


def test_every_worker_sends_its_events_and_flushes_them_on_stop(tmp_path):
    """With a connection string each worker sums its requests into its own SentimentScored window (60 s,
    as deployed) and sends it when the host stops, before the workers exit: one event per worker at most,
    every request counted."""
    with IngestionSink("ok") as sink:
        host = start_host(
            "--workers",
            "2",
            APPLICATIONINSIGHTS_CONNECTION_STRING=sink.connection_string,
            TMPDIR=str(tmp_path),
            SENTIMENT_SCORED_WINDOW_SECONDS="60",
            **OFFLINE_ENV,
        )
        try:
            assert predict_many(host.base, clients=4, per_client=5) == [200] * 20  # 2 connections each
            host.process.terminate()
            assert host.process.wait(30) == 0, host.text()
        finally:
            stop_host(host)
        events = sink.wait_for(2, "SentimentScored", timeout=10)
    assert 1 <= len(events) <= 2, host.text()
    assert sum(int(event["properties"]["texts"]) for event in events) == 20
