"""The cascade's cost: the n-gram model alone against the n-gram model + sentence encoder, in one run.
Prints JSON and writes ``benchmarks/results/cascade.json``.

    SENTIMENT_DATA_DIR=<data folder> python -m benchmarks.bench_cascade

Texts: the SemEval-2017 test tweets (``$SENTIMENT_DATA_DIR/semeval/semeval2017_test_binary.csv``), or
generated ones (``tests/tweet_factory.py``) when the variable is not set. A text is "in the band" when
the n-gram model's probability falls in the cascade's uncertain band: those are the texts the encoder
re-reads. Both models run with one onnxruntime thread, as served.

1. Single text, in-process (``SentimentModel.predict([text])``), interleaved in rounds: in-band texts and
   confident texts through the cascade, the same texts through the n-gram model alone, a sample of the
   real mix both ways, and in-band texts that fill the token budget (wall-clock and CPU time
   percentiles).
2. A batch of 1,000 tweets in a subprocess pinned to one CPU (before it imports anything, so the
   runtime's chunk pool sees one CPU): median of 5 runs, n-gram alone and cascade; and the cascade's worst
   batch, 1,000 in-band texts each long enough to fill the encoder's token budget (the quota of
   re-read texts all at the maximum number of tokens).
3. Cold start: fresh interpreters running ``benchmarks/cold_start.py serving`` (import the function app,
   which loads the models, index it, answer one request with an in-band text), alternating
   ``MODEL_ENCODER_PATH=off`` and the cascade, medians.
4. Peak RSS (``VmHWM``) of a fresh process that imports the function app and answers one predict request
   with a batch of 1,000 texts through the registered function, with and without the cascade.
5. The model files' sizes. 6. The share of single requests on which the encoder was engaged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT = ROOT / "benchmarks" / "results" / "cascade.json"
TEST_FILE = "semeval/semeval2017_test_binary.csv"
TARGETS = {
    "single_in_band_p99_ms": 25.0,
    "single_confident_p99_ms": 1.0,
    "batch_1000_one_cpu_s": 2.0,
    "batch_1000_worst_one_cpu_s": 2.0,
    "cold_start_s": 1.0,
    "peak_rss_mb": 400.0,
    "model_files_mb": 60.0,
}


def load_texts(data_dir: str | None, count: int = 6_000) -> tuple[list[str], str]:
    """The real test tweets when a data folder is given, generated ones otherwise."""
    if data_dir:
        from training.data import read_tweets

        return list(read_tweets(Path(data_dir) / TEST_FILE).texts), f"DATA/{TEST_FILE}"
    from tests.tweet_factory import tweets

    return tweets(count, seed=17)[0], "generated (tests/tweet_factory.py)"


def load_models(model_path: Path, encoder_path: Path):
    """(n-gram model alone, the same model file with the cascade attached)."""
    from serving.runtime import SentimentModel

    ngram = SentimentModel.load(model_path)
    cascaded = SentimentModel.load(model_path)
    cascaded.attach_cascade(encoder_path)
    return ngram, cascaded


def ngram_probabilities(ngram, texts: list[str]) -> list[float]:
    """The n-gram probability of each raw text, as the cascade's plan sees it (before any prior)."""
    out: list[float] = []
    for start in range(0, len(texts), 1_000):
        out += [p.negative_probability for p in ngram.predict(texts[start : start + 1_000])]
    return out


