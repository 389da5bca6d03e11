"""scripts/serve.sh, run for real in a copy of the repository layout with stand-ins on PATH: Core Tools
(`func`), the Azurite emulator (`azurite`, which listens on the blob port like the real one) and the
set-up script. With `func` it starts Azurite on loopback with telemetry off, serves, then stops Azurite;
without it, it runs the project's local host and no emulator."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BLOB_PORT = 10000  # UseDevelopmentStorage=true means Azurite's default ports

FAKE_AZURITE = r"""
import json, os, signal, socket, sys, time
log = os.environ["FAKE_LOG"]
def write(*entry):
    with open(log, "a") as f:
        f.write(json.dumps(list(entry)) + "\n")
write("azurite", *sys.argv[1:])
def stop(*_):
    write("azurite-stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[sys.argv.index("--blobHost") + 1], 10000))
server.listen()
while True:
    time.sleep(0.1)
"""

FAKE_FUNC = r"""
import json, os, socket, sys
with socket.create_connection(("127.0.0.1", 10000), timeout=5):
    up = True
with open(os.environ["FAKE_LOG"], "a") as f:
    seen = {"azurite_up": up, "venv": os.environ.get("VIRTUAL_ENV")}
    f.write(json.dumps(["func", *sys.argv[1:], seen]) + "\n")
"""

FAKE_PYTHON = r"""
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(["python", *sys.argv[1:]]) + "\n")
"""


def executable(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """The repository's serve.sh and example settings, a recording setup.sh and .venv, stand-ins on PATH."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "serve.sh", root / "scripts" / "serve.sh")
    shutil.copy(REPO_ROOT / "local.settings.example.json", root / "local.settings.example.json")
    executable(root / "scripts" / "setup.sh", 'echo "[\\"setup\\", \\"$1\\"]" >> "$FAKE_LOG"\n')
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "activate").write_text(f'export VIRTUAL_ENV="{root}/.venv"\n')
    executable(root / ".venv" / "bin" / "python", f"#!{sys.executable}\n{FAKE_PYTHON}")
    bin_dir = tmp_path / "bin"
    executable(bin_dir / "azurite", f"#!{sys.executable}\n{FAKE_AZURITE}")
    return root


def serve(root: Path, *, with_func: bool) -> tuple[subprocess.CompletedProcess, list]:
    bin_dir = root.parent / "bin"
    if with_func:
        executable(bin_dir / "func", f"#!{sys.executable}\n{FAKE_FUNC}")
    log = root.parent / "calls.log"
    system_path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "func").exists()
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{system_path}", "FAKE_LOG": str(log)}
    env.pop("PORT", None)
    done = subprocess.run(
        ["bash", "scripts/serve.sh"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    time.sleep(0.2)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def test_with_core_tools_azurite_runs_on_loopback_without_telemetry_and_stops_after(layout: Path):
    if port_in_use(BLOB_PORT):
        pytest.skip(f"something already listens on 127.0.0.1:{BLOB_PORT}")
    done, calls = serve(layout, with_func=True)
    assert done.returncode == 0, done.stdout + done.stderr
    names = [call[0] for call in calls]
    assert names == ["setup", "azurite", "func", "azurite-stopped"]
    assert calls[0] == ["setup", "requirements.txt"]
    azurite = calls[1][1:]
    assert {"--disableTelemetry", "--skipApiVersionCheck", "--inMemoryPersistence"} <= set(azurite)
    for service in ("--blobHost", "--queueHost", "--tableHost"):
        assert azurite[azurite.index(service) + 1] == "127.0.0.1"
    func = calls[2]
    assert func[1:4] == ["start", "--port", "7071"]
    assert func[4] == {"azurite_up": True, "venv": f"{layout}/.venv"}
    settings = json.loads((layout / "local.settings.json").read_text())
    assert settings["Values"]["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert not port_in_use(BLOB_PORT)


def test_an_emulator_already_running_is_used_not_started_twice(layout: Path):
    if port_in_use(BLOB_PORT):
        pytest.skip(f"something already listens on 127.0.0.1:{BLOB_PORT}")
    with socket.socket() as running:
        running.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        running.bind(("127.0.0.1", BLOB_PORT))
        running.listen()
        done, calls = serve(layout, with_func=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [call[0] for call in calls] == ["setup", "func"]
    assert "already listening" in done.stdout


def test_without_core_tools_the_local_host_serves_and_no_emulator_starts(layout: Path):
    done, calls = serve(layout, with_func=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls == [
        ["setup", "requirements-local.txt"],
        ["python", "-m", "devtools.local_host", "--port", "7071"],
    ]
    assert "func) not found" in done.stdout


def test_shellcheck_passes():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (scripts/setup-system.sh installs it)")
    script = REPO_ROOT / "scripts" / "serve.sh"
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
