"""Read labelled tweet files into one shape, refusing malformed rows with the file and line named.

Three formats, told apart by content (the extension only says how the bytes are compressed):

- Sentiment140 exactly as Kaggle ships it: no header, six quoted columns ``target,id,date,flag,user,text``,
  target 0 (negative), 4 (positive) or 2 (neutral: dropped and counted), latin-1 bytes;
- ``label,text`` CSV with a header (UTF-8): label 0/1 or negative/positive (``neutral`` is dropped and
  counted); other columns may be present and are ignored;
- JSON (UTF-8): a list of tweet objects with ``text`` (or ``full_text``) and an optional ``label``, as a
  tweet export gives; an X/Twitter archive ``tweets.js`` (``window.YTD.tweets.part0 = [{"tweet": {...}}]``)
  and JSON Lines (``.jsonl``) are read too.

Any of them may be plain, ``.gz`` or a ``.zip`` holding one file (the Kaggle download). A malformed row
raises :class:`TweetFileError`; nothing is skipped silently. Blank lines hold no row and are ignored.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

UNLABELLED = -1
NEUTRAL = "neutral"

SENTIMENT140_COLUMNS = ("target", "id", "date", "flag", "user", "text")
_SENTIMENT140_TARGETS = {"0": 0, "4": 1, "2": None}
_LABELS = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1, NEUTRAL: None}
_SNIFF_BYTES = 64 * 1024
_ARCHIVE_PREFIX = re.compile(r"\s*window\.YTD\.[\w.]+\s*=\s*")


class TweetFileError(ValueError):
    """A tweet file that cannot be read as it is; the message names the file and the line."""

    def __init__(self, path: Path | str, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class TweetFile:
    path: Path
    texts: list[str]  # raw texts, file order
    labels: np.ndarray  # int8: 0 negative, 1 positive, -1 unlabelled (JSON export without label)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count, e.g. {"neutral": 139}


@dataclass
class _Rows:
    """What a format parser collects before it becomes a :class:`TweetFile`."""

    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    neutral: int = 0


def read_tweets(path: Path | str) -> TweetFile:
    """Read one tweet file (any supported format and compression); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise TweetFileError(path, None, "no such file")
    with _open_binary(path) as (stream, where):
        head = stream.read(_SNIFF_BYTES)
    kind = detect_format(path, head, where)
    try:
        with _open_binary(path) as (stream, where):
            if kind == "json":
                rows = _read_json(stream.read(), where, json_lines=_is_json_lines(path))
            elif kind == "sentiment140":
                rows = _read_sentiment140(stream, where)
            else:
                rows = _read_labelled_csv(stream, where, path)
    except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile) as error:
        raise TweetFileError(path, None, f"truncated or corrupt compressed file ({error})") from error
    return TweetFile(
        path=path,
        texts=rows.texts,
        labels=np.asarray(rows.labels, dtype=np.int8),
        dropped={NEUTRAL: rows.neutral},
    )


def detect_format(path: Path, head: bytes, where: str) -> str:
    """``"sentiment140"``, ``"labelled_csv"`` or ``"json"``, from the first decompressed bytes."""
    text = head.removeprefix(codecs.BOM_UTF8).decode("latin-1").lstrip()
    if not text:
        raise TweetFileError(where, None, "the file is empty: no tweets")
    suffixes = [s.lower() for s in path.suffixes]
    if text[0] in "[{" or _ARCHIVE_PREFIX.match(text) or {".json", ".jsonl", ".js"} & set(suffixes):
        return "json"
    first_line = text.splitlines()[0]
    try:
        first = next(csv.reader([first_line]))
    except csv.Error as error:
        raise TweetFileError(where, 1, f"not a CSV line ({error})") from error
    columns = [c.strip().lower() for c in first]
    if len(first) == len(SENTIMENT140_COLUMNS) and columns[0] in _SENTIMENT140_TARGETS:
        return "sentiment140"
    if "label" in columns and "text" in columns:
        return "labelled_csv"
    raise TweetFileError(
        where,
        1,
        "unrecognised format: expected Sentiment140 rows (six quoted columns target,id,date,flag,user,text), "
        f"a CSV header naming 'label' and 'text', or JSON; found {first_line[:80]!r}",
    )


