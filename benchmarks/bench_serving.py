"""Serving benchmark: prints one JSON document with the figures the serving targets are judged on, each
beside the earlier prototype's way (a scikit-learn pipeline loaded from joblib) measured in the same run.

    python -m benchmarks.bench_serving [--data-dir DIR] [--model model/sentiment.onnx] [--out FILE]
                                       [--http-only] [--workers N]

Measured: in-process single-text latency (through the registered ``predict`` function object and through
the model runtime alone) and a batch of 1,000 texts; cold start in fresh processes (import + model load +
first prediction; median of several runs) with the import-time breakdown from ``python -X importtime``;
HTTP latency at 1 and 16 concurrent clients, and at 16 clients pausing 40 ms between requests, against
``python -m devtools.local_host`` (its uvicorn worker processes; the "server" field says which) with
``wrk``, with the answers counted by status class; and the memory of the host's processes. Samples of
the two ways are interleaved in rounds so that noise from other work on the machine hits both alike.
``--http-only`` runs the HTTP part alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from devtools.local_host import HostProcess
from devtools.telemetry_sink import OFFLINE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "cold_start_s": 0.5,
    "cold_start_ratio_to_prototype": 1 / 3,
    "in_process_single_p99_ms": 1.0,
    "in_process_single_p99_cpu_ms": 1.0,  # the same target on CPU time: what the code costs, load aside
    "http_p99_ms_16_clients": 10.0,
    "serving_rss_mb": 300.0,
    "http_5xx_16_clients": 0,
}
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def portable(value: str | Path) -> str:
    """A path as the results record it: the data folder as DATA and repository files relative to the
    repository, so the committed JSON names no machine's folders."""
    text = str(value)
    data = os.environ.get("SENTIMENT_DATA_DIR", "").rstrip("/")
    if data and (text == data or text.startswith(data + "/")):
        return "DATA" + text[len(data) :]
    if Path(text).is_absolute():
        try:
            return str(Path(text).resolve().relative_to(REPO_ROOT))
        except ValueError:
            pass
    return text


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONNECTION")}
    env.update(OFFLINE_ENV)
    env.update(extra)
    return env


def summary_ms(samples_ns: list[int] | np.ndarray, cpu_ns: list[int] | None = None) -> dict:
    """Wall-clock percentiles; with ``cpu_ns``, the calling thread's CPU time percentiles beside them
    (wall = what a caller waits, including time the busy machine gives to other processes)."""
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    summary = {
        "n": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 4),
        "p90_ms": round(float(np.percentile(values, 90)), 4),
        "p99_ms": round(float(np.percentile(values, 99)), 4),
        "max_ms": round(float(values.max()), 4),
        "mean_ms": round(float(values.mean()), 4),
    }
    if cpu_ns is not None:
        cpu = np.asarray(cpu_ns, dtype=np.float64) / 1e6
        summary["cpu_p50_ms"] = round(float(np.percentile(cpu, 50)), 4)
        summary["cpu_p99_ms"] = round(float(np.percentile(cpu, 99)), 4)
    return summary


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 3) if theirs else None


def time_calls(call, arguments, samples: list[int], cpu_samples: list[int]) -> None:
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for argument in arguments:
        started, started_cpu = clock(), cpu_clock()
        call(argument)
        cpu_samples.append(cpu_clock() - started_cpu)
        samples.append(clock() - started)


