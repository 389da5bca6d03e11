"""``prior``: estimate a stream's negative share from the model's probabilities, without labels.

The share of texts labelled negative is a biased estimate of the stream's negative share: a model
trained under another prior over-calls the class that prior favours. The EM of Saerens, Latinne &
Decaestecker (2002, "Adjusting the outputs of a classifier to new a priori probabilities") corrects it:
start from the training prior, re-express every probability under the current prior
(``serving.prior.adjust``), take their mean as the new prior, repeat until it stops moving. It is the
maximum-likelihood prior of the stream if the model's probabilities are calibrated on its training
distribution and only the prior has moved (the texts of each class look as they did in training).

The interval is a percentile bootstrap over texts. EM only sees the multiset of probabilities, so the
estimate runs on the distinct values with their counts, and a bootstrap resample is a multinomial draw
of those counts: the same as resampling texts, at the cost of the distinct values (the scored file
writes six decimals, so at most a million of them however long the stream).

Inputs: a file written by ``python -m training score`` (its ``negative_probability`` column), or the
ledger's ``predictions`` rows of one model version (probabilities of another model are not comparable),
both read as a stream: only the float array is held. Standard library and numpy, plus
``azure-data-tables`` for the ledger.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.contract import (
    DEFAULT_THRESHOLD,
    MODEL_VERSION,
    NGRAM_VERSION_KEY,
    THRESHOLD,
    paired_cascade_metadata,
    read_metadata,
)
from serving.prior import STREAM_PRIOR_SETTING, adjust, model_train_prior, prior_odds_ratio, shift_odds
from training.config import SEED

N_BOOT = 200
CONFIDENCE = 0.95
PREDICTIONS_TABLE = "predictions"
PROBABILITY_COLUMN = "negative_probability"
# Set by a service that adapts its probabilities: the stream prior a ledger row's probability was
# adjusted to. Rows that have it are brought back to the model's own probability before estimating.
APPLIED_PRIOR_COLUMN = "stream_negative_prior"
# Below this many texts, or with an interval wider than this, the command says not to trust the figure.
FEW_TEXTS = 1_000
WIDE_INTERVAL = 0.10
# EM keeps the prior strictly inside (0, 1) (a stream of only certain negatives has no finite odds).
_EDGE = 1e-9


class PriorInputError(ValueError):
    """A scored file or ledger row that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class PriorEstimate:
    """What ``estimate_prior`` found: the EM estimate, its bootstrap interval, and for comparison the
    naive share (texts at or above the threshold)."""

    estimate: float
    interval: tuple[float, float]
    iterations: int
    converged: bool
    n: int
    naive_share: float
    train_prior: float
    threshold: float
    n_boot: int
    confidence: float = CONFIDENCE

    def setting_line(self) -> str:
        """The app setting to paste: two decimals, kept strictly inside (0, 1)."""
        return f"{STREAM_PRIOR_SETTING}={min(max(self.estimate, 0.01), 0.99):.2f}"


# ------------------------------------------------------------------------------------------- EM


def _em(
    values: np.ndarray, weights: np.ndarray, train_prior: float, start: float, max_iter: int, tol: float
) -> tuple[float, int, bool]:
    """The EM fixed point on distinct probabilities ``values`` with ``weights`` (counts / n)."""
    prior = start
    for iteration in range(1, max_iter + 1):
        ratio = prior_odds_ratio(train_prior, prior)
        updated = float(np.dot(weights, shift_odds(values, ratio)))
        updated = min(max(updated, _EDGE), 1.0 - _EDGE)
        if abs(updated - prior) < tol:
            return updated, iteration, True
        prior = updated
    return prior, max_iter, False