# ---------------------------------------------------------------------------------------------- opening


@contextmanager
def _open_binary(path: Path) -> Iterator[tuple[IO[bytes], str]]:
    """Yield the decompressed byte stream and the name to use in error messages."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as error:
            raise TweetFileError(path, None, f"not a readable zip archive ({error})") from error
        with archive:
            members = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir() and not info.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                raise TweetFileError(
                    path, None, f"a zip archive must hold exactly one tweet file, found {members}"
                )
            with archive.open(members[0]) as stream:
                yield stream, f"{path} ({members[0]})"
        return
    if suffix == ".gz":
        with gzip.open(path, "rb") as stream:
            try:
                stream.peek(1)
            except (gzip.BadGzipFile, EOFError, OSError) as error:
                raise TweetFileError(path, None, f"not a readable gzip file ({error})") from error
            yield stream, str(path)
        return
    with open(path, "rb") as stream:
        yield stream, str(path)


def _is_json_lines(path: Path) -> bool:
    return ".jsonl" in [s.lower() for s in path.suffixes] or ".ndjson" in [s.lower() for s in path.suffixes]


def _first_bad_utf8_line(data: bytes) -> int:
    """Line number (1-based) of the first line that is not valid UTF-8."""
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


# --------------------------------------------------------------------------------------------- formats


def _csv_records(text_stream: IO[str], where: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields), blank lines left out; CSV syntax errors name the line."""
    reader = csv.reader(text_stream, strict=True)
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if record:
                yield start, record
    except csv.Error as error:
        raise TweetFileError(where, line, f"malformed CSV ({error})") from error


def _read_sentiment140(stream: IO[bytes], where: str) -> _Rows:
    """Kaggle's Sentiment140 rows: six columns, target 0/4 (2 = neutral, dropped and counted)."""
    rows = _Rows()
    texts, labels = rows.texts, rows.labels
    text_stream = io.TextIOWrapper(stream, encoding="latin-1", newline="")
    targets = _SENTIMENT140_TARGETS
    for line, record in _csv_records(text_stream, where):
        if len(record) != 6:
            raise TweetFileError(
                where,
                line,
                f"wrong column count: expected 6 (target,id,date,flag,user,text), found {len(record)}",
            )
        target, text = record[0], record[5]
        label = targets.get(target, UNLABELLED)
        if label is None:
            rows.neutral += 1
            continue
        if label == UNLABELLED:
            raise TweetFileError(
                where, line, f"bad target {target!r}: expected 0 (negative), 4 (positive) or 2 (neutral)"
            )
        if not text.strip():
            raise TweetFileError(where, line, "missing text: the text column is empty")
        texts.append(text)
        labels.append(label)
    if not texts and not rows.neutral:
        raise TweetFileError(where, None, "no tweets in the file")
    return rows


