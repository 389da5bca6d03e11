"""Build the Azure Functions deployment package: the exact folder (or zip) the deploy workflow ships.

    python scripts/build_package.py --out build/functionapp [--skip-deps] [--zip [PATH]] [--current-platform]

Files: the repository minus what `.funcignore` excludes. `.funcignore` is the one source of truth, shared
with `func azure functionapp publish` and `azd deploy`; a guard then refuses anything outside the app's
known parts (function_app.py, host.json, requirements.txt, serving/, model/*.onnx), so a stray folder
fails the build instead of reaching Azure.

Dependencies: requirements-deploy.lock.txt (requirements.txt resolved for Linux x86-64 / CPython 3.13,
every package pinned with its hashes) installed with `pip --require-hashes` as Linux x86-64 / CPython
3.13 wheels into .python_packages/lib/site-packages, where the Python worker looks: a wheel that is not
the one locked fails the build. A lock whose pins differ from requirements.txt fails it too.
Everything is then byte-compiled into unchecked-hash .pyc files: Flex Consumption runs the package
from a read-only mount, so without them every cold start compiles numpy, onnxruntime and
OpenTelemetry from source again.

build_info.json (inside the package) records the model version the smoke test expects from
/api/health. The package size, total and per part, is printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: the model contract lives in the app's own package
    sys.path.insert(0, str(REPO_ROOT))
from serving import contract  # noqa: E402  (standard library only)

IGNORE_FILE = ".funcignore"
BUILD_INFO = "build_info.json"
MODEL_FILE = PurePosixPath("model/sentiment.onnx")
# The optional cascade beside it: when present, the version the app reports is the cascade's.
CASCADE_FILE = MODEL_FILE.parent / contract.CASCADE_FILE_NAME
SITE_PACKAGES = PurePosixPath(".python_packages/lib/site-packages")
REQUIRED_FILES = (
    PurePosixPath("function_app.py"),
    PurePosixPath("host.json"),
    PurePosixPath("requirements.txt"),
)
APP_PARTS = {"function_app.py", "host.json", "requirements.txt", "serving", "model"}
# requirements.txt resolved with hashes; regenerated (docs/how-to/deploy.md) when requirements.txt changes.
LOCK_FILE = "requirements-deploy.lock.txt"

# The Azure runtime: Linux x86-64, CPython 3.13 (CONTRACT). Newest manylinux tag first.
TARGET_PYTHON = "3.13"
TARGET_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


class PackageError(RuntimeError):
    """The package cannot be built as asked; the message says what to change."""


def load_ignore_spec(source: Path):
    """The `.funcignore` patterns, with gitignore semantics (what Core Tools and azd apply)."""
    import pathspec  # build tool only (requirements-test.txt); not needed to read this module

    ignore_file = source / IGNORE_FILE
    if not ignore_file.is_file():
        raise PackageError(f"{ignore_file} is missing: it lists what never goes to Azure")
    return pathspec.GitIgnoreSpec.from_lines(ignore_file.read_text(encoding="utf-8").splitlines())


def select_files(source: Path, *, skip: Iterable[Path] = ()) -> list[PurePosixPath]:
    """Every file under `source` that `.funcignore` does not exclude, as sorted relative POSIX paths."""
    spec = load_ignore_spec(source)
    skipped = {p.resolve() for p in skip}
    selected: list[PurePosixPath] = []
    for folder, dirnames, filenames in os.walk(source):
        here = Path(folder)
        rel_here = PurePosixPath(here.relative_to(source).as_posix())
        kept = []
        for name in sorted(dirnames):
            rel = rel_here / name
            if (here / name).resolve() in skipped or spec.match_file(f"{rel}/"):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            rel = rel_here / name
            if not spec.match_file(str(rel)):
                selected.append(rel)
    return sorted(selected)


def check_selection(files: list[PurePosixPath]) -> None:
    """Refuse a selection that lacks a required file or carries something the app does not need."""
    present = set(files)
    missing = [str(f) for f in (*REQUIRED_FILES, MODEL_FILE) if f not in present]
    if missing:
        raise PackageError(f"missing from the package: {', '.join(missing)}")
    if not any(f.parts[0] == "serving" and f.suffix == ".py" for f in files):
        raise PackageError("missing from the package: the serving/ code")
    strays = [
        str(f)
        for f in files
        if f.parts[0] not in APP_PARTS
        or (f.parts[0] == "model" and f.suffix != ".onnx")
        or (len(f.parts) == 1 and f.parts[0] in {"serving", "model"})
    ]
    if strays:
        raise PackageError(
            "not part of the deployed app (exclude them in .funcignore, or extend APP_PARTS in "
            f"scripts/build_package.py if the app really needs them): {', '.join(strays)}"
        )


def _pins(lines: Iterable[str]) -> dict[str, str]:
    """`name==version` lines (comments, markers, hashes and continuations aside), names normalized."""
    pins = {}
    for line in lines:
        spec = line.split("#", 1)[0].split(";", 1)[0].strip().rstrip("\\").strip()
        if "==" in spec and not spec.startswith("-"):
            name, _, version = spec.partition("==")
            pins[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.split()[0]
    return pins


def check_lock(requirements: Path, lock: Path) -> None:
    """Refuse a lock that does not pin requirements.txt's packages at requirements.txt's versions."""
    if not lock.is_file():
        raise PackageError(f"{lock} is missing: generate it (docs/how-to/deploy.md, 'Dependency lock')")
    wanted = _pins(requirements.read_text(encoding="utf-8").splitlines())
    locked = _pins(lock.read_text(encoding="utf-8").splitlines())
    stale = sorted(
        f"{n}=={v} (lock: {locked.get(n, 'absent')})" for n, v in wanted.items() if locked.get(n) != v
    )
    if stale:
        raise PackageError(
            f"{lock.name} is out of date with {requirements.name}: {', '.join(stale)}; regenerate it"
        )


def pip_install_command(
    requirements: Path, target: Path, *, current_platform: bool = False, python: str | None = None
) -> list[str]:
    """The pip command that installs the lock `requirements` into `target` for Azure (or for this machine).
    --require-hashes: every distribution, dependencies included, must match a hash of the lock."""
    command = [python or sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    command += [
        "--no-compile",
        "--require-hashes",
        "--target",
        str(target),
        "--requirement",
        str(requirements),
    ]
    if not current_platform:
        for platform in TARGET_PLATFORMS:
            command += ["--platform", platform]
        abi = "cp" + TARGET_PYTHON.replace(".", "")
        command += ["--python-version", TARGET_PYTHON, "--implementation", "cp", "--abi", abi]
        command += ["--only-binary=:all:"]
    return command


def install_dependencies(requirements: Path, target: Path, *, current_platform: bool = False) -> None:
    """pip-install the serving lock into `target`; pip's own output is shown only on failure."""
    target.mkdir(parents=True, exist_ok=True)
    command = pip_install_command(requirements, target, current_platform=current_platform)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise PackageError(f"pip could not install {requirements.name} (exit {result.returncode})")
    # Console scripts carry this machine's interpreter path in their shebang: useless in Azure.
    shutil.rmtree(target / "bin", ignore_errors=True)


