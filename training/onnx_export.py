"""Export ``TweetSentimentModel`` to an ONNX graph whose work per text follows its n-grams.

The stock converter scores through ONNX ``TfIdfVectorizer``, which materialises a dense
[texts x features] tensor: cost and memory grow with the vocabulary. This graph instead does, per batch:

1. split each text into tokens (``StringSplit``) or characters (``com.microsoft`` ``Tokenizer``),
   drop the padding and flatten to one list with the row of every token;
2. build the n-grams by concatenating neighbours (``StringConcat``), keeping only those whose first
   and last token belong to the same row (so padding or a neighbouring text can never form a term);
3. key each n-gram by two 32-bit ``com.microsoft`` ``MurmurHash3`` of its bytes (one 64-bit integer;
   the exporter refuses a vocabulary where two terms share a key), look the keys up (``ai.onnx.ml``
   ``LabelEncoder`` keyed by int64, default -1) and keep the known ones: the file holds no vocabulary
   strings, and the session loads a 1M-term table in ~0.25 s and ~90 MB instead of ~1.2 s and ~450 MB;
4. count each distinct (row, term): sort ``row * V + index`` (``TopK``) and cut where it changes;
5. tf (optionally ``1 + log tf``) x idf, L2 norm per row and block (``ScatterElements`` add),
   x per-term weight (logistic coefficient x NB ratio), sum per row + intercept, sigmoid.

The explanation outputs (one entry per distinct matched n-gram per text) come from the same graph; the
term strings are the n-grams themselves, gathered at one occurrence of each distinct key. They are only
computed when the optional bool input ``explain`` (an initializer, default false) is fed true: an ``If``
node, whose other branch returns empty tensors, so scoring alone skips the string gathers. An n-gram
outside the vocabulary could only be mistaken for a term if its 64-bit key equalled one of the V term
keys (probability about V / 2**64 per n-gram); the parity gate would still catch it on the texts given.
Arithmetic is float64, as in scikit-learn: the only difference left is the float32 output (~3e-8).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.utils import murmurhash3_32

from serving.normalizer import NORMALIZER_VERSION, normalize
from training.text_model import FeatureBlock, TweetSentimentModel, describe

INPUT = "text"
# Optional bool scalar input (an initializer, default false): true fills the explanation outputs.
EXPLAIN = "explain"
OUTPUTS = ("negative_probability", "term_row", "term_text", "term_weight")
LABELS = ["negative", "positive"]
OPSETS = {"": 21, "ai.onnx.ml": 4, "com.microsoft": 1}
# A Tokenizer with tokenexp "." only ever yields one-character tokens, so a two-character pad value can
# never be mistaken for a character of the text.
CHAR_PAD = "\x1f\x1f"
INT64_MAX = np.iinfo(np.int64).max
PARITY_BATCH = 256
# N-grams are looked up by a 64-bit key made of two 32-bit MurmurHash3 (signed high word, unsigned low
# word): an int64 LabelEncoder loads ~5x faster and in ~5x less memory than one keyed by strings.
HASH_SEEDS = ((1_623_519_331, 2_018_461_747), (97, 13), (7_919, 104_729))
HASH_SHIFT = 2**32

ADVERSARIAL_TEXTS: list[str] = [
    "",
    "   ",
    "@united http://t.co/abc #",
    "😡😡😡",
    "✈️🙂",
    "😂😂😂 😭",
    "東京行きのフライトが遅れた",
    "Рейс задержали на пять часов",
    "رحلة متأخرة جدا",
    "מטוס",
    "Ünïcödé çafé naïve résumé",
    "!!!???!!!",
    "?",
    "a",
    "x " * 5_000,
    "delayed " * 1_250,
    "w" * 10_000,
    "supercalifragilisticexpialidocious" * 100,
    "the the the the the the the the the the",
    "not good not good not good not good",
    "thank you thank you thank you",
    "late late late late late late late late bag lost lost lost",
    ":) :( :-) :-( <3 </3 :D D: ;)",
    "I looooooove this airline!!!!",
    "worst flight ever, lost my bag @AirParadis http://bit.ly/xyz",
    "great crew, smooth flight, thank you @AirParadis!",
    "\t\n\r tabs\tand\nnewlines\r\n",
    "&amp; &lt;3 &quot;quoted&quot; &#39;",
    "\x00\x1f control \x7f chars",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 _",
]


class ParityError(AssertionError):
    """onnxruntime and scikit-learn disagree beyond the tolerance: the file must not be written."""


# -- graph construction ------------------------------------------------------------------------


class _Graph:
    """A tiny node/initializer builder with unique names."""

    def __init__(self, prefix: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._prefix = prefix

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self._prefix}{hint}_{self._count}"

    def const(self, value, hint: str = "c", dtype=None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        if array.dtype == object:
            tensor = helper.make_tensor(
                name, TensorProto.STRING, array.shape, [s.encode("utf-8") for s in array.ravel()]
            )
        else:
            tensor = numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        domain = attrs.pop("domain", "")
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0], domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def slice(self, x: str, start: int, end: int) -> str:
        return self.op(
            "Slice", [x, self.const([start], "start", np.int64), self.const([end], "end", np.int64)]
        )


def _flat_units(g: _Graph, block: FeatureBlock, text: str, row_ids: str) -> tuple[str, str]:
    """Tokens (word) or characters (char) of all texts as one list, and the row of each one."""
    if block.analyzer == "word":
        units, counts = g.op("StringSplit", [text], "tokens", outputs=2)
        positions = g.op(
            "Range", [g.const(0, "zero", np.int64), _dim(g, units, 1), g.const(1, "one", np.int64)]
        )
        keep = g.op(
            "Less",
            [
                g.op("Unsqueeze", [positions, g.const([0], "ax", np.int64)]),
                g.op("Unsqueeze", [counts, g.const([1], "ax", np.int64)]),
            ],
        )
    else:
        units = g.op(
            "Tokenizer",
            [text],
            "chars",
            domain="com.microsoft",
            mark=0,
            pad_value=CHAR_PAD,
            tokenexp=".",
            mincharnum=1,
        )
        keep = g.op("Not", [g.op("Equal", [units, g.const(np.array(CHAR_PAD, dtype=object), "pad")])])
    rows = g.op(
        "Expand", [g.op("Unsqueeze", [row_ids, g.const([1], "ax", np.int64)]), g.op("Shape", [units])]
    )
    flat = g.const([-1], "flat", np.int64)
    keep = g.op("Reshape", [keep, flat])
    units = g.op("Compress", [g.op("Reshape", [units, flat]), keep], axis=0)
    rows = g.op("Compress", [g.op("Reshape", [rows, flat]), keep], axis=0)
    return units, rows


def _dim(g: _Graph, x: str, axis: int) -> str:
    """Scalar int64 size of ``x`` along ``axis``."""
    return g.op("Squeeze", [g.op("Shape", [x], start=axis, end=axis + 1), g.const([0], "ax", np.int64)])


def _ngrams(g: _Graph, units: str, rows: str, ngram_range: tuple[int, int], separator: str):
    """All n-grams of the flat units, orders min..max, each with its row and a same-row flag."""
    low, high = ngram_range
    with_separator = g.op("StringConcat", [units, g.const(np.array(separator, dtype=object), "sep")])
    strings, row_parts, valid_parts = [], [], []
    previous = units
    for n in range(1, high + 1):
        if n == 1:
            grams, gram_rows = units, rows
            same_row = None
        else:
            # gram_n[i] = unit[i] + separator + gram_{n-1}[i + 1]
            grams = g.op(
                "StringConcat", [g.slice(with_separator, 0, -(n - 1)), g.slice(previous, 1, INT64_MAX)]
            )
            gram_rows = g.slice(rows, 0, -(n - 1))
            same_row = g.op("Equal", [gram_rows, g.slice(rows, n - 1, INT64_MAX)])
        previous = grams
        if n >= low:
            strings.append(grams)
            row_parts.append(gram_rows)
            valid_parts.append(same_row or _all_true(g, grams))
    if len(strings) == 1:
        return strings[0], row_parts[0], valid_parts[0]
    return (
        g.op("Concat", strings, axis=0),
        g.op("Concat", row_parts, axis=0),
        g.op("Concat", valid_parts, axis=0),
    )


def _all_true(g: _Graph, grams: str) -> str:
    return g.op("Expand", [g.const(True, "true", np.bool_), g.op("Shape", [grams])])


def term_keys(terms: list[str]) -> tuple[tuple[int, int], np.ndarray]:
    """64-bit keys of the vocabulary terms (two MurmurHash3 of the UTF-8 bytes), for the first seed
    pair under which no two terms share a key."""
    for seeds in HASH_SEEDS:
        keys = np.fromiter(
            (
                murmurhash3_32(term, seed=seeds[0], positive=False) * HASH_SHIFT
                + murmurhash3_32(term, seed=seeds[1], positive=True)
                for term in terms
            ),
            dtype=np.int64,
            count=len(terms),
        )
        if len(np.unique(keys)) == len(terms):
            return seeds, keys
    raise ValueError("every seed pair gives two vocabulary terms the same 64-bit key")


def _hash_keys(g: _Graph, grams: str, seeds: tuple[int, int]) -> str:
    """The same 64-bit key as ``term_keys``, computed in the graph for every n-gram."""
    high = g.op("MurmurHash3", [grams], "hash_high", domain="com.microsoft", seed=seeds[0], positive=0)
    low = g.op("MurmurHash3", [grams], "hash_low", domain="com.microsoft", seed=seeds[1], positive=1)
    high = g.op("Mul", [g.op("Cast", [high], to=TensorProto.INT64), g.const(HASH_SHIFT, "shift", np.int64)])
    return g.op("Add", [high, g.op("Cast", [low], to=TensorProto.INT64)])


def _block_terms(g: _Graph, block: FeatureBlock, text: str, row_ids: str, n_rows: str, sublinear: bool):
    """(row, where its n-gram string is, contribution) of every distinct matched n-gram of this block.

    The strings themselves are only gathered (``_term_texts``) when an explanation is asked for."""
    units, rows = _flat_units(g, block, text, row_ids)
    separator = " " if block.analyzer == "word" else ""
    grams, gram_rows, valid = _ngrams(g, units, rows, block.ngram_range, separator)
    vocabulary_size = len(block.terms)
    seeds, keys = term_keys(block.terms)
    index = g.op(
        "LabelEncoder",
        [_hash_keys(g, grams, seeds)],
        "term_index",
        domain="ai.onnx.ml",
        keys_tensor=numpy_helper.from_array(keys, "keys"),
        values_tensor=numpy_helper.from_array(np.arange(vocabulary_size, dtype=np.int64), "values"),
        default_tensor=numpy_helper.from_array(np.array([-1], dtype=np.int64), "default"),
    )
    known = g.op("And", [valid, g.op("GreaterOrEqual", [index, g.const(0, "zero", np.int64)])])
    positions = g.op("Reshape", [g.op("NonZero", [known]), g.const([-1], "flat", np.int64)])
    size = g.const(vocabulary_size, "vocabulary_size", np.int64)
    keys = g.op(
        "Add",
        [g.op("Mul", [g.op("Gather", [gram_rows, positions]), size]), g.op("Gather", [index, positions])],
    )
    unique, first, counts = _count_distinct(g, keys)
    term_rows = g.op("Div", [unique, size])
    features = g.op("Mod", [unique, size])
    term_text = (grams, positions, first)

    tf = g.op("Cast", [counts], to=TensorProto.DOUBLE)
    if sublinear:
        tf = g.op("Add", [g.op("Log", [tf]), g.const(1.0, "one", np.float64)])
    value = g.op("Mul", [tf, g.op("Gather", [g.const(block.idf, "idf", np.float64), features])])
    zeros = g.op("ConstantOfShape", [n_rows], value=numpy_helper.from_array(np.array([0.0]), "zero"))
    squares = g.op("ScatterElements", [zeros, term_rows, g.op("Mul", [value, value])], reduction="add")
    norms = g.op("Sqrt", [g.op("Gather", [squares, term_rows])])
    weights = g.const(block.weights, "weight", np.float64)
    contribution = g.op("Mul", [g.op("Div", [value, norms]), g.op("Gather", [weights, features])])
    return term_rows, term_text, contribution


def _count_distinct(g: _Graph, keys: str) -> tuple[str, str, str]:
    """Distinct keys (ascending), the position of one occurrence of each, and their counts.

    Same result as ``Unique(sorted=1)``, computed by sorting (``TopK`` over all keys) and cutting at
    the changes: onnxruntime's ``Unique`` kernel is several times slower on tens of thousands of keys.
    """
    size = g.op("Shape", [keys])
    ordered, order = g.op("TopK", [keys, size], "sorted_keys", outputs=2, largest=0, sorted=1)
    previous = g.op("Concat", [g.const([-1], "minus_one", np.int64), g.slice(ordered, 0, -1)], axis=0)
    starts = g.op(
        "Reshape",
        [
            g.op("NonZero", [g.op("Not", [g.op("Equal", [ordered, previous])])]),
            g.const([-1], "flat", np.int64),
        ],
    )
    ends = g.op("Concat", [g.slice(starts, 1, INT64_MAX), size], axis=0)
    return g.op("Gather", [ordered, starts]), g.op("Gather", [order, starts]), g.op("Sub", [ends, starts])


def _term_texts(g: _Graph, sources: list[tuple[str, str, str]]) -> str:
    """The n-gram string of every distinct matched term: one occurrence of each, per block."""
    texts = [
        g.op("Gather", [grams, g.op("Gather", [positions, first])], "term_text")
        for grams, positions, first in sources
    ]
    return texts[0] if len(texts) == 1 else g.op("Concat", texts, axis=0)


def _explanation_branches(rows: str, sources: list[tuple[str, str, str]], contributions: str):
    """``If`` branches: the explanation outputs (then) or empty tensors of the same types (else)."""
    then = _Graph("explain_")
    outputs = [
        then.op("Identity", [rows], "term_row"),
        _term_texts(then, sources),
        then.op("Cast", [contributions], "term_weight", to=TensorProto.FLOAT),
    ]
    types = (TensorProto.INT64, TensorProto.STRING, TensorProto.FLOAT)
    otherwise = _Graph("no_explain_")
    empty = [
        otherwise.op(
            "Constant", [], "empty", value=helper.make_tensor(otherwise.name("value"), kind, [0], [])
        )
        for kind in types
    ]

    def branch(builder: _Graph, names: list[str], title: str) -> onnx.GraphProto:
        return helper.make_graph(
            builder.nodes,
            title,
            [],
            [helper.make_tensor_value_info(n, kind, ["M"]) for n, kind in zip(names, types, strict=True)],
            builder.initializers,
        )

    return branch(then, outputs, "explanation"), branch(otherwise, empty, "no_explanation")


def build_graph(model: TweetSentimentModel) -> onnx.ModelProto:
    """The scoring graph, without metadata.

    ``explain`` (bool scalar, default false) is a graph input with an initializer: callers that feed only
    ``text`` get the probabilities, and the explanation outputs empty; feeding ``explain`` true fills them.
    Only then does the graph gather the term strings and cast the contributions (an ``If`` node)."""
    g = _Graph()
    n_rows = g.op("Shape", [INPUT], "n_rows")
    row_ids = g.op("Range", [g.const(0, "zero", np.int64), _dim(g, INPUT, 0), g.const(1, "one", np.int64)])
    parts = [
        _block_terms(g, b, INPUT, row_ids, n_rows, bool(model.sublinear_tf)) for b in model.feature_blocks()
    ]
    rows, contributions = (
        parts[0][i] if len(parts) == 1 else g.op("Concat", [p[i] for p in parts], axis=0) for i in (0, 2)
    )
    logits = g.op(
        "ScatterElements",
        [g.op("Expand", [g.const([model.intercept_], "intercept", np.float64), n_rows]), rows, contributions],
        reduction="add",
    )
    probability = g.op("Sigmoid", [g.op("Neg", [logits])])
    g.nodes.append(helper.make_node("Cast", [probability], ["negative_probability"], to=TensorProto.FLOAT))
    then_branch, else_branch = _explanation_branches(rows, [p[1] for p in parts], contributions)
    g.nodes.append(
        helper.make_node(
            "If",
            [EXPLAIN],
            list(OUTPUTS[1:]),
            name="explanation",
            then_branch=then_branch,
            else_branch=else_branch,
        )
    )
    g.initializers.append(numpy_helper.from_array(np.array(False), EXPLAIN))
    graph = helper.make_graph(
        g.nodes,
        "tweet_sentiment",
        [
            helper.make_tensor_value_info(INPUT, TensorProto.STRING, ["N"]),
            helper.make_tensor_value_info(EXPLAIN, TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("negative_probability", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("term_row", TensorProto.INT64, ["M"]),
            helper.make_tensor_value_info("term_text", TensorProto.STRING, ["M"]),
            helper.make_tensor_value_info("term_weight", TensorProto.FLOAT, ["M"]),
        ],
        g.initializers,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in OPSETS.items()],
        producer_name="air-paradis-sentiment",
        doc_string="Negative probability of normalized tweets, with per-term contributions.",
    )
    onnx_model.ir_version = 10
    return onnx_model


# -- metadata, parity, export ------------------------------------------------------------------


def to_onnx(model: TweetSentimentModel, metadata: dict) -> onnx.ModelProto:
    """Graph + metadata. Every metadata value is stored as a JSON document; ``model_version`` is the
    creation date and the first 8 hex digits of the graph bytes' sha256, so any change of weights,
    vocabulary or structure gives a new version."""
    onnx_model = build_graph(model)
    values = {
        "normalizer_version": NORMALIZER_VERSION,
        "training_data_fingerprint": None,
        "test_metrics": {},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **metadata,
    }
    values.update(
        threshold=float(model.threshold),
        labels=LABELS,
        n_features=int(model.n_features_),
        params=describe(model),
    )
    digest = hashlib.sha256(onnx_model.graph.SerializeToString(deterministic=True)).hexdigest()[:8]
    created = dt.datetime.fromisoformat(str(values["created_at"]))
    values["model_version"] = f"{created:%Y.%m.%d}-{digest}"
    helper.set_model_props(
        onnx_model, {key: json.dumps(value, default=_plain) for key, value in values.items()}
    )
    return onnx_model


def _plain(value):
    """numpy scalars and arrays (e.g. from a grid search's best parameters) as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON-serialisable")


def open_session(onnx_path_or_bytes) -> ort.InferenceSession:
    """An onnxruntime session on the CPU provider from a path, bytes or an in-memory ModelProto."""
    if isinstance(onnx_path_or_bytes, onnx.ModelProto):
        onnx_path_or_bytes = onnx_path_or_bytes.SerializeToString()
    if isinstance(onnx_path_or_bytes, Path):
        onnx_path_or_bytes = str(onnx_path_or_bytes)
    return ort.InferenceSession(onnx_path_or_bytes, providers=["CPUExecutionProvider"])


def score(session: ort.InferenceSession, normalized_texts: list[str]) -> np.ndarray:
    """Negative probabilities from the graph, in batches grouped by length (padding stays small)."""
    order = sorted(range(len(normalized_texts)), key=lambda i: len(normalized_texts[i]))
    result = np.empty(len(normalized_texts), dtype=np.float64)
    for start in range(0, len(order), PARITY_BATCH):
        chunk = order[start : start + PARITY_BATCH]
        batch = np.array([normalized_texts[i] for i in chunk], dtype=object)
        (probabilities,) = session.run(["negative_probability"], {INPUT: batch})
        result[chunk] = probabilities
    return result


def check_parity(model: TweetSentimentModel, onnx_path_or_bytes, texts, tolerance: float = 1e-5) -> dict:
    """Compare onnxruntime with scikit-learn on ``texts`` + ``ADVERSARIAL_TEXTS`` (all normalized
    first). Raises ``ParityError`` when any probability differs by more than ``tolerance``."""
    normalized = [normalize(text) for text in [*texts, *ADVERSARIAL_TEXTS]]
    expected = model.negative_probability(normalized)
    actual = score(open_session(onnx_path_or_bytes), normalized)
    difference = np.abs(actual - expected)
    difference[np.isnan(difference)] = np.inf
    worst = int(np.argmax(difference))
    report = {
        "texts": len(normalized),
        "adversarial_texts": len(ADVERSARIAL_TEXTS),
        "max_abs_difference": float(difference[worst]),
        "tolerance": tolerance,
        "label_flips": int(np.sum((expected >= model.threshold) != (actual >= model.threshold))),
    }
    if not difference[worst] <= tolerance:
        raise ParityError(
            f"onnxruntime and scikit-learn differ by {difference[worst]:.3g} (> {tolerance:g}) on text "
            f"{worst} {normalized[worst][:80]!r}: onnx {actual[worst]:.9f}, sklearn {expected[worst]:.9f}"
        )
    return report


def export_model(model: TweetSentimentModel, path, parity_texts, metadata: dict) -> dict:
    """Build the graph, check parity, and only then write ``path`` (atomically)."""
    onnx_model = to_onnx(model, metadata)
    data = onnx_model.SerializeToString()
    parity = check_parity(model, data, parity_texts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    properties = {p.key: json.loads(p.value) for p in onnx_model.metadata_props}
    return {
        "path": str(path),
        "bytes": len(data),
        "model_version": properties["model_version"],
        "n_features": properties["n_features"],
        "parity": parity,
    }
