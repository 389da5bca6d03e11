"""The synthetic Sentiment140 file: exact Kaggle layout, read by the real reader, learnable, reproducible."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from serving.normalizer import normalize
from training.cli import app
from training.data import read_tweets
from training.synth import KAGGLE_MEMBER, write_synthetic

KAGGLE_ROW = re.compile(
    rb'^"(0|4)","(\d{10})","(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Apr|May|Jun) \d\d \d\d:\d\d:\d\d PDT 2009",'
    rb'"NO_QUERY","(\w+)","([^"\n]+)"$'
)


def test_rows_have_the_exact_kaggle_layout(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "training.csv", rows=3_000, seed=5)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    matches = [KAGGLE_ROW.match(line) for line in lines[:-1]]
    assert len(matches) == 3_000 and all(matches)
    targets = [m.group(1) for m in matches]
    assert targets == [b"0"] * 1_500 + [b"4"] * 1_500  # sorted by target, like the Kaggle file
    ids = [int(m.group(2)) for m in matches[:1_500]]
    assert ids == sorted(ids)
    texts = [m.group(6) for m in matches]
    assert any(b"http://" in t for t in texts) and any(t.startswith(b"@") for t in texts)
    assert any(max(t) > 127 for t in texts)  # latin-1 bytes, as in the real file
    assert len({m.group(5) for m in matches}) > 500


def test_read_back_with_the_real_reader(tmp_path: Path) -> None:
    for name in ("training.csv", "training.csv.gz", "training.zip"):
        tweets = read_tweets(write_synthetic(tmp_path / name, rows=1_001, seed=1))
        assert len(tweets.texts) == 1_001
        assert (int((tweets.labels == 0).sum()), int((tweets.labels == 1).sum())) == (500, 501)
        assert tweets.dropped == {"neutral": 0}
    with zipfile.ZipFile(tmp_path / "training.zip") as archive:
        assert archive.namelist() == [KAGGLE_MEMBER]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a.csv.gz", rows=500, seed=3).read_bytes()
    again = write_synthetic(tmp_path / "b.csv.gz", rows=500, seed=3).read_bytes()
    other = write_synthetic(tmp_path / "c.csv.gz", rows=500, seed=4).read_bytes()
    assert first == again
    assert first != other


def test_a_model_can_learn_something_but_not_everything(tmp_path: Path) -> None:
    tweets = read_tweets(write_synthetic(tmp_path / "training.csv", rows=6_000, seed=2))
    texts = [normalize(text) for text in tweets.texts]
    order = np.random.default_rng(0).permutation(len(texts))
    train, test = order[:4_000], order[4_000:]
    vectorizer = CountVectorizer(token_pattern=r"\S+")
    model = LogisticRegression(max_iter=1_000).fit(
        vectorizer.fit_transform([texts[i] for i in train]), tweets.labels[train]
    )
    accuracy = (model.predict(vectorizer.transform([texts[i] for i in test])) == tweets.labels[test]).mean()
    assert 0.75 < accuracy < 0.995


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "synthetic" / "s140.csv"
    result = CliRunner().invoke(app, ["synth", "--rows", "200", "--out", str(out), "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert "200" in result.output
    assert len(read_tweets(out).texts) == 200
    assert CliRunner().invoke(app, ["synth", "--rows", "1", "--out", str(out)]).exit_code != 0
