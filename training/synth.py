"""Synthetic tweets in the exact Sentiment140 (Kaggle) format, for scale tests without the real corpus.

The real file cannot be shipped, so ``synth`` writes one that looks like it byte for byte: no header,
six quoted columns ``target,id,date,flag,user,text``, target 0 then 4 (the Kaggle file is sorted by
target: all negatives first), ids rising with the date (April-June 2009, PDT), flag ``NO_QUERY``,
latin-1 bytes with the same noise (``&quot;``/``&amp;`` entities, ``ï¿½`` mojibake, URLs, @mentions).
Texts mix sentiment words of their class with filler and some words of the other class, so a model
can learn something but not everything. The same seed gives the same bytes.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np

from training.config import SEED

KAGGLE_MEMBER = "training.1600000.processed.noemoticon.csv"
_FIRST_ID, _LAST_ID = 1_467_810_369, 2_329_205_794
_START = datetime(2009, 4, 6, 22, 19, 45)  # Pacific time, as the Kaggle file writes it
_END = datetime(2009, 6, 25, 10, 28, 31)
_CHUNK = 100_000


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = _words(
    "love loving loved great awesome happy thanks thank amazing good best fun excited yay beautiful glad "
    "nice cool wonderful perfect enjoy enjoyed sweet haha smile congrats brilliant lovely fantastic proud "
    "hope laughing lol blessed cute win won finally relaxing sunshine welcome kind helpful friendly fab"
)
NEGATIVE = _words(
    "sad hate miss missing sick tired bad sucks worst sorry ugh hurts lost cancelled delayed bored crying "
    "awful broke broken terrible annoyed headache stuck late poor lonely upset angry sore fail failed rude "
    "waiting stressed exhausted disappointed wish cant hurt never boring nightmare rain"
)
FILLER = _words(
    "i the my to a and is it in for of on at today work going just now day so this with tonight home time "
    "back got new flight airport weekend school morning you me we get go be have was all night out up "
    "what when off here still gonna some about week bed sleep tomorrow its im dont one more really "
    "plane trip bag gate seat crew luggage phone car class exam movie friends family dinner coffee lunch"
)
HASHTAGS = _words("#fail #followfriday #travel #iranelection #mcfly #squarespace #musicmonday #tgif")
SYLLABLES = _words("ka lo mi ne ra su ti vo ba de fi go hu ja ki le ma no pe qu ri sa to vi wa xe yo zu")
ENDINGS = ("", "", "", "!", "!!", "...", " ?", " lol", " haha", " ugh")
NOISE = ("&quot;so&quot;", "&amp;", "ï¿½", "&lt;3", "cafÃ©")  # latin-1 text, as in the Kaggle file


def _users(rng: np.random.Generator, count: int) -> list[str]:
    """Handles such as ``kalomi_87`` or ``SuTivo``: letters, digits and underscores like real ones."""
    parts = rng.integers(0, len(SYLLABLES), size=(count, 3))
    lengths = rng.integers(2, 4, size=count)
    styles = rng.integers(0, 4, size=count)
    digits = rng.integers(0, 100, size=count)
    users = []
    for row, length, style, number in zip(parts.tolist(), lengths, styles, digits, strict=True):
        name = "".join(SYLLABLES[i] for i in row[:length])
        if style == 1:
            name = name.capitalize() + str(number)
        elif style == 2:
            name = f"{name}_{number}"
        elif style == 3:
            name = "_" + name.title()
        users.append(name)
    return users


def _texts(rng: np.random.Generator, labels: np.ndarray, users: list[str]) -> list[str]:
    """Tweet-like texts: filler plus sentiment words (mostly of the row's class), mentions, URLs."""
    count = len(labels)
    lengths = rng.integers(4, 17, size=count)
    total = int(lengths.sum())
    # Each word: filler (55%), a word of the row's class (35%) or of the other class (10%).
    row_of_word = np.repeat(labels, lengths)
    kind = rng.random(total)
    filler = np.asarray(FILLER, dtype=object)[rng.integers(0, len(FILLER), total)]
    positive = np.asarray(POSITIVE, dtype=object)[rng.integers(0, len(POSITIVE), total)]
    negative = np.asarray(NEGATIVE, dtype=object)[rng.integers(0, len(NEGATIVE), total)]
    own = np.where(row_of_word == 1, positive, negative)
    other = np.where(row_of_word == 1, negative, positive)
    words = np.where(kind < 0.55, filler, np.where(kind < 0.90, own, other)).tolist()

    mention = rng.random(count) < 0.35
    mentioned = rng.integers(0, len(users), count)
    url = rng.random(count) < 0.08
    url_code = rng.integers(0, 36**5, count)
    hashtag = rng.random(count) < 0.04
    hashtag_pick = rng.integers(0, len(HASHTAGS), count)
    noise = rng.random(count) < 0.03
    noise_pick = rng.integers(0, len(NOISE), count)
    ending = rng.integers(0, len(ENDINGS), count)
    capital = rng.random(count) < 0.5

    texts = []
    end = 0
    for row in range(count):
        start, end = end, end + int(lengths[row])
        body = " ".join(words[start:end])
        if capital[row]:
            body = body[0].upper() + body[1:]
        if noise[row]:
            body = f"{body} {NOISE[noise_pick[row]]}"
        if mention[row]:
            body = f"@{users[mentioned[row]]} {body}"
        if hashtag[row]:
            body = f"{body} {HASHTAGS[hashtag_pick[row]]}"
        if url[row]:
            body = f"{body} http://bit.ly/{np.base_repr(int(url_code[row]), 36).lower()}"
        texts.append(body + ENDINGS[ending[row]] + " ")
    return texts


def _dates_and_ids(rng: np.random.Generator, count: int) -> tuple[list[str], list[int]]:
    """Sorted times between the first and last Kaggle tweets; ids rise with time, as Twitter's did."""
    span = (_END - _START).total_seconds()
    offsets = np.sort(rng.random(count)) * span
    ids = _FIRST_ID + (offsets / span * (_LAST_ID - _FIRST_ID)).astype(np.int64)
    ids = np.maximum.accumulate(ids + np.arange(count) % 7)  # distinct-looking, never decreasing
    dates = [(_START + timedelta(seconds=int(s))).strftime("%a %b %d %H:%M:%S PDT %Y") for s in offsets]
    return dates, ids.tolist()


def synthetic_lines(rows: int, seed: int = SEED) -> Iterator[str]:
    """The file's lines, in chunks of text: half negative (target 0) first, then half positive (4)."""
    rng = np.random.default_rng(seed)
    users = _users(rng, max(1000, rows // 8))
    negatives = rows // 2
    for target, label, count in (("0", 0, negatives), ("4", 1, rows - negatives)):
        dates, ids = _dates_and_ids(rng, count)
        for start in range(0, count, _CHUNK):
            size = min(_CHUNK, count - start)
            texts = _texts(rng, np.full(size, label, dtype=np.int8), users)
            user_pick = rng.integers(0, len(users), size).tolist()
            yield "".join(
                f'"{target}","{ids[start + i]}","{dates[start + i]}","NO_QUERY","{users[user_pick[i]]}",'
                f'"{texts[i]}"\n'
                for i in range(size)
            )


@contextmanager
def _open_output(out: Path) -> Iterator[BinaryIO]:
    """Plain, ``.gz`` or ``.zip`` (the Kaggle download's shape), byte-identical for the same content."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        with (
            open(out, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as stream,
        ):
            yield stream
    elif out.suffix == ".zip":
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo(KAGGLE_MEMBER, date_time=(2009, 6, 25, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as stream:
                yield stream
    else:
        with open(out, "wb") as stream:
            yield stream


def write_synthetic(out: Path, rows: int, seed: int = SEED) -> Path:
    """Write ``rows`` synthetic tweets to ``out`` in the Sentiment140 format; returns ``out``."""
    if rows < 2:
        raise ValueError("rows must be at least 2 (one per class)")
    with _open_output(Path(out)) as stream:
        for chunk in synthetic_lines(rows, seed):
            stream.write(chunk.encode("latin-1"))
    return Path(out)
