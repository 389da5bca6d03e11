"""Runs predict/feedback calls in a fresh process (the exporter is configured once per process) and prints
one JSON document: every response, failures and per-call latencies.

It goes through the app's registered functions (function_app.py) when they and the model are present,
so the events are the ones the service really emits; otherwise it calls serving.telemetry directly
("via": "telemetry"). Telemetry is configured from the environment exactly as the app does it.

    python -m tests.telemetry_driver --predict 5 --batches 2 --batch-size 3 --wrong 2 --right 1 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEXTS = (
    "my bag was lost again, worst airline ever",
    "lovely crew and a smooth landing, thank you!",
    "delayed three hours and nobody told us anything",
    "great seats and free snacks :)",
)


def _app_calls() -> tuple[Callable[[dict], tuple[int, dict]], Callable[[dict], tuple[int, dict]]] | None:
    """The predict and feedback functions of function_app.py, or None when the app or model is absent."""
    if not (REPO_ROOT / "function_app.py").exists():
        return None
    import azure.functions as func

    sys.path.insert(0, str(REPO_ROOT))
    import function_app

    functions = {f.get_trigger().route: f.get_user_function() for f in function_app.app.get_functions()}
    if "predict" not in functions or "feedback" not in functions:
        return None

    def call(route: str) -> Callable[[dict], tuple[int, dict]]:
        def invoke(body: dict) -> tuple[int, dict]:
            request = func.HttpRequest(
                method="POST",
                url=f"http://127.0.0.1/api/{route}",
                headers={"Content-Type": "application/json"},
                body=json.dumps(body).encode(),
            )
            response = functions[route](request)
            return response.status_code, json.loads(response.get_body() or b"{}")

        return invoke

    health = functions.get("health")
    if (
        health is None
        or health(func.HttpRequest("GET", "http://127.0.0.1/api/health", body=b"")).status_code != 200
    ):
        return None  # e.g. no model file yet: the app answers 503
    return call("predict"), call("feedback")


def _telemetry_calls() -> tuple[Callable[[dict], tuple[int, dict]], Callable[[dict], tuple[int, dict]]]:
    """The same events straight from serving.telemetry, with a fixed stand-in score."""
    from serving import telemetry

    telemetry.configure()
    version = "0000.00.00-00000000"

    def predict(body: dict) -> tuple[int, dict]:
        texts = body.get("texts") or [body["text"]]
        negative = [any(word in text for word in ("lost", "delayed", "worst")) for text in texts]
        rows = [
            {"prediction_id": uuid.uuid4().hex, "label": "negative" if is_negative else "positive"}
            | {"negative_probability": 0.9 if is_negative else 0.2, "model_version": version}
            for is_negative in negative
        ]
        negatives = sum(row["label"] == "negative" for row in rows)
        mean = sum(row["negative_probability"] for row in rows) / len(rows)
        telemetry.record_scored(
            model_version=version, texts=len(rows), negatives=negatives, mean_negative_probability=mean
        )
        return 200, ({"model_version": version, "predictions": rows} if "texts" in body else rows[0])

    def feedback(body: dict) -> tuple[int, dict]:
        feedback_id = uuid.uuid4().hex
        telemetry.record_feedback(
            feedback_id=feedback_id,
            prediction_id=body.get("prediction_id"),
            predicted_label=body["predicted_label"],
            negative_probability=body.get("negative_probability"),
            model_version=version,
            text=body["text"],
            correct=body["correct"],
            matched_prediction=body.get("prediction_id") is not None,
        )
        return 202, {"feedback_id": feedback_id, "recorded": True, "matched_prediction": True}

    return predict, feedback


def run(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    calls = None if args.direct else _app_calls()
    via = "app" if calls else "telemetry"
    predict, feedback = calls or _telemetry_calls()
    setup_s = time.perf_counter() - started
    results: dict = {"via": via, "setup_s": setup_s, "predict": [], "feedback": [], "failures": 0}
    latencies: dict[str, list[float]] = {"predict": [], "feedback": []}

    pace = {"next": time.perf_counter()}

    def timed(kind: str, call: Callable[[dict], tuple[int, dict]], body: dict, ok: int) -> dict:
        if args.rate > 0:  # an open-loop arrival rate instead of back-to-back calls
            pace["next"] += 1.0 / args.rate
            time.sleep(max(0.0, pace["next"] - time.perf_counter()))
        begin = time.perf_counter()
        try:
            status, payload = call(body)
        except Exception as error:
            status, payload = 0, {"exception": repr(error)}
        latencies[kind].append(time.perf_counter() - begin)
        if status != ok:
            results["failures"] += 1
        entry = {"request": body, "status": status, "response": payload}
        if args.keep or status != ok:
            results[kind].append(entry)
        return entry

    last = None
    for index in range(args.predict):
        last = timed("predict", predict, {"text": TEXTS[index % len(TEXTS)]}, 200)
    for index in range(args.batches):
        body = {"texts": [TEXTS[(index + k) % len(TEXTS)] for k in range(args.batch_size)]}
        timed("predict", predict, body, 200)
    scored = (last or {}).get("response") or {}
    for index in range(args.wrong + args.right):
        body = {
            "prediction_id": scored.get("prediction_id", uuid.uuid4().hex),
            "text": f"{TEXTS[index % len(TEXTS)]} #{index} " + "x" * args.text_padding,
            "predicted_label": scored.get("label", "negative"),
            "negative_probability": scored.get("negative_probability", 0.9),
            "correct": index >= args.wrong,
        }
        timed("feedback", feedback, body, 202)

    results["calls"] = sum(map(len, latencies.values()))
    for kind, seconds in latencies.items():
        ordered = sorted(seconds)
        if ordered:
            results[f"{kind}_median_ms"] = ordered[len(ordered) // 2] * 1000
            results[f"{kind}_p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    if args.flush:
        from serving import telemetry

        results["flushed"] = telemetry.flush()
    results["elapsed_s"] = time.perf_counter() - started
    results["cpu_s"] = time.process_time()
    results["exporter_loaded"] = "azure.monitor.opentelemetry" in sys.modules
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict", type=int, default=0, help="predict requests with one text")
    parser.add_argument("--batches", type=int, default=0, help="predict requests with a batch of texts")
    parser.add_argument("--batch-size", type=int, default=3, help="texts per batch request")
    parser.add_argument("--wrong", type=int, default=0, help="feedback requests with correct=false")
    parser.add_argument("--right", type=int, default=0, help="feedback requests with correct=true")
    parser.add_argument("--text-padding", type=int, default=0, help="extra characters on feedback texts")
    parser.add_argument("--rate", type=float, default=0.0, help="calls per second (0: back to back)")
    parser.add_argument("--keep", action="store_true", help="print every response, not only failures")
    parser.add_argument("--flush", action="store_true", help="flush the exporter before printing")
    parser.add_argument("--direct", action="store_true", help="call serving.telemetry, not the app")
    parser.add_argument("--exit-now", action="store_true", help="skip the exporter's exit-time flush")
    parser.add_argument("--linger", type=float, default=0.0, help="seconds to stay alive after the calls")
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)
    time.sleep(args.linger)  # a serving process lives on: give the exporter time to reach ingestion
    if args.exit_now:
        os._exit(0)


if __name__ == "__main__":
    main()