def estimate_prior(
    negative_probabilities: Iterable[float] | np.ndarray,
    train_prior: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_iter: int = 1000,
    tol: float = 1e-6,
    n_boot: int = N_BOOT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> PriorEstimate:
    """The stream's negative prior by EM, with a percentile bootstrap interval over texts (``n_boot``
    resamples, ``seed``); ``threshold`` only serves the naive share. Raises ValueError on no texts or
    probabilities outside [0, 1]."""
    p = np.asarray(
        negative_probabilities
        if isinstance(negative_probabilities, np.ndarray)
        else np.fromiter(negative_probabilities, dtype=np.float64),
        dtype=np.float64,
    ).ravel()
    if p.size == 0:
        raise ValueError("no probabilities to estimate a prior from")
    prior_odds_ratio(train_prior, train_prior)  # validates the prior
    if not bool(np.all((p >= 0.0) & (p <= 1.0))):
        raise ValueError("negative probabilities must lie in [0, 1]")
    if max_iter < 1 or tol <= 0 or n_boot < 0 or not 0 < confidence < 1:
        raise ValueError("max_iter >= 1, tol > 0, n_boot >= 0 and 0 < confidence < 1 are required")
    values, counts = np.unique(p, return_counts=True)
    n = int(p.size)
    estimate, iterations, converged = _em(values, counts / n, train_prior, train_prior, max_iter, tol)
    if n_boot:
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(n, counts / n, size=n_boot)
        # The log-likelihood is concave in the prior, so every resample has one fixed point: starting
        # from the full sample's estimate only makes EM arrive sooner.
        boots = np.array([_em(values, row / n, train_prior, estimate, max_iter, tol)[0] for row in resampled])
        tail = (1.0 - confidence) / 2.0 * 100.0
        low, high = (float(x) for x in np.percentile(boots, [tail, 100.0 - tail]))
    else:
        low = high = estimate
    return PriorEstimate(
        estimate=estimate,
        interval=(low, high),
        iterations=iterations,
        converged=converged,
        n=n,
        naive_share=float(np.mean(p >= threshold)),
        train_prior=float(train_prior),
        threshold=float(threshold),
        n_boot=n_boot,
        confidence=confidence,
    )


# ------------------------------------------------------------------------------------------- readers


def _probability(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PriorInputError(f"{where}: {PROBABILITY_COLUMN} is not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails too
        raise PriorInputError(f"{where}: {PROBABILITY_COLUMN} {value!r} is not in [0, 1]")
    return number


def read_scores(path: Path | str) -> np.ndarray:
    """The ``negative_probability`` column of a scored CSV (``python -m training score``; plain or
    ``.gz``), read row by row."""
    path = Path(path)
    if not path.is_file():
        raise PriorInputError(f"{path}: no such file")
    values = array("d")
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            columns = [c.strip().lower() for c in header or []]
            if PROBABILITY_COLUMN not in columns:
                raise PriorInputError(
                    f"{path}: no {PROBABILITY_COLUMN!r} column in the header {header!r}: give a file "
                    "written by `python -m training score`"
                )
            at = columns.index(PROBABILITY_COLUMN)
            for record in reader:
                if not record:
                    continue
                if len(record) != len(columns):
                    raise PriorInputError(
                        f"{path}, line {reader.line_num}: {len(record)} columns, "
                        f"the header has {len(columns)}"
                    )
                values.append(_probability(record[at], f"{path}, line {reader.line_num}"))
        except csv.Error as error:
            raise PriorInputError(f"{path}, line {reader.line_num}: malformed CSV ({error})") from None
        except UnicodeDecodeError as error:
            raise PriorInputError(f"{path}: not UTF-8 text ({error.reason})") from None
    return np.frombuffer(values, dtype=np.float64) if values else np.empty(0)


@dataclass
class LedgerRead:
    """What a ledger read kept and left out (the command reports it)."""

    probabilities: np.ndarray
    read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def ledger_rows_to_probabilities(
    rows: Iterable[Mapping[str, Any]], model_version: str, train_prior: float
) -> LedgerRead:
    """The model's own probability of each row of ``model_version`` (other versions are skipped: another
    model's probabilities are not comparable); a row adjusted to a stream prior is brought back."""
    values = array("d")
    result = LedgerRead(np.empty(0))
    for row in rows:
        result.read += 1
        if row.get("model_version") != model_version:
            result.skipped["another model version"] = result.skipped.get("another model version", 0) + 1
            continue
        try:
            probability = _probability(row.get(PROBABILITY_COLUMN), f"row {row.get('RowKey', '?')}")
        except PriorInputError:
            result.skipped["no valid probability"] = result.skipped.get("no valid probability", 0) + 1
            continue
        applied = row.get(APPLIED_PRIOR_COLUMN)
        if applied is not None:
            try:
                probability = float(adjust(np.array([probability]), float(applied), train_prior)[0])
            except (TypeError, ValueError):
                result.skipped["invalid stream prior"] = result.skipped.get("invalid stream prior", 0) + 1
                continue
        values.append(probability)
    result.probabilities = np.frombuffer(values, dtype=np.float64) if values else np.empty(0)
    return result


def read_ledger(
    model_version: str,
    train_prior: float,
    *,
    since: str | None = None,
    connection_string: str | None = None,
    table: str = PREDICTIONS_TABLE,
) -> LedgerRead:
    """The ``predictions`` rows of ``model_version`` (``since``: a PartitionKey, inclusive), paged from
    the ledger (``training.ledger.table_client``: connection string or ``LEDGER_TABLE_ENDPOINT``)."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

    from training.ledger import LedgerError, table_client

    client = table_client(connection_string, table)
    clauses, parameters = ["model_version eq @version"], {"version": model_version}
    if since:
        clauses.append("PartitionKey ge @since")
        parameters["since"] = since
    select = ["RowKey", PROBABILITY_COLUMN, "model_version", APPLIED_PRIOR_COLUMN]
    try:
        with client:
            entities = client.query_entities(" and ".join(clauses), parameters=parameters, select=select)
            return ledger_rows_to_probabilities(entities, model_version, train_prior)
    except ResourceNotFoundError:
        raise LedgerError(
            f"the ledger has no table {table!r}: the service stores predictions only with a ledger "
            "configured and LEDGER_STORE_PREDICTIONS on"
        ) from None
    except ClientAuthenticationError as error:
        raise LedgerError(f"the ledger refused the credentials: {error.message}") from None
    except AzureError as error:
        raise LedgerError(f"the ledger could not be read: {type(error).__name__}: {error}") from None


# ------------------------------------------------------------------------------------------- command


def served_version(model: Path, ngram_version: str) -> str:
    """The version the service stamps on its rows: the cascade's when the cascade file beside the model
    was fitted with it (the service then answers, and records, under the pair's version)."""
    paired = paired_cascade_metadata(model)
    if paired is None or paired.get(NGRAM_VERSION_KEY) != ngram_version:
        return ngram_version
    return str(paired[MODEL_VERSION])


def run_prior_command(
    *,
    scores: Path | None = None,
    ledger: bool = False,
    since: str | None = None,
    model: Path | str = Path("model/sentiment.onnx"),
    json_out: Path | None = None,
    connection_string: str | None = None,
    table: str = PREDICTIONS_TABLE,
    train_prior: float | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> dict[str, Any]:
    """The body of ``python -m training prior``: read the probabilities (``scores`` file or the
    ``ledger``), estimate, return the report (and write it to ``json_out``). ``since`` is a PartitionKey
    (``training.ledger.parse_since``); ``train_prior`` overrides the model's metadata. Raises ValueError
    (PriorInputError included) for bad input and ``training.ledger.LedgerError`` for the ledger."""
    if (scores is None) == (not ledger):
        raise ValueError("give exactly one of --scores FILE or --ledger")
    if since is not None and not ledger:
        raise ValueError("--since applies to --ledger only (a scored file has no dates)")
    metadata = read_metadata(model)
    # A scored file comes from ``score`` (the n-gram model alone); the ledger holds what the service
    # answered, under the pair's version when a cascade was loaded.
    version = str(metadata[MODEL_VERSION])
    if ledger:
        version = served_version(Path(model), version)
    threshold = float(metadata.get(THRESHOLD, DEFAULT_THRESHOLD))
    prior_source = "--train-prior" if train_prior is not None else "model metadata"
    train = train_prior if train_prior is not None else model_train_prior(metadata)
    report: dict[str, Any] = {"model": str(model), "model_version": version}
    if scores is not None:
        probabilities = read_scores(scores)
        report |= {"source": "scores", "scores": str(scores)}
        where = str(scores)
    else:
        read = read_ledger(version, train, since=since, connection_string=connection_string, table=table)
        probabilities = read.probabilities
        report |= {"source": "ledger", "table": table, "since": since, "rows_read": read.read}
        report["skipped"] = read.skipped
        where = f"the ledger's {table!r} rows of model {version}" + (f" since {since}" if since else "")
    if probabilities.size == 0:
        raise PriorInputError(f"no probabilities in {where}")
    found = estimate_prior(probabilities, train, threshold=threshold, n_boot=n_boot, seed=seed)
    low, high = found.interval
    notes = []
    if found.n < FEW_TEXTS or high - low > WIDE_INTERVAL:
        notes.append(
            f"few texts ({found.n:,}) or a wide interval: collect more (a day or more of the stream) "
            "before setting it"
        )
    if low <= train <= high:
        notes.append(
            f"the interval covers the training prior {train:.3f}: the stream does not differ from it; "
            f"leave {STREAM_PRIOR_SETTING} unset"
        )
    if not found.converged:
        notes.append("EM did not converge within max_iter: the estimate is the last iterate")
    report |= {
        **{key: value for key, value in asdict(found).items() if key != "interval"},
        "interval": [low, high],
        "train_prior_source": prior_source,
        "seed": seed,
        "setting": found.setting_line(),
        "notes": notes,
    }
    if json_out is not None:
        json_out = Path(json_out)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """What the command prints: the estimate, its interval, the naive share, the setting line."""
    low, high = report["interval"]
    confidence = round(100 * report["confidence"])
    lines = [
        f"{report['n']:,} texts scored by model {report['model_version']} "
        f"(training prior {report['train_prior']:.3f}, from {report['train_prior_source']})",
        f"stream negative prior: {report['estimate']:.3f} ({confidence} % CI {low:.3f} to {high:.3f}; "
        f"EM, {report['iterations']} iterations, {report['n_boot']} bootstrap resamples)",
        f"naive share (negative probability >= {report['threshold']:g}): {report['naive_share']:.3f}",
    ]
    if report.get("skipped"):
        lines.append("left out: " + ", ".join(f"{n} {why}" for why, n in sorted(report["skipped"].items())))
    lines += [f"note: {note}" for note in report["notes"]]
    lines.append(report["setting"])
    return lines
