"""Prior adaptation: the Bayes correction (``serving.prior``), the EM estimate of a stream's negative
share with its bootstrap interval (``training.prior``), on simulated, real, scored-file and ledger
inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving.contract import read_metadata
from serving.prior import TRAIN_PRIOR_KEY, adjust, model_train_prior, parse_prior_setting
from tests.azurite import azurite, azurite_server  # noqa: F401 (fixtures)
from tests.training_cli import cli
from tests.tweet_factory import tweets, write_labelled
from training.config import SEED
from training.prior import (
    PriorInputError,
    estimate_prior,
    ledger_rows_to_probabilities,
    read_scores,
    run_prior_command,
    served_version,
    summary_lines,
)

priors = st.floats(0.01, 0.99)
probabilities = arrays(np.float64, st.integers(1, 50), elements=st.floats(0.0, 1.0))


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


# ------------------------------------------------------------------------------------------- adjust


@given(probabilities, priors)
def test_adjust_is_the_identity_when_the_priors_are_equal(p, prior):
    assert np.array_equal(adjust(p, prior, prior), p)


@given(probabilities, priors, priors)
def test_adjust_is_monotone_and_keeps_0_and_1(p, train, stream):
    ordered = np.sort(p)
    adjusted = adjust(ordered, train, stream)
    assert np.all(np.isfinite(adjusted)) and np.all((adjusted >= 0) & (adjusted <= 1))
    assert np.all(np.diff(adjusted) >= 0)
    assert adjust(np.array([0.0, 1.0]), train, stream).tolist() == [0.0, 1.0]


@given(probabilities, priors, priors)
def test_swapping_the_priors_undoes_adjust(p, train, stream):
    back = adjust(adjust(p, train, stream), stream, train)
    np.testing.assert_allclose(back, p, rtol=1e-9, atol=1e-12)


@settings(max_examples=50)
@given(st.floats(1e-6, 1 - 1e-6), priors, priors)
def test_adjust_shifts_the_logit_by_the_prior_log_odds(p, train, stream):
    shifted = logit(adjust(np.array([p]), train, stream))[0]
    assert shifted == pytest.approx(logit(p) + logit(stream) - logit(train), rel=1e-6, abs=1e-6)


def test_adjust_refuses_bad_priors_and_probabilities():
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            adjust(np.array([0.5]), bad, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust(np.array([0.5, float("nan")]), 0.4, 0.7)
    assert adjust(np.array([], dtype=np.float32), 0.4, 0.7).shape == (0,)


def test_prior_setting_parsing():
    assert parse_prior_setting(None) is None
    assert parse_prior_setting("  ") is None
    assert parse_prior_setting(" 0.74 ") == 0.74
    for bad, message in [("74", "percentage"), ("1", "strictly"), ("0", "strictly"), ("nan", "strictly"),
                         ("inf", "strictly"), ("high", "e.g. 0.74")]:  # fmt: skip
        with pytest.raises(ValueError, match=message) as error:
            parse_prior_setting(bad)
        assert "STREAM_NEGATIVE_PRIOR" in str(error.value)


def test_the_training_prior_comes_from_the_metadata():
    assert model_train_prior({TRAIN_PRIOR_KEY: 0.41, "params": {"class_weight": "balanced"}}) == 0.41
    assert model_train_prior({"params": {"class_weight": "balanced"}}) == 0.5
    with pytest.raises(ValueError, match=TRAIN_PRIOR_KEY):
        model_train_prior({"params": {"class_weight": None}})
    with pytest.raises(ValueError, match="strictly between"):
        model_train_prior({TRAIN_PRIOR_KEY: 1.2})


def test_the_committed_model_states_its_training_prior(repo_root):
    metadata = read_metadata(repo_root / "model" / "sentiment.onnx")
    assert 0 < model_train_prior(metadata) < 1


# ------------------------------------------------------------------------------------------- EM


def calibrated_scores(stream_prior: float, train_prior: float, n: int, seed: int, separation: float = 1.0):
    """Labels drawn with ``stream_prior``; a score x ~ N(+s, 1) for negatives, N(-s, 1) for positives,
    so the log-likelihood ratio is exactly 2 s x and the posterior under ``train_prior`` is
    sigmoid(2 s x + logit(train_prior)): a classifier calibrated to ``train_prior``."""
    rng = np.random.default_rng(seed)
    negative = rng.random(n) < stream_prior
    x = rng.normal(np.where(negative, separation, -separation), 1.0)
    p = 1.0 / (1.0 + np.exp(-(2 * separation * x + logit(train_prior))))
    return p, negative


@pytest.mark.parametrize("stream_prior", [0.3, 0.5, 0.75, 0.9])
def test_em_recovers_a_known_prior_with_an_interval_that_covers_it(stream_prior):
    train_prior = 0.41
    p, negative = calibrated_scores(stream_prior, train_prior, n=4_000, seed=SEED)
    found = estimate_prior(p, train_prior, n_boot=200)
    low, high = found.interval
    print(
        f"prior {stream_prior}: EM {found.estimate:.3f} [{low:.3f}, {high:.3f}] "
        f"({found.iterations} iterations), naive {found.naive_share:.3f}, sample {negative.mean():.3f}"
    )
    assert found.converged and found.n == 4_000
    assert low <= found.estimate <= high
    assert low <= stream_prior <= high
    assert high - low < 0.06
    if abs(stream_prior - train_prior) > 0.2:  # far from the training prior, counting labels is biased
        assert abs(found.estimate - stream_prior) < abs(found.naive_share - stream_prior)


def test_em_at_the_training_prior_and_its_edges():
    p, _ = calibrated_scores(0.41, 0.41, n=2_000, seed=SEED)
    assert estimate_prior(p, 0.41, n_boot=0).estimate == pytest.approx(0.41, abs=0.03)
    again = estimate_prior(p, 0.41, n_boot=50)
    assert again == estimate_prior(list(p), 0.41, n_boot=50)  # seeded: the same interval every run
    assert not estimate_prior(p, 0.41, max_iter=1, n_boot=0).converged
    certain = estimate_prior(np.ones(10), 0.41, n_boot=20)
    assert certain.estimate > 0.999 and certain.setting_line() == "STREAM_NEGATIVE_PRIOR=0.99"
    with pytest.raises(ValueError, match="no probabilities"):
        estimate_prior([], 0.41)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        estimate_prior([0.2, 1.2], 0.41)


# ------------------------------------------------------------------------------------------- real data


def macro_f1_and_accuracy(negative: np.ndarray, called_negative: np.ndarray) -> tuple[float, float]:
    f1s = []
    for truth, call in ((negative, called_negative), (~negative, ~called_negative)):
        tp = np.sum(truth & call)
        f1s.append(2 * tp / (2 * tp + np.sum(~truth & call) + np.sum(truth & ~call)))
    return float(np.mean(f1s)), float(np.mean(negative == called_negative))


def resample_to(negative: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Row indices: every negative, and as many positives drawn (without replacement) as make ``share``."""
    negatives, positives = np.flatnonzero(negative), np.flatnonzero(~negative)
    keep = round(len(negatives) * (1 - share) / share)
    chosen = np.random.default_rng(seed).choice(positives, keep, replace=False)
    return np.sort(np.concatenate([negatives, chosen]))


@pytest.mark.data
@pytest.mark.slow
def test_semeval_resampled_to_75_percent_negative(data_dir, repo_root, tmp_path):
    """SemEval-2017 test (62.6 % negative) cut to 75 % negative, scored by the committed model through
    ``python -m training score``, estimated with the prior command. Prints the figures the how-to
    quotes: the estimate beats the naive share, accuracy and the Brier score improve."""
    from serving.runtime import SentimentModel
    from training.data import read_tweets

    source = data_dir / "semeval" / "semeval2017_test_binary.csv"
    if not source.is_file():
        pytest.skip(f"{source} is missing")
    model_path = repo_root / "model" / "sentiment.onnx"
    tweets_file = read_tweets(source)
    negative_all = tweets_file.labels == 0
    rows = resample_to(negative_all, 0.75, SEED)
    texts = [tweets_file.texts[i] for i in rows]
    negative = negative_all[rows]
    write_labelled(tmp_path / "stream.csv", zip(np.where(negative, 0, 1), texts, strict=True))
    scored = tmp_path / "scored.csv"
    status, output = cli(
        "score", tmp_path / "stream.csv", "--out", scored, "--model", model_path, "--no-progress"
    )
    assert status == 0, output
    report = run_prior_command(scores=scored, model=model_path, json_out=tmp_path / "prior.json")
    true_share = float(negative.mean())
    p = read_scores(scored)
    model = SentimentModel.load(model_path)
    threshold, train_prior = model.threshold, report["train_prior"]
    adjusted = adjust(p, train_prior, report["estimate"])
    f1_before, accuracy_before = macro_f1_and_accuracy(negative, p >= threshold)
    f1_after, accuracy_after = macro_f1_and_accuracy(negative, adjusted >= threshold)
    brier_before = float(np.mean((p - negative) ** 2))
    brier_after = float(np.mean((adjusted - negative) ** 2))
    # The same cut drawn ten times: how much of the macro-F1 change is the draw.
    changes, closer = [], 0
    for seed in range(SEED, SEED + 10):
        idx = resample_to(negative_all, 0.75, seed)
        q = np.array([x.negative_probability for x in model.predict([tweets_file.texts[i] for i in idx])])
        draw = estimate_prior(q, train_prior, threshold=threshold, n_boot=0)
        estimate, share = draw.estimate, float(negative_all[idx].mean())
        closer += abs(estimate - share) < abs(draw.naive_share - share)
        before = macro_f1_and_accuracy(negative_all[idx], q >= threshold)[0]
        after = macro_f1_and_accuracy(negative_all[idx], adjust(q, train_prior, estimate) >= threshold)[0]
        changes.append(after - before)
    print()
    print("\n".join(summary_lines(report)))
    print(
        f"SemEval-2017 test resampled to {true_share:.3f} negative ({len(rows):,} texts, seed {SEED}): "
        f"estimate {report['estimate']:.3f} [{report['interval'][0]:.3f}, {report['interval'][1]:.3f}], "
        f"naive {report['naive_share']:.3f}; macro-F1 {f1_before:.4f} -> {f1_after:.4f}, "
        f"accuracy {accuracy_before:.4f} -> {accuracy_after:.4f}, Brier {brier_before:.4f} -> "
        f"{brier_after:.4f}, negative labels {np.mean(p >= threshold):.3f} -> "
        f"{np.mean(adjusted >= threshold):.3f}; macro-F1 change over 10 draws: mean {np.mean(changes):+.4f}, "
        f"min {min(changes):+.4f}, max {max(changes):+.4f}; EM closer than naive in {closer}/10 draws"
    )
    assert json.loads((tmp_path / "prior.json").read_text())["estimate"] == report["estimate"]
    assert report["n"] == len(rows)
    assert abs(report["estimate"] - true_share) < abs(report["naive_share"] - true_share)
    assert accuracy_after > accuracy_before and brier_after < brier_before
    assert closer == 10
    # Macro-F1 is not what the correction optimizes (it weighs the minority class, here positives, as much
    # as the majority): it moves by about a point either way with the model and the draw, so it is
    # reported above, and only guarded against a collapse (a wrong training prior costs ten points).
    assert f1_after > f1_before - 0.03 and np.mean(changes) > -0.03


