"""The model runtime: one ONNX Runtime session, the shared normalizer, and the model's own metadata.

Everything the service says about a prediction (label, threshold, version, explanation terms) comes from
the ONNX file, so a new model is deployed by replacing that one file. Loading checks the file's contract
(input, outputs, metadata, a probe run) up front and reports a readable reason, because a model that
fails later, on a customer's request, is worse than one that refuses to load.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import onnxruntime as ort

from serving import cascade as cascade_module
from serving import contract, prior
from serving.cascade import Cascade, CascadeLoadError
from serving.contract import (
    DEFAULT_MODEL_PATH,
    EXPLAIN_INPUT,
    INPUT_NAME,
    INPUT_TYPE,
    OUTPUT_TYPES,
    PROBABILITY_OUTPUT,
    ContractError,
)
from serving.explanation import Term, top_words
from serving.normalizer import NORMALIZER_VERSION, normalize
from serving.topics import TopicMatcher, default_matcher

# Batches are scored in chunks of texts of similar length: the graph pads every text of a run to the
# longest one, and chunks of a sorted batch run side by side on the CPU's cores. A chunk holds at most
# CHUNK_TEXTS texts and CHUNK_CHARS padded characters (about 64 tweets of 500 characters).
CHUNK_TEXTS = 64
CHUNK_CHARS = 32_768
APP_ROOT = Path(__file__).resolve().parent.parent


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or breaks the artifact contract; the message says which.

    ``summary`` is the short form shown to anonymous callers: no path, no library message."""

    def __init__(self, message: str, summary: str = "the model breaks the artifact contract") -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True, slots=True)
class Prediction:
    """One scored text. ``topics``: the airline topics it mentions (``serving.topics``);
    ``unknown_share``: share of its n-grams the model does not know (None when the model does not report
    it or the text has none); ``empty``: nothing was left after normalization; ``encoder``: whether the
    cascade's encoder re-read it (``serving.cascade``)."""

    label: str
    negative_probability: float
    explanation: list[Term] | None
    topics: tuple[str, ...] = ()
    unknown_share: float | None = None
    empty: bool = False
    encoder: str = cascade_module.OFF  # how the cascade decided it: serving.cascade USED/SKIPPED/...
    ngram_negative_probability: float | None = None  # the n-gram model's own answer, when overruled


HISTOGRAM_BINS = 10


class ScoredSignals(TypedDict):
    """What a batch adds to SentimentScored: its counts and drift dimensions (``telemetry.record_scored``'s
    keyword arguments of the same names)."""

    texts: int
    negatives: int
    mean_negative_probability: float
    score_histogram: list[int]
    topics: dict[str, list[int]]
    unknown_share: float | None
    unknown_texts: int
    empty_after_normalization: int
    encoder_texts: int | None
    encoder_skipped: int | None


def configured_model_path(environ: Mapping[str, str] | None = None) -> Path:
    """``MODEL_PATH`` (relative paths are taken from the app folder, like the Functions host does)."""
    value = (environ if environ is not None else os.environ).get("MODEL_PATH") or DEFAULT_MODEL_PATH
    path = Path(value)
    return path if path.is_absolute() else APP_ROOT / path


def _session_options() -> ort.SessionOptions:
    """One thread per request: the graph's work per text is a few lookups, so a thread pool only adds
    wake-up latency, and the Functions host already runs requests concurrently."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _parse_metadata(raw: Mapping[str, str]) -> dict[str, Any]:
    """The contract's checks, plus the one only serving can make: the normalizer matches this code."""
    try:
        metadata = contract.decode_metadata(raw)
    except ContractError as error:
        raise ModelLoadError(str(error)) from None
    if str(metadata["normalizer_version"]) != NORMALIZER_VERSION:
        raise ModelLoadError(
            f"model was trained with normalizer version {metadata['normalizer_version']!r}, "
            f"serving has {NORMALIZER_VERSION!r}: retrain or deploy the matching code",
            "model built for another normalizer version",
        )
    return metadata


def _shown(path: Path) -> str:
    """The path as the operator configured it: relative to the app folder when inside it."""
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


