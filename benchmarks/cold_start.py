"""One cold start, measured inside a fresh interpreter; prints one JSON line.

``python -m benchmarks.cold_start serving TEXT``: import ``azure.functions``, then the function app (which
loads the ONNX model at import, as in Azure), index it (``app.get_functions()``, as the worker does) and
answer one predict request through the registered function object.
``python -m benchmarks.cold_start runtime TEXT MODEL``: the model runtime alone (load + first prediction).
``python -m benchmarks.cold_start prototype TEXT JOBLIB``: the earlier prototype's way, a scikit-learn
pipeline from joblib (import + load + first ``predict_proba``).

The clock starts before any import of this module's own, so each phase includes everything it pulls in.
``cpu_s`` is the process's CPU time over the same span: on a busy machine it shows the work itself, where
the wall-clock figures also include waiting for a core.
"""

import time

STARTED = time.perf_counter()
STARTED_CPU = time.process_time()

import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402


def serving(text: str) -> dict:
    import azure.functions  # noqa: F401  the framework first: the Functions worker needs it in any case

    framework = time.perf_counter()
    import function_app

    imported = time.perf_counter()
    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    predict = functions["predict"].get_user_function()
    indexed = time.perf_counter()
    response = call_predict(predict, {"text": text})
    answered = time.perf_counter()
    return {
        "framework_import_s": framework - STARTED,
        "app_import_and_model_load_s": imported - framework,
        "index_s": indexed - imported,
        "first_prediction_s": answered - indexed,
        "total_s": answered - STARTED,
        "label": json.loads(response.get_body())["label"],
    }


def call_predict(predict, body: dict):
    """The registered predict function's answer to a POST of ``body``; exits unless it is a 200."""
    import azure.functions as func

    request = func.HttpRequest(
        method="POST",
        url="http://127.0.0.1/api/predict",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )
    response = predict(request)
    if response.status_code != 200:
        raise SystemExit(f"predict answered {response.status_code}: {response.get_body()[:300]!r}")
    return response


def runtime(text: str, model_path: str) -> dict:
    from serving.runtime import SentimentModel

    imported = time.perf_counter()
    model = SentimentModel.load(model_path)
    loaded = time.perf_counter()
    (prediction,) = model.predict([text])
    return _phases(imported, loaded, time.perf_counter(), prediction.label)


def prototype(text: str, joblib_path: str) -> dict:
    import joblib

    imported = time.perf_counter()
    pipeline = joblib.load(joblib_path)  # unpickling imports the scikit-learn modules it needs
    loaded = time.perf_counter()
    probabilities = pipeline.predict_proba([text])
    answered = time.perf_counter()
    return _phases(imported, loaded, answered, "negative" if probabilities[0, 0] >= 0.5 else "positive")


def _phases(imported: float, loaded: float, answered: float, label: str) -> dict:
    """Import, model load and first prediction of a model loader, from the clock instants between them."""
    return {
        "import_s": imported - STARTED,
        "model_load_s": loaded - imported,
        "first_prediction_s": answered - loaded,
        "total_s": answered - STARTED,
        "label": label,
    }


def main(argv: list[str]) -> None:
    kind, text, *paths = argv
    result = {"serving": serving, "runtime": runtime, "prototype": prototype}[kind](text, *paths)
    result["cpu_s"] = time.process_time() - STARTED_CPU
    # VmHWM starts afresh at exec (ru_maxrss would carry over the parent's peak from before the fork).
    with open("/proc/self/status") as handle:
        status = handle.read()
    result["peak_rss_mb"] = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1]) / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
