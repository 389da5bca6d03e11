"""The deployment package, built by scripts/build_package.py exactly as the deploy workflow builds it, then
proven by scripts/check_package.py in a fresh environment that sees only the package: the worker's
indexer finds every function, /api/health serves the packaged model, one tweet is scored. So a missing
file, a missing dependency or an import error ("0 functions found" in Azure) fails here, not in Azure."""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / "model" / "sentiment.onnx"
NOT_DEPLOYED = (
    "training",
    "tests",
    "benchmarks",
    "devtools",
    "infra",
    "scripts",
    "data",
    ".venv",
    ".git",
    ".github",
    ".ci",
)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build_package = load_script("build_package")
check_package = load_script("check_package")

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="model/sentiment.onnx is not built yet")
# The Azure target is Linux x86-64 / CPython 3.13: only such a machine can import the package's wheels.
IS_TARGET = (
    sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64") and sys.version_info[:2] == (3, 13)
)


def run_build_script(*args: str) -> subprocess.CompletedProcess:
    script = REPO_ROOT / "scripts" / "build_package.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False, timeout=300
    )


def package_files(folder: Path) -> list[PurePosixPath]:
    return sorted(PurePosixPath(p.relative_to(folder).as_posix()) for p in folder.rglob("*") if p.is_file())


def app_files(folder: Path) -> list[PurePosixPath]:
    """The package's own files: everything except the installed dependencies."""
    return [p for p in package_files(folder) if p.parts[0] != ".python_packages"]


def assert_nothing_undeployable(folder: Path) -> None:
    files = app_files(folder)
    assert files, "empty package"
    for path in files:
        assert path.parts[0] not in NOT_DEPLOYED, path
        assert path.parts[0] in build_package.APP_PARTS | {build_package.BUILD_INFO, "__pycache__"}, path
    assert not [p for p in files if p.parts[0] == "devtools"]
    assert sorted(p for p in files if p.parts[0] == "model" and p.suffix != ".pyc") == [
        PurePosixPath("model/encoder.onnx"),  # the cascade fitted for the model beside it
        PurePosixPath("model/sentiment.onnx"),
    ]


# ---- file selection: .funcignore is the one source of truth -------------------------------------------


def make_source_tree(root: Path) -> Path:
    """A small repository with every kind of file the real one has, and the real .funcignore."""
    files = {
        "function_app.py": "import azure.functions as func\napp = func.FunctionApp()\n",
        "host.json": '{"version": "2.0"}\n',
        "requirements.txt": "azure-functions\n",
        "README.md": "# readme\n",
        "pyproject.toml": "[project]\n",
        "local.settings.json": '{"Values": {"secret": "x"}}\n',
        "serving/__init__.py": "",
        "serving/runtime.py": "VERSION = 1\n",
        "devtools/local_host.py": "# development host\n",
        "serving/static/ui.html": "<!doctype html>\n",
        "serving/__pycache__/runtime.cpython-313.pyc": "stale",
        "model/sentiment.onnx": "onnx bytes",
        "model/README.md": "# model card\n",
        "model/figures/roc.png": "png",
        "training/train.py": "import sklearn\n",
        "tests/test_x.py": "def test(): pass\n",
        "benchmarks/bench.py": "",
        "infra/main.bicep": "",
        "scripts/build_package.py": "",
        ".github/workflows/ci.yml": "",
        ".venv/lib/site.py": "",
        "mlruns/0/meta.yaml": "",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".funcignore").write_text((REPO_ROOT / ".funcignore").read_text())
    return root


def test_funcignore_keeps_only_the_app(tmp_path):
    source = make_source_tree(tmp_path / "repo")
    selected = build_package.select_files(source)
    assert selected == [
        PurePosixPath(p)
        for p in (
            "function_app.py",
            "host.json",
            "model/sentiment.onnx",
            "requirements.txt",
            "serving/__init__.py",
            "serving/runtime.py",
            "serving/static/ui.html",
        )
    ]
    build_package.check_selection(selected)


def test_a_stray_folder_fails_the_build_instead_of_shipping(tmp_path):
    source = make_source_tree(tmp_path / "repo")
    (source / "notebooks_old").mkdir()
    (source / "notebooks_old" / "explore.py").write_text("")
    (source / "model" / "training-log.txt").write_text("")
    with pytest.raises(build_package.PackageError) as error:
        build_package.check_selection(build_package.select_files(source))
    assert "notebooks_old/explore.py" in str(error.value)
    assert "model/training-log.txt" in str(error.value)
    assert ".funcignore" in str(error.value)


def test_missing_parts_are_named(tmp_path):
    source = make_source_tree(tmp_path / "repo")
    (source / "model" / "sentiment.onnx").unlink()
    (source / "host.json").unlink()
    with pytest.raises(
        build_package.PackageError, match=r"missing from the package: host\.json, model/sentiment\.onnx"
    ):
        build_package.check_selection(build_package.select_files(source))


