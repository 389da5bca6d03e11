"""Explanations per word: the model's n-gram contributions folded into the words of the text they cover.

The graph reports, per text, each distinct n-gram it matched (word 1-3-grams and character 2-5-grams)
with its total contribution to the positive logit. People read words, not "wfu" or "awful" twice, so each
n-gram's contribution is shared out: equally among its occurrences in the normalized text, and within an
occurrence among the words whose characters it covers, in proportion to the characters covered (spaces
belong to no word). Nothing is lost: the words' contributions sum to the n-grams' sum, which with the
model's intercept is the logit.

An n-gram string can be both a word n-gram and a character n-gram ("bad"): when it occurs on word
boundaries it is taken as the words it spells, otherwise as characters inside words; listed twice for one
text, it is first the word n-gram, then the character n-gram (the graph lists word n-grams first). Work is
linear in the texts: a batch is folded at once, with vectorised look-ups of character n-gram keys over
the texts laid end to end, and dictionary look-ups of the longer word n-grams.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

MAX_CHAR_GRAM = 5  # the longest character n-gram a model uses; longer terms are word n-grams


class Term(TypedDict):
    """One word of an explanation and its signed contribution to the positive logit."""

    term: str
    weight: float


def word_contributions(text: str, terms: Sequence[str], weights: Sequence[float]) -> dict[str, float]:
    """Each word of ``text`` (a normalized text: tokens separated by single spaces) that an n-gram covers
    -> the sum of those n-grams' contributions."""
    rows = np.zeros(len(terms), dtype=np.int64)
    return _fold([text], rows, list(terms), np.asarray(weights, dtype=np.float64))[0]


def top_words(
    texts: Sequence[str], rows: np.ndarray, terms: np.ndarray, weights: np.ndarray, top_k: int
) -> list[list[Term]]:
    """Per text, the ``top_k`` words with the largest |contribution|, largest first (graph outputs:
    ``rows[i]`` is the text of n-gram ``terms[i]``, whose total contribution is ``weights[i]``)."""
    inside = (rows >= 0) & (rows < len(texts))
    folded = _fold(texts, rows[inside], terms[inside].tolist(), weights[inside].astype(np.float64))
    explanations: list[list[Term]] = []
    for words in folded:
        ranked = sorted(words.items(), key=lambda item: -abs(item[1]))[:top_k]
        explanations.append([{"term": word, "weight": round(weight, 6)} for word, weight in ranked])
    return explanations


def _fold(
    texts: Sequence[str], rows: np.ndarray, terms: list[str], weights: np.ndarray
) -> list[dict[str, float]]:
    """The texts laid end to end (a 0 byte between them: no n-gram holds one), every character owned by
    its token (or by none: spaces and separators), and each n-gram's weight shared out over the tokens."""
    tokens: list[str] = []
    token_rows: list[int] = []
    for row, text in enumerate(texts):
        words = text.split(" ") if text else []
        tokens.extend(words)
        token_rows.extend([row] * len(words))
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    joined = "\x00".join(texts).encode("ascii", "replace")
    codes = np.frombuffer(joined, dtype=np.uint8).astype(np.int64)
    boundary = (codes == 32) | (codes == 0)
    text_of_char = np.cumsum(codes == 0)
    owner = np.full(len(codes), -1, dtype=np.int64)
    token_starts = np.flatnonzero(~boundary & np.concatenate(([True], boundary[:-1])))
    owner[np.repeat(token_starts, lengths) + _ranks(lengths)] = np.repeat(np.arange(len(tokens)), lengths)
    per_token = np.zeros(len(tokens), dtype=np.float64)
    covered = np.zeros(len(tokens), dtype=bool)

    groups: dict[tuple[str, int], tuple[list[int], list[int], list[float]]] = defaultdict(
        lambda: ([], [], [])
    )
    long: list[tuple[int, str, float]] = []
    listed: dict[tuple[int, str], int] = defaultdict(int)
    for row, term in zip(rows.tolist(), terms, strict=True):
        listed[(row, term)] += 1
    seen: set[tuple[int, str]] = set()
    for row, term, weight in zip(rows.tolist(), terms, weights.tolist(), strict=True):
        if 0 < len(term) <= MAX_CHAR_GRAM and term.isascii():
            if listed[(row, term)] == 1:
                mode = "auto"
            else:
                mode = "characters" if (row, term) in seen else "words"
                seen.add((row, term))
            keys, term_rows, term_weights = groups[(mode, len(term))]
            keys.append(int.from_bytes(term.encode("ascii"), "big"))
            term_rows.append(row)
            term_weights.append(weight)
        elif term:
            long.append((row, term, weight))
    space = np.concatenate(([True], boundary, [True]))
    for (mode, n), (keys, term_rows, term_weights) in groups.items():
        if n > len(codes):
            continue
        # (row, key) in one int64: keys of n <= 5 characters take 40 bits, rows the rest.
        term_keys = (np.array(term_rows, dtype=np.int64) << 40) | np.array(keys, dtype=np.int64)
        text_keys = (text_of_char[: len(codes) - n + 1] << 40) | _keys(codes, n)
        sorter = np.argsort(term_keys)
        which = sorter[np.minimum(np.searchsorted(term_keys, text_keys, sorter=sorter), len(term_keys) - 1)]
        positions = np.flatnonzero(term_keys[which] == text_keys)
        which = which[positions]
        aligned = space[positions] & space[positions + n + 1]
        if mode == "words":
            kept = aligned
        elif mode == "characters":
            kept = np.ones(len(positions), dtype=bool)
        else:  # a term with an occurrence on word boundaries is the words it spells: keep only those
            has_aligned = np.zeros(len(keys), dtype=bool)
            has_aligned[which[aligned]] = True
            kept = aligned | ~has_aligned[which]
        positions, which = positions[kept], which[kept]
        occurrences = np.bincount(which, minlength=len(keys))
        share = np.array(term_weights, dtype=np.float64)[which] / occurrences[which]
        spans = owner[positions[:, None] + np.arange(n)]  # [occurrences, n]: token, or -1 for a space
        in_word = spans >= 0
        per_char = share / np.maximum(in_word.sum(axis=1), 1)
        np.add.at(per_token, spans[in_word], np.broadcast_to(per_char[:, None], spans.shape)[in_word])
        covered[spans[in_word]] = True
    if long:
        _fold_word_grams(tokens, token_rows, lengths, long, per_token, covered)
    folded: list[dict[str, float]] = [defaultdict(float) for _ in texts]
    for token, row, weight, hit in zip(tokens, token_rows, per_token.tolist(), covered.tolist(), strict=True):
        if hit:
            folded[row][token] += weight
    return [dict(words) for words in folded]