def byte_compile(folder: Path) -> bool:
    """Write unchecked-hash .pyc files (valid whatever the file times), when this is the target Python."""
    if sys.version_info[:2] != tuple(int(p) for p in TARGET_PYTHON.split(".")):
        return False
    complete = compileall.compile_dir(
        folder, quiet=2, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    if not complete:  # e.g. a dependency shipping a deliberately invalid file: it compiles at import, if ever
        print("warning: some files could not be byte-compiled", file=sys.stderr)
    return True


def served_identity(source: Path, metadata: dict) -> tuple[str, object]:
    """The version the app will report and its score-drift baseline: the cascade's when a cascade file is
    packaged (it must have been fitted with this n-gram model, or the app would serve the n-gram model
    alone), else the model's."""
    cascade_metadata = contract.paired_cascade_metadata(source / MODEL_FILE)
    if cascade_metadata is None:
        return str(metadata[contract.MODEL_VERSION]), metadata.get(contract.VALIDATION_HISTOGRAM)
    fitted_with = cascade_metadata.get(contract.NGRAM_VERSION_KEY)
    packaged = metadata[contract.MODEL_VERSION]
    if fitted_with != packaged:
        raise PackageError(
            f"{CASCADE_FILE} was fitted with n-gram model {fitted_with}, not {packaged}: refit it "
            "(python -m training cascade) or remove it"
        )
    return str(cascade_metadata[contract.MODEL_VERSION]), cascade_metadata.get(
        contract.VALIDATION_HISTOGRAM, metadata.get(contract.VALIDATION_HISTOGRAM)
    )


def read_model_metadata(model_path: Path) -> dict:
    """The ONNX model's metadata (every value a JSON document, per the model artifact contract)."""
    metadata = contract.read_metadata(model_path, strict=False)
    if not metadata.get(contract.MODEL_VERSION):
        raise PackageError(f"{model_path} has no model_version in its metadata")
    return metadata


def source_commit(source: Path) -> str | None:
    """The commit being packaged: the checkout's HEAD (a redeploy may check out an older commit than
    the one that started the workflow), else GITHUB_SHA, else unknown."""
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        commit = result.stdout.strip() if result.returncode == 0 else ""
    except OSError:
        commit = ""
    return commit or os.environ.get("GITHUB_SHA") or None


def prepare_out(out: Path, source: Path) -> None:
    """Start from an empty folder; only a previous package (it has build_info.json) is ever deleted."""
    if out.resolve() == source.resolve() or source.resolve().is_relative_to(out.resolve()):
        raise PackageError(f"--out {out} would overwrite the sources")
    if out.exists():
        if any(out.iterdir()) and not (out / BUILD_INFO).is_file():
            raise PackageError(
                f"--out {out} is not empty and holds no previous package: choose another folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def measure(out: Path, *, largest: int = 6) -> dict:
    """Package size, total and per part (app code, model, dependencies), in bytes and MiB."""
    site = out / SITE_PACKAGES
    model = folder_bytes(out / "model") if (out / "model").exists() else 0
    dependencies = folder_bytes(out / ".python_packages") if site.exists() else 0
    total = folder_bytes(out)
    parts = {"app": total - model - dependencies, "model": model, "dependencies": dependencies}
    biggest = {}
    if site.exists():
        sizes = {p.name: folder_bytes(p) for p in site.iterdir() if not p.name.endswith(".dist-info")}
        biggest = dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:largest])
    return {
        "package": str(out),
        "files": sum(1 for p in out.rglob("*") if p.is_file()),
        "total_bytes": total,
        "total_mib": round(total / 2**20, 1),
        "parts_bytes": parts,
        "parts_mib": {k: round(v / 2**20, 2) for k, v in parts.items()},
        "largest_dependencies_mib": {k: round(v / 2**20, 1) for k, v in biggest.items()},
    }