def in_band(probability: float, band: tuple[float, float]) -> bool:
    return band[0] <= probability <= band[1]


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (cycled when there are fewer)."""
    if not items:
        return []
    if len(items) <= count:
        return (items * (count // len(items) + 1))[:count]
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def worst_texts(cascaded, ngram, texts: list[str], probabilities: list[float], count: int) -> list[str]:
    """In-band texts repeated until the encoder's token budget is full, kept while still in the band."""
    from serving.cascade import encoder_text
    from serving.http import MAX_TEXT_CHARS

    cascade = cascaded.cascade
    tokenizer, budget = cascade.tokenizer, cascade.tokenizer.max_tokens
    candidates = []
    for text, p in zip(texts, probabilities, strict=True):
        if not in_band(p, cascade.band) or not text.strip():
            continue
        long = text
        while len(tokenizer.token_ids(encoder_text(long, cascade.max_chars))[0]) < budget:
            long = f"{long} {text}"
            if len(long) > MAX_TEXT_CHARS:
                break
        if len(long) <= MAX_TEXT_CHARS:
            candidates.append(long)
        if len(candidates) >= 2 * count:
            break
    kept = [
        t
        for t, p in zip(candidates, ngram_probabilities(ngram, candidates), strict=True)
        if in_band(p, cascade.band)
    ]
    return spread(kept, count)


# ------------------------------------------------------------------------------------------ single text
def single_text(
    ngram,
    cascaded,
    band_texts: list[str],
    confident: list[str],
    mixed: list[str],
    at_budget: list[str],
    rounds: int,
) -> dict:
    """Single-text latency, interleaved in rounds so that other work on the machine hits every way alike."""
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    ways = {
        "in_band_cascade": (cascaded, band_texts),
        "in_band_ngram_alone": (ngram, band_texts),
        "confident_cascade": (cascaded, confident),
        "confident_ngram_alone": (ngram, confident),
        "real_mix_cascade": (cascaded, mixed),
        "real_mix_ngram_alone": (ngram, mixed),
        "at_budget_cascade": (cascaded, at_budget),
    }
    for model, texts in ways.values():  # warm-up: first-call allocations, tokenizer cache
        for text in texts[:50]:
            model.predict([text])
    wall: dict[str, list[int]] = {name: [] for name in ways}
    cpu: dict[str, list[int]] = {name: [] for name in ways}
    decided: dict[str, dict[str, int]] = {name: {} for name in ways}
    for index in range(rounds):
        for name, (model, texts) in ways.items():
            per_round = -(-len(texts) // rounds)
            for text in texts[index * per_round : (index + 1) * per_round]:
                started, started_cpu = clock(), cpu_clock()
                (prediction,) = model.predict([text])
                cpu[name].append(cpu_clock() - started_cpu)
                wall[name].append(clock() - started)
                decided[name][prediction.encoder] = decided[name].get(prediction.encoder, 0) + 1
    from benchmarks.bench_serving import summary_ms  # numpy: never imported before a child pins its CPU

    return {name: {**summary_ms(wall[name], cpu[name]), "encoder": decided[name]} for name in ways}


# ------------------------------------------------------------------------------------ children: batch/RSS
def child_batch(texts_file: str, model_path: str, encoder_path: str, runs: int) -> dict:
    """Run in a process pinned to one CPU: batch wall time, n-gram alone and cascade, median of ``runs``."""
    cpus = len(os.sched_getaffinity(0))
    batches = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    from serving.runtime import _chunk_pool

    ngram, cascaded = load_models(Path(model_path), Path(encoder_path))
    ways = {
        "real_ngram_alone": (ngram, batches["real"]),
        "real_cascade": (cascaded, batches["real"]),
        "worst_ngram_alone": (ngram, batches["worst"]),
        "worst_cascade": (cascaded, batches["worst"]),
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    decided: dict[str, dict[str, int]] = {}
    for model, texts in ways.values():  # warm-up
        model.predict(texts)
    for _ in range(runs):
        for name, (model, texts) in ways.items():
            started = time.perf_counter()
            predictions = model.predict(texts)
            samples[name].append(time.perf_counter() - started)
            decided[name] = {}
            for prediction in predictions:
                decided[name][prediction.encoder] = decided[name].get(prediction.encoder, 0) + 1
    return {
        "cpus_seen": cpus,
        "chunk_pool": _chunk_pool() is not None,
        "runs": runs,
        **{
            name: {
                "texts": len(ways[name][1]),
                "median_s": round(statistics.median(values), 4),
                "min_s": round(min(values), 4),
                "max_s": round(max(values), 4),
                "encoder": decided[name],
            }
            for name, values in samples.items()
        },
    }


def child_rss(texts_file: str, key: str) -> dict:
    """Import the function app (it loads the models), answer one batch request, report peak RSS."""
    import function_app
    from benchmarks.cold_start import call_predict

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))[key]
    call_predict(functions["predict"].get_user_function(), {"texts": texts})
    # VmHWM starts afresh at exec (ru_maxrss would carry over the parent's peak from before the fork).
    status = Path("/proc/self/status").read_text()
    return {
        "texts": len(texts),
        "cascade": function_app.MODEL_STATE.model.cascade is not None,
        "peak_rss_mb": round(int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1]) / 1024, 1),
        "rss_mb": round(int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1]) / 1024, 1),
    }


