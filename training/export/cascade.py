"""Write the cascade file: the encoder graph with its sentiment head and the fusion head appended.

The file takes the tokenized texts and the n-gram model's probability of each, and answers the fused
probability, so serving runs one session for the second opinion and never re-implements the heads.
Its metadata says which n-gram model it was fitted with (serving refuses any other), the uncertain band,
the per-request quota, and ``model_version``: the date and a digest of both parts and the band, so the
version a caller sees covers the whole decision.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from serving import cascade as serving_cascade
from training.cascade import CascadeFit
from training.export.artifact import write_atomically

EMBEDDING_OUTPUT = "embedding"


def append_heads(encoder: onnx.ModelProto, fit: CascadeFit) -> onnx.ModelProto:
    """A copy of ``encoder`` with the input ``ngram_probability`` [N] and the output
    ``negative_probability`` [N] = sigmoid(a·logit(p_ngram) + b·(w·embedding + c) + bias)."""
    model = onnx.ModelProto()
    model.CopyFrom(encoder)
    graph = model.graph
    if EMBEDDING_OUTPUT not in {o.name for o in graph.output}:
        raise ValueError(f"the encoder graph has no {EMBEDDING_OUTPUT!r} output")
    graph.input.append(
        helper.make_tensor_value_info(serving_cascade.NGRAM_INPUT, TensorProto.FLOAT, ["batch"])
    )
    graph.output.append(
        helper.make_tensor_value_info(serving_cascade.PROBABILITY_OUTPUT, TensorProto.FLOAT, ["batch"])
    )

    def constant(name: str, value) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    weights = constant("cascade_head_weights", fit.head.coef.reshape(-1, 1))
    head_bias = constant("cascade_head_bias", [fit.head.intercept])
    low = constant("cascade_p_low", serving_cascade.EPSILON)
    high = constant("cascade_p_high", 1.0 - serving_cascade.EPSILON)
    one = constant("cascade_one", 1.0)
    a = constant("cascade_fusion_ngram", fit.fusion.ngram)
    b = constant("cascade_fusion_encoder", fit.fusion.encoder)
    bias = constant("cascade_fusion_bias", fit.fusion.bias)
    graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "cascade_flat"))
    nodes = [
        helper.make_node("MatMul", [EMBEDDING_OUTPUT, weights], ["cascade_head_mm"]),
        helper.make_node("Add", ["cascade_head_mm", head_bias], ["cascade_head_2d"]),
        helper.make_node("Reshape", ["cascade_head_2d", "cascade_flat"], ["cascade_encoder_logit"]),
        helper.make_node("Clip", [serving_cascade.NGRAM_INPUT, low, high], ["cascade_p"]),
        helper.make_node("Sub", [one, "cascade_p"], ["cascade_q"]),
        helper.make_node("Div", ["cascade_p", "cascade_q"], ["cascade_odds"]),
        helper.make_node("Log", ["cascade_odds"], ["cascade_ngram_logit"]),
        helper.make_node("Mul", ["cascade_ngram_logit", a], ["cascade_a"]),
        helper.make_node("Mul", ["cascade_encoder_logit", b], ["cascade_b"]),
        helper.make_node("Add", ["cascade_a", "cascade_b"], ["cascade_ab"]),
        helper.make_node("Add", ["cascade_ab", bias], ["cascade_logit"]),
        helper.make_node("Sigmoid", ["cascade_logit"], [serving_cascade.PROBABILITY_OUTPUT]),
    ]
    graph.node.extend(nodes)
    return model


def cascade_metadata(encoder: onnx.ModelProto, fit: CascadeFit, ngram_version: str, extra: dict) -> dict:
    """The keys serving reads (see ``serving.cascade``) plus what the card reports."""
    digest = hashlib.sha256()
    digest.update(ngram_version.encode())
    digest.update(encoder.graph.SerializeToString(deterministic=True))
    digest.update(
        json.dumps([fit.band, fit.head.coef.tolist(), fit.head.intercept, vars(fit.fusion)]).encode()
    )
    created = dt.datetime.now(dt.UTC)
    return {
        **extra,
        serving_cascade.VERSION_KEY: f"{created:%Y.%m.%d}-{digest.hexdigest()[:8]}",
        serving_cascade.NGRAM_VERSION_KEY: ngram_version,
        serving_cascade.BAND_KEY: list(fit.band),
        serving_cascade.THRESHOLD_KEY: fit.threshold,
        "band_share": fit.band_share,
        "head": {"C": fit.head.c, "train_rows": fit.facts.get("train_rows")},
        "fusion": vars(fit.fusion),
        "created_at": created.isoformat(timespec="seconds"),
    }


def write_cascade(
    encoder_path: Path,
    fit: CascadeFit,
    ngram_version: str,
    out_path: Path,
    *,
    max_per_request: int,
    extra: dict | None = None,
) -> dict:
    """Append the heads to the encoder file at ``encoder_path``, stamp the metadata, write atomically."""
    encoder = onnx.load(str(encoder_path))
    existing = {p.key: p.value for p in encoder.metadata_props}
    model = append_heads(encoder, fit)
    values = cascade_metadata(
        encoder, fit, ngram_version, {serving_cascade.QUOTA_KEY: max_per_request, **(extra or {})}
    )
    del model.metadata_props[:]
    helper.set_model_props(model, existing | {key: json.dumps(value) for key, value in values.items()})
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    write_atomically(out_path, data)
    return {"path": str(out_path), "bytes": len(data), "model_version": values[serving_cascade.VERSION_KEY]}
