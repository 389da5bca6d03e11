"""A real Azure Table Storage for tests: the Azurite emulator (npm, ``tests/js``) on a loopback port.

Import the fixture into a test module (``from tests.azurite import azurite``) and ask for ``azurite``: it
yields an :class:`Azurite` that is running, with ``connection_string`` for ``azure-data-tables``. One
emulator serves the whole test session; a test may ``stop()`` it (to see what callers do when storage is
down) and ``start()`` it again on the same port; the fixture restarts it for the next test if it was left
stopped. Data lives in memory only, so a restart starts empty. Without the npm package the tests skip and
say how to install it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

AZURITE_TABLE = Path(__file__).resolve().parent / "js" / "node_modules" / ".bin" / "azurite-table"
ACCOUNT = "devstoreaccount1"
# The emulator's published development key (the same for every Azurite install; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READY_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_reason(binary: Path = AZURITE_TABLE) -> str | None:
    """Why Azurite cannot run here, or None when it can."""
    if not binary.is_file():
        return f"{binary} is missing: run `npm ci` in tests/js (scripts/setup-system.sh does it)"
    return None


class Azurite:
    """The Table service of Azurite on 127.0.0.1, in-memory, telemetry off, on a port kept across restarts."""

    def __init__(self, binary: Path = AZURITE_TABLE, port: int | None = None):
        self.binary = binary
        self.port = port or free_port()
        self._process: subprocess.Popen | None = None

    @property
    def table_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={self.table_endpoint};"
        )

    @property
    def pid(self) -> int | None:
        """The emulator's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Azurite:
        """Start the emulator (no-op when running) and wait until it accepts connections."""
        if self.running:
            return self
        command = [
            str(self.binary),
            "--tableHost", "127.0.0.1",
            "--tablePort", str(self.port),
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--inMemoryPersistence",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                self._process = None
                raise RuntimeError(f"azurite-table exited at start: {error.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"azurite-table did not listen on port {self.port} within {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the emulator (its in-memory tables are lost); the port is kept for ``start``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        # The port is closed once the process is gone; wait until connections are refused.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def delete_tables(self) -> None:
        """Drop every table: a test that needs an empty account calls this first."""
        from azure.data.tables import TableServiceClient

        service = TableServiceClient.from_connection_string(self.connection_string)
        for table in list(service.list_tables()):
            service.delete_table(table.name)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """One emulator for the test session (skips, with the reason printed, when it is not installed)."""
    reason = missing_reason()
    if reason:
        print(f"skipping Azurite tests: {reason}")
        pytest.skip(reason)
    server = Azurite()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def azurite(azurite_server: Azurite) -> Azurite:
    """The session's emulator, running (restarted if an earlier test left it stopped)."""
    return azurite_server.start()