def run_self(args: list[str], env: dict[str, str], core: int | None = None) -> dict:
    """This script in a fresh interpreter (pinned to ``core`` from before it starts); its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_cascade", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=None if core is None else lambda: os.sched_setaffinity(0, {core}),
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- cold start
def cold_start(text: str, model_path: Path, encoder_path: Path, runs: int) -> dict:
    from benchmarks.bench_serving import alternating_runs, child_env, cold_start_medians

    envs = {
        "ngram_alone": child_env(MODEL_PATH=str(model_path), MODEL_ENCODER_PATH="off"),
        "cascade": child_env(MODEL_PATH=str(model_path), MODEL_ENCODER_PATH=str(encoder_path)),
    }
    args = ["-m", "benchmarks.cold_start", "serving", text]
    report = cold_start_medians(alternating_runs({name: (args, env) for name, env in envs.items()}, runs))
    report["added_s"] = round(report["cascade"]["total_s"] - report["ngram_alone"]["total_s"], 4)
    return report


# ------------------------------------------------------------------------------------------------- main
def verdicts(report: dict) -> dict:
    single = report["single_text"]
    batch = report["batch_1000_one_cpu"]
    figures = {
        "single_in_band_p99_ms": single["in_band_cascade"]["p99_ms"],
        "single_confident_p99_ms": single["confident_cascade"]["p99_ms"],
        "batch_1000_one_cpu_s": batch["real_cascade"]["median_s"],
        "batch_1000_worst_one_cpu_s": batch["worst_cascade"]["median_s"],
        "cold_start_s": report["cold_start"]["cascade"]["total_s"],
        "peak_rss_mb": max(v["peak_rss_mb"] for k, v in report["peak_rss"].items() if "cascade" in k),
        "model_files_mb": report["model_files"]["total_mb"],
    }
    return {
        name: {"measured": value, "target": TARGETS[name], "met": value <= TARGETS[name]}
        for name, value in figures.items()
    }


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_cascade", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", type=Path, default=ROOT / "model" / "sentiment.onnx")
    parser.add_argument("--encoder", type=Path, default=ROOT / "model" / "encoder.onnx")
    parser.add_argument("--singles", type=int, default=500, help="single-text calls per way")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of single-text calls")
    parser.add_argument("--batch-runs", type=int, default=5, help="runs per batch way (median)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per way (median)")
    parser.add_argument("--rss-runs", type=int, default=2, help="fresh processes per RSS case (max)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = child_batch(rest[0], rest[1], rest[2], int(rest[3])) if kind == "batch" else child_rss(*rest)
        print(json.dumps(result))
        return None

    from benchmarks.bench_serving import child_env, portable

    model_path, encoder_path = args.model.resolve(), args.encoder.resolve()
    import numpy
    import onnxruntime

    report: dict = {
        "command": " ".join(
            ["python -m benchmarks.bench_cascade"]
            + [portable(a) for a in (argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "onnxruntime_threads": 1,
    }
    ngram, cascaded = load_models(model_path, encoder_path)
    cascade = cascaded.cascade
    report["models"] = {
        "ngram_version": ngram.version,
        "cascade_version": cascaded.version,
        "band": [round(x, 4) for x in cascade.band],
        "quota_per_request": cascade.quota,
        "max_tokens": cascade.tokenizer.max_tokens,
    }
    ngram_mb, encoder_mb = (round(p.stat().st_size / 2**20, 2) for p in (model_path, encoder_path))
    report["model_files"] = {
        "ngram": portable(model_path),
        "ngram_mb": ngram_mb,
        "encoder": portable(encoder_path),
        "encoder_mb": encoder_mb,
        "total_mb": round(ngram_mb + encoder_mb, 2),
    }

    texts, source = load_texts(os.environ.get("SENTIMENT_DATA_DIR"))
    texts = [t for t in texts if t.strip()]
    probabilities = ngram_probabilities(ngram, texts)
    inside = [t for t, p in zip(texts, probabilities, strict=True) if in_band(p, cascade.band)]
    outside = [t for t, p in zip(texts, probabilities, strict=True) if not in_band(p, cascade.band)]
    band_texts, confident = spread(inside, args.singles), spread(outside, args.singles)
    mixed = spread(texts, min(len(texts), 2 * args.singles))
    report["texts"] = {
        "source": source,
        "count": len(texts),
        "in_band": len(inside),
        "share_in_band": round(len(inside) / len(texts), 4),
        "single_calls_per_way": args.singles,
    }

    from serving.cascade import encoder_text

    worst = worst_texts(cascaded, ngram, texts, probabilities, 1_000)
    real = spread(texts, 1_000)
    tokens = [len(cascade.tokenizer.token_ids(encoder_text(t, cascade.max_chars))[0]) for t in worst]
    report["worst_batch"] = {
        "texts": len(worst),
        "distinct": len(set(worst)),
        "chars_p50_max": [int(statistics.median(len(t) for t in worst)), max(len(t) for t in worst)],
        "tokens_min": min(tokens),
        "how": "in-band tweets repeated until the token budget is full, kept when still in the band",
    }

    report["single_text"] = single_text(
        ngram, cascaded, band_texts, confident, mixed, spread(worst, args.singles), args.rounds
    )
    mix = report["single_text"]["real_mix_cascade"]["encoder"]
    report["encoder_engaged"] = {
        "single_requests": sum(mix.values()),
        "used": mix.get("used", 0),
        "share_used": round(mix.get("used", 0) / sum(mix.values()), 4),
        "share_in_band_of_all_texts": report["texts"]["share_in_band"],
    }
    del ngram, cascaded
    env = child_env(MODEL_PATH=str(model_path), MODEL_ENCODER_PATH=str(encoder_path))
    core = min(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench-cascade-") as folder:
        texts_file = Path(folder) / "batches.json"
        texts_file.write_text(json.dumps({"real": real, "worst": worst}), encoding="utf-8")
        report["batch_1000_one_cpu"] = run_self(
            ["--child", "batch", str(texts_file), str(model_path), str(encoder_path), str(args.batch_runs)],
            env,
            core,
        )
        rss: dict[str, list[dict]] = {}
        cases = {
            "real_ngram_alone": ("real", "off"),
            "real_cascade": ("real", str(encoder_path)),
            "worst_cascade": ("worst", str(encoder_path)),
        }
        for _ in range(args.rss_runs):
            for name, (key, encoder) in cases.items():
                case_env = {**env, "MODEL_ENCODER_PATH": encoder}
                rss.setdefault(name, []).append(run_self(["--child", "rss", str(texts_file), key], case_env))
        report["peak_rss"] = {
            name: {
                "texts": values[0]["texts"],
                "cascade": values[0]["cascade"],
                "runs": len(values),
                "peak_rss_mb": max(v["peak_rss_mb"] for v in values),
                "rss_after_mb": max(v["rss_mb"] for v in values),
            }
            for name, values in rss.items()
        }
    report["cold_start"] = cold_start(band_texts[0], model_path, encoder_path, args.cold_runs)
    report["cold_start"]["text"] = "an in-band tweet (the encoder re-reads it)"
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = verdicts(report)
    text = json.dumps(report, indent=2)
    print(text)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