# ------------------------------------------------------------------------------------------- scored file


def test_scored_file_end_to_end(repo_root, tmp_path):
    """Tweets -> ``python -m training score`` -> the prior command, and the JSON it writes."""
    model_path = repo_root / "model" / "sentiment.onnx"
    texts, labels = tweets(600, seed=SEED)
    write_labelled(tmp_path / "tweets.csv", zip(labels, texts, strict=True))
    scored = tmp_path / "scored.csv"
    status, output = cli(
        "score", tmp_path / "tweets.csv", "--out", scored, "--model", model_path, "--no-progress"
    )
    assert status == 0, output
    with scored.open(encoding="utf-8", newline="") as handle:
        column = [float(row["negative_probability"]) for row in csv.DictReader(handle)]
    report = run_prior_command(scores=scored, model=model_path, json_out=tmp_path / "out" / "prior.json")
    metadata = read_metadata(model_path)
    expected = estimate_prior(column, model_train_prior(metadata), threshold=metadata["threshold"])
    assert report["n"] == 600 and report["source"] == "scores"
    assert report["estimate"] == expected.estimate and report["interval"] == list(expected.interval)
    assert report["setting"] == expected.setting_line()
    assert report["model_version"] == metadata["model_version"]
    assert json.loads((tmp_path / "out" / "prior.json").read_text()) == report
    lines = summary_lines(report)
    assert lines[-1].startswith("STREAM_NEGATIVE_PRIOR=0.") and "95 % CI" in lines[1]
    assert "few texts" in " ".join(report["notes"])  # 600 texts: the command says so


def test_scored_file_errors(repo_root, tmp_path):
    model_path = repo_root / "model" / "sentiment.onnx"
    with pytest.raises(ValueError, match="exactly one"):
        run_prior_command(model=model_path)
    with pytest.raises(ValueError, match="--ledger only"):
        run_prior_command(scores=tmp_path / "x.csv", since="20261101", model=model_path)
    with pytest.raises(PriorInputError, match="no such file"):
        read_scores(tmp_path / "missing.csv")
    (tmp_path / "plain.csv").write_text("label,text\nnegative,late again\n", encoding="utf-8")
    with pytest.raises(PriorInputError, match="negative_probability"):
        read_scores(tmp_path / "plain.csv")
    (tmp_path / "bad.csv").write_text("text,label,negative_probability\na,negative,1.5\n", encoding="utf-8")
    with pytest.raises(PriorInputError, match="line 2"):
        read_scores(tmp_path / "bad.csv")
    (tmp_path / "empty.csv").write_text("text,label,negative_probability\n", encoding="utf-8")
    with pytest.raises(PriorInputError, match="no probabilities"):
        run_prior_command(scores=tmp_path / "empty.csv", model=model_path)


