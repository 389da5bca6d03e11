"""Cold import of the built package, with and without its precompiled bytecode.

    python benchmarks/bench_package_import.py build/functionapp [--runs 3]

Flex Consumption serves the package from a read-only mount, so Python cannot cache bytecode there:
without the .pyc files that scripts/build_package.py writes, every cold start compiles the app's
dependencies again. Each run imports function_app (which loads the model) in a new `python -I -B`
process (-B: write no bytecode, as on a read-only mount) with only the package on sys.path; the
"without" runs use a hard-linked copy of the package minus every __pycache__ folder. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from devtools.telemetry_sink import OFFLINE_ENV  # noqa: E402

IMPORT_APP = """
import os, sys, time
package = sys.argv[1]
sys.path[:0] = [package, os.path.join(package, ".python_packages", "lib", "site-packages")]
os.chdir(package)
start = time.perf_counter()
import function_app
print(time.perf_counter() - start)
"""


def import_seconds(package: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")} | OFFLINE_ENV
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", IMPORT_APP, str(package)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return float(result.stdout.strip().splitlines()[-1])


def without_bytecode(package: Path, into: Path) -> Path:
    """A copy of `package` sharing its files (hard links) but with no __pycache__ folder."""
    copy = into / package.name
    shutil.copytree(package, copy, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def summary(seconds: list[float]) -> dict:
    return {"median": round(statistics.median(seconds), 2), "runs": [round(s, 2) for s in seconds]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="a folder built by scripts/build_package.py")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    package = args.package.resolve()
    info = json.loads((package / "build_info.json").read_text())
    if not info.get("bytecode"):
        parser.error(f"{package} was built without bytecode (--no-bytecode or not on Python 3.13)")
    with tempfile.TemporaryDirectory(dir=package.parent) as scratch:
        bare = without_bytecode(package, Path(scratch))
        report = {
            "package": str(package),
            "model_version": info["model_version"],
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "import_function_app_s": {
                "with_bytecode": summary([import_seconds(package) for _ in range(args.runs)]),
                "without_bytecode": summary([import_seconds(bare) for _ in range(args.runs)]),
            },
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