def write_zip(out: Path, zip_path: Path) -> int:
    """Zip the package's contents (not the folder itself: host.json must sit at the zip's root)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(out.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(out).as_posix())
    return zip_path.stat().st_size


def build(
    out: Path,
    *,
    source: Path = REPO_ROOT,
    skip_deps: bool = False,
    current_platform: bool = False,
    bytecode: bool = True,
    zip_path: Path | None = None,
) -> dict:
    """Build the package into `out` and return its size report (see `measure`)."""
    source = source.resolve()
    out = out.resolve()
    files = select_files(source, skip=[out])
    check_selection(files)
    metadata = read_model_metadata(source / MODEL_FILE)
    served_version, baseline = served_identity(source, metadata)
    prepare_out(out, source)
    for rel in files:
        destination = out / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, destination)
    if not skip_deps:
        check_lock(out / "requirements.txt", source / LOCK_FILE)
        install_dependencies(source / LOCK_FILE, out / SITE_PACKAGES, current_platform=current_platform)
    compiled = bytecode and byte_compile(out)
    requirements = (out / "requirements.txt").read_bytes()
    info = {
        "model_version": served_version,
        "ngram_model_version": metadata[contract.MODEL_VERSION],
        "normalizer_version": metadata.get(contract.NORMALIZER_VERSION_KEY),
        "threshold": metadata.get(contract.THRESHOLD),
        "labels": metadata.get(contract.LABELS_KEY),
        # The score-drift alert's baseline: deploy passes it to infra/main.bicep (scoreBaselineHistogram).
        "validation_histogram": baseline,
        "source_commit": source_commit(source),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": TARGET_PYTHON,
        "platform": "current" if current_platform else TARGET_PLATFORMS[0],
        "dependencies": not skip_deps,
        "bytecode": compiled,
        "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
    }
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    report = measure(out)
    report["model_version"] = info["model_version"]
    if zip_path is not None:
        report["zip"] = str(zip_path.resolve())
        report["zip_bytes"] = write_zip(out, zip_path.resolve())
        report["zip_mib"] = round(report["zip_bytes"] / 2**20, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to build the package in (emptied)")
    parser.add_argument("--skip-deps", action="store_true", help="leave out .python_packages (quick look)")
    parser.add_argument(
        "--zip",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="also write a zip of the package (default PATH: <out>.zip)",
    )
    parser.add_argument(
        "--current-platform",
        action="store_true",
        help="install wheels for this machine instead of Linux x86-64 / CPython 3.13 (local runs only)",
    )
    parser.add_argument("--no-bytecode", action="store_true", help="skip the .pyc precompilation")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    zip_path = None
    if args.zip is True:
        zip_path = args.out.with_name(args.out.name + ".zip")
    elif args.zip:
        zip_path = Path(args.zip)
    try:
        report = build(
            args.out,
            source=args.source,
            skip_deps=args.skip_deps,
            current_platform=args.current_platform,
            bytecode=not args.no_bytecode,
            zip_path=zip_path,
        )
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
