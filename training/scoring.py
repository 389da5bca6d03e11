"""``score``: label a file of tweets of any size with the ONNX model, in constant memory.

The model runs through ``serving.runtime.SentimentModel``, the service's own runtime (normalizer,
graph, threshold from the file's metadata), so a file scores exactly as the API would score its tweets;
nothing here imports scikit-learn. Rows are read, scored and written in batches.

Input, by suffix (after ``.gz``; a ``.zip`` holds one file):

- ``.csv``: a header with a ``text`` column (``id`` kept when present), or Sentiment140 as Kaggle ships
  it (no header, six columns, the id in the second);
- ``.json``: a list of tweet objects with ``text`` (or ``full_text``; ``id``/``id_str`` kept), read item
  by item; ``.jsonl``/``.ndjson``: one such object a line;
- anything else: one tweet a line, blank lines skipped.

Output: a UTF-8 CSV ``text,label,negative_probability`` (``id`` first when the input has ids), one row
per input tweet in input order, the text as written. Every input is bounded: a text over
``MAX_TEXT_CHARS`` characters or a malformed row stops the run with the file and line named.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from serving.runtime import SentimentModel
from training.data import TweetFileError

BATCH_ROWS = 4_096
# The service's limit on one text; the graph's memory grows with the longest text of a run.
MAX_TEXT_CHARS = 5_000
# Longest JSON object (one tweet with its metadata) the reader buffers before it gives up.
MAX_JSON_ITEM_CHARS = 1 << 20
_READ_CHARS = 1 << 20
_SENTIMENT140_TARGETS = {"0", "2", "4"}
_ARCHIVE_PREFIX = re.compile(r"\s*window\.YTD\.[\w.]+\s*=\s*")


@dataclass
class ScoreReport:
    rows: int
    negatives: int
    has_ids: bool
    input_format: str


# ------------------------------------------------------------------------------------------- opening


@dataclass
class _Source:
    """The decompressed bytes of the input, the suffix that names its format, and a progress reading."""

    stream: IO[bytes]
    suffix: str
    where: str
    position: Callable[[], int]
    total: int


class _Counting(io.RawIOBase):
    """Counts the bytes read through it (progress inside a zip member)."""

    def __init__(self, inner: IO[bytes]):
        self.inner, self.count = inner, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


@contextmanager
def open_source(path: Path) -> Iterator[_Source]:
    """Open a plain, ``.gz`` or single-file ``.zip`` input; progress follows the bytes on disk."""
    path = Path(path)
    if not path.is_file():
        raise TweetFileError(path, None, "no such file")
    suffixes = [s.lower() for s in path.suffixes]
    with ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        size = path.stat().st_size
        if suffixes and suffixes[-1] == ".zip":
            try:
                archive = stack.enter_context(zipfile.ZipFile(raw))
            except zipfile.BadZipFile as error:
                raise TweetFileError(path, None, f"not a readable zip archive ({error})") from error
            members = [
                i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                names = [i.filename for i in members]
                raise TweetFileError(path, None, f"a zip archive must hold exactly one file, found {names}")
            counting = _Counting(stack.enter_context(archive.open(members[0])))
            stream = io.BufferedReader(counting, buffer_size=_READ_CHARS)
            inner = Path(members[0].filename)
            yield _Source(
                stream,
                _format_suffix(inner),
                f"{path} ({inner})",
                lambda: counting.count,
                members[0].file_size,
            )
            return
        if suffixes and suffixes[-1] == ".gz":
            stream = stack.enter_context(gzip.GzipFile(fileobj=raw))
            try:
                stream.peek(1)
            except (gzip.BadGzipFile, EOFError, OSError) as error:
                raise TweetFileError(path, None, f"not a readable gzip file ({error})") from error
            yield _Source(stream, _format_suffix(path.with_suffix("")), str(path), raw.tell, size)
            return
        yield _Source(raw, _format_suffix(path), str(path), raw.tell, size)


def _position(source: _Source) -> int:
    """Bytes read so far; the whole file once the reader has closed it (the last batch)."""
    try:
        return source.position()
    except ValueError:
        return source.total


def _format_suffix(path: Path) -> str:
    return path.suffix.lower()


# ------------------------------------------------------------------------------------------- reading


def read_rows(source: _Source) -> tuple[str, bool, Iterator[tuple[str | None, str]]]:
    """(format, whether rows carry ids, an iterator of (id, text)) for an opened input."""
    if source.suffix == ".csv":
        return _csv_rows(source)
    if source.suffix in (".jsonl", ".ndjson"):
        return "jsonl", True, _jsonl_rows(source)
    if source.suffix in (".json", ".js"):
        return "json", True, _json_rows(source)
    return "lines", False, _line_rows(source)


def _checked(text: str, where: str, line: int) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise TweetFileError(where, line, f"text of {len(text):,} characters (at most {MAX_TEXT_CHARS:,})")
    return text


def _csv_rows(source: _Source) -> tuple[str, bool, Iterator[tuple[str | None, str]]]:
    head = source.stream.peek(64 * 1024)[: 64 * 1024] if hasattr(source.stream, "peek") else b""
    first_line = head.removeprefix(codecs.BOM_UTF8).decode("latin-1").lstrip().split("\n", 1)[0]
    try:
        first = next(csv.reader([first_line]), [])
    except csv.Error:
        first = []
    columns = [c.strip().lower() for c in first]
    if len(first) == 6 and columns[0] in _SENTIMENT140_TARGETS:
        text_stream = io.TextIOWrapper(source.stream, encoding="latin-1", newline="")
        return (
            "sentiment140",
            True,
            _csv_records(text_stream, source.where, text_at=5, id_at=1, skip_header=False),
        )
    if "text" not in columns:
        raise TweetFileError(
            source.where,
            1,
            "a CSV needs a header with a 'text' column (or Sentiment140's six columns); "
            f"found {first_line[:80]!r}",
        )
    id_at = columns.index("id") if "id" in columns else None
    text_stream = io.TextIOWrapper(source.stream, encoding="utf-8-sig", newline="")
    rows = _csv_records(
        text_stream, source.where, text_at=columns.index("text"), id_at=id_at, skip_header=True
    )
    return "csv", id_at is not None, rows


def _csv_records(
    text_stream: IO[str], where: str, *, text_at: int, id_at: int | None, skip_header: bool
) -> Iterator[tuple[str | None, str]]:
    reader = csv.reader(text_stream, strict=True)
    width = None
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record:
                continue
            if skip_header and width is None:
                width = len(record)
                continue
            width = width or len(record)
            if len(record) != width:
                raise TweetFileError(
                    where, start, f"wrong column count: expected {width}, found {len(record)}"
                )
            yield (record[id_at] if id_at is not None else None), _checked(record[text_at], where, start)
    except csv.Error as error:
        raise TweetFileError(where, line, f"malformed CSV ({error})") from error
    except UnicodeDecodeError as error:
        raise TweetFileError(
            where, line, f"not UTF-8 text ({error.reason}); save the file as UTF-8"
        ) from error


def _tweet(item: object, where: str, line: int) -> tuple[str | None, str]:
    if isinstance(item, dict) and isinstance(item.get("tweet"), dict):
        item = item["tweet"]  # X/Twitter archive wrapper
    if not isinstance(item, dict):
        raise TweetFileError(
            where, line, f"expected a tweet object with a 'text', found {type(item).__name__}"
        )
    text = item.get("text", item.get("full_text"))
    if not isinstance(text, str):
        raise TweetFileError(where, line, "the tweet has no 'text' string")
    tweet_id = item.get("id", item.get("id_str"))
    return (None if tweet_id is None else str(tweet_id)), _checked(text, where, line)


def _text_lines(source: _Source) -> Iterator[tuple[int, str]]:
    """(line number, line without its end), each read with a bounded buffer."""
    stream = io.TextIOWrapper(source.stream, encoding="utf-8-sig", errors="strict", newline=None)
    number = 0
    limit = max(MAX_TEXT_CHARS, MAX_JSON_ITEM_CHARS) + 2
    try:
        while line := stream.readline(limit):
            number += 1
            if len(line) >= limit - 1 and not line.endswith("\n"):
                raise TweetFileError(source.where, number, f"line longer than {limit - 2:,} characters")
            yield number, line.rstrip("\n")
    except UnicodeDecodeError as error:
        raise TweetFileError(source.where, number + 1, f"not UTF-8 text ({error.reason})") from error


def _line_rows(source: _Source) -> Iterator[tuple[str | None, str]]:
    for number, line in _text_lines(source):
        if line.strip():
            yield None, _checked(line, source.where, number)


def _jsonl_rows(source: _Source) -> Iterator[tuple[str | None, str]]:
    for number, line in _text_lines(source):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise TweetFileError(source.where, number, f"invalid JSON ({error.msg})") from error
        yield _tweet(item, source.where, number)


def _json_rows(source: _Source) -> Iterator[tuple[str | None, str]]:
    """The items of a top-level JSON list, decoded one at a time from a bounded buffer."""
    stream = io.TextIOWrapper(source.stream, encoding="utf-8-sig", errors="strict")
    decoder = json.JSONDecoder()
    buffer, at, line, eof = "", 0, 1, False
    where = source.where

    def more() -> bool:
        nonlocal buffer, at, eof
        if eof:
            return False
        try:
            chunk = stream.read(_READ_CHARS)
        except UnicodeDecodeError as error:
            raise TweetFileError(where, line, f"not UTF-8 text ({error.reason})") from error
        eof = not chunk
        buffer, at = buffer[at:] + chunk, 0
        return bool(chunk)

    def skip_space() -> str:
        nonlocal at, line
        while True:
            while at < len(buffer) and buffer[at].isspace():
                line += buffer[at] == "\n"
                at += 1
            if at < len(buffer) or not more():
                return buffer[at : at + 1]

    more()
    prefix = _ARCHIVE_PREFIX.match(buffer)
    if prefix:
        line += buffer.count("\n", 0, prefix.end())
        at = prefix.end()
    if skip_space() != "[":
        raise TweetFileError(where, line, "invalid JSON: expected a list of tweet objects")
    at += 1
    if skip_space() == "]":
        return
    while True:
        skip_space()
        while True:
            try:
                item, end = decoder.raw_decode(buffer, at)
                break
            except json.JSONDecodeError as error:
                if len(buffer) - at > MAX_JSON_ITEM_CHARS or not more():
                    raise TweetFileError(where, line, f"invalid JSON ({error.msg})") from error
        start_line = line
        line += buffer.count("\n", at, end)
        at = end
        yield _tweet(item, where, start_line)
        char = skip_space()
        if char == "]":
            at += 1
            if skip_space().strip(";"):
                raise TweetFileError(where, line, "invalid JSON: extra data after the list")
            return
        if char != ",":
            raise TweetFileError(where, line, "invalid JSON: expected ',' or ']' between tweets")
        at += 1


# ------------------------------------------------------------------------------------------- scoring


def batches(rows: Iterator[tuple[str | None, str]], size: int = BATCH_ROWS) -> Iterator[list]:
    batch: list[tuple[str | None, str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_file(
    model: SentimentModel,
    path: Path,
    out: Path,
    *,
    batch_rows: int = BATCH_ROWS,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScoreReport:
    """Score every tweet of ``path`` into the CSV ``out`` (written beside, then renamed: never half a
    file); ``on_progress(bytes done, bytes in all)`` after each batch."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    rows = negatives = 0
    negative_label = model.labels[0]
    try:
        with open_source(path) as source, temporary.open("w", newline="", encoding="utf-8") as handle:
            input_format, has_ids, records = read_rows(source)
            chunks = batches(records, batch_rows)
            first = next(chunks, [])
            if input_format in ("json", "jsonl"):  # ids are per object: the first batch tells
                has_ids = any(tweet_id is not None for tweet_id, _ in first)
            writer = csv.writer(handle)
            columns = ["text", "label", "negative_probability"]
            writer.writerow(["id", *columns] if has_ids else columns)
            for batch in itertools.chain([first] if first else [], chunks):
                texts = [text for _, text in batch]
                predictions = model.predict(texts)
                labels = [p.label for p in predictions]
                probabilities = [f"{p.negative_probability:.6f}" for p in predictions]
                if has_ids:
                    ids = ["" if tweet_id is None else tweet_id for tweet_id, _ in batch]
                    writer.writerows(zip(ids, texts, labels, probabilities, strict=True))
                else:
                    writer.writerows(zip(texts, labels, probabilities, strict=True))
                rows += len(batch)
                negatives += labels.count(negative_label)
                if on_progress is not None:
                    on_progress(_position(source), source.total)
        temporary.replace(out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return ScoreReport(rows, negatives, has_ids, input_format)
