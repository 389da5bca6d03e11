"""``compare``: the champion/challenger gate, its report and its exit status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from serving.normalizer import normalize
from serving.runtime import SentimentModel
from tests.tweet_factory import tweets, write_labelled, write_labelled_csv
from training.cli import app
from training.compare import Gate, compare_on_feedback
from training.dataset import Split
from training.evaluate import LoadedModel
from training.feedback import is_held_out

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVED = REPO_ROOT / "model" / "sentiment.onnx"


def invoke(*args):
    return CliRunner().invoke(app, ["compare", *map(str, args)])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The served model as champion, an identical copy, a copy with a useless threshold, two test sets
    and a feedback file whose labels say the champion is wrong on every tweet."""
    root = tmp_path_factory.mktemp("compare")
    champion = root / "champion.onnx"
    shutil.copyfile(SERVED, champion)
    twin = root / "twin.onnx"
    shutil.copyfile(SERVED, twin)
    skewed = onnx.load(str(SERVED))
    for prop in skewed.metadata_props:
        if prop.key == "threshold":
            prop.value = json.dumps(0.999)  # almost everything is called positive now
    onnx.save(skewed, str(root / "skewed.onnx"))
    texts, _ = tweets(120, seed=21)
    predicted = [p.label for p in SentimentModel.load(SERVED).predict(texts)]
    feedback = write_labelled(
        root / "feedback.csv",
        [(1 if label == "negative" else 0, text) for label, text in zip(predicted, texts, strict=True)],
    )
    return {
        "champion": champion,
        "twin": twin,
        "skewed": root / "skewed.onnx",
        "first_test": write_labelled_csv(root / "first_test.csv", 300, seed=31),
        "second_test": write_labelled_csv(root / "second_test.csv", 200, seed=32),
        "feedback": feedback,
        "held_out": sum(is_held_out(normalize(t)) for t in texts),
    }


def test_an_identical_challenger_keeps_the_metrics_but_fixes_no_feedback_error(files, tmp_path):
    result = invoke(
        "--champion", files["champion"], "--challenger", files["twin"], "--out", tmp_path,
        "--test", files["first_test"], "--test", files["second_test"], "--feedback", files["feedback"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    assert report["passed"] is False
    assert set(report["test_sets"]) == {"first_test", "second_test"}
    for figures in report["test_sets"].values():
        assert figures["passed"] and figures["drop"] == {"f1": 0.0, "roc_auc": 0.0}
    feedback = report["feedback"]
    assert feedback["n"] == feedback["champion_errors"] == files["held_out"] > 0
    assert feedback["fixed"] == 0 and feedback["fixed_share"] == 0.0 and not feedback["passed"]
    assert report["failures"] == [
        f"held-out feedback: challenger fixes 0 of the champion's {files['held_out']} errors "
        "and breaks 0 (net 0%; at least 50% needed)"
    ]
    markdown = (tmp_path / "comparison.md").read_text(encoding="utf-8")
    assert "**FAIL**" in markdown and "| first_test | 300 |" in markdown

    # Without the feedback requirement the same pair passes: exit status 0.
    relaxed = invoke(
        "--champion", files["champion"], "--challenger", files["twin"], "--out", tmp_path / "relaxed",
        "--test", files["first_test"], "--feedback", files["feedback"], "--min-fixed", "0",
    )  # fmt: skip
    assert relaxed.exit_code == 0, relaxed.output
    assert "PASS" in (tmp_path / "relaxed" / "comparison.md").read_text(encoding="utf-8")


def test_a_challenger_with_a_useless_threshold_fails_on_macro_f1(files, tmp_path):
    result = invoke(
        "--champion", files["champion"], "--challenger", files["skewed"], "--out", tmp_path,
        "--test", files["first_test"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    first = report["test_sets"]["first_test"]
    assert first["drop"]["f1"] > 0.1 and first["drop"]["roc_auc"] == 0.0  # same scores, other labels
    assert report["challenger"]["threshold"] == 0.999
    assert report["failures"][0].startswith("first_test: the challenger loses")


def test_usage_errors_exit_with_status_2(files, tmp_path):
    nothing = invoke("--champion", files["champion"], "--challenger", files["twin"], "--out", tmp_path)
    assert nothing.exit_code == 2 and "nothing to compare on" in nothing.output
    missing = invoke(
        "--champion", tmp_path / "absent.onnx", "--challenger", files["twin"], "--out", tmp_path,
        "--test", files["first_test"],
    )  # fmt: skip
    assert missing.exit_code == 2 and "not an .onnx file" in missing.output
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    refused = invoke(
        "--champion",
        files["champion"],
        "--challenger",
        broken,
        "--out",
        tmp_path,
        "--test",
        files["first_test"],
    )
    assert refused.exit_code == 2 and "cannot be read by ONNX Runtime" in refused.output
    assert not (tmp_path / "comparison.json").exists()


def _fixed_scores(name: str, probabilities: list[float], threshold: float = 0.5) -> LoadedModel:
    values = np.asarray(probabilities)
    return LoadedModel(Path(name), "onnx", threshold, {"model_version": name}, lambda texts: values)


def test_fixed_and_broken_counts_follow_each_models_threshold():
    truth = Split(
        "feedback_holdout", list("abcdef"), np.array([0, 0, 0, 1, 1, 1], dtype=np.int8), list("abcdef")
    )
    # Champion (threshold 0.5) is wrong on b, c (called positive) and f (called negative).
    champion = _fixed_scores("champion", [0.9, 0.2, 0.4, 0.1, 0.3, 0.8])
    # Challenger (threshold 0.35): still wrong on b (0.3 < 0.35), fixes c (0.4) and f (0.2), and is
    # newly wrong on e (0.36 >= 0.35).
    challenger = _fixed_scores("challenger", [0.9, 0.3, 0.4, 0.1, 0.36, 0.2], threshold=0.35)
    result = compare_on_feedback(champion, challenger, truth, Gate(min_fixed=0.3))
    assert result["champion_errors"] == 3 and result["fixed"] == 2 and result["broken"] == 1
    assert result["challenger_errors"] == 2 and result["fixed_share"] == pytest.approx(2 / 3)
    assert result["net_fixed_share"] == pytest.approx(1 / 3)  # what it breaks counts against it
    assert result["passed"]
    assert not compare_on_feedback(champion, challenger, truth, Gate(min_fixed=0.4))["passed"]
    # Flipping every answer "fixes" every error and breaks every right answer: refused.
    flipped = _fixed_scores("flipped", [0.1, 0.8, 0.6, 0.9, 0.7, 0.2])
    flip = compare_on_feedback(champion, flipped, truth, Gate())
    assert flip["fixed_share"] == 1.0 and flip["net_fixed_share"] == pytest.approx(0.0) and not flip["passed"]
    # No champion error: nothing to fix, the check passes.
    perfect = _fixed_scores("perfect", [0.9, 0.9, 0.9, 0.1, 0.1, 0.1])
    assert compare_on_feedback(perfect, challenger, truth, Gate())["fixed_share"] is None


@pytest.mark.data
def test_the_data_folder_gives_its_published_test_sets(data_dir, files, tmp_path):
    result = invoke(
        "--champion",
        files["champion"],
        "--challenger",
        files["twin"],
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    assert set(report["test_sets"]) == {"sentiment140_manual", "semeval2017_test", "sts_gold", "hcr_test"}
    assert report["test_sets"]["sts_gold"]["n"] == 2_034 and report["feedback"] is None
