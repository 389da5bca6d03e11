"""Ledger and shadow benchmark: prints one JSON document and writes benchmarks/results/ledger.json.

    python -m benchmarks.bench_ledger [--feedbacks 10000] [--predicts 8000] [--paced-rate 400]
                                      [--predict-rate 2000] [--layouts shared,isolated] [--cold-runs 5]
                                      [--out FILE]

Measured, in one run, against Azurite (the Table Storage emulator, npm, tests/js) on loopback, with the
n-gram model alone (``MODEL_ENCODER_PATH=off``: the fastest predict, so the ledger's share is largest):
- feedback latency over HTTP through ``python -m devtools.local_host`` with the ledger on (each feedback: a
  signed id from an earlier predict, joined to its stored row, then its row written before the answer):
  1 client; 16 concurrent keep-alive clients sending as fast as answers come (closed loop: the latency of
  a saturated machine); 16 clients sending at a fixed total rate (``--paced-rate``; latency counted from
  each request's scheduled time, so a late answer also delays the count); whether every accepted feedback
  is a row afterwards; the CPU each process spent per feedback;
- predict latency at 16 clients with prediction rows stored vs. without a ledger (two hosts, rounds
  interleaved so that noise from other work hits both alike), closed loop and paced (``--predict-rate``);
- each in two layouts of the CPUs: ``shared`` (host, emulator and load client on every CPU) and
  ``isolated`` (the host and the load client on the first CPU, the emulator on the others, as storage
  runs elsewhere in Azure: its CPU is then not taken from the host);
- cold start (``benchmarks.cold_start serving``, fresh interpreters, medians) without ledger settings,
  with them, and with a shadow model; in-process predict latency with and without the shadow.

The load client is a small asyncio HTTP/1.1 client (one thread, prebuilt requests): its own cost per
request is a few tens of microseconds, so the figures are the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from devtools.local_host import HostProcess
from devtools.telemetry_sink import OFFLINE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results" / "ledger.json"
TARGETS = {
    "feedback_p99_ms_16_clients": 15.0,
    "predict_p99_ratio_stored_to_none": 1.2,
    "feedback_rows_lost": 0,
}
LAYOUTS = ("shared", "isolated")


def child_env(**extra: str) -> dict[str, str]:
    drop = ("APPLICATIONINSIGHTS_CONNECTION", "LEDGER_", "MODEL_SHADOW_PATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(OFFLINE_ENV)
    env.update(PYTHONUNBUFFERED="1", PREDICTION_ID_KEY="benchmark-key-0123456789abcdef")
    env.update(MODEL_ENCODER_PATH="off")
    env.update(extra)
    return env


def summary(samples_s: list[float]) -> dict:
    values = np.asarray(samples_s) * 1000
    return {
        "n": int(values.size),
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p90_ms": round(float(np.percentile(values, 90)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "max_ms": round(float(values.max()), 3),
    }


# ------------------------------------------------------------------------------------------ load client
def _request(host: str, port: int, path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _client(host, port, requests, next_index, latencies, statuses, bodies, schedule) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            index = next_index[0]
            if index >= len(requests):
                return
            next_index[0] += 1
            started = time.perf_counter()
            if schedule is not None:  # paced: wait for this request's time; a late one counts from it
                await asyncio.sleep(max(0.0, schedule[index] - started))
                started = schedule[index]
            writer.write(requests[index])
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(status_line.split()[1]))
            if bodies is not None:
                bodies.append(body)
    finally:
        writer.close()


def load(
    base: str, path: str, bodies: list[dict], clients: int = 16, keep: bool = False, rate: float | None = None
) -> dict:
    """Send every body once, ``clients`` at a time over keep-alive connections (at ``rate`` requests/s in
    all when given, else each as soon as its connection is free); latency summary, status counts, the
    answers' bodies when ``keep`` (in completion order)."""
    host, port = base.removeprefix("http://").split(":")
    requests = [_request(host, int(port), path, body) for body in bodies]
    latencies: list[float] = []
    statuses: list[int] = []
    answers: list[bytes] | None = [] if keep else None

    shared = [0]  # the next request to send, taken by whichever connection is free

    async def main() -> float:
        started = time.perf_counter()
        schedule = None if rate is None else [started + 0.05 + i / rate for i in range(len(requests))]
        connections = [
            _client(host, int(port), requests, shared, latencies, statuses, answers, schedule)
            for _ in range(clients)
        ]
        await asyncio.gather(*connections)
        return time.perf_counter() - started

    seconds = asyncio.run(main())
    result = summary(latencies) | {
        "clients": clients,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
    }
    if rate is not None:
        result["offered_per_s"] = rate
    if keep:
        result["bodies"] = [json.loads(b) for b in answers or []]
    return result


