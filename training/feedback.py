"""Feedback as training data: which pulled feedback rows train a model and which judge it.

A pulled feedback file (``feedback-pull`` writes it, ``label,text``) is split by text, not by position:
a row is held out when ``sha256(seed, normalized text)`` falls in the first ``share`` of the hash range.
The same text is therefore always on the same side, whatever else the file holds, so ``train`` and
``compare`` agree on the held-out part, and a later, larger pull keeps every earlier held-out text held
out (a model is never judged on a correction it was trained on). ``training.dataset.split_feedback``
applies it; standard library only.
"""

from __future__ import annotations

import hashlib

from training.config import SEED

# Share of the feedback texts kept out of training for ``compare``, and the weight of the others.
HOLDOUT_SHARE = 0.3
DEFAULT_WEIGHT = 3.0
# The name of the held-out part among the test sets (reports, model metadata, comparison).
HOLDOUT_SET = "feedback_holdout"


def is_held_out(normalized_text: str, *, seed: int = SEED, share: float = HOLDOUT_SHARE) -> bool:
    """Whether this text belongs to the held-out part (a pure function of the text and the seed)."""
    digest = hashlib.sha256(f"{seed}\x00{normalized_text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64