# --------------------------------------------------------------------------------------------- in-process
def in_process(
    texts: list[str], batch: list[str], pipeline, rounds: int, per_round: int, batch_runs: int
) -> dict:
    """Single-text and batch latency of the app, the runtime and the prototype, interleaved."""
    import azure.functions as func

    import function_app

    if function_app.MODEL_STATE.model is None:
        raise SystemExit(f"the app has no model: {function_app.MODEL_STATE.reason}")
    model = function_app.MODEL_STATE.model
    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    predict = functions["predict"].get_user_function()

    def request(body: dict) -> func.HttpRequest:
        return func.HttpRequest(
            method="POST",
            url="http://127.0.0.1/api/predict",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode(),
        )

    def through_function(req: func.HttpRequest) -> None:
        response = predict(req)
        if response.status_code != 200:
            raise SystemExit(f"predict answered {response.status_code}: {response.get_body()[:300]!r}")

    plain = [request({"text": t}) for t in texts]
    explained = [request({"text": t, "explain": True}) for t in texts]
    singles = [[t] for t in texts]
    ways = {
        "function": (through_function, plain),
        "function_explain": (through_function, explained),
        "runtime": (model.predict, singles),
        "prototype": (pipeline.predict_proba, singles),
    }
    for call, arguments in ways.values():  # warm-up: first-call allocations, caches
        time_calls(call, arguments[:200], [], [])
    samples: dict[str, list[int]] = {name: [] for name in ways}
    cpu_samples: dict[str, list[int]] = {name: [] for name in ways}
    for round_index in range(rounds):
        start = (round_index * per_round) % len(texts)
        for name, (call, arguments) in ways.items():
            chunk = (arguments * 2)[start : start + per_round]
            time_calls(call, chunk, samples[name], cpu_samples[name])

    batch_request = request({"texts": batch})
    batch_ways = {
        "function": lambda: through_function(batch_request),
        "runtime": lambda: model.predict(batch),
        "prototype": lambda: pipeline.predict_proba(batch),
    }
    batch_samples: dict[str, list[int]] = {name: [] for name in batch_ways}
    for _ in range(batch_runs):
        for name, call in batch_ways.items():
            started = time.perf_counter_ns()
            call()
            batch_samples[name].append(time.perf_counter_ns() - started)

    single = {name: summary_ms(values, cpu_samples[name]) for name, values in samples.items()}
    batches = {}
    for name, values in batch_samples.items():
        median_ms = statistics.median(values) / 1e6
        batches[name] = {
            "runs": len(values),
            "median_ms": round(median_ms, 2),
            "min_ms": round(min(values) / 1e6, 2),
            "per_text_us": round(median_ms * 1000 / len(batch), 2),
        }
    return {
        "model_version": model.version,
        "single_text": single,
        "batch_1000": batches,
        "ratios_to_prototype": {
            "single_p50_function": ratio(single["function"]["p50_ms"], single["prototype"]["p50_ms"]),
            "single_p99_function": ratio(single["function"]["p99_ms"], single["prototype"]["p99_ms"]),
            "single_p50_runtime": ratio(single["runtime"]["p50_ms"], single["prototype"]["p50_ms"]),
            "single_p99_runtime": ratio(single["runtime"]["p99_ms"], single["prototype"]["p99_ms"]),
            "batch_function": ratio(batches["function"]["median_ms"], batches["prototype"]["median_ms"]),
            "batch_runtime": ratio(batches["runtime"]["median_ms"], batches["prototype"]["median_ms"]),
        },
    }