class SentimentModel:
    """Scores raw tweets: normalize, run the graph, apply the model's threshold and labels."""

    __slots__ = (
        "_all_outputs",
        "_coverage",
        "_explain_feed",
        "_matcher",
        "_prior_ratio",
        "cascade",
        "explains",
        "labels",
        "metadata",
        "ngram_version",
        "path",
        "session",
        "threshold",
        "version",
    )

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any], path: Path):
        self.session = session
        self.metadata = metadata
        self.path = path
        self.version: str = metadata["model_version"]
        self.ngram_version: str = self.version
        self.cascade: Cascade | None = None
        self._prior_ratio = 1.0  # odds factor of STREAM_NEGATIVE_PRIOR (serving.prior); 1: no adaptation
        self.threshold: float = float(metadata["threshold"])
        self.labels: tuple[str, str] = tuple(metadata["labels"])
        term_outputs = contract.explanation_outputs(metadata)
        self.explains = bool(term_outputs)
        self._all_outputs = [PROBABILITY_OUTPUT, *term_outputs]
        # (known n-grams, n-grams) per text, when the graph declares the outputs (older models do not).
        self._coverage = list(contract.coverage_outputs(metadata))
        self._matcher: TopicMatcher = default_matcher()
        optional = {i.name: i.type for i in session.get_overridable_initializers()}
        self._explain_feed = (
            {EXPLAIN_INPUT: np.array(True)} if optional.get(EXPLAIN_INPUT) == "tensor(bool)" else {}
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SentimentModel:
        """Open the file with the CPU provider and check it honours the artifact contract."""
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(
                f"model file not found: {_shown(path)} (set MODEL_PATH or add the file)",
                "model file not found",
            )
        try:
            session = ort.InferenceSession(str(path), _session_options(), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several unrelated types for unreadable files
            raise ModelLoadError(
                f"model file {path.name} cannot be read by ONNX Runtime: {error}", "model file unreadable"
            ) from None
        inputs = session.get_inputs()
        if [(i.name, i.type) for i in inputs] != [(INPUT_NAME, INPUT_TYPE)]:
            found = ", ".join(f"{i.name} {i.type}" for i in inputs)
            raise ModelLoadError(f"model must take one string tensor input {INPUT_NAME!r}, found: {found}")
        raw_metadata = session.get_modelmeta().custom_metadata_map
        outputs = dict.fromkeys(OUTPUT_TYPES, "absent") | {o.name: o.type for o in session.get_outputs()}
        loose = contract.decode_metadata(raw_metadata, strict=False)
        declared = [*contract.explanation_outputs(loose), *contract.coverage_outputs(loose)]
        expected = [PROBABILITY_OUTPUT, *declared]
        wrong = [f"{name} ({OUTPUT_TYPES[name]})" for name in expected if outputs[name] != OUTPUT_TYPES[name]]
        if wrong:
            raise ModelLoadError(f"model lacks the outputs {', '.join(wrong)}")
        model = cls(session, _parse_metadata(raw_metadata), path)
        model._probe()
        return model

    def _probe(self) -> None:
        """Score a few texts once, so that a graph that fails at run time is refused at load time."""
        probe = ["", "good morning !", "the flight was delayed again ?"]
        try:
            predictions = self.predict(probe, explain=self.explains)
        except Exception as error:
            raise ModelLoadError(
                f"model failed its probe run: {error}", "model failed its probe run"
            ) from None
        for prediction in predictions:
            if not math.isfinite(prediction.negative_probability) or not (
                0.0 <= prediction.negative_probability <= 1.0
            ):
                raise ModelLoadError(
                    f"model returned an invalid probability {prediction.negative_probability}"
                )

    def adapt_to_prior(self, stream_prior: float | None) -> None:
        """Answer under the stream's negative prior (``STREAM_NEGATIVE_PRIOR``; None: as trained): every
        probability's odds are multiplied by odds(stream) / odds(the prior the model encodes)."""
        if stream_prior is None:
            self._prior_ratio = 1.0
            return
        self._prior_ratio = prior.prior_odds_ratio(prior.model_train_prior(self.metadata), stream_prior)

    def attach_cascade(self, path: Path) -> None:
        """Serve the cascade in ``path`` from now on (its version covers both parts); raises
        ``CascadeLoadError`` and leaves the model as it was when the file is unusable or fails a probe."""
        cascade = Cascade.load(path, self.ngram_version, _session_options())
        probe = ["not bad at all, thanks", "the crew was not rude", "@AirParadis lost my bag http://x.co"]
        try:
            fused = cascade.rescore(probe, [0.5, 0.5, 0.5])
        except Exception as error:
            raise CascadeLoadError(f"cascade failed its probe run: {error}") from None
        if not all(0.0 <= p <= 1.0 for p in fused):
            raise CascadeLoadError(f"cascade returned invalid probabilities {fused}")
        self.cascade = cascade
        self.version = cascade.version

    def predict(
        self,
        raw_texts: list[str],
        explain: bool = False,
        top_k: int = 5,
        deadline: float | None = None,
        match_topics: bool = True,
    ) -> list[Prediction]:
        """Score raw texts in order; ``explain`` adds the top-k words of the normalized text by absolute
        contribution, their n-grams' contributions folded in (``serving.explanation``; models
        without explanation outputs answer ``explanation=None``: check ``explains`` first). Past
        ``deadline`` (``time.monotonic()``) it raises ``OverBudget`` instead of going on. Topics are
        matched on the same normalized texts (``match_topics=False`` skips it, for measurements)."""
        texts = [normalize(text) for text in raw_texts]
        topics: list[tuple[str, ...]] = [()] * len(texts)

        match = self._matcher.match

        def match_topics_of(rows: list[int]) -> None:  # overlaps the graph runs of the other chunks
            for row in rows:
                topics[row] = tuple(match(texts[row]))

        explaining = explain and self.explains
        if not (explaining or self._coverage):
            scores: list[float] = negative_probabilities(
                self.session, texts, deadline, match_topics_of if match_topics else None
            ).tolist()
            how, ngram = self._final_probabilities(raw_texts, scores, deadline)
            return [
                Prediction(self._label(p), p, None, found, None, not text, h, q)
                for p, found, text, h, q in zip(scores, topics, texts, how, ngram, strict=True)
            ]
        outputs = (self._all_outputs if explaining else [PROBABILITY_OUTPUT]) + self._coverage
        feed = self._explain_feed if explaining else {}
        probabilities: list[float] = [0.0] * len(texts)
        explanations: list[list[Term] | None] = [None] * len(texts)
        shares: list[float | None] = [None] * len(texts)

        def score_chunk(rows: list[int], batch: np.ndarray) -> None:
            results = self.session.run(outputs, {INPUT_NAME: batch} | feed)
            for row, p in zip(rows, results[0].tolist(), strict=True):
                probabilities[row] = p
            if explaining:
                term_rows, term_texts, term_weights = results[1:4]
                top = top_words([texts[row] for row in rows], term_rows, term_texts, term_weights, top_k)
                for row, explanation in zip(rows, top, strict=True):
                    explanations[row] = explanation
            if self._coverage:
                known, total = results[-2].tolist(), results[-1].tolist()
                for row, k, n in zip(rows, known, total, strict=True):
                    shares[row] = 1.0 - k / n if n > 0 else None

        _each_chunk(texts, score_chunk, deadline, match_topics_of if match_topics else None)
        how, ngram = self._final_probabilities(raw_texts, probabilities, deadline)
        return [
            Prediction(self._label(p), p, explanation, found, share, not text, h, q)
            for p, explanation, found, share, text, h, q in zip(
                probabilities, explanations, topics, shares, texts, how, ngram, strict=True
            )
        ]

    def _final_probabilities(
        self, raw_texts: list[str], probabilities: list[float], deadline: float | None
    ) -> tuple[list[str], list[float | None]]:
        """The n-gram probabilities, in place, turned into the answers: the cascade's second opinion on
        the uncertain texts, then the stream's prior (``serving.prior``). Returns ``_second_opinion``'s."""
        decided = self._second_opinion(raw_texts, probabilities, deadline)
        if self._prior_ratio != 1.0:
            probabilities[:] = prior.shift_odds(np.asarray(probabilities), self._prior_ratio).tolist()
        return decided

    def _second_opinion(
        self, raw_texts: list[str], probabilities: list[float], deadline: float | None
    ) -> tuple[list[str], list[float | None]]:
        """Let the cascade re-read the uncertain texts (at most its quota), replacing their probabilities
        in place; returns how each text was decided and the n-gram probability of the re-read ones."""
        cascade = self.cascade
        if cascade is None:
            return [cascade_module.OFF] * len(probabilities), [None] * len(probabilities)
        how = [cascade_module.NOT_NEEDED] * len(probabilities)
        ngram: list[float | None] = [None] * len(probabilities)
        rows, skipped = cascade.plan(probabilities)
        for row in skipped:
            how[row] = cascade_module.SKIPPED
        if rows:
            if deadline is not None and time.monotonic() > deadline:
                raise OverBudget("scoring passed its deadline")
            fused = cascade.rescore([raw_texts[row] for row in rows], [probabilities[row] for row in rows])
            for row, p in zip(rows, fused, strict=True):
                ngram[row] = probabilities[row]
                probabilities[row] = p
                how[row] = cascade_module.USED
        return how, ngram

    def scored_signals(self, predictions: Sequence[Prediction]) -> ScoredSignals:
        """A batch's SentimentScored counts (texts, negatives, mean negative probability) and drift
        dimensions (score histogram, ``HISTOGRAM_BINS`` bins over [0, 1]; texts and negatives per topic;
        mean unknown share over the texts that have one; empty texts), in one pass."""
        histogram = [0] * HISTOGRAM_BINS
        topics: dict[str, list[int]] = {}
        unknown_sum, unknown_texts, empty = 0.0, 0, 0
        encoder_texts, encoder_skipped = 0, 0
        negatives, probability_sum = 0, 0.0
        negative = self.labels[0]
        for prediction in predictions:
            histogram[min(int(prediction.negative_probability * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
            probability_sum += prediction.negative_probability
            is_negative = prediction.label == negative
            negatives += is_negative
            for topic in prediction.topics:
                pair = topics.setdefault(topic, [0, 0])
                pair[0] += 1
                pair[1] += is_negative
            if prediction.unknown_share is not None:
                unknown_sum += prediction.unknown_share
                unknown_texts += 1
            empty += prediction.empty
            encoder_texts += prediction.encoder == cascade_module.USED
            encoder_skipped += prediction.encoder == cascade_module.SKIPPED
        cascaded = self.cascade is not None
        return {
            "texts": len(predictions),
            "negatives": negatives,
            "mean_negative_probability": probability_sum / len(predictions) if predictions else 0.0,
            "score_histogram": histogram,
            "topics": topics,
            "unknown_share": unknown_sum / unknown_texts if unknown_texts else None,
            "unknown_texts": unknown_texts,
            "empty_after_normalization": empty,
            "encoder_texts": encoder_texts if cascaded else None,
            "encoder_skipped": encoder_skipped if cascaded else None,
        }

    def _label(self, negative_probability: float) -> str:
        """Negative from the model's threshold on (inclusive), as training measured it."""
        return self.labels[0] if negative_probability >= self.threshold else self.labels[1]


def negative_probabilities(
    session: ort.InferenceSession,
    texts: list[str],
    deadline: float | None = None,
    then: Callable[[list[int]], None] | None = None,
) -> np.ndarray:
    """The graph's negative probability of each NORMALIZED text, in order (float32); ``then``: see
    ``_each_chunk``."""
    result = np.empty(len(texts), dtype=np.float32)

    def score_chunk(rows: list[int], batch: np.ndarray) -> None:
        result[rows] = session.run([PROBABILITY_OUTPUT], {INPUT_NAME: batch})[0]

    _each_chunk(texts, score_chunk, deadline, then)
    return result


class OverBudget(RuntimeError):
    """Scoring passed its deadline; the chunks not started were skipped."""


def chunk_rows(lengths: Sequence[int]) -> list[list[int]]:
    """Rows grouped in length order, each group at most ``CHUNK_TEXTS`` rows and ``CHUNK_CHARS`` padded
    characters (rows x longest; a longer text goes alone). The graph pads every text of a run to the
    longest, so a budget in characters, not texts, is what bounds a run's memory."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks: list[list[int]] = []
    current: list[int] = []
    for row in order:  # ascending: ``row`` is the longest of its group so far
        if current and (len(current) == CHUNK_TEXTS or (len(current) + 1) * lengths[row] > CHUNK_CHARS):
            chunks.append(current)
            current = []
        current.append(row)
    if current:
        chunks.append(current)
    return chunks


def _each_chunk(
    texts: list[str],
    work: Callable[[list[int], np.ndarray], None],
    deadline: float | None = None,
    then: Callable[[list[int]], None] | None = None,
) -> None:
    """Call ``work(rows, batch)`` (``batch``: those rows' texts as the graph's input) on the groups of
    ``chunk_rows``, in parallel when there are several (onnxruntime releases the GIL while it runs).
    Past ``deadline`` (``time.monotonic()``), the groups not yet started raise ``OverBudget``.
    ``then(rows)`` follows each ``work`` in the same thread: Python work on a group overlaps the graph
    runs of the others."""

    def run(rows: list[int]) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise OverBudget("scoring passed its deadline")
        work(rows, np.array([texts[row] for row in rows], dtype=object))
        if then is not None:
            then(rows)

    lengths = [len(text) for text in texts]
    if len(texts) <= CHUNK_TEXTS and len(texts) * max(lengths, default=0) <= CHUNK_CHARS:
        run(list(range(len(texts))))  # the usual request: one run, in input order
        return
    chunks = chunk_rows(lengths)
    pool = _chunk_pool()
    if pool is None:
        for chunk in chunks:
            run(chunk)
    else:
        for _ in pool.map(run, chunks):  # re-raises the first failure
            pass


@cache
def _chunk_pool() -> ThreadPoolExecutor | None:
    """One pool per process, sized to the CPUs this process may use (none on a single CPU)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return ThreadPoolExecutor(min(cpus, 4), thread_name_prefix="sentiment-chunk") if cpus > 1 else None


@dataclass(frozen=True)
class ModelState:
    """What the app knows at start-up: a model, or the reason there is none (``reason`` in full for the
    log, ``summary`` for callers: no paths, no library messages)."""

    model: SentimentModel | None
    reason: str | None
    configured_path: str
    summary: str | None = None
    cascade_reason: str | None = None  # why the model answers without its cascade (None: it has one)


def load_configured_model(environ: Mapping[str, str] | None = None) -> ModelState:
    """Load ``MODEL_PATH`` without ever raising: the app must import and index even without a model.
    The cascade (``MODEL_ENCODER_PATH``) is optional: when it cannot be used the n-gram model answers
    alone, under its own version, and ``cascade_reason`` says why."""
    env = environ if environ is not None else os.environ
    configured = env.get("MODEL_PATH") or DEFAULT_MODEL_PATH
    try:
        model = SentimentModel.load(configured_model_path(env))
        cascade_reason = _attach_configured_cascade(model, env)
        try:
            model.adapt_to_prior(prior.parse_prior_setting(env.get(prior.STREAM_PRIOR_SETTING)))
        except ValueError as error:  # a wrong prior must not quietly serve skewed labels
            return ModelState(None, str(error), configured, f"invalid {prior.STREAM_PRIOR_SETTING}")
        return ModelState(model, None, configured, None, cascade_reason)
    except ModelLoadError as error:
        return ModelState(None, str(error), configured, error.summary)
    except Exception as error:  # a loader bug must not become "0 functions found" in Azure
        reason = f"model could not be loaded: {type(error).__name__}: {error}"
        return ModelState(None, reason, configured, "model could not be loaded")


def _attach_configured_cascade(model: SentimentModel, env: Mapping[str, str]) -> str | None:
    """Attach the configured cascade; the reason it is not used, or None when it is."""
    path = cascade_module.configured_encoder_path(APP_ROOT, env)
    if path is None:
        return f"{cascade_module.ENCODER_PATH_SETTING} is off"
    if not path.is_file():
        return f"no cascade file at {_shown(path)}"
    try:
        model.attach_cascade(path)
    except CascadeLoadError as error:
        return str(error)
    return None


SHADOW_PATH_SETTING = "MODEL_SHADOW_PATH"


def load_shadow_model(environ: Mapping[str, str] | None = None) -> tuple[SentimentModel | None, str | None]:
    """The optional shadow model (``MODEL_SHADOW_PATH``): scored beside the live one to count label
    disagreements, never answered with. Returns (model, None), (None, None) when unset, or (None, reason)
    when it fails to load: a broken shadow must not take the service down."""
    env = environ if environ is not None else os.environ
    configured = env.get(SHADOW_PATH_SETTING, "").strip()
    if not configured:
        return None, None
    path = Path(configured)
    try:
        return SentimentModel.load(path if path.is_absolute() else APP_ROOT / path), None
    except Exception as error:
        return None, f"shadow model {configured} not loaded: {error}"