def test_the_repository_selection_is_the_app(repo_root):
    selected = build_package.select_files(repo_root)
    tops = {p.parts[0] for p in selected}
    assert tops <= build_package.APP_PARTS, tops
    assert not tops & set(NOT_DEPLOYED)
    assert PurePosixPath("devtools/local_host.py") not in selected
    assert not [p for p in selected if "__pycache__" in p.parts]


def test_every_gitignored_pattern_is_also_funcignored(repo_root):
    """`func azure functionapp publish` and azd read only .funcignore: what git ignores (local settings,
    environments, experiment output) must be excluded there too, or it would ship from a developer's tree."""
    funcignore = build_package.load_ignore_spec(repo_root)
    not_excluded = []
    for line in (repo_root / ".gitignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        example = pattern.lstrip("/").replace("**/", "").replace("*", "x").replace("?", "x")
        if not funcignore.match_file(example):
            not_excluded.append(pattern)
    assert not not_excluded, f"add to .funcignore: {not_excluded}"


def test_funcignore_uses_only_patterns_every_reader_agrees_on(repo_root):
    """Core Tools' .funcignore parser is simpler than git's: no re-includes, no `**`."""
    lines = [line.strip() for line in (repo_root / ".funcignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns
    assert not [p for p in patterns if p.startswith("!") or "**" in p]


def test_out_folder_is_never_a_source_or_a_foreign_folder(tmp_path):
    source = make_source_tree(tmp_path / "repo")
    with pytest.raises(build_package.PackageError, match="overwrite the sources"):
        build_package.prepare_out(source, source)
    with pytest.raises(build_package.PackageError, match="overwrite the sources"):
        build_package.prepare_out(tmp_path, source)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_text("")
    with pytest.raises(build_package.PackageError, match="not empty"):
        build_package.prepare_out(foreign, source)
    assert (foreign / "holiday.jpg").exists()


def test_dependencies_are_resolved_for_azure_not_for_this_machine(tmp_path):
    command = build_package.pip_install_command(tmp_path / "requirements.txt", tmp_path / "site")
    joined = " ".join(command)
    assert "--platform manylinux_2_28_x86_64" in joined
    assert "--platform manylinux2014_x86_64" in joined
    assert "--python-version 3.13" in joined and "--implementation cp" in joined and "--abi cp313" in joined
    assert "--only-binary=:all:" in command
    assert command[command.index("--target") + 1] == str(tmp_path / "site")
    local = build_package.pip_install_command(
        tmp_path / "requirements.txt", tmp_path / "site", current_platform=True
    )
    assert "--platform" not in local and "--only-binary=:all:" not in local


def test_bytecode_is_valid_whatever_the_file_times(tmp_path):
    """Flex Consumption runs the package read-only: .pyc files must be usable as shipped, so they are
    unchecked-hash ones (PEP 552), which zip timestamps and clock skew cannot invalidate."""
    if sys.version_info[:2] != (3, 13):
        pytest.skip("bytecode is written only by the target Python, 3.13")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("ANSWER = 42\n")
    assert build_package.byte_compile(tmp_path) is True
    (pyc,) = (tmp_path / "pkg" / "__pycache__").glob("mod.cpython-313.pyc")
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01, "hash-based and not checked against the source"


# ---- the real build -------------------------------------------------------------------------------------


@needs_model
def test_cli_builds_and_zips_the_app_files(tmp_path):
    """`--skip-deps --zip` through the command line: the selection, build_info.json, the zip, the sizes."""
    out = tmp_path / "functionapp"
    result = run_build_script("--out", str(out), "--skip-deps", "--zip")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    print(json.dumps(report, indent=2))
    assert_nothing_undeployable(out)
    info = json.loads((out / "build_info.json").read_text())
    metadata = build_package.read_model_metadata(MODEL)
    served, _ = build_package.served_identity(REPO_ROOT, metadata)  # the cascade's version when paired
    assert info["model_version"] == served == report["model_version"]
    assert info["ngram_model_version"] == metadata["model_version"]
    assert info["dependencies"] is False
    assert report["parts_bytes"]["model"] == sum(p.stat().st_size for p in MODEL.parent.glob("*.onnx"))
    assert report["parts_bytes"]["dependencies"] == 0
    assert report["total_bytes"] == sum(report["parts_bytes"].values())
    with zipfile.ZipFile(out.with_name("functionapp.zip")) as archive:
        names = sorted(PurePosixPath(n) for n in archive.namelist())
        assert "host.json" in archive.namelist()  # at the zip's root, not under a folder
    assert names == package_files(out)
    again = run_build_script("--out", str(out), "--skip-deps")
    assert again.returncode == 0, "rebuilding over a previous package must work"


@pytest.fixture(scope="session")
def worker_python(tmp_path_factory) -> Path:
    """A fresh virtual environment holding only the Functions worker library (the pinned version)."""
    return check_package.create_worker_env(tmp_path_factory.mktemp("worker") / "venv")


@pytest.fixture(scope="session")
def azure_package(tmp_path_factory) -> tuple[Path, dict]:
    """The package as the deploy workflow builds it: Linux x86-64 / CPython 3.13 wheels, byte-compiled."""
    if not MODEL.is_file():
        pytest.skip("model/sentiment.onnx is not built yet")
    out = tmp_path_factory.mktemp("package") / "functionapp"
    # Bytecode is left out only to save a quarter of a minute: .pyc files are caches, the probe's
    # imports are the same without them; test_bytecode_is_valid_whatever_the_file_times covers them.
    report = build_package.build(out, current_platform=not IS_TARGET, bytecode=False)
    print(json.dumps(report, indent=2))
    return out, report


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one builds the package and the worker environment
def test_package_serves_in_a_fresh_environment(azure_package, worker_python):
    if not IS_TARGET:
        pytest.skip("only Linux x86-64 / CPython 3.13 can load the Azure wheels")
    out, _ = azure_package
    summary = check_package.run_probe(out, worker_python)
    print(json.dumps(summary, indent=2))
    assert {"predict", "feedback", "health", "ui", "openapi"} <= set(summary["functions"])
    info = json.loads((out / "build_info.json").read_text())
    assert summary["health"] == {
        "status": "ok",
        "model_version": info["model_version"],
        "model_loaded": True,
        "threshold": info["threshold"],
        "labels": info["labels"],
        "encoder": "on",  # the packaged cascade matches the packaged model (build_info names the pair)
    }
    assert summary["predict"]["status"] == 200
    assert summary["predict"]["model_version"] == info["model_version"]
    for module, path in summary["loaded_from"].items():
        assert path.startswith(".python_packages/lib/site-packages/"), (module, path)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one builds the package and the worker environment
def test_package_contents_and_size(azure_package):
    out, report = azure_package
    assert_nothing_undeployable(out)
    site = out / ".python_packages" / "lib" / "site-packages"
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    # The worker library too: on Python 3.13 Azure runs the version the app's requirements pin.
    assert {
        "azure_functions",
        "azure_functions_runtime",
        "onnxruntime",
        "numpy",
        "azure_monitor_opentelemetry",
    } <= installed
    for tool in ("scikit_learn", "skl2onnx", "onnx", "pandas", "mlflow_skinny", "pytest"):
        assert tool not in installed, f"{tool} must not be deployed"
    assert not (site / "bin").exists()
    info = json.loads((out / "build_info.json").read_text())
    assert info["dependencies"] is True and info["python"] == "3.13"
    assert report["parts_bytes"]["dependencies"] > report["parts_bytes"]["model"] > 0
    print(f"package size: {report['total_mib']} MiB {report['parts_mib']}")


@pytest.mark.slow
@pytest.mark.timeout(900)  # the first one builds the package and the worker environment
@needs_model
def test_a_package_without_its_dependencies_fails_the_check(tmp_path, worker_python):
    if not IS_TARGET:
        pytest.skip("only Linux x86-64 / CPython 3.13 runs the worker check")
    out = tmp_path / "functionapp"
    build_package.build(out, skip_deps=True, bytecode=False)
    with pytest.raises(check_package.PackageCheckError, match="No module named"):
        check_package.run_probe(out, worker_python)


def test_build_info_names_what_the_app_will_serve_and_its_drift_baseline(tmp_path):
    """With a cascade beside the model, the app answers under the cascade's version and its scores are
    the cascade's: build_info.json carries that version and the cascade's validation histogram (the
    score-drift baseline deploy passes to the alert); a cascade fitted for another model is refused."""
    from serving import contract

    model = REPO_ROOT / "model" / "sentiment.onnx"
    cascade = REPO_ROOT / "model" / "encoder.onnx"
    metadata = build_package.read_model_metadata(model)
    version, baseline = build_package.served_identity(REPO_ROOT, metadata)
    paired = contract.read_metadata(cascade, strict=False)
    assert version == paired["model_version"] != metadata["model_version"]
    assert baseline == paired["validation_histogram"] != metadata["validation_histogram"]
    assert len(baseline) == 10 and sum(baseline) > 0
    alone = tmp_path / "alone"
    (alone / "model").mkdir(parents=True)
    assert build_package.served_identity(alone, metadata) == (
        metadata["model_version"],
        metadata["validation_histogram"],
    )
    with pytest.raises(build_package.PackageError, match="fitted with n-gram model"):
        build_package.served_identity(REPO_ROOT, {**metadata, "model_version": "2020.01.01-00000000"})
