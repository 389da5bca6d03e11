"""A generated, labelled corpus of normalized tweet-like texts for fast model tests."""

from __future__ import annotations

import numpy as np

POSITIVE = ["great", "love", "thanks", "awesome", "smooth", "friendly", "happy", "best", "emopos", "comfy"]
NEGATIVE = ["delayed", "lost", "rude", "worst", "cancelled", "angry", "late", "broken", "emoneg", "refund"]
NEUTRAL = [
    "flight", "bag", "crew", "seat", "gate", "my", "the", "to", "user", "url", "!", "?", "not", "so",
    "paris", "today", "again", "2", "hours", "a", "i", "x", "_",
]  # fmt: skip


def generated_corpus(size: int = 600, seed: int = 7) -> tuple[list[str], np.ndarray]:
    """Texts of 1-25 tokens whose label follows their sentiment words (with some noise)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(size):
        label = int(rng.integers(0, 2))
        own, other = (POSITIVE, NEGATIVE) if label else (NEGATIVE, POSITIVE)
        tokens = list(rng.choice(NEUTRAL, size=int(rng.integers(0, 20))))
        tokens += list(rng.choice(own, size=int(rng.integers(1, 4))))
        if rng.random() < 0.3:
            tokens.append(str(rng.choice(other)))
        rng.shuffle(tokens)
        texts.append(" ".join(tokens))
        labels.append(label)
    return texts, np.asarray(labels, dtype=np.int8)
