"""Build the e5 encoder as an ONNX graph: input_ids/attention_mask int64 [N, T] -> embedding float32 [N, 384].

XLM-R/BERT post-norm encoder: word + position + token-type(0) embeddings, LayerNorm, then per layer
self-attention (padding keys masked out) and a GELU (erf) feed-forward, each followed by residual +
LayerNorm; the output is the mask-weighted mean of the last hidden states, L2-normalized (e5's pooling).

Position ids are 0..T-1 per row: the position table in the weights file already starts at XLM-R's first
real position (padding_idx + 1), so row 0 is the <s> position; padding sits on the right, so a padded
row sees the same positions as the text alone.

Weight storage (``quantization``):

* ``q4``: the file's exact 4-bit weights. Linear layers are ``MatMulNBits`` (com.microsoft, bits=4,
  block_size=32, no zero-point input: its default for 4 bits is 8, q4_0's offset); nibbles are repacked
  from q4_0's order (weight j low, j + 16 high) to consecutive pairs (2k low, 2k + 1 high). The word table
  is ``GatherBlockQuantized`` with the same blocks. Float activations (accuracy_level 0).
* ``q4a8``: as ``q4`` with accuracy_level 4: activations quantized to int8 per block inside the matmul
  (what the reference engine does; faster with VNNI).
* ``int8``: weights dequantized and re-quantized to int8 per output channel (DequantizeLinear ->
  MatMul); word table as the exact q4 values in int8 with per-block float scales.

``build_encoder_graph`` returns the ModelProto unsaved, so callers can append nodes (e.g. a head) before
``save_encoder`` writes it with its metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.encoder.weights import BLOCK, E5Weights, Q4Tensor

OPSET = 21
MS_DOMAIN = "com.microsoft"
QUANTIZATIONS = ("q4", "q4a8", "int8")
MASK_NEGATIVE = -1.0e9  # added to padded keys' scores: exp() of it is exactly 0 in float32


class _Builder:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(
        self, op_type: str, inputs: list[str], stem: str | None = None, domain: str = "", **attrs: object
    ) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain=domain or None, **attrs))
        return out


def _pack_pairs(nibbles: np.ndarray) -> np.ndarray:
    """uint8 0..15 [..., 2k] -> bytes holding element 2k in the low nibble and 2k + 1 in the high one."""
    return (nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)).astype(np.uint8)


def _linear_q4(b: _Builder, x: str, weight: Q4Tensor, bias: np.ndarray, stem: str, accuracy: int) -> str:
    rows, cols = weight.shape
    packed = _pack_pairs(weight.nibbles)  # [N, K/32, 16]
    scales = weight.scales.astype(np.float32).reshape(-1)
    inputs = [
        x,
        b.const(f"{stem}_q4", packed),
        b.const(f"{stem}_scale", scales),
        "",
        "",
        b.const(f"{stem}_b", bias),
    ]
    return b.op(
        "MatMulNBits",
        inputs,
        stem,
        MS_DOMAIN,
        K=cols,
        N=rows,
        bits=4,
        block_size=BLOCK,
        accuracy_level=accuracy,
    )


def _linear_int8(b: _Builder, x: str, weight: Q4Tensor, bias: np.ndarray, stem: str) -> str:
    dense = weight.dequantize()  # [N, K]
    scale = np.abs(dense).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.rint(dense / scale[:, None]), -127, 127).astype(np.int8).T  # [K, N]
    zero = np.zeros(scale.shape, dtype=np.int8)
    w = b.op(
        "DequantizeLinear",
        [b.const(f"{stem}_i8", q), b.const(f"{stem}_scale", scale), b.const(f"{stem}_zp", zero)],
        axis=1,
    )
    return b.op("Add", [b.op("MatMul", [x, w]), b.const(f"{stem}_b", bias)], stem)


def _concat_q4(parts: list[Q4Tensor]) -> Q4Tensor:
    """Stack output rows (Q, K, V) into one matrix so the three projections are one matmul."""
    return Q4Tensor(
        nibbles=np.concatenate([p.nibbles for p in parts]), scales=np.concatenate([p.scales for p in parts])
    )


def _word_embedding(b: _Builder, ids: str, table: Q4Tensor, quantization: str, hidden: int) -> str:
    rows, cols = table.shape
    scales = table.scales.astype(np.float32)  # [V, cols/32], exact fp16 -> fp32
    if quantization in ("q4", "q4a8"):
        packed = _pack_pairs(table.nibbles).reshape(rows, cols // 2)
        zero = np.full((rows, cols // BLOCK // 2), 0x88, dtype=np.uint8)  # zero point 8 for every block
        return b.op(
            "GatherBlockQuantized",
            [b.const("word_q4", packed), ids, b.const("word_scale", scales), b.const("word_zp", zero)],
            "word",
            MS_DOMAIN,
            gather_axis=0,
            quantize_axis=1,
            block_size=BLOCK,
            bits=4,
        )
    values = (table.nibbles.astype(np.int16) - 8).astype(np.int8).reshape(rows, cols)
    gathered = b.op("Cast", [b.op("Gather", [b.const("word_i8", values), ids], axis=0)], to=TensorProto.FLOAT)
    blocks = b.op(
        "Reshape", [gathered, b.const("word_blocks", np.array([0, 0, cols // BLOCK, BLOCK], np.int64))]
    )
    row_scale = b.op(
        "Unsqueeze",
        [
            b.op("Gather", [b.const("word_scale", scales), ids], axis=0),
            b.const("ax", np.array([-1], np.int64)),
        ],
    )
    scaled = b.op("Mul", [blocks, row_scale])
    return b.op("Reshape", [scaled, b.const("word_shape", np.array([0, 0, hidden], np.int64))], "word")


def build_encoder_graph(
    weights: E5Weights, quantization: str = "q4a8", max_tokens: int = 512
) -> onnx.ModelProto:
    """The encoder as an unsaved ModelProto (positions limited to ``max_tokens``)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    cfg = weights.config
    if not 3 <= max_tokens <= cfg.max_positions:
        raise ValueError(f"max_tokens must be in 3..{cfg.max_positions}")
    hidden, heads = cfg.hidden, cfg.heads
    head_dim = hidden // heads
    b = _Builder()

    def linear(x: str, weight: Q4Tensor, bias: np.ndarray, stem: str) -> str:
        if quantization == "int8":
            return _linear_int8(b, x, weight, bias, stem)
        return _linear_q4(b, x, weight, bias, stem, accuracy=4 if quantization == "q4a8" else 0)

    def layer_norm(x: str, prefix: str) -> str:
        w, bias = weights.f32(f"{prefix}.w"), weights.f32(f"{prefix}.b")
        return b.op(
            "LayerNormalization",
            [x, b.const(f"{prefix}_w", w), b.const(f"{prefix}_b", bias)],
            axis=-1,
            epsilon=cfg.eps,
        )

    def i64(stem: str, values: list[int]) -> str:
        return b.const(stem, np.array(values, dtype=np.int64))

    # Embeddings: word + (position + token type 0), LayerNorm.
    word = _word_embedding(b, "input_ids", weights.q4("emb.word"), quantization, hidden)
    positions = (weights.f32("emb.pos")[:max_tokens] + weights.f32("emb.type")[0]).astype(np.float32)
    length = b.op("Shape", ["input_ids"], start=1, end=2)
    pos = b.op("Slice", [b.const("pos_table", positions), i64("zero", [0]), length, i64("axis0", [0])])
    x = layer_norm(b.op("Add", [word, pos]), "emb.ln")

    # Attention mask: 0 for real keys, MASK_NEGATIVE for padding; broadcast [N, 1, 1, T].
    mask = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    key_bias = b.op(
        "Mul",
        [
            b.op("Sub", [b.const("one_f", np.array(1.0, np.float32)), mask]),
            b.const("neg", np.array(MASK_NEGATIVE, np.float32)),
        ],
    )
    key_bias = b.op("Unsqueeze", [key_bias, i64("axes12", [1, 2])])
    scale = b.const("attn_scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    split_heads = i64("split_heads", [0, 0, heads, head_dim])
    merge_heads = i64("merge_heads", [0, 0, hidden])

    for layer in range(cfg.layers):
        p = f"l{layer}"
        qkv_w = _concat_q4([weights.q4(f"{p}.{n}.w") for n in ("q", "k", "v")])
        qkv_b = np.concatenate([weights.f32(f"{p}.{n}.b") for n in ("q", "k", "v")]).astype(np.float32)
        qkv = linear(x, qkv_w, qkv_b, f"{p}_qkv")
        split = b.name(f"{p}_split")
        q, k, v = (f"{split}_{n}" for n in "qkv")
        b.nodes.append(
            helper.make_node("Split", [qkv, i64("sizes", [hidden] * 3)], [q, k, v], name=split, axis=-1)
        )
        qh = b.op("Transpose", [b.op("Reshape", [q, split_heads])], perm=[0, 2, 1, 3])
        kh = b.op("Transpose", [b.op("Reshape", [k, split_heads])], perm=[0, 2, 3, 1])
        vh = b.op("Transpose", [b.op("Reshape", [v, split_heads])], perm=[0, 2, 1, 3])
        scores = b.op("Add", [b.op("Mul", [b.op("MatMul", [qh, kh]), scale]), key_bias])
        probs = b.op("Softmax", [scores], axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [probs, vh])], perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, merge_heads])
        attn = linear(ctx, weights.q4(f"{p}.ao.w"), weights.f32(f"{p}.ao.b"), f"{p}_ao")
        x = layer_norm(b.op("Add", [x, attn]), f"{p}.aln")
        mid = b.op(
            "Gelu",
            [linear(x, weights.q4(f"{p}.fi.w"), weights.f32(f"{p}.fi.b"), f"{p}_fi")],
            approximate="none",
        )
        out = linear(mid, weights.q4(f"{p}.fo.w"), weights.f32(f"{p}.fo.b"), f"{p}_fo")
        x = layer_norm(b.op("Add", [x, out]), f"{p}.oln")

    # Mean pooling over real tokens, then L2 normalization (norm floored like e5: max(|v|^2, 1e-12)).
    weight = b.op("Unsqueeze", [mask, i64("ax_last", [-1])])
    total = b.op("ReduceSum", [b.op("Mul", [x, weight]), i64("ax1", [1])], keepdims=0)
    count = b.op("ReduceSum", [weight, i64("ax1", [1])], keepdims=0)
    mean = b.op("Div", [total, count])
    norm = b.op("ReduceL2", [mean, i64("ax_last", [-1])], keepdims=1)
    norm = b.op("Max", [norm, b.const("min_norm", np.array(1e-6, np.float32))])
    b.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"], name="embedding"))

    graph = helper.make_graph(
        b.nodes,
        "e5_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="training.encoder",
    )
    model.ir_version = 10
    return model


def tokenizer_spec(weights: E5Weights) -> dict[str, object]:
    """The tokenizer tables as ``serving.encoder.UnigramTokenizer.from_spec`` reads them (JSON-ready)."""
    tok = weights.tokenizer
    spec = {
        "type": "unigram",
        "pieces": tok.pieces,
        "scores": [float(s) for s in tok.scores],
        "bos": tok.bos,
        "eos": tok.eos,
        "pad": tok.pad,
        "unk": tok.unk,
        "normalization": {str(cp): out for cp, out in sorted(tok.normalization.items())},
    }
    return spec


def save_encoder(model: onnx.ModelProto, path: Path | str, metadata: dict[str, object]) -> Path:
    """Write ``model`` with ``metadata`` in its metadata_props, every value JSON-encoded (strings too), so
    readers decode all keys alike and keys added later (e.g. by heads appended to the graph) fit in."""
    path = Path(path)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