# ------------------------------------------------------------------------------------------- ledger


def test_ledger_rows_of_another_model_or_without_a_probability_are_left_out():
    rows = [
        {"RowKey": "a", "negative_probability": 0.8, "model_version": "v1"},
        {"RowKey": "b", "negative_probability": 0.1, "model_version": "v0"},
        {"RowKey": "c", "negative_probability": None, "model_version": "v1"},
        # Served adjusted to a 0.75 stream prior: brought back to the model's own probability.
        {"RowKey": "d", "negative_probability": 0.75, "model_version": "v1", "stream_negative_prior": 0.75},
    ]
    read = ledger_rows_to_probabilities(rows, "v1", train_prior=0.5)
    assert read.read == 4
    assert read.probabilities.tolist() == pytest.approx([0.8, 0.5])
    assert read.skipped == {"another model version": 1, "no valid probability": 1}


def prediction_row(day: str, key: str, probability: float, version: str) -> dict:
    """A ``predictions`` row as the service writes it (without text)."""
    label = "negative" if probability >= 0.5 else "positive"
    scored_at = f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00+00:00"
    return {"PartitionKey": day, "RowKey": key, "label": label, "negative_probability": probability,
            "model_version": version, "topics": "[]", "scored_at": scored_at}  # fmt: skip


def test_ledger_predictions_of_the_current_model_since_a_day(azurite, repo_root, tmp_path):  # noqa: F811
    from azure.data.tables import TableServiceClient

    from training.ledger import LedgerError

    model_path = repo_root / "model" / "sentiment.onnx"
    metadata = read_metadata(model_path)
    # The rows the service writes carry the version it answers under (the cascade's, when one is paired).
    version = served_version(model_path, metadata["model_version"])
    train_prior = model_train_prior(metadata)
    azurite.delete_tables()
    with pytest.raises(LedgerError, match="no table 'predictions'"):
        run_prior_command(ledger=True, model=model_path, connection_string=azurite.connection_string)
    table = TableServiceClient.from_connection_string(azurite.connection_string).create_table("predictions")
    current, _ = calibrated_scores(0.8, train_prior, n=400, seed=SEED)
    old_days, _ = calibrated_scores(0.2, train_prior, n=100, seed=SEED + 1)
    entities = []
    for index, p in enumerate(current):
        day = "20261122" if index % 2 else "20261123"
        entities.append((day, f"c{index:04d}", float(p), version))
    entities += [("20261122", f"o{i:04d}", 0.0, "2020.01.01-0000dead") for i in range(150)]  # another model
    entities += [("20261101", f"e{i:04d}", float(p), version) for i, p in enumerate(old_days)]  # before since
    for day in sorted({e[0] for e in entities}):
        mine = [prediction_row(*e) for e in entities if e[0] == day]
        for start in range(0, len(mine), 100):
            table.submit_transaction([("create", entity) for entity in mine[start : start + 100]])
    report = run_prior_command(
        ledger=True, since="20261122", model=model_path, connection_string=azurite.connection_string
    )
    expected = estimate_prior(current, train_prior, threshold=metadata["threshold"])
    assert report["source"] == "ledger" and report["n"] == 400 and report["rows_read"] == 400
    assert report["estimate"] == pytest.approx(expected.estimate, abs=1e-12)
    low, high = report["interval"]
    assert low <= 0.8 <= high
    everything = run_prior_command(ledger=True, model=model_path, connection_string=azurite.connection_string)
    assert everything["n"] == 500 and everything["estimate"] < report["estimate"]


def test_the_command_output_names_the_setting(tmp_path: Path):
    report = {
        "n": 5_000, "model_version": "v", "train_prior": 0.5, "train_prior_source": "model metadata",
        "estimate": 0.7412, "interval": [0.72, 0.76], "confidence": 0.95, "iterations": 12, "n_boot": 200,
        "threshold": 0.43, "naive_share": 0.69, "notes": [], "setting": "STREAM_NEGATIVE_PRIOR=0.74",
    }  # fmt: skip
    lines = summary_lines(report)
    assert "0.741 (95 % CI 0.720 to 0.760" in lines[1]
    assert lines[-1] == "STREAM_NEGATIVE_PRIOR=0.74"
