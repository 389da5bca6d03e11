"""The EDA report: tables in the shape the airline team reads, counts from the dataset, PNG histograms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.tweet_factory import write_labelled
from training.cli import app
from training.eda import FIGURES, STATISTICS, describe, word_counts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def eda(arguments: list[str]):
    """``python -m training eda ARGUMENTS``, in process."""
    return CliRunner().invoke(app, ["eda", *arguments])


def tweet_rows(count: int, tag: str) -> list[tuple[int, str]]:
    words = ("great crew", "lost my bag", "on time", "rude staff at the gate", "thanks so much")
    return [(n % 2, f"{words[n % len(words)]} {tag}{n} http://t.co/x") for n in range(count)]


def test_word_counts_and_describe_have_the_pandas_shape() -> None:
    counts = word_counts(["one two three", "", "  spaced   out  "])
    assert counts.tolist() == [3, 0, 2]
    table = describe(counts)
    assert list(table.index) == list(STATISTICS)
    assert table["count"] == 3 and table["max"] == 3 and table["min"] == 0 and table["50%"] == 2


def test_eda_command_writes_markdown_tables_json_and_pngs(tmp_path: Path) -> None:
    first = write_labelled(
        tmp_path / "first.csv", [*tweet_rows(60, "a"), (1, "..."), (0, "great crew a0 http://t.co/y")]
    )
    second = write_labelled(tmp_path / "second.csv", tweet_rows(40, "b"))
    out = tmp_path / "eda"
    result = eda([str(first), str(second), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    markdown = (out / "eda.md").read_text(encoding="utf-8")
    for heading in ("## Files", "## Class balance per split", "before normalization", "after normalization"):
        assert heading in markdown
    statistic_rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]
    for statistic in STATISTICS:
        assert statistic in statistic_rows
    assert "first.csv" in markdown and "second.csv" in markdown
    for name in FIGURES.values():
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
        assert f"]({name})" in markdown
    report = json.loads((out / "eda.json").read_text(encoding="utf-8"))
    files = report["files"]
    assert files["first.csv"]["read"] == 62
    assert files["first.csv"]["empty_after_normalization"] == 1
    assert files["first.csv"]["duplicates_within"] == 1  # "great crew a0 url", twice once normalized
    assert files["first.csv"]["duplicates"] == 1
    assert files["second.csv"]["kept"] == 40
    assert sum(report["splits"][s]["rows"] for s in ("train", "validation", "test")) == 100
    assert len(report["fingerprint"]) == 64


def test_eda_without_input_is_a_usage_error(tmp_path: Path) -> None:
    result = eda(["--out", str(tmp_path / "eda")])
    assert result.exit_code != 0
    assert "--data-dir" in result.output
    assert not (tmp_path / "eda").exists()


def test_eda_on_a_malformed_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text\n1,fine\nmaybe,not fine\n", encoding="utf-8")
    result = eda([str(bad), "--out", str(tmp_path / "eda"), "--no-progress"])
    assert result.exit_code == 2
    assert "bad.csv, line 3: bad label 'maybe'" in result.output
    assert not (tmp_path / "eda" / "eda.md").exists()


@pytest.mark.data
@pytest.mark.slow
def test_eda_on_the_shared_recipe(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "eda"
    result = eda(["--data-dir", str(data_dir), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eda.json").read_text(encoding="utf-8"))
    assert report["files"]["sentiment140/testdata.manual.2009.06.14.csv"]["dropped"] == {"neutral": 139}
    assert report["files"]["small/sts_gold_binary.csv"]["role"] == "external test: sts_gold"
    assert "sentiment140/headtail100k.csv" not in report["files"]