def _ranks(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each run length n, concatenated."""
    total = int(lengths.sum())
    ranks: np.ndarray = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return ranks


def _keys(codes: np.ndarray, n: int) -> np.ndarray:
    """The n-character key at every position (base 256, as ``int.from_bytes`` spells a term)."""
    keys = np.zeros(len(codes) - n + 1, dtype=np.int64)
    for offset in range(n):
        keys = keys * 256 + codes[offset : len(codes) - n + 1 + offset]
    return keys


def _fold_word_grams(
    tokens: list[str],
    token_rows: list[int],
    lengths: np.ndarray,
    entries: list[tuple[int, str, float]],
    per_token: np.ndarray,
    covered: np.ndarray,
) -> None:
    """Terms longer than a character n-gram: word n-grams, found on token boundaries of their own text,
    by keys made of token ids (vectorised like the character n-grams)."""
    ids: dict[str, int] = {}
    token_ids = np.fromiter((ids.setdefault(t, len(ids) + 1) for t in tokens), np.int64, count=len(tokens))
    rows = np.asarray(token_rows, dtype=np.int64)
    radix, n_rows = len(ids) + 1, int(rows.max()) + 1 if len(rows) else 1
    by_size: dict[int, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for row, term, weight in entries:
        parts = term.split(" ")
        if all(part in ids for part in parts):
            key = 0
            for part in parts:
                key = key * radix + ids[part]
            keys, weights = by_size[len(parts)]
            keys.append(key * n_rows + row)
            weights.append(weight)
    for size, (keys, weights) in by_size.items():
        if size > len(tokens) or radix**size * n_rows >= 2**62:
            continue  # more distinct words than int64 keys hold: cannot happen within a scoring chunk
        starts = np.arange(len(tokens) - size + 1)
        text_keys = np.zeros(len(starts), dtype=np.int64)
        for offset in range(size):
            text_keys = text_keys * radix + token_ids[starts + offset]
        text_keys = text_keys * n_rows + rows[starts]
        same_text = rows[starts] == rows[starts + size - 1]
        term_keys = np.asarray(keys, dtype=np.int64)
        sorter = np.argsort(term_keys)
        which = sorter[np.minimum(np.searchsorted(term_keys, text_keys, sorter=sorter), len(term_keys) - 1)]
        found = np.flatnonzero((term_keys[which] == text_keys) & same_text)
        which = which[found]
        share = np.asarray(weights, dtype=np.float64)[which] / np.bincount(which, minlength=len(keys))[which]
        span = sum(lengths[found + offset] for offset in range(size))
        for offset in range(size):
            np.add.at(per_token, found + offset, share * lengths[found + offset] / span)
            covered[found + offset] = True
