"""Prior adaptation: make the model's negative probability mean P(negative) on a stream whose negative
share differs from the one the model learned.

A classifier's probability folds in the class prior it was trained under. Bayes' rule separates the two:
the odds of negative given a text are the likelihood ratio times the prior odds, so moving to another
prior multiplies every text's odds by the same factor (Saerens, Latinne & Decaestecker, 2002):

    logit(p') = logit(p) + logit(stream_prior) - logit(train_prior)

An airline's mention stream (often 70-80 % negative) scored with a model that learned a more balanced
pool over-calls positives; the correction fixes that without retraining. The stream's prior comes from
the app setting ``STREAM_NEGATIVE_PRIOR`` (estimated offline by ``python -m training prior``), the
training prior from the model's metadata (``model_train_prior``). Pure numpy and standard library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

STREAM_PRIOR_SETTING = "STREAM_NEGATIVE_PRIOR"
# Metadata key (a JSON number in (0, 1)) for the negative share the model's probabilities are calibrated
# to: the train split's negative share weighted as the classifier saw it (sample weights times class
# weights). Models exported before the key existed fall back on their ``params`` (``model_train_prior``).
TRAIN_PRIOR_KEY = "train_negative_prior"

FloatArray = npt.NDArray[np.float64]


def _check_prior(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def prior_odds_ratio(train_prior: float, stream_prior: float) -> float:
    """The factor every text's odds of negative are multiplied by: odds(stream) / odds(train)."""
    train = _check_prior(train_prior, "train_prior")
    stream = _check_prior(stream_prior, "stream_prior")
    if stream == train:
        return 1.0  # exactly: the product below can miss 1 by an ulp
    return (stream / (1.0 - stream)) * ((1.0 - train) / train)


def adjust(
    negative_probability: npt.NDArray[np.floating[Any]], train_prior: float, stream_prior: float
) -> FloatArray:
    """The probabilities re-expressed under ``stream_prior`` (float64, same shape).

    Computed in odds form, ``r p / (r p + 1 - p)``, which is the logit shift above without taking a log:
    exact at p = 0 and p = 1 (they stay 0 and 1, no infinities), monotone in p, the identity when the
    priors are equal, and undone by swapping the priors. Raises ValueError for a prior outside (0, 1) or
    a probability outside [0, 1] (NaN included): a bad input must not become a plausible label."""
    ratio = prior_odds_ratio(train_prior, stream_prior)
    p = np.asarray(negative_probability, dtype=np.float64)
    if p.size and not bool(np.all((p >= 0.0) & (p <= 1.0))):
        raise ValueError("negative probabilities must lie in [0, 1]")
    if ratio == 1.0:
        return p.copy()
    return shift_odds(p, ratio)


def shift_odds(p: FloatArray, ratio: float) -> FloatArray:
    """``adjust`` without the checks, for callers that have validated ``p`` and computed the ratio once
    (the EM loop of ``training.prior`` runs it hundreds of times)."""
    scaled = ratio * p
    result: FloatArray = scaled / (scaled + (1.0 - p))
    return result


def parse_prior_setting(value: str | None) -> float | None:
    """The stream's negative prior from the app setting's text: None (no adaptation) when unset or
    blank, else a float strictly between 0 and 1. Anything else raises ValueError at start-up, with the
    setting named, rather than silently serving unadapted (or absurd) probabilities."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        prior = float(text)
    except ValueError:
        raise ValueError(
            f"{STREAM_PRIOR_SETTING} must be a number strictly between 0 and 1 (the stream's negative "
            f"share, e.g. 0.74), got {text!r}"
        ) from None
    if not math.isfinite(prior) or not 0.0 < prior < 1.0:
        hint = " (a share, not a percentage: write 0.74 for 74 %)" if 1.0 < prior <= 100.0 else ""
        raise ValueError(
            f"{STREAM_PRIOR_SETTING} must be strictly between 0 and 1 (the stream's negative share, "
            f"e.g. 0.74), got {text!r}{hint}; leave it unset for no adaptation"
        )
    return prior


def model_train_prior(metadata: Mapping[str, Any]) -> float:
    """The negative prior the model's probabilities encode, from its metadata.

    ``train_negative_prior`` when the exporter wrote it. Otherwise, a model fitted with
    ``class_weight="balanced"`` (in ``params``) weighs both classes equally in its loss, so its
    probabilities encode a 50/50 prior whatever the pool's share: 0.5. Anything else cannot be told from
    the metadata: ValueError naming the key to export."""
    stored = metadata.get(TRAIN_PRIOR_KEY)
    if stored is not None:
        return _check_prior(stored, f"metadata {TRAIN_PRIOR_KEY!r}")
    params = metadata.get("params")
    if isinstance(params, Mapping) and params.get("class_weight") == "balanced":
        return 0.5
    raise ValueError(
        f"the model's metadata does not say which negative prior its probabilities encode: export it "
        f"with {TRAIN_PRIOR_KEY!r} (the train split's negative share, weighted as the classifier saw it)"
    )