# --------------------------------------------------------------------------------------------- cold start
def run_child(args: list[str], env: dict[str, str]) -> tuple[dict, float, str]:
    """A fresh interpreter; returns its JSON line, its wall time (interpreter start included), stderr."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall, done.stderr


def import_breakdown(stderr: str, top: int, root: str | None = None) -> dict:
    """``-X importtime`` lines -> the slowest top-level imports (cumulative), the packages with the most
    own time, and with ``root`` that module's direct imports and its own time (for ``function_app``,
    own time = building the app and loading the model at import)."""
    top_level, by_package, pending, children, root_own = [], {}, [], [], None
    for match in _IMPORT_LINE.finditer(stderr):  # printed children first, then their parent
        own, cumulative, level, name = int(match[1]), int(match[2]), len(match[3]) // 2, match[4]
        if level == 0:
            top_level.append((cumulative, name))
            if name == root:
                children, root_own = pending, own
            pending = []
        elif level == 1:
            pending.append((cumulative, name))
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0) + own
    top_level.sort(reverse=True)
    children.sort(reverse=True)
    packages = sorted(by_package.items(), key=lambda item: -item[1])
    report = {
        "top_level_cumulative_ms": {name: round(us / 1000, 1) for us, name in top_level[:top]},
        "packages_own_time_ms": {name: round(us / 1000, 1) for name, us in packages[:top]},
        "all_imports_ms": round(sum(by_package.values()) / 1000, 1),
    }
    if root is not None:
        report[f"{root}_imports_cumulative_ms"] = {name: round(us / 1000, 1) for us, name in children[:top]}
        report[f"{root}_own_ms"] = None if root_own is None else round(root_own / 1000, 1)
    return report


def alternating_runs(ways: dict[str, tuple[list[str], dict[str, str]]], runs: int) -> dict[str, list[dict]]:
    """Each way's child process ``runs`` times, the ways alternating (a slow spell of the machine hits
    them alike), after one unmeasured run each (the page cache then holds every file)."""
    for args, env in ways.values():
        run_child(args, env)
    samples: dict[str, list[dict]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, (args, env) in ways.items():
            measured, wall, _ = run_child(args, env)
            measured["process_wall_s"] = wall
            samples[name].append(measured)
    return samples


def cold_start_medians(results: dict[str, list[dict]]) -> dict:
    """Per kind of start: the median of each timing of ``benchmarks.cold_start``'s JSON lines, the run
    count and every total."""
    report = {}
    for name, samples in results.items():
        report[name] = {
            key: round(statistics.median(s[key] for s in samples), 4)
            for key in samples[0]
            if isinstance(samples[0][key], float)
        }
        report[name]["runs"] = len(samples)
        report[name]["total_s_samples"] = [round(s["total_s"], 4) for s in samples]
    return report


def cold_start(text: str, model_path: Path, joblib_path: Path, runs: int) -> dict:
    env = child_env(MODEL_PATH=str(model_path))
    kinds = {
        "serving": ["-m", "benchmarks.cold_start", "serving", text],
        "runtime": ["-m", "benchmarks.cold_start", "runtime", text, str(model_path)],
        "prototype": ["-m", "benchmarks.cold_start", "prototype", text, str(joblib_path)],
    }
    report = cold_start_medians(alternating_runs({name: (args, env) for name, args in kinds.items()}, runs))
    _, _, serving_imports = run_child(["-X", "importtime", *kinds["serving"]], env)
    _, _, prototype_imports = run_child(["-X", "importtime", *kinds["prototype"]], env)
    report["import_time_serving"] = import_breakdown(serving_imports, 10, root="function_app")
    report["import_time_prototype"] = import_breakdown(prototype_imports, 8)
    report["ratio_serving_to_prototype"] = ratio(report["serving"]["total_s"], report["prototype"]["total_s"])
    report["ratio_runtime_to_prototype"] = ratio(report["runtime"]["total_s"], report["prototype"]["total_s"])
    report["ratio_rss_serving_to_prototype"] = ratio(
        report["serving"]["peak_rss_mb"], report["prototype"]["peak_rss_mb"]
    )
    return report


# --------------------------------------------------------------------------------------------------- HTTP
class LocalHost(HostProcess):
    """``python -m devtools.local_host --port 0 [--workers N]`` in a subprocess (``HostProcess``), with the
    memory of its whole process tree."""

    def __init__(self, model_path: Path, workers: int | None = None):
        extra = [] if workers is None else ["--workers", str(workers)]
        try:
            super().__init__(*extra, env=child_env(MODEL_PATH=str(model_path), PYTHONUNBUFFERED="1"))
        except RuntimeError as error:
            raise SystemExit(str(error)) from None

    def processes(self) -> list[int]:
        """The host's process and its descendants (the worker processes)."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry.name))
        tree, pending = [], [self.process.pid]
        while pending:
            pid = pending.pop()
            tree.append(pid)
            pending.extend(children.get(pid, []))
        return tree

    def memory_mb(self) -> dict:
        """RSS and peak RSS summed over every process of the host (so shared pages count once per
        process: an upper bound), and per process."""
        per_process = []
        for pid in self.processes():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
            per_process.append(
                {
                    "pid": pid,
                    "rss_mb": round(int(fields.get("VmRSS", 0)) / 1024, 1),
                    "peak_rss_mb": round(int(fields.get("VmHWM", 0)) / 1024, 1),
                }
            )
        return {
            "processes": len(per_process),
            "rss_mb": round(sum(p["rss_mb"] for p in per_process), 1),
            "peak_rss_mb": round(sum(p["peak_rss_mb"] for p in per_process), 1),
            "largest_process_peak_rss_mb": max((p["peak_rss_mb"] for p in per_process), default=0.0),
            "per_process": per_process,
        }