def _parse_label(value: object) -> int | None:
    """0/1, negative/positive (None for neutral); raises KeyError for anything else."""
    if isinstance(value, bool):
        raise KeyError(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise KeyError(value)
    return _LABELS[value.strip().lower()]


def _checked_label(value: object, where: str, line: int) -> int | None:
    """``_parse_label``, with the file and line named when the label is not one we know."""
    try:
        return _parse_label(value)
    except KeyError:
        raise TweetFileError(
            where, line, f"bad label {value!r}: expected 0/1, negative/positive or neutral"
        ) from None


def _read_labelled_csv(stream: IO[bytes], where: str, path: Path) -> _Rows:
    """A CSV with a header naming ``label`` and ``text`` (other columns ignored), UTF-8."""
    rows = _Rows()
    texts, labels = rows.texts, rows.labels
    text_stream = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    records = _csv_records(text_stream, where)
    try:
        _, header = next(records)
        columns = [c.strip().lower() for c in header]
        label_at, text_at, width = columns.index("label"), columns.index("text"), len(columns)
        for line, record in records:
            if len(record) != width:
                raise TweetFileError(
                    where, line, f"wrong column count: expected {width} (as the header), found {len(record)}"
                )
            raw_label, text = record[label_at], record[text_at]
            label = _checked_label(raw_label, where, line)
            if label is None:
                rows.neutral += 1
                continue
            if not text.strip():
                raise TweetFileError(where, line, "missing text: the text column is empty")
            texts.append(text)
            labels.append(label)
    except UnicodeDecodeError as error:
        with _open_binary(path) as (raw, _):
            line = _first_bad_utf8_line(raw.read())
        problem = f"not UTF-8 text ({error.reason}); save the file as UTF-8"
        raise TweetFileError(where, line, problem) from error
    if not texts and not rows.neutral:
        raise TweetFileError(where, None, "no tweets in the file (only a header)")
    return rows


def _line_of(data: str, offset: int) -> int:
    return data.count("\n", 0, offset) + 1


def _json_items(data: str, where: str) -> Iterator[tuple[int, object]]:
    """Each element of the top-level JSON list with the line it starts on (one pass, positions kept)."""
    decoder = json.JSONDecoder()
    prefix = _ARCHIVE_PREFIX.match(data)
    at = prefix.end() if prefix else 0
    whitespace = re.compile(r"\s*")
    at = whitespace.match(data, at).end()
    if data[at : at + 1] != "[":
        raise TweetFileError(where, _line_of(data, at), "invalid JSON: expected a list of tweet objects")
    at = whitespace.match(data, at + 1).end()
    if data[at : at + 1] == "]":
        return
    line, counted_to = _line_of(data, at), at
    while True:
        line, counted_to = line + data.count("\n", counted_to, at), at
        try:
            item, at = decoder.raw_decode(data, at)
        except json.JSONDecodeError as error:
            raise TweetFileError(where, error.lineno, f"invalid JSON ({error.msg})") from error
        yield line, item
        at = whitespace.match(data, at).end()
        char = data[at : at + 1]
        if char == "]":
            rest = whitespace.match(data, at + 1).end()
            if data[rest:].strip().rstrip(";").strip():
                raise TweetFileError(where, _line_of(data, rest), "invalid JSON: extra data after the list")
            return
        if char != ",":
            problem = "invalid JSON: expected ',' or ']' between tweets"
            raise TweetFileError(where, _line_of(data, at), problem)
        at = whitespace.match(data, at + 1).end()


def _json_line_items(data: str, where: str) -> Iterator[tuple[int, object]]:
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise TweetFileError(where, number, f"invalid JSON ({error.msg})") from error


def _read_json(data_bytes: bytes, where: str, *, json_lines: bool) -> _Rows:
    """A list of tweet objects: ``text``/``full_text`` required, ``label`` optional (-1 when absent)."""
    try:
        data = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data_bytes.count(b"\n", 0, error.start) + 1
        raise TweetFileError(where, line, f"not UTF-8 text ({error.reason})") from error
    rows = _Rows()
    items = _json_line_items(data, where) if json_lines else _json_items(data, where)
    for line, item in items:
        if isinstance(item, dict) and isinstance(item.get("tweet"), dict):
            item = item["tweet"]  # X/Twitter archive wrapper
        if not isinstance(item, dict):
            problem = f"expected a tweet object with a 'text', found {type(item).__name__}"
            raise TweetFileError(where, line, problem)
        text = item.get("text", item.get("full_text"))
        if not isinstance(text, str) or not text.strip():
            raise TweetFileError(where, line, "missing text: the tweet has no non-empty 'text'")
        if item.get("label") is None:
            label = UNLABELLED
        else:
            label = _checked_label(item["label"], where, line)
            if label is None:
                rows.neutral += 1
                continue
        rows.texts.append(text)
        rows.labels.append(label)
    if not rows.texts and not rows.neutral:
        raise TweetFileError(where, None, "no tweets in the file (empty list)")
    return rows
