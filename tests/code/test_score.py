"""``score``: one scored row per tweet of a file, exactly as the service's runtime scores it."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.runtime import SentimentModel
from tests.tweet_factory import tweets
from training.data import TweetFileError
from training.scoring import MAX_TEXT_CHARS, score_file

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = REPO_ROOT / "model" / "sentiment.onnx"


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(MODEL)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    generated, _ = tweets(300, seed=5)
    # Commas, quotes, a line break, non-ASCII, an empty text: what a real export holds.
    return [*generated, 'she said "never again", twice', "first line\nsecond line", "très bien 😀", ""]


def read_out(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_scored_like_the_service(rows: list[dict], texts: list[str], model: SentimentModel) -> None:
    assert [row["text"] for row in rows] == texts
    expected = model.predict(texts)
    assert [row["label"] for row in rows] == [p.label for p in expected]
    for row, prediction in zip(rows, expected, strict=True):
        assert float(row["negative_probability"]) == pytest.approx(prediction.negative_probability, abs=1e-6)


def test_csv_with_ids_in_small_batches(tmp_path, model, texts):
    source = tmp_path / "tweets.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "user", "text"])
        writer.writerows((f"id{i}", "someone", text) for i, text in enumerate(texts))
    report = score_file(model, source, tmp_path / "out.csv", batch_rows=7)
    rows = read_out(tmp_path / "out.csv")
    assert report.rows == len(texts) == len(rows) and report.has_ids
    assert list(rows[0]) == ["id", "text", "label", "negative_probability"]
    assert [row["id"] for row in rows] == [f"id{i}" for i in range(len(texts))]
    assert_scored_like_the_service(rows, texts, model)
    assert report.negatives == sum(row["label"] == "negative" for row in rows) > 0


def test_jsonl_gz_and_json_list(tmp_path, model, texts):
    lines = tmp_path / "tweets.jsonl.gz"
    with gzip.open(lines, "wt", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text, "lang": "en"}) + "\n\n")
    score_file(model, lines, tmp_path / "lines.csv", batch_rows=50)
    rows = read_out(tmp_path / "lines.csv")
    assert list(rows[0]) == ["text", "label", "negative_probability"]  # no ids in the input
    assert_scored_like_the_service(rows, texts, model)

    listed = tmp_path / "tweets.json"
    listed.write_text(json.dumps([{"id": i, "text": t} for i, t in enumerate(texts)], indent=1), "utf-8")
    score_file(model, listed, tmp_path / "listed.csv", batch_rows=64)
    rows = read_out(tmp_path / "listed.csv")
    assert [row["id"] for row in rows] == [str(i) for i in range(len(texts))]
    assert_scored_like_the_service(rows, texts, model)


def test_one_tweet_a_line_through_the_command(tmp_path, model, texts):
    one_line = [text for text in texts if text and "\n" not in text]
    source = tmp_path / "tweets.txt"
    source.write_text("\n".join(one_line[:100]) + "\n\n" + "\n".join(one_line[100:]) + "\n", "utf-8")
    out = tmp_path / "scored.csv"
    done = subprocess.run(
        [sys.executable, "-m", "training", "score", str(source), "--out", str(out), "--model", str(MODEL)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(one_line)} scored tweets" in done.stdout
    assert_scored_like_the_service(read_out(out), one_line, model)


def test_bad_input_is_a_clear_error_and_leaves_no_output(tmp_path, model):
    too_long = tmp_path / "long.txt"
    too_long.write_text("fine\n" + "x" * (MAX_TEXT_CHARS + 1) + "\n", "utf-8")
    with pytest.raises(TweetFileError, match=r"long.txt, line 2: text of 5,001 characters"):
        score_file(model, too_long, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv*"))

    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id,body\n1,hello\n", "utf-8")
    with pytest.raises(TweetFileError, match="'text' column"):
        score_file(model, no_text, tmp_path / "out.csv")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "ok"}, {"text": ]', "utf-8")
    with pytest.raises(TweetFileError, match="invalid JSON"):
        score_file(model, broken, tmp_path / "out.csv")


def test_the_command_answers_bad_input_without_a_traceback(tmp_path):
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "score",
            str(tmp_path / "nope.csv"),
            "--out",
            str(tmp_path / "o.csv"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr
