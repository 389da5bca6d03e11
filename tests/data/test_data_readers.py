"""The tweet-file readers: every format on good input, every kind of malformed row named by file and line."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.data import TweetFileError, read_tweets


def sentiment140_line(target: str, text: str, tweet_id: int = 1467810369) -> str:
    """One row exactly as Kaggle's file has it: six quoted columns."""
    return f'"{target}","{tweet_id}","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","someone","{text}"\n'


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def expect_error(path: Path, line: int | None, words: str) -> TweetFileError:
    with pytest.raises(TweetFileError) as caught:
        read_tweets(path)
    error = caught.value
    message = str(error)
    assert path.name in message
    assert error.line == line
    if line is not None:
        assert f"line {line}" in message
    assert words in message
    return error


# --------------------------------------------------------------------------------------- Sentiment140

SENTIMENT140_ROWS = (
    sentiment140_line("0", "@united lost my bag again  ")
    + sentiment140_line("4", "Loving the new seats, great crew!")
    + sentiment140_line("2", "Flight 212 boards at gate 4")
    + sentiment140_line("0", "caf\u00e9 closed \u00ef\u00bf\u00bd http://bit.ly/x")
)


def test_sentiment140_plain_reads_targets_and_counts_neutral(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "training.csv", SENTIMENT140_ROWS.encode("latin-1"))
    tweets = read_tweets(path)
    assert tweets.texts[:2] == ["@united lost my bag again  ", "Loving the new seats, great crew!"]
    assert tweets.labels.dtype == np.int8
    assert tweets.labels.tolist() == [0, 1, 0]
    assert tweets.dropped == {"neutral": 1}
    assert tweets.path == path


def test_sentiment140_latin1_bytes_are_decoded_as_latin1(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "training.csv", SENTIMENT140_ROWS.encode("latin-1"))
    raw = path.read_bytes()
    assert b"caf\xe9" in raw  # not valid UTF-8: the reader must not assume UTF-8
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert read_tweets(path).texts[2] == "caf\u00e9 closed \u00ef\u00bf\u00bd http://bit.ly/x"


def test_sentiment140_gz_and_zip_read_like_plain(tmp_path: Path) -> None:
    data = SENTIMENT140_ROWS.encode("latin-1")
    plain = read_tweets(write_bytes(tmp_path / "training.csv", data))
    gz = read_tweets(write_bytes(tmp_path / "training.csv.gz", gzip.compress(data)))
    archive = tmp_path / "sentiment140.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__MACOSX/._training.csv", b"resource fork")
        zf.writestr("training.1600000.processed.noemoticon.csv", data)
    zipped = read_tweets(archive)
    for other in (gz, zipped):
        assert other.texts == plain.texts
        assert other.labels.tolist() == plain.labels.tolist()
        assert other.dropped == plain.dropped == {"neutral": 1}


def test_zip_with_two_files_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", SENTIMENT140_ROWS.encode("latin-1"))
        zf.writestr("b.csv", SENTIMENT140_ROWS.encode("latin-1"))
    error = expect_error(archive, None, "exactly one tweet file")
    assert "a.csv" in str(error) and "b.csv" in str(error)


def test_broken_or_truncated_archives_are_refused(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "broken.csv.gz", b"not gzip at all"), None, "gzip")
    rows = "".join(sentiment140_line("0", f"tweet {n} " * 20) for n in range(3_000)).encode("latin-1")
    truncated = gzip.compress(rows)[:-5_000]
    expect_error(write_bytes(tmp_path / "truncated.csv.gz", truncated), None, "truncated or corrupt")
    expect_error(write_bytes(tmp_path / "broken.zip", b"PK not a zip"), None, "zip")


def test_error_inside_zip_names_archive_member_and_line(tmp_path: Path) -> None:
    archive = tmp_path / "kaggle.zip"
    rows = sentiment140_line("0", "fine") + sentiment140_line("7", "bad target")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("training.csv", rows.encode("latin-1"))
    error = expect_error(archive, 2, "bad target '7'")
    assert "training.csv" in str(error)


@pytest.mark.parametrize(
    ("bad_row", "words"),
    [
        ('"0","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user"\n', "wrong column count: expected 6"),
        ('"0","1","d","NO_QUERY","user","text","extra"\n', "found 7"),
        (sentiment140_line("1", "target 1 is not Sentiment140"), "bad target '1'"),
        (sentiment140_line("positive", "words are not targets"), "bad target 'positive'"),
        (sentiment140_line("0", ""), "missing text"),
        (sentiment140_line("4", "   "), "missing text"),
        ('"0","1","d","NO_QUERY","user","stray "quote" inside"\n', "malformed CSV"),
    ],
)
def test_sentiment140_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, words: str) -> None:
    rows = sentiment140_line("0", "first") + sentiment140_line("4", "second") + bad_row
    rows += sentiment140_line("0", "after the bad one")
    expect_error(write_bytes(tmp_path / "bad.csv", rows.encode("latin-1")), 3, words)


def test_line_numbers_count_physical_lines_after_multiline_text(tmp_path: Path) -> None:
    rows = sentiment140_line("0", "one\ntwo\nthree") + sentiment140_line("4", "fine")
    rows += sentiment140_line("9", "bad")
    expect_error(write_bytes(tmp_path / "multi.csv", rows.encode("latin-1")), 5, "bad target")


def test_blank_lines_hold_no_row(tmp_path: Path) -> None:
    rows = sentiment140_line("0", "one") + "\n" + sentiment140_line("4", "two") + "\n\n"
    tweets = read_tweets(write_bytes(tmp_path / "blank.csv", rows.encode("latin-1")))
    assert tweets.texts == ["one", "two"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\x00\r"), min_size=1).filter(
            lambda t: t.strip()
        ),
        min_size=1,
        max_size=8,
    ),
    targets=st.lists(st.sampled_from(["0", "4"]), min_size=8, max_size=8),
)
def test_sentiment140_round_trips_any_latin1_text(
    tmp_path: Path, texts: list[str], targets: list[str]
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for text, target in zip(texts, targets, strict=False):
        writer.writerow([target, "1", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "user", text])
    path = write_bytes(tmp_path / "roundtrip.csv", buffer.getvalue().encode("latin-1"))
    tweets = read_tweets(path)
    assert tweets.texts == texts
    assert tweets.labels.tolist() == [0 if t == "0" else 1 for t in targets[: len(texts)]]


# --------------------------------------------------------------------------------------- label,text CSV


def test_labelled_csv_with_extra_columns_and_word_labels(tmp_path: Path) -> None:
    content = (
        "\ufefftweet_id,Label,text,source\n"
        '1,1,"Great crew, thanks!",a\n'
        "2,negative,Lost my bag \U0001f621,b\n"
        "3,Positive,On time for once,c\n"
        "4,neutral,Boarding now,d\n"
        "5,0, leading space kept,e\n"
    )
    tweets = read_tweets(write_bytes(tmp_path / "labelled.csv", content.encode("utf-8")))
    assert tweets.texts == [
        "Great crew, thanks!",
        "Lost my bag \U0001f621",
        "On time for once",
        " leading space kept",
    ]
    assert tweets.labels.tolist() == [1, 0, 1, 0]
    assert tweets.dropped == {"neutral": 1}


@pytest.mark.parametrize(
    ("bad_row", "words"),
    [
        ("4,great\n", "bad label '4'"),
        ("pos itive,great\n", "bad label 'pos itive'"),
        (",no label\n", "bad label ''"),
        ("1,\n", "missing text"),
        ("1,too,many\n", "wrong column count: expected 2"),
        ("1\n", "found 1"),
    ],
)
def test_labelled_csv_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, words: str) -> None:
    content = "label,text\n0,fine\n1,also fine\n" + bad_row + "1,after\n"
    expect_error(write_bytes(tmp_path / "bad_labels.csv", content.encode("utf-8")), 4, words)


def test_labelled_csv_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    content = b"label,text\n0,fine\n1,caf\xe9 au lait\n"
    expect_error(write_bytes(tmp_path / "latin.csv", content), 3, "not UTF-8")


