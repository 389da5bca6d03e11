"""Prove a built deployment package works on its own, as Azure's Python worker would load it.

    python scripts/check_package.py build/functionapp

Creates a fresh virtual environment holding only the Functions worker library (azure-functions-runtime, at
the version requirements.txt pins), then runs this same file in it with `python -I` (no PYTHONPATH, no
user site, no repository on sys.path) and the package folder as the working directory. On Python 3.13
Azure runs the worker version the app's requirements pin, so the package carries that library too and the
probe checks that its copy is the one loaded. Inside, the worker's own indexer loads function_app.py and
registers every function, exactly the step that reports "0 functions found" in Azure when an import
fails; then /api/health and one /api/predict are answered through the registered functions, and the
modules in use are checked to come from the package. Prints a JSON summary; exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SITE_PACKAGES = Path(".python_packages/lib/site-packages")
RESULT_MARKER = "PACKAGE-CHECK "
WORKER_PACKAGE = "azure-functions-runtime"
SAMPLE_TWEET = "@AirParadis lost my bag again, worst airline ever"
# Never loaded by the serving code (CONTRACT), nor the development-only host.
FORBIDDEN_MODULES = (
    "sklearn",
    "skl2onnx",
    "onnx",
    "pandas",
    "mlflow",
    "devtools",
    "uvicorn",
    "uvloop",
    "httptools",
    "training",
    "tests",
)
# Offline: telemetry to the log only, no probing of Azure endpoints.
PROBE_ENV = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}


class PackageCheckError(AssertionError):
    """The package would not serve in Azure; the message says why."""


def worker_requirement() -> str:
    """The worker version requirements.txt pins (else the latest)."""
    pins = REPO_ROOT / "requirements.txt"
    if pins.is_file():
        for line in pins.read_text(encoding="utf-8").splitlines():
            if re.match(rf"^{WORKER_PACKAGE}\s*[=<>~!]", line.strip()):
                return line.split("#")[0].strip()
    return WORKER_PACKAGE


def create_worker_env(folder: Path) -> Path:
    """A fresh virtual environment with only the Functions worker library; returns its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    result = subprocess.run([*command, worker_requirement()], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise PackageCheckError(f"could not install {worker_requirement()} into {folder}")
    return python


def run_probe(package: Path, python: Path, *, timeout: float = 300) -> dict:
    """Run the probe half of this file in `python`, isolated, inside `package`; return its summary."""
    env = {
        key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT") if key in os.environ
    }
    env.update(PROBE_ENV)
    result = subprocess.run(
        [str(python), "-I", str(Path(__file__).resolve()), "--probe", str(package)],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if result.returncode != 0 or not lines:
        tail = (result.stdout + result.stderr)[-4000:]
        raise PackageCheckError(
            f"the package failed in a fresh environment (exit {result.returncode}):\n{tail}"
        )
    return json.loads(lines[-1][len(RESULT_MARKER) :])


def check(package: Path, *, work: Path | None = None) -> dict:
    """Build a fresh worker environment (in `work`, else a temporary folder) and probe `package`."""
    package = package.resolve()
    if not (package / "function_app.py").is_file():
        raise PackageCheckError(f"{package} has no function_app.py: build it with scripts/build_package.py")
    if work is not None:
        return run_probe(package, create_worker_env(work / "worker-venv"))
    with tempfile.TemporaryDirectory(prefix="worker-venv-") as folder:
        return run_probe(package, create_worker_env(Path(folder)))


# ---- the probe: runs inside the fresh environment, standard library + the package only ----------------


class _BindingInfo:
    """The worker's protobuf enum values the indexer compares against (BindingInfo.Direction/DataType)."""

    in_, out, inout = 0, 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3


class _Protos:
    BindingInfo = _BindingInfo


def _inside(module_file: str | None, folder: Path) -> bool:
    return bool(module_file) and Path(module_file).resolve().is_relative_to(folder)


def _call(function, func, method: str, route: str, body: bytes = b"") -> tuple[int, dict]:
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        headers={"content-type": "application/json"} if body else {},
        params={},
        route_params={},
        body=body,
    )
    response = function.get_user_function()(request)
    return response.status_code, json.loads(response.get_body() or b"null")


def probe(package: Path) -> dict:
    """Index the app with the worker's loader and answer health and predict; raise on any problem."""
    package = package.resolve()
    site = package / SITE_PACKAGES
    repo = REPO_ROOT.resolve()
    sys.path[:0] = [str(package), str(site)]  # what the worker puts on sys.path in Azure
    os.chdir(package)
    leaked = [p for p in sys.path if p and Path(p).resolve() == repo]
    if leaked:
        raise PackageCheckError(f"the repository is on sys.path: {leaked}")

    from azure_functions_runtime import functions as worker_functions
    from azure_functions_runtime import loader
    from azure_functions_runtime.bindings import meta

    meta.load_binding_registry()  # the worker's init step: binds to the package's azure-functions
    indexed = loader.index_function_app(str(package / "function_app.py"))
    if not indexed:
        raise PackageCheckError("0 functions found")
    registry = worker_functions.Registry()
    by_route = {}
    names = []
    for function in indexed:
        registry.add_indexed_function(function=function, protos=_Protos)
        if not function.get_raw_bindings():
            raise PackageCheckError(f"{function.get_function_name()} has no bindings")
        trigger = function.get_trigger()
        names.append(function.get_function_name())
        by_route[trigger.route] = function

    import azure.functions as func

    sources = {}
    for name in ("azure_functions_runtime", "azure.functions", "numpy", "onnxruntime"):
        module = __import__(name, fromlist=["_"])
        if not _inside(module.__file__, site):
            raise PackageCheckError(f"{name} was loaded from {module.__file__}, not from the package")
        sources[name] = str(Path(module.__file__).resolve().relative_to(package))

    for route in ("health", "predict"):
        if route not in by_route:
            raise PackageCheckError(f"no function serves /api/{route}; routes: {sorted(by_route)}")
    status, health = _call(by_route["health"], func, "GET", "health")
    if status != 200 or not health.get("model_loaded"):
        raise PackageCheckError(f"/api/health answered {status}: {health}")
    expected = json.loads((package / "build_info.json").read_text(encoding="utf-8"))["model_version"]
    if health.get("model_version") != expected:
        raise PackageCheckError(
            f"/api/health serves model {health.get('model_version')}, built with {expected}"
        )
    status, scored = _call(
        by_route["predict"], func, "POST", "predict", json.dumps({"text": SAMPLE_TWEET}).encode()
    )
    if status != 200 or scored.get("label") not in health.get("labels", ()):
        raise PackageCheckError(f"/api/predict answered {status}: {scored}")

    loaded = [m for m in FORBIDDEN_MODULES if m in sys.modules]
    if loaded:
        raise PackageCheckError(f"modules that must never be loaded in serving were: {loaded}")
    from_repo = sorted(
        name
        for name, module in list(sys.modules.items())
        if name != "__main__"
        and _inside(getattr(module, "__file__", None), repo)
        and not _inside(module.__file__, package)
    )
    if from_repo:
        raise PackageCheckError(
            f"modules loaded from the repository instead of the package: {from_repo[:10]}"
        )
    return {
        "functions": sorted(names),
        "routes": sorted(by_route),
        "health": health,
        "predict": {"status": status, "label": scored["label"], "model_version": scored.get("model_version")},
        "loaded_from": sources,
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "package", type=Path, help="the built package folder (scripts/build_package.py --out)"
    )
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.probe:
            print(RESULT_MARKER + json.dumps(probe(args.package)), flush=True)
            return 0
        summary = check(args.package)
    except PackageCheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