# ------------------------------------------------------------------------------------------ parts
def scoring_texts(count: int) -> list[str]:
    data = Path(os.environ.get("SENTIMENT_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    try:
        from benchmarks.bench_serving import texts_for_scoring

        texts = texts_for_scoring(data)
    except Exception:
        from tests.tweet_factory import tweets

        texts = tweets(count, seed=3)[0]
    return (texts * (count // max(len(texts), 1) + 1))[:count]


@contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    """Run on ``cpus`` (this thread, and the processes it starts meanwhile, which inherit it)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def layout_cpus(layout: str) -> tuple[set[int], set[int]]:
    """(the CPUs of the host and the load client, the emulator's CPUs) for a layout."""
    every = os.sched_getaffinity(0)
    if layout == "shared" or len(every) < 2:
        return every, every
    first = min(every)
    return {first}, every - {first}


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (user + system)."""
    import psutil

    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        total += sum(child.cpu_times()[:2])
    return total


def feedback_load(azurite, host: HostProcess, bodies: list[dict], **options) -> dict:
    """One feedback load (``load`` options), with the CPU the emulator and the host spent per request."""
    before = {"storage": cpu_seconds(azurite.pid), "host": cpu_seconds(host.process.pid)}
    result = load(host.base, "/api/feedback", bodies, **options)
    after = {"storage": cpu_seconds(azurite.pid), "host": cpu_seconds(host.process.pid)}
    result["cpu_ms_per_request"] = {
        name: round((after[name] - before[name]) * 1000 / len(bodies), 3) for name in before
    }
    return result


def stored_rows(azurite) -> set[str]:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return {e["RowKey"] for e in service.get_table_client("feedback").list_entities(select=["RowKey"])}


def http_part(layout: str, texts: list[str], feedbacks: int, predicts: int, rounds: int, rates: dict) -> dict:
    from tests.azurite import Azurite

    host_cpus, storage_cpus = layout_cpus(layout)
    with pinned(storage_cpus):
        azurite = Azurite().start()
    hosts: list[HostProcess] = []
    try:
        with pinned(host_cpus):
            hosts.append(HostProcess(env=child_env(LEDGER_CONNECTION_STRING=azurite.connection_string)))
            hosts.append(HostProcess(env=child_env()))
            return {
                "cpus": {"host_and_client": sorted(host_cpus), "storage": sorted(storage_cpus)},
                "server": f"python -m devtools.local_host (default workers): {hosts[0].server}",
            } | _http_loads(azurite, *hosts, texts, feedbacks, predicts, rounds, rates)
    finally:
        for host in hosts:
            host.stop()
        azurite.stop()


def _http_loads(azurite, with_ledger, without, texts, feedbacks, predicts, rounds, rates) -> dict:
    # Warm-up: first requests of each worker (and the ledger's table creation).
    for host in (with_ledger, without):
        load(host.base, "/api/predict", [{"text": t} for t in texts[:400]])
    # Predict p99, rows stored vs. no ledger, interleaved rounds: as fast as answers come, then paced.
    per_round = predicts // rounds
    predict: dict = {}
    for mode, rate in (("predict_16_clients", None), ("predict_16_clients_paced", rates["predict"])):
        samples: dict[str, list[dict]] = {"stored": [], "none": []}
        for r in range(rounds):
            bodies = [{"text": t} for t in texts[r * per_round : (r + 1) * per_round]]
            for name, host in (("stored", with_ledger), ("none", without)):
                samples[name].append(load(host.base, "/api/predict", bodies, rate=rate))
        predict[mode] = {"offered_per_s": rate} if rate else {}
        for name, runs in samples.items():
            predict[mode][name] = {
                "rounds_p50_ms": [x["p50_ms"] for x in runs],
                "rounds_p99_ms": [x["p99_ms"] for x in runs],
                "median_p50_ms": statistics.median(x["p50_ms"] for x in runs),
                "median_p99_ms": statistics.median(x["p99_ms"] for x in runs),
                "requests_per_s": statistics.median(x["requests_per_s"] for x in runs),
                "statuses": {k: sum(x["statuses"].get(k, 0) for x in runs) for k in ("200", "503", "500")},
            }
        for quantile in ("p99", "p50"):
            predict[mode][f"ratio_{quantile}_stored_to_none"] = round(
                predict[mode]["stored"][f"median_{quantile}_ms"]
                / predict[mode]["none"][f"median_{quantile}_ms"],
                3,
            )
    # Feedback: ids from real predictions (rows stored, so each feedback is joined), then N feedbacks.
    batches = [{"texts": texts[i : i + 100]} for i in range(0, feedbacks, 100)]
    scored = load(with_ledger.base, "/api/predict", batches, keep=True)
    predictions = [p for body in scored["bodies"] for p in body["predictions"]][:feedbacks]
    time.sleep(2)  # let the writer store these rows, as they would be by the time a person answers
    bodies = [
        {"prediction_id": p["prediction_id"], "text": texts[i], "predicted_label": p["label"],
         "negative_probability": p["negative_probability"], "correct": i % 4 != 0}
        for i, p in enumerate(predictions)
    ]  # fmt: skip
    feedback_1 = feedback_load(azurite, with_ledger, bodies[:500], clients=1)
    feedback = feedback_load(azurite, with_ledger, bodies, keep=True)
    paced = feedback_load(azurite, with_ledger, bodies, keep=True, rate=rates["feedback"])
    rows = stored_rows(azurite)
    for result in (feedback, paced):
        answers = result.pop("bodies")
        accepted = {b["feedback_id"] for b in answers if "feedback_id" in b}
        result["matched_prediction"] = sum(bool(b.get("matched_prediction")) for b in answers)
        result["accepted"] = len(accepted)
        result["rows_found"] = len(accepted & rows)
        result["rows_lost"] = len(accepted - rows)
    storage_ms = feedback["cpu_ms_per_request"]["storage"]
    return {
        "feedback_1_client": feedback_1,
        "feedback_16_clients": feedback,
        "feedback_16_clients_paced": paced,
        # A closed loop of 16 clients on one single-threaded emulator waits at least 16 times the
        # emulator's CPU per feedback, whatever the service does.
        "feedback_16_clients_storage_floor_ms": round(16 * storage_ms, 1),
    } | predict


def breakdown_part(azurite, texts: list[str], count: int = 500) -> dict:
    """Where a feedback's time goes, in this process: the join's point read, the row's insert; and the
    writer's cost per prediction row (one transaction of 100 rows)."""
    from serving import ledger

    settings = ledger.LedgerSettings(azurite.connection_string, None, None, True, True)
    instance = ledger.Ledger(ledger.connect(settings))
    ids = [f"bench{i:06d}" for i in range(count)]
    scored = [ledger.ScoredText(pid, "negative", 0.7, texts[i]) for i, pid in enumerate(ids)]
    instance.record_predictions(scored, "bench")
    instance.flush(60)
    lookups, inserts = [], []
    claimed = ledger.FeedbackRecord("negative", 0.7, "bench", True)
    for i, pid in enumerate(ids):
        started = time.perf_counter()
        stored = instance.find_prediction(pid)
        looked = time.perf_counter()
        instance._insert_feedback(
            {"PartitionKey": "bench", "RowKey": pid, "prediction_id": pid, "text": texts[i],
             "predicted_label": "negative", "correct": False, "true_label": "positive",
             "negative_probability": 0.7, "model_version": "bench", "matched_prediction": stored is not None,
             "received_at": "2026-01-01T00:00:00.000000Z"}, claimed,
        )  # fmt: skip
        lookups.append(looked - started)
        inserts.append(time.perf_counter() - looked)
    instance._ensure_table(ledger.PREDICTIONS_TABLE)
    table = instance.service.get_table_client(ledger.PREDICTIONS_TABLE)
    # The app's own transaction (TableHttp.upsert_batch) and the SDK's submit_transaction, interleaved.
    timings: dict[str, tuple[list[float], list[float]]] = {"app": ([], []), "sdk": ([], [])}
    for b in range(20):
        for way, (walls, cpus) in timings.items():
            entities = [
                {"PartitionKey": "bench", "RowKey": f"{way}{b}-{i}", "label": "negative",
                 "negative_probability": 0.5, "model_version": "bench", "topics": "[]", "text": texts[i],
                 "scored_at": "x"}
                for i in range(100)
            ]  # fmt: skip
            started, started_cpu = time.perf_counter(), time.thread_time()
            if way == "app":
                instance.http.upsert_batch(ledger.PREDICTIONS_TABLE, entities)
            else:
                table.submit_transaction([("upsert", e) for e in entities])
            walls.append(time.perf_counter() - started)
            cpus.append(time.thread_time() - started_cpu)
    # The writer's pace: a full queue of real tweets (queued at once, before the writer takes a batch),
    # then the time until every row is stored; three rounds, the median.
    paces = []
    for r in range(3):
        queued = [
            ledger.ScoredText(f"pace{r}-{i:05d}", "negative", 0.7, text) for i, text in enumerate(texts)
        ]
        queued = queued[: ledger.QUEUE_ROWS]
        with instance._cond:
            instance.record_predictions(queued, "bench", [("delay",)] * len(queued))
        started = time.perf_counter()
        instance.flush(120)
        paces.append(len(queued) / (time.perf_counter() - started))
    instance.close(5)
    return {
        "writer_rows_per_s": round(statistics.median(paces)),
        "writer_rows_queued": len(queued),
        "join_point_read": summary(lookups),
        "feedback_insert": summary(inserts),
        "transaction_100_rows_wall_ms": round(statistics.median(timings["app"][0]) * 1000, 2),
        "transaction_100_rows_client_cpu_ms": round(statistics.median(timings["app"][1]) * 1000, 2),
        "sdk_transaction_100_rows_wall_ms": round(statistics.median(timings["sdk"][0]) * 1000, 2),
        "sdk_transaction_100_rows_client_cpu_ms": round(statistics.median(timings["sdk"][1]) * 1000, 2),
    }


def _cold(env: dict[str, str], text: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cold_start", "serving", text],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_start_part(azurite, text: str, runs: int, shadow: Path) -> dict:
    variants = {
        "no_ledger": child_env(),
        "ledger_connection_string": child_env(LEDGER_CONNECTION_STRING=azurite.connection_string),
        "ledger_managed_identity": child_env(
            LEDGER_TABLE_ENDPOINT="https://example.table.core.windows.net",
            AZURE_CLIENT_ID="00000000-0000-0000-0000-000000000000",
        ),
        "shadow_model": child_env(MODEL_SHADOW_PATH=str(shadow)),
    }
    for env in variants.values():
        _cold(env, text)  # page cache
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, env in variants.items():
            samples[name].append(_cold(env, text))
    report: dict = {}
    for name, runs_ in samples.items():
        report[name] = {
            key: round(statistics.median(s[key] for s in runs_), 4)
            for key in ("total_s", "app_import_and_model_load_s", "cpu_s", "peak_rss_mb")
        } | {"total_s_samples": [round(s["total_s"], 3) for s in runs_]}
    base = report["no_ledger"]["total_s"]
    report["added_s"] = {name: round(report[name]["total_s"] - base, 4) for name in variants}
    return report


INPROCESS = """
import json, sys, time
import azure.functions as func
import function_app
predict = {f.get_function_name(): f for f in function_app.app.get_functions()}["predict"].get_user_function()
texts = json.loads(sys.stdin.read())
headers = {"Content-Type": "application/json"}
reqs = [func.HttpRequest(method="POST", url="http://h/api/predict", headers=headers,
                         body=json.dumps({"text": t}).encode()) for t in texts]
for r in reqs[:300]:
    predict(r)
samples = []
for r in reqs:
    started = time.perf_counter()
    predict(r)
    samples.append(time.perf_counter() - started)
print(json.dumps({"shadow": function_app.SHADOW is not None, "samples": samples}))
"""


def shadow_part(texts: list[str], shadow: Path, rounds: int) -> dict:
    pooled: dict[str, list[float]] = {"no_shadow": [], "shadow": []}
    for _ in range(rounds):
        for name, extra in (("no_shadow", {}), ("shadow", {"MODEL_SHADOW_PATH": str(shadow)})):
            done = subprocess.run(
                [sys.executable, "-c", INPROCESS], input=json.dumps(texts), cwd=REPO_ROOT,
                env=child_env(PYTHONPATH=str(REPO_ROOT), **extra), capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(done.stdout.strip().splitlines()[-1])
            assert result["shadow"] is (name == "shadow")
            pooled[name] += result["samples"]
    report = {name: summary(samples) for name, samples in pooled.items()}
    report["ratio_p99_shadow_to_none"] = round(report["shadow"]["p99_ms"] / report["no_shadow"]["p99_ms"], 3)
    report["ratio_p50_shadow_to_none"] = round(report["shadow"]["p50_ms"] / report["no_shadow"]["p50_ms"], 3)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_ledger", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--feedbacks", type=int, default=10_000)
    parser.add_argument("--predicts", type=int, default=8_000, help="predict requests per host (all rounds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--paced-rate", type=float, default=400.0, help="feedbacks/s of the paced run")
    parser.add_argument("--predict-rate", type=float, default=2000.0, help="predicts/s of the paced runs")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated: shared, isolated")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.azurite import Azurite

    shadow = REPO_ROOT / "model" / "sentiment.onnx"  # the same graph as shadow: the cost of scoring twice
    texts = scoring_texts(max(args.feedbacks, args.predicts))
    report: dict = {
        "command": "python -m benchmarks.bench_ledger "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "storage": "Azurite (npm azurite-table, in memory) on 127.0.0.1, same machine",
        "served": "the n-gram model alone (MODEL_ENCODER_PATH=off)",
    }
    layouts = [name for name in args.layouts.split(",") if name]
    if unknown := set(layouts) - set(LAYOUTS):
        parser.error(f"unknown layouts {sorted(unknown)}; known: {', '.join(LAYOUTS)}")
    report["http"] = {
        layout: http_part(
            layout,
            texts,
            args.feedbacks,
            args.predicts,
            args.rounds,
            {"feedback": args.paced_rate, "predict": args.predict_rate},
        )
        for layout in layouts
    }
    azurite = Azurite().start()
    try:
        report["breakdown_in_process"] = breakdown_part(azurite, texts)
        report["cold_start"] = cold_start_part(azurite, texts[0], args.cold_runs, shadow)
    finally:
        azurite.stop()
    report["shadow_in_process"] = shadow_part(texts[:3000], shadow, rounds=2)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = {}
    for layout, http in report["http"].items():
        measured = {
            "feedback_p99_ms_16_clients": http["feedback_16_clients"]["p99_ms"],
            "feedback_p99_ms_16_clients_paced": http["feedback_16_clients_paced"]["p99_ms"],
            "predict_p99_ratio_stored_to_none": http["predict_16_clients"]["ratio_p99_stored_to_none"],
            "predict_p99_ratio_stored_to_none_paced": http["predict_16_clients_paced"][
                "ratio_p99_stored_to_none"
            ],
            "feedback_rows_lost": http["feedback_16_clients"]["rows_lost"]
            + http["feedback_16_clients_paced"]["rows_lost"],
        }
        report["targets"][layout] = {
            name: {"measured": value, "target": TARGETS[name.removesuffix("_paced")]}
            | {"met": value <= TARGETS[name.removesuffix("_paced")]}
            for name, value in measured.items()
        }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