def test_header_only_and_empty_and_unknown_files_are_refused(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "header.csv", b"label,text\n"), None, "no tweets")
    expect_error(write_bytes(tmp_path / "empty.csv", b""), None, "empty")
    expect_error(write_bytes(tmp_path / "other.csv", b"id,tweet\n1,hello\n"), 1, "unrecognised format")
    with pytest.raises(TweetFileError, match="no such file"):
        read_tweets(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------------------------ JSON


def test_json_list_with_and_without_labels(tmp_path: Path) -> None:
    items = [
        {"id": 1, "text": "Delayed again \u2708\ufe0f", "label": 0},
        {"id": 2, "text": "What a smooth flight", "label": "positive"},
        {"id": 3, "text": "No label in an export"},
        {"id": 4, "text": "so-so", "label": "neutral"},
        {"id": 5, "full_text": "Archive exports say full_text", "label": None},
    ]
    path = write_bytes(tmp_path / "export.json", json.dumps(items, indent=2).encode("utf-8"))
    tweets = read_tweets(path)
    assert tweets.texts == [
        "Delayed again \u2708\ufe0f",
        "What a smooth flight",
        "No label in an export",
        "Archive exports say full_text",
    ]
    assert tweets.labels.tolist() == [0, 1, -1, -1]
    assert tweets.dropped == {"neutral": 1}


def test_twitter_archive_and_json_lines(tmp_path: Path) -> None:
    archive = "window.YTD.tweets.part0 = " + json.dumps([{"tweet": {"full_text": "hello from the archive"}}])
    tweets = read_tweets(write_bytes(tmp_path / "tweets.js", archive.encode("utf-8")))
    assert tweets.texts == ["hello from the archive"]
    assert tweets.labels.tolist() == [-1]
    lines = '{"text": "one", "label": 1}\n\n{"text": "two", "label": "negative"}\n'
    tweets = read_tweets(write_bytes(tmp_path / "tweets.jsonl", lines.encode("utf-8")))
    assert tweets.labels.tolist() == [1, 0]
    bad = '{"text": "one", "label": 1}\n{"text": "two", "label": 1\n'
    expect_error(write_bytes(tmp_path / "bad.jsonl", bad.encode("utf-8")), 2, "invalid JSON")


def test_json_gz_is_read(tmp_path: Path) -> None:
    data = json.dumps([{"text": "zipped json", "label": 1}]).encode("utf-8")
    tweets = read_tweets(write_bytes(tmp_path / "export.json.gz", gzip.compress(data)))
    assert tweets.texts == ["zipped json"]


@pytest.mark.parametrize(
    ("third_item", "words"),
    [
        ('{"id": 3}', "missing text"),
        ('{"text": "   "}', "missing text"),
        ('{"text": 42}', "missing text"),
        ('{"text": "ok", "label": 4}', "bad label 4"),
        ('{"text": "ok", "label": true}', "bad label True"),
        ('"just a string"', "expected a tweet object"),
        ('{"text": "unterminated}', "invalid JSON"),
    ],
)
def test_json_malformed_item_names_file_and_line(tmp_path: Path, third_item: str, words: str) -> None:
    content = '[\n  {"text": "one", "label": 0},\n  {"text": "two", "label": 1},\n  ' + third_item + "\n]\n"
    expect_error(write_bytes(tmp_path / "bad.json", content.encode("utf-8")), 4, words)


def test_json_structure_errors(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "obj.json", b'{"text": "not a list"}'), 1, "expected a list")
    expect_error(write_bytes(tmp_path / "comma.json", b'[{"text": "a"}\n {"text": "b"}]'), 2, "expected ','")
    expect_error(write_bytes(tmp_path / "extra.json", b'[{"text": "a"}]\n[1]'), 2, "extra data")
    expect_error(write_bytes(tmp_path / "empty.json", b"[]"), None, "no tweets")
    expect_error(write_bytes(tmp_path / "latin.json", b'[\n{"text": "caf\xe9"}]'), 2, "not UTF-8")


# ------------------------------------------------------------------------------------------ shared data

# (file, negative, positive, neutral dropped) as the data folder's README.md gives them.
SHARED_COUNTS = [
    ("sentiment140/training.sample20k.csv", 9_942, 10_058, 0),
    ("sentiment140/headtail100k.csv", 50_000, 50_000, 0),
    ("sentiment140/testdata.manual.2009.06.14.csv", 177, 182, 139),
    ("semeval/semeval2013_2016_binary.csv", 7_711, 19_617, 0),
    ("semeval/semeval2017_test_binary.csv", 3_972, 2_375, 0),
    ("tweet_sentiment_extraction/train_binary.csv", 7_781, 8_582, 0),
    ("small/sts_gold_binary.csv", 1_402, 632, 0),
    ("small/omd_binary.csv", 1_196, 710, 0),
    ("small/sanders_binary.csv", 576, 523, 0),
    ("small/ss_twitter_binary.csv", 949, 1_340, 0),
]


@pytest.mark.data
@pytest.mark.parametrize(("name", "negative", "positive", "neutral"), SHARED_COUNTS)
def test_shared_files_have_the_published_label_counts(
    data_dir: Path, name: str, negative: int, positive: int, neutral: int
) -> None:
    tweets = read_tweets(data_dir / name)
    assert int((tweets.labels == 0).sum()) == negative
    assert int((tweets.labels == 1).sum()) == positive
    assert tweets.dropped == {"neutral": neutral}
    assert len(tweets.texts) == negative + positive
    assert all(text.strip() for text in tweets.texts)


@pytest.mark.data
def test_shared_hcr_splits_add_up_to_the_published_counts(data_dir: Path) -> None:
    labels = np.concatenate(
        [read_tweets(data_dir / f"small/hcr_binary_{part}.csv").labels for part in ("train", "dev", "test")]
    )
    assert (int((labels == 0).sum()), int((labels == 1).sum())) == (1_381, 541)
