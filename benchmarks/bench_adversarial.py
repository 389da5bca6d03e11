"""Adversarial benchmark: what the worst legal requests cost, and how the service answers hostile ones.

    python -m benchmarks.bench_adversarial [--fuzz-requests 30000] [--out benchmarks/results/adversarial.json]

1. Every worst legal body of ``devtools.adversarial`` (≤ 1 MiB each) through the registered ``predict``
   function, each in a fresh interpreter (the app imported, the model loaded, as at cold start): wall time
   of the first and of a second identical request, and the process's peak RSS. Targets: ≤ 1 s, ≤ 500 MB.
2. The normalizer on 5,000-character texts of the worst kinds, in a fresh interpreter (its caches cold),
   first call and median of 20. Target: ≤ 10 ms.
3. Every hostile body: the status and whether the answer is JSON (target: no 5xx, all JSON).
4. Generated requests over HTTP against ``python -m devtools.local_host``: schemathesis derives valid and
   invalid bodies for /predict and /feedback from the served OpenAPI document; every request counted by
   status class. Target: ≥ 30,000 requests, 0 server errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"request_s": 1.0, "peak_rss_mb": 500.0, "normalize_5000_chars_ms": 10.0, "fuzz_requests": 30_000}

CASE_PROBE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import azure.functions as func
import function_app
from devtools.adversarial import worst_legal_bodies
case = next(c for c in worst_legal_bodies() if c.name == {name!r})
predict = next(f for f in function_app.app.get_functions() if f.get_function_name() == "predict")
handler = predict.get_user_function()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
seconds, statuses = [], []
for _ in range(2):
    request = func.HttpRequest(method="POST", url="/api/predict", headers=case.headers, body=case.body)
    start = time.perf_counter()
    statuses.append(handler(request).status_code)
    seconds.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"bytes": len(case.body), "statuses": statuses, "first_s": seconds[0],
    "second_s": seconds[1], "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024}}))
"""

NORMALIZER_PROBE = """
import json, statistics, sys, time, unicodedata
sys.path.insert(0, {root!r})
from serving.normalizer import normalize
symbols = "".join(c for c in map(chr, range(0x2190, 0x1FAFF)) if unicodedata.category(c) == "So")[:5000]
texts = {{
    "distinct_symbols": symbols,
    "one_symbol": "\\u2b83" * 5000,
    "url_backtracking": "a." * 2499 + "/",
    "www_backtracking": "www." + "a." * 2497 + "/",
    "mojibake": ("\\u00e2\\u20ac\\u2122\\u00ef\\u00bf\\u00bd" * 900)[:5000],
    "emoticons": (":) :( " * 900)[:5000],
    "html_entities": ("&amp;&lt;&#128545;" * 300)[:5000],
    "cjk": "".join(map(chr, range(0x4E00, 0x4E00 + 5000))),
    "ascii_words": ("delayed flight lost bag " * 250)[:5000],
}}
out = {{}}
for name, text in texts.items():
    start = time.perf_counter(); normalize(text); first = time.perf_counter() - start
    runs = []
    for _ in range(20):
        start = time.perf_counter(); normalize(text); runs.append(time.perf_counter() - start)
    out[name] = {{"chars": len(text), "first_ms": first * 1e3, "median_ms": statistics.median(runs) * 1e3}}
print(json.dumps(out))
"""


def fresh(code: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=child_env(),
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_env() -> dict[str, str]:
    from devtools.telemetry_sink import OFFLINE_ENV

    env = {k: v for k, v in os.environ.items() if "APPLICATIONINSIGHTS_CONNECTION" not in k}
    return env | OFFLINE_ENV


def worst_bodies() -> dict:
    from devtools.adversarial import worst_legal_bodies

    results = {}
    for case in worst_legal_bodies():
        measured = fresh(CASE_PROBE.format(root=str(REPO_ROOT), name=case.name))
        measured["meets_target"] = (
            measured["statuses"] == [200, 200]
            and max(measured["first_s"], measured["second_s"]) <= TARGETS["request_s"]
            and measured["peak_rss_mb"] <= TARGETS["peak_rss_mb"]
        )
        results[case.name] = measured
        print(f"{case.name}: {json.dumps(measured)}", file=sys.stderr)
    return results


def hostile_bodies() -> dict:
    import azure.functions as func

    sys.path.insert(0, str(REPO_ROOT))
    import function_app
    from devtools.adversarial import hostile_bodies as cases

    handler = next(f for f in function_app.app.get_functions() if f.get_function_name() == "predict")
    results = {}
    for case in cases():
        start = time.perf_counter()
        response = handler.get_user_function()(
            func.HttpRequest(method="POST", url="/api/predict", headers=case.headers, body=case.body)
        )
        elapsed = time.perf_counter() - start
        try:
            json.loads(response.get_body())
            is_json = True
        except ValueError:
            is_json = False
        results[case.name] = {
            "status": response.status_code,
            "expected": sorted(case.statuses),
            "json": is_json,
            "ms": round(elapsed * 1e3, 3),
        }
    return results


def fuzz(total: int) -> dict:
    """schemathesis-generated requests against the local host, counted by status class."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.generation import GenerationMode

    from devtools.local_host import HostProcess

    host = HostProcess("--workers", "2", env=child_env())
    counts: dict[str, int] = {}
    server_errors: list[str] = []
    started = time.perf_counter()
    try:
        schema = schemathesis.openapi.from_url(f"{host.base}/api/openapi.json")
        schema.config.generation.update(with_security_parameters=False)
        session = requests.Session()
        plan = [(path, mode) for path in ("/predict", "/feedback") for mode in GenerationMode]
        per_run = -(-total // len(plan))

        def sender(path: str, mode: GenerationMode):
            @settings(
                max_examples=per_run,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=schema[path]["POST"].as_strategy(generation_mode=mode))
            def send(case):
                response = case.call(base_url=f"{host.base}/api", session=session)
                key = f"{response.status_code // 100}xx"
                counts[key] = counts.get(key, 0) + 1
                if response.status_code >= 500 and len(server_errors) < 20:
                    server_errors.append(f"{path} {response.status_code} {response.text[:200]}")

            return send

        for path, mode in plan:
            sender(path, mode)()
        session.close()
    finally:
        host.stop()
    sent = sum(counts.values())
    return {
        "requests": sent,
        "by_status_class": counts,
        "server_errors": server_errors,
        "seconds": round(time.perf_counter() - started, 1),
        "meets_target": sent >= TARGETS["fuzz_requests"] and not counts.get("5xx"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-requests", type=int, default=30_000, help="0 skips the HTTP part")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "adversarial.json")
    args = parser.parse_args()
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "targets": TARGETS,
    }
    report["worst_legal_bodies"] = worst_bodies()
    normalizer = fresh(NORMALIZER_PROBE.format(root=str(REPO_ROOT)))
    for figures in normalizer.values():
        figures["meets_target"] = (
            max(figures["first_ms"], figures["median_ms"]) <= TARGETS["normalize_5000_chars_ms"]
        )
    report["normalizer_5000_chars"] = normalizer
    report["hostile_bodies"] = hostile = hostile_bodies()
    report["hostile_summary"] = {
        "cases": len(hostile),
        "server_errors": sum(r["status"] >= 500 for r in hostile.values()),
        "not_json": sum(not r["json"] for r in hostile.values()),
        "unexpected_status": sorted(name for name, r in hostile.items() if r["status"] not in r["expected"]),
    }
    if args.fuzz_requests:
        report["http_fuzz"] = fuzz(args.fuzz_requests)
    worst = report["worst_legal_bodies"].values()
    report["summary"] = {
        "max_request_s": round(max(max(r["first_s"], r["second_s"]) for r in worst), 3),
        "max_peak_rss_mb": round(max(r["peak_rss_mb"] for r in worst), 1),
        "max_normalize_ms": round(max(max(r["first_ms"], r["median_ms"]) for r in normalizer.values()), 2),
        "median_normalize_ms": round(statistics.median(r["median_ms"] for r in normalizer.values()), 3),
        "all_targets_met": all(r["meets_target"] for r in worst)
        and all(r["meets_target"] for r in normalizer.values())
        and report["hostile_summary"]["server_errors"] == 0
        and report["hostile_summary"]["not_json"] == 0
        and report.get("http_fuzz", {"meets_target": True})["meets_target"],
    }
    text = json.dumps(report, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