def run_wrk(base: str, bodies: Path, clients: int, seconds: int, pause_ms: int = 0) -> dict:
    """One wrk run; one wrk thread (epoll handles 16 connections) leaves the other core to the server.
    ``pause_ms`` > 0: each connection waits that long before each request (a fixed offered rate)."""
    script = Path(__file__).with_name("wrk_predict_paced.lua" if pause_ms else "wrk_predict.lua")
    extra = [str(pause_ms)] if pause_ms else []
    command = [
        "wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), f"{base}/api/predict", "--", str(bodies), *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    return json.loads(line.removeprefix("WRK_JSON "))


def load_test(base: str, bodies: Path, clients: int, requests: int, pause_ms: int = 0) -> dict:
    """At least ``requests`` requests: wrk runs for a duration, so a short run first measures the rate."""
    raw = run_wrk(base, bodies, clients, 2, pause_ms)
    for _ in range(4):  # the rate varies with the machine's load: lengthen the run until it is enough
        rate = max(raw["requests"] / (raw["duration_us"] / 1e6), 1.0)
        raw = run_wrk(base, bodies, clients, max(3, math.ceil(1.5 * requests / rate)), pause_ms)
        if raw["requests"] >= requests:
            break
    seconds = raw["duration_us"] / 1e6
    return {
        "clients": clients,
        "pause_between_requests_ms": pause_ms,
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "status_2xx": raw["status_2xx"],
        "non_2xx": raw["answered"] - raw["status_2xx"],
        "status_5xx": raw["status_5xx"],
        "socket_errors": raw["socket_errors"],
        **{f"{k}_ms": round(v / 1000, 3) for k, v in raw["latency_us"].items()},
    }


def http(
    texts: list[str],
    model_path: Path,
    workdir: Path,
    requests_16: int,
    requests_1: int,
    workers: int | None = None,
) -> dict:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    bodies = workdir / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    host = LocalHost(model_path, workers)
    try:
        memory_idle = host.memory_mb()
        run_wrk(host.base, bodies, 4, 2)  # warm-up
        one = load_test(host.base, bodies, 1, requests_1)
        sixteen = load_test(host.base, bodies, 16, requests_16)
        # 16 clients that each pause 40 ms between requests (~400 requests/s offered): the latency a
        # request sees when the server is busy but not saturated.
        paced = load_test(host.base, bodies, 16, requests_16 // 2, pause_ms=40)
        memory = host.memory_mb()
    finally:
        host.stop()
    return {
        "tool": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
        "server": f"{' '.join(host.command)}: {host.server}",
        "body": '{"text": "<tweet>"} cycling over the scoring texts',
        "clients_1": one,
        "clients_16": sixteen,
        "clients_16_paced_40ms": paced,
        "serving_memory_idle": memory_idle,
        "serving_memory_after_load": memory,
    }


# ------------------------------------------------------------------------------------------------- main
def texts_for_scoring(data_dir: Path) -> list[str]:
    from benchmarks.prototype import SCORING_FILES, read_labelled

    texts, _ = read_labelled(data_dir, SCORING_FILES)
    return texts


def verdicts(report: dict) -> dict:
    figures = {}
    if "cold_start" in report:
        cold = report["cold_start"]
        figures["cold_start_s"] = cold["serving"]["total_s"]
        figures["cold_start_ratio_to_prototype"] = cold["ratio_serving_to_prototype"]
    if "in_process" in report:
        function = report["in_process"]["single_text"]["function"]
        figures["in_process_single_p99_ms"] = function["p99_ms"]
        figures["in_process_single_p99_cpu_ms"] = function["cpu_p99_ms"]
    if "clients_16" in report["http"]:
        figures["http_p99_ms_16_clients"] = report["http"]["clients_16"]["p99_ms"]
        figures["serving_rss_mb"] = report["http"]["serving_memory_after_load"]["peak_rss_mb"]
        figures["http_5xx_16_clients"] = report["http"]["clients_16"]["status_5xx"]
    return {
        name: {"measured": value, "target": TARGETS[name], "met": value <= TARGETS[name]}
        for name, value in figures.items()
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_serving", description=__doc__.split("\n\n")[0]
    )
    default_data = os.environ.get("SENTIMENT_DATA_DIR") or str(REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="labelled tweet folder")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model" / "sentiment.onnx")
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per way (median)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of single-text calls")
    parser.add_argument("--per-round", type=int, default=1000, help="single-text calls per way and round")
    parser.add_argument("--http-requests", type=int, default=10_000, help="requests at 16 clients")
    parser.add_argument(
        "--http-only",
        action="store_true",
        help="only the HTTP measurements (no prototype, cold start, in-process)",
    )
    parser.add_argument("--workers", type=int, help="worker processes of the local host (default: its own)")
    parser.add_argument("--quick", action="store_true", help="small sample sizes, to try the script out")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.data_dir:  # results name it DATA (``portable``), however it was given
        os.environ.setdefault("SENTIMENT_DATA_DIR", str(args.data_dir))
    if args.quick:
        args.cold_runs, args.rounds, args.per_round, args.http_requests = 2, 2, 300, 2000
    model_path = args.model.resolve()
    os.environ["MODEL_PATH"] = str(model_path)
    os.environ.update(OFFLINE_ENV)
    sys.path.insert(0, str(REPO_ROOT))

    import onnxruntime

    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "model": {"path": portable(model_path), "mb": round(model_path.stat().st_size / 2**20, 2)},
        "command": "python -m benchmarks.bench_serving "
        + " ".join(portable(arg) for arg in (argv if argv is not None else sys.argv[1:])),
    }
    texts = texts_for_scoring(args.data_dir)
    batch = texts[:1000]
    report["scoring_texts"] = {
        "count": len(texts),
        "batch": len(batch),
        "source": "SemEval-2017 test + Sentiment140 manual test",
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        workdir = Path(folder)
        if not args.http_only:
            import joblib
            import sklearn

            from benchmarks.prototype import train_and_save

            report["machine"]["scikit_learn"] = sklearn.__version__
            joblib_path = workdir / "prototype.joblib"
            started = time.perf_counter()
            report["prototype"] = train_and_save(args.data_dir, joblib_path)
            report["prototype"]["training_s"] = round(time.perf_counter() - started, 1)
            report["prototype"]["pipeline"] = (
                "TfidfVectorizer(word 1-2 grams, 50k) + LogisticRegression, raw text"
            )
            pipeline = joblib.load(joblib_path)
            report["cold_start"] = cold_start(texts[0], model_path, joblib_path, args.cold_runs)
            report["in_process"] = in_process(
                texts, batch, pipeline, args.rounds, args.per_round, batch_runs=7
            )
        report["http"] = http(
            texts,
            model_path,
            workdir,
            args.http_requests,
            max(1000, args.http_requests // 5),
            workers=args.workers,
        )
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = verdicts(report)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
