"""The ``cascade`` command: fit the cascade on the n-gram model's own split, write the file, report.

The fitting itself (head, band, fusion, bootstrap intervals) is ``training.cascade``; the file writer is
``training.export.cascade``. This module joins them to the data, the served n-gram model and the encoder,
and checks the written file against the fitted heads before anyone serves it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.cascade import (
    CascadeFit,
    cascade_probability,
    embed_cached,
    evaluate_parts,
    fit_cascade,
    in_band,
    stratified_sample,
)
from training.config import SEED
from training.reporting.cascade_card import section, write_section


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def run_cascade(
    *,
    recipe: dict,
    ngram_path: Path,
    encoder_path: Path,
    out_path: Path,
    report_dir: Path,
    train_rows: int | None = 20_000,
    band_share: float = 0.3,
    max_per_request: int = 16,
    seed: int = SEED,
    card: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit the cascade on the n-gram model's own data split, write the cascade file and its report."""
    from serving.cascade import encoder_text
    from serving.encoder import SentenceEncoder
    from serving.runtime import SentimentModel
    from training.dataset import build_dataset
    from training.export.artifact import write_atomically
    from training.export.cascade import write_cascade
    from training.modeling.train import score_histogram

    ngram = SentimentModel.load(ngram_path)
    dataset = build_dataset(**recipe, seed=seed, progress=False)
    trained_on = ngram.metadata.get("training_data_fingerprint")
    if trained_on != dataset.fingerprint:
        raise ValueError(
            f"{ngram_path} was trained on data {str(trained_on)[:12]}…, this recipe gives "
            f"{dataset.fingerprint[:12]}…: give the data the n-gram model was trained with, or the "
            "validation texts the cascade is fitted on may be in its training split"
        )
    encoder = SentenceEncoder.load(encoder_path, threads=os.cpu_count() or 1)  # embedding is the cost
    max_chars = 16 * encoder.max_tokens
    cache = report_dir / "embeddings"
    digest = _digest(encoder_path)

    def ngram_p(raw: Sequence[str]) -> np.ndarray:
        return np.array([p.negative_probability for p in ngram.predict(list(raw), match_topics=False)])

    def embeddings(raw: Sequence[str], name: str) -> np.ndarray:
        texts = [encoder_text(text, max_chars) for text in raw]
        vectors, seconds = embed_cached(encoder.embed, texts, cache, digest)
        timings[name] = {"texts": len(texts), "seconds": round(seconds, 1)}
        log(f"embedded {name}: {len(texts):,} texts ({seconds:.1f} s when computed)")
        return vectors

    timings: dict[str, dict] = {}
    rows = stratified_sample(dataset.train.labels, train_rows, seed)
    train_raw = [dataset.train.raw_texts[i] for i in rows]
    train_vectors = embeddings(train_raw, "train")
    validation = dataset.validation
    val_p = ngram_p(validation.raw_texts)
    val_vectors = embeddings(validation.raw_texts, "validation")
    fit = fit_cascade(
        threshold=ngram.threshold,
        train=(train_vectors, dataset.train.labels[rows]),
        validation=(val_vectors, validation.labels, val_p),
        band_share=band_share,
        seed=seed,
    )
    fit.facts["embedding"] = timings
    val_cascade = cascade_probability(val_p, fit.head.logit(val_vectors), fit.fusion, fit.band)
    # Written beside the reports first: it replaces ``out_path`` only once it passes the parity gate.
    candidate = report_dir / "cascade-candidate.onnx"
    written = write_cascade(
        encoder_path,
        fit,
        ngram.version,
        candidate,
        max_per_request=max_per_request,
        # The score-drift alert's baseline when the cascade answers: its own validation histogram.
        extra={"validation_histogram": score_histogram(val_cascade)},
    )
    parity = check_parity(candidate, ngram.version, fit, validation.raw_texts, val_p, encoder)
    write_atomically(out_path, candidate.read_bytes())
    candidate.unlink()
    written["path"] = str(out_path)
    log(f"wrote {out_path} ({written['bytes'] / 1e6:.1f} MB), cascade version {written['model_version']}")

    sets = {"internal_test": dataset.test, **dataset.external}
    results = {}
    for name, split in sets.items():
        results[name] = evaluate_parts(
            fit, split.labels, ngram_p(split.raw_texts), embeddings(split.raw_texts, name)
        )
    report = {
        "cascade_version": written["model_version"],
        "ngram_model_version": ngram.version,
        "file": written,
        "band": list(fit.band),
        "band_share": band_share,
        "threshold": fit.threshold,
        "max_per_request": max_per_request,
        "max_tokens": encoder.max_tokens,
        "head": {"C": fit.head.c, "search": fit.facts["head_search"], "train_rows": len(rows)},
        "fusion": vars(fit.fusion),
        "band_choice": fit.choice,
        "embedding": timings,
        "test_sets": results,
        "parity": parity,
    }
    report["encoder"] = {
        "variant": encoder.settings.variant,
        "quantization": encoder.settings.quantization,
        "source": encoder.settings.source,
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "cascade.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    if card is not None:
        behaviour = behaviour_of_both(ngram_path, out_path, report_dir)
        write_section(card, section(report, behaviour, costs_from_benchmark(report["cascade_version"])))
        log(f"wrote the cascade section of {card}")
    return report


BENCHMARK = Path("benchmarks/results/cascade.json")


def costs_from_benchmark(version: str, path: Path = BENCHMARK) -> dict | None:
    """The cost lines of the card, from the cascade benchmark when it measured this very cascade
    (``python -m benchmarks.bench_cascade``); None otherwise, and the card says to run it."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("models", {}).get("cascade_version") != version:
        return None
    single, batch = result["single_text"], result["batch_1000_one_cpu"]
    cold, rss, files = result["cold_start"], result["peak_rss"], result["model_files"]
    lines = [
        f"Measured by `python -m benchmarks.bench_cascade` on {result['machine']['cpus']} CPUs, one ONNX "
        "Runtime thread (details: docs/reference/performance.md):",
        "",
        "| figure | n-gram alone | cascade |",
        "| --- | --- | --- |",
        f"| one tweet in the band, p50 / p99 | {single['in_band_ngram_alone']['p50_ms']:.2f} / "
        f"{single['in_band_ngram_alone']['p99_ms']:.2f} ms | {single['in_band_cascade']['p50_ms']:.1f} / "
        f"{single['in_band_cascade']['p99_ms']:.1f} ms |",
        f"| one confident tweet, p50 / p99 | {single['confident_ngram_alone']['p50_ms']:.2f} / "
        f"{single['confident_ngram_alone']['p99_ms']:.2f} ms | {single['confident_cascade']['p50_ms']:.2f} / "
        f"{single['confident_cascade']['p99_ms']:.2f} ms |",
        f"| batch of 1,000 tweets, one CPU | {batch['real_ngram_alone']['median_s']:.3f} s "
        f"| {batch['real_cascade']['median_s']:.3f} s |",
        f"| cold start (import and load) | {cold['ngram_alone']['total_s']:.3f} s "
        f"| {cold['cascade']['total_s']:.3f} s |",
        f"| peak RSS, 1,000 tweets | {rss['real_ngram_alone']['peak_rss_mb']:.0f} MB "
        f"| {rss['real_cascade']['peak_rss_mb']:.0f} MB |",
        f"| model files | {files['ngram_mb']:.1f} MB | {files['total_mb']:.1f} MB |",
    ]
    return {"lines": lines}


def behaviour_of_both(ngram_path: Path, cascade_path: Path, report_dir: Path) -> dict[str, dict]:
    """The behavioural suites on the n-gram model alone and with the cascade (reports beside the rest)."""
    from training.behaviour import run_behaviour_command

    return {
        "ngram": run_behaviour_command(
            ngram_path, report_dir / "behaviour-ngram.json", report_dir / "behaviour-ngram.md"
        ),
        "cascade": run_behaviour_command(
            ngram_path,
            report_dir / "behaviour-cascade.json",
            report_dir / "behaviour-cascade.md",
            encoder_path=cascade_path,
        ),
    }


def check_parity(
    path: Path,
    ngram_version: str,
    fit: CascadeFit,
    raw_texts: Sequence[str],
    p_ngram: np.ndarray,
    encoder,
    tolerance: float = 1e-4,
) -> dict:
    """The written file, run as serving runs it, against the fitted heads in numpy (on the bare
    ``encoder``'s embeddings) on the band's validation texts."""
    import onnxruntime as ort

    from serving.cascade import Cascade, encoder_text

    max_chars = 16 * encoder.max_tokens
    options = ort.SessionOptions()
    options.log_severity_level = 3
    cascade = Cascade.load(path, ngram_version, options)
    rows = np.flatnonzero(in_band(p_ngram, fit.band))[:2_000]
    texts = [raw_texts[i] for i in rows]
    served = np.array(cascade.rescore(texts, p_ngram[rows].tolist()))
    expected = fit.fusion.probability(
        p_ngram[rows], fit.head.logit(encoder.embed([encoder_text(t, max_chars) for t in texts]))
    )
    worst = float(np.max(np.abs(served - expected))) if len(rows) else 0.0
    flips = int(np.sum((served >= fit.threshold) != (expected >= fit.threshold)))
    if worst > tolerance:
        raise AssertionError(f"cascade file and fitted heads differ by {worst:.2e} (> {tolerance:g})")
    return {"texts": len(rows), "max_abs_difference": worst, "label_flips": flips}
