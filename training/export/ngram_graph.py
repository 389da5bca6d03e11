"""The ONNX graph of ``TweetSentimentModel``, whose work per text follows its n-grams.

The stock converter scores through ONNX ``TfIdfVectorizer``, which materialises a dense
[texts x features] tensor: cost and memory grow with the vocabulary. This graph instead does, per batch:

1. split each text into tokens (``StringSplit``) or characters (``com.microsoft`` ``Tokenizer``) and
   code each unit with a small string ``LabelEncoder``: 1.. for the units the vocabulary's terms are
   made of (words, or the normalizer's ~40 characters), 0 for padding and anything else;
2. key every n-gram exactly by its codes in base (alphabet + 1) after a leading 1, built order by order
   with integer arithmetic along each row (``key_n = key_(n-1) * radix + code``): no n-gram strings, no
   hashing, no collisions; a 0 digit (padding, unknown unit) matches no term, so padding never forms one;
3. look the keys up: short orders (character 2-3-grams, word unigrams) by position in dense tables,
   the others in an int64 ``LabelEncoder``; unknown keys point at an all-zero row. The file holds no
   vocabulary strings;
4. "occurrence_l2" models (the production setting, see ``training/modeling/text_model.py``): gather
   (w x idf, idf**2) per n-gram occurrence from a float32 table, sum per text in float64, logit =
   intercept + sum(w x idf) / sqrt(sum(idf**2)) per block, sigmoid. No sort, no scatter;
5. "l2" models need the count of each distinct (row, term): sort ``row * V + index`` (``TopK``), cut
   where it changes, tf (optionally ``1 + log tf``) x idf, L2 norm per row and block (``ScatterElements``
   add), x per-term weight (logistic coefficient x NB ratio), sum per row + intercept, sigmoid.

The explanation outputs (one entry per distinct matched n-gram per text) come from the same graph: the
step-5 grouping, and each term's string spelled out from its key's digits. They are only computed when
the optional bool input ``explain`` (an initializer, default false) is fed true: an ``If`` node, whose
other branch returns empty tensors, so scoring alone never groups n-grams nor builds strings.
Sums are float64, as in scikit-learn; what differs is the float32 value table and output (~1e-7).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from serving import contract
from training.modeling.text_model import FeatureBlock, TweetSentimentModel

INPUT = contract.INPUT_NAME
# Optional bool scalar input (an initializer, default false): true fills the explanation outputs.
EXPLAIN = contract.EXPLAIN_INPUT
OUTPUTS = (contract.PROBABILITY_OUTPUT, *contract.TERM_OUTPUTS)
# Per text: known n-gram occurrences, all n-gram occurrences (the runtime's unknown share).
COVERAGE = contract.NGRAM_COVERAGE_OUTPUTS
OPSETS = {"": 21, "ai.onnx.ml": 4, "com.microsoft": 1}
# A Tokenizer with tokenexp "." only ever yields one-character tokens, so a two-character pad value can
# never be mistaken for a character of the text.
CHAR_PAD = "\x1f\x1f"
# N-gram orders with at most this many possible keys are looked up by position in a dense table.
DENSE_KEYS = 2**17
INT64_MAX = np.iinfo(np.int64).max


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

    def slice(self, x: str, start: int, end: int, axis: int = 0) -> str:
        bounds = [self.const([start], "start", np.int64), self.const([end], "end", np.int64)]
        return self.op("Slice", [x, *bounds, self.const([axis], "axis", np.int64)])


def _dim(g: _Graph, x: str, axis: int) -> str:
    """Scalar int64 size of ``x`` along ``axis``."""
    return g.op("Squeeze", [g.op("Shape", [x], start=axis, end=axis + 1), g.const([0], "ax", np.int64)])


def _alphabet(block: FeatureBlock) -> list[str]:
    """The units (words or characters) the block's terms are made of, in a fixed order."""
    return sorted({unit for term in block.terms for unit in term_units(block, term)})


def term_units(block: FeatureBlock, term: str) -> list[str]:
    return term.split(" ") if block.analyzer == "word" else list(term)


def _radix(block: FeatureBlock, alphabet: list[str]) -> int:
    """Base of the n-gram keys: one digit per unit code (0 = separator or unknown unit, 1.. = alphabet).

    A key is ``1`` followed by the n digits, so n-grams of different orders never share a key."""
    radix = len(alphabet) + 1
    if 2 * radix ** block.ngram_range[1] > INT64_MAX:
        raise ValueError(
            f"{block.analyzer} n-grams up to {block.ngram_range[1]} over {radix - 1} units "
            "do not fit 64-bit keys"
        )
    return radix


def term_keys(block: FeatureBlock, alphabet: list[str] | None = None) -> np.ndarray:
    """The 64-bit key of every vocabulary term, as the graph computes it for an n-gram of the text
    (``alphabet``: the block's ``_alphabet``, when the caller already has it)."""
    alphabet = _alphabet(block) if alphabet is None else alphabet
    codes = {unit: code for code, unit in enumerate(alphabet, start=1)}
    radix = _radix(block, alphabet)
    keys = np.empty(len(block.terms), dtype=np.int64)
    for position, term in enumerate(block.terms):
        key = 1
        for unit in term_units(block, term):
            key = key * radix + codes[unit]
        keys[position] = key
    return keys


def _unit_codes(g: _Graph, block: FeatureBlock, text: str, alphabet: list[str]) -> tuple[str, str]:
    """[texts x units] codes of the tokens (word) or characters (char) of each text: 1.. for the units
    the vocabulary's terms are made of, 0 for padding and any other unit. An n-gram holding a 0 digit
    has no vocabulary key, so padding can never form a term. Also the number of units of each text
    (only computed when an output needs it: the n-gram coverage)."""
    if block.analyzer == "word":
        units, lengths = g.op("StringSplit", [text], "tokens", outputs=2)  # pads with "", never a token
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
        real = g.op(
            "Cast",
            [g.op("Not", [g.op("Equal", [units, g.const(CHAR_PAD, "pad", object)])])],
            to=TensorProto.INT64,
        )
        lengths = g.op("ReduceSum", [real, g.const([1], "ax", np.int64)], keepdims=0)
    codes = g.op(
        "LabelEncoder",
        [units],
        "unit_code",
        domain="ai.onnx.ml",
        keys_strings=alphabet,
        values_int64s=list(range(1, len(alphabet) + 1)),
        default_int64=0,
    )
    return codes, lengths


def _ngram_keys(g: _Graph, block: FeatureBlock, codes: str, radix: int) -> list[tuple[int, str]]:
    """(n, [texts x n-grams] keys) for every order n in low..high
    (``key_n[:, i] = key_(n-1)[:, i] * radix + code[:, i + n - 1]``: n-grams never leave their row)."""
    low, high = block.ngram_range
    radix = g.const(radix, "radix", np.int64)
    key = g.op("Add", [codes, radix])  # order 1: the leading 1 digit, then the code
    keys = []
    for n in range(1, high + 1):
        if n > 1:
            shorter = g.slice(key, 0, -1, axis=1)
            key = g.op("Add", [g.op("Mul", [shorter, radix]), g.slice(codes, n - 1, INT64_MAX, axis=1)])
        if n >= low:
            keys.append((n, key))
    return keys


def _add_all(g: _Graph, names: list[str]) -> str:
    """Element-wise sum of int64 tensors (``Sum`` takes floating types only)."""
    total = names[0]
    for name in names[1:]:
        total = g.op("Add", [total, name])
    return total


def _concat(g: _Graph, names: list[str], axis: int = 0) -> str:
    return names[0] if len(names) == 1 else g.op("Concat", names, axis=axis)


class _BlockTerms:
    """The n-gram occurrences of one feature block ([texts x n-grams] per order, padded), and how to
    score and explain them.

    Orders with at most ``DENSE_KEYS`` possible keys (character 2- and 3-grams, word unigrams) are
    looked up by position in dense tables; the others through a hash table (``LabelEncoder``). Both
    give the index of the term, or an extra, all-zero row for unknown n-grams and padding, so sums over
    occurrences need no filtering."""

    def __init__(self, g: _Graph, block: FeatureBlock, text: str, row_ids: str) -> None:
        self.block = block
        self.size = len(block.terms)
        self.row_ids = row_ids
        self.alphabet = _alphabet(block)
        self.radix = _radix(block, self.alphabet)
        codes, self.lengths = _unit_codes(g, block, text, self.alphabet)
        self.keys = _ngram_keys(g, block, codes, self.radix)
        self.term_keys = term_keys(block, self.alphabet)
        orders = np.array([len(term_units(block, term)) for term in block.terms])
        self.dense = [(n, key) for n, key in self.keys if self.radix**n <= DENSE_KEYS]
        self.sparse = [(n, key) for n, key in self.keys if self.radix**n > DENSE_KEYS]
        self.offsets = {
            n: g.op("Sub", [key, g.const(self.radix**n, "power", np.int64)]) for n, key in self.dense
        }
        self.terms_of_order = {n: np.flatnonzero(orders == n) for n, _ in self.dense}
        self.sparse_index = None
        if self.sparse:
            hashed = np.flatnonzero(orders > self.dense[-1][0]) if self.dense else np.arange(self.size)
            self.sparse_index = g.op(
                "LabelEncoder",
                [_concat(g, [key for _, key in self.sparse], axis=1)],
                "term_index",
                domain="ai.onnx.ml",
                keys_tensor=numpy_helper.from_array(self.term_keys[hashed], "keys"),
                values_tensor=numpy_helper.from_array(hashed.astype(np.int64), "values"),
                default_tensor=numpy_helper.from_array(np.array([self.size], dtype=np.int64), "default"),
            )
        self.norms: str | None = None  # per row, and the [terms + 1, 2] table: set by ``occurrence_sums``
        self.values: str | None = None
        self.gathered: list[str] = []  # [texts x n-grams x (w x idf, idf**2)] per order: ``occurrence_sums``

    def _dense_table(self, n: int, values: np.ndarray, fill) -> np.ndarray:
        """``values`` of the order-n terms at the positions their keys spell, ``fill`` elsewhere."""
        table = np.full((self.radix**n, *values.shape[1:]), fill, dtype=values.dtype)
        terms = self.terms_of_order[n]
        table[self.term_keys[terms] - self.radix**n] = values[terms]
        return table

    def index(self, g: _Graph) -> str:
        """[texts x n-grams] term index of every n-gram (all orders, ascending; ``size`` if unknown)."""
        vocabulary = np.arange(self.size, dtype=np.int64)
        parts = [
            g.op(
                "Gather",
                [g.const(self._dense_table(n, vocabulary, self.size), "dense_index"), self.offsets[n]],
            )
            for n, _ in self.dense
        ]
        return _concat(g, [*parts, *([self.sparse_index] if self.sparse else [])], axis=1)

    def occurrence_sums(self, g: _Graph) -> str:
        """Per row, this block's logit under the "occurrence_l2" norm:
        sum(w x idf) / sqrt(sum(idf**2)), both sums over the row's n-gram occurrences."""
        self.weighted_idf = np.column_stack([self.block.weights * self.block.idf, self.block.idf**2]).astype(
            np.float32
        )
        gathered = [
            g.op(
                "Gather",
                [g.const(self._dense_table(n, self.weighted_idf, 0.0), "dense_values"), self.offsets[n]],
            )
            for n, _ in self.dense
        ]
        self.values = g.const(np.vstack([self.weighted_idf, np.zeros((1, 2), np.float32)]), "values")
        if self.sparse:
            gathered.append(g.op("Gather", [self.values, self.sparse_index]))
        self.gathered = gathered
        axis = g.const([1], "ax", np.int64)
        # float32 tables (half the cache footprint), float64 sums (long texts keep 1e-7 precision)
        double = [g.op("Cast", [values], to=TensorProto.DOUBLE) for values in gathered]
        sums = [g.op("ReduceSum", [values, axis], keepdims=0) for values in double]
        sums = sums[0] if len(sums) == 1 else g.op("Sum", sums)
        sums = g.op("Split", [sums], "sums", outputs=2, axis=1, num_outputs=2)
        flat = g.const([-1], "flat", np.int64)
        squares = g.op("Max", [g.op("Reshape", [sums[1], flat]), g.const(1e-300, "tiny", np.float64)])
        self.norms = g.op("Sqrt", [squares])
        return g.op("Div", [g.op("Reshape", [sums[0], flat]), self.norms])

    def coverage(self, g: _Graph) -> tuple[str, str]:
        """Per row, (known, all) n-gram occurrences of this block: an occurrence is known when the
        vocabulary has it (its idf**2, > 0 for every term, from the gathered table, or its index);
        all = sum over orders n of max(0, units - n + 1), as scikit-learn's analyzers count them."""
        if self.gathered:
            known_parts = []
            for values in self.gathered:
                squares = g.op("Gather", [values, g.const(1, "second", np.int64)], axis=2)
                seen = g.op(
                    "Cast",
                    [g.op("Greater", [squares, g.const(0.0, "zero", np.float32)])],
                    to=TensorProto.INT64,
                )
                known_parts.append(g.op("ReduceSum", [seen, g.const([1], "ax", np.int64)], keepdims=0))
            known = _add_all(g, known_parts)
        else:
            inside = g.op("Less", [self.index(g), g.const(self.size, "vocabulary_size", np.int64)])
            known = g.op(
                "ReduceSum",
                [g.op("Cast", [inside], to=TensorProto.INT64), g.const([1], "ax", np.int64)],
                keepdims=0,
            )
        low, high = self.block.ngram_range
        counts = [
            g.op(
                "Max",
                [
                    g.op("Sub", [self.lengths, g.const(n - 1, "order", np.int64)]),
                    g.const(0, "none", np.int64),
                ],
            )
            for n in range(low, high + 1)
        ]
        total = _add_all(g, counts)
        return known, total

    def distinct(self, g: _Graph, sublinear: bool, n_rows: str) -> tuple[str, str, str]:
        """(row, key position, contribution) of every distinct matched n-gram of each row; positions
        index the flattened keys.

        The "l2" norm needs the count of each distinct (row, term): its logits come from here. Under
        "occurrence_l2" only explanations do, with the norms ``occurrence_sums`` computed."""
        flat = g.const([-1], "flat", np.int64)
        size = g.const(self.size, "vocabulary_size", np.int64)
        index2d = self.index(g)
        index = g.op("Reshape", [index2d, flat])
        rows = g.op(
            "Expand",
            [g.op("Unsqueeze", [self.row_ids, g.const([1], "ax", np.int64)]), g.op("Shape", [index2d])],
        )
        positions = g.op("Reshape", [g.op("NonZero", [g.op("Less", [index, size])]), flat])
        rows = g.op("Gather", [g.op("Reshape", [rows, flat]), positions])
        unique, first, counts = _count_distinct(
            g, g.op("Add", [g.op("Mul", [rows, size]), g.op("Gather", [index, positions])])
        )
        term_rows = g.op("Div", [unique, size])
        features = g.op("Mod", [unique, size])
        tf = g.op("Cast", [counts], to=TensorProto.DOUBLE)
        if self.norms is not None:  # occurrence_l2: tf x (w x idf) / norm
            pairs = g.op("Gather", [self.values, features])  # [terms, (w x idf, idf**2)]
            weighted = g.op("Gather", [pairs, g.const(0, "first", np.int64)], axis=1)
            weighted = g.op("Cast", [weighted], to=TensorProto.DOUBLE)
            contribution = g.op("Div", [g.op("Mul", [tf, weighted]), g.op("Gather", [self.norms, term_rows])])
            return term_rows, g.op("Gather", [positions, first]), contribution
        if sublinear:
            tf = g.op("Add", [g.op("Log", [tf]), g.const(1.0, "one", np.float64)])
        value = g.op("Mul", [tf, g.op("Gather", [g.const(self.block.idf, "idf", np.float64), features])])
        zeros = g.op("ConstantOfShape", [n_rows], value=numpy_helper.from_array(np.array([0.0]), "zero"))
        squares = g.op("ScatterElements", [zeros, term_rows, g.op("Mul", [value, value])], reduction="add")
        norms = g.op("Gather", [g.op("Sqrt", [squares]), term_rows])
        weights = g.op("Gather", [g.const(self.block.weights, "weight", np.float64), features])
        contribution = g.op("Mul", [g.op("Div", [value, norms]), weights])
        return term_rows, g.op("Gather", [positions, first]), contribution

    def term_text(self, g: _Graph, key_positions: str) -> str:
        """The n-gram string at each key position, spelled out from the key's digits (right to left)."""
        radix = self.radix
        keys = _concat(g, [key for _, key in self.keys], axis=1)
        keys = g.op("Gather", [g.op("Reshape", [keys, g.const([-1], "flat", np.int64)]), key_positions])
        order = None  # n: a key of order n lies in [radix**n, 2 * radix**n)
        for n in range(1, self.block.ngram_range[1] + 1):
            reached = g.op("GreaterOrEqual", [keys, g.const(radix**n, "power", np.int64)])
            reached = g.op("Cast", [reached], to=TensorProto.INT64)
            order = reached if order is None else g.op("Add", [order, reached])
        alphabet = g.const(np.array(["", *self.alphabet], dtype=object), "alphabet")
        separator = g.const(np.array(" " if self.block.analyzer == "word" else "", dtype=object), "sep")
        text = None
        for r in range(self.block.ngram_range[1]):
            digit = g.op("Div", [keys, g.const(radix**r, "power", np.int64)])
            unit = g.op("Gather", [alphabet, g.op("Mod", [digit, g.const(radix, "radix", np.int64)])])
            if text is None:
                text = unit
            else:
                longer = g.op("StringConcat", [g.op("StringConcat", [unit, separator]), text])
                text = g.op("Where", [g.op("Less", [g.const(r, "r", np.int64), order]), longer, text])
        return text


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


def _explanation_branches(g: _Graph, parts: list[tuple[str, str, str]], blocks: list[_BlockTerms]):
    """``If`` branches: the explanation outputs (then) or empty tensors of the same types (else).

    ``g`` builds the then-branch; ``parts`` were built in it ("occurrence_l2") or in the main graph ("l2")."""
    outputs = [
        g.op("Identity", [_concat(g, [p[0] for p in parts])], "term_row"),
        _concat(g, [b.term_text(g, p[1]) for b, p in zip(blocks, parts, strict=True)]),
        g.op("Cast", [_concat(g, [p[2] for p in parts])], "term_weight", to=TensorProto.FLOAT),
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

    return branch(g, outputs, "explanation"), branch(otherwise, empty, "no_explanation")


def build_graph(model: TweetSentimentModel) -> onnx.ModelProto:
    """The scoring graph, without metadata.

    ``explain`` (bool scalar, default false) is a graph input with an initializer: callers that feed only
    ``text`` get the probabilities, and the explanation outputs empty; feeding ``explain`` true fills them.
    Only then does the graph spell out the term strings (an ``If`` node), and, under the "occurrence_l2"
    norm, group the n-grams of each text at all."""
    g = _Graph()
    n_rows = g.op("Shape", [INPUT], "n_rows")
    row_ids = g.op("Range", [g.const(0, "zero", np.int64), _dim(g, INPUT, 0), g.const(1, "one", np.int64)])
    blocks = [_BlockTerms(g, block, INPUT, row_ids) for block in model.feature_blocks()]
    sublinear = bool(model.sublinear_tf)
    intercept = g.op("Expand", [g.const([model.intercept_], "intercept", np.float64), n_rows])
    explanation = _Graph("explain_")
    if model.norm == "occurrence_l2":
        logits = intercept
        for block in blocks:
            logits = g.op("Add", [logits, block.occurrence_sums(g)])
        parts = [block.distinct(explanation, sublinear, n_rows) for block in blocks]
    else:  # the logits need the distinct n-grams of each text: the explanation branch reuses them
        parts = [block.distinct(g, sublinear, n_rows) for block in blocks]
        rows, contributions = (_concat(g, [p[i] for p in parts]) for i in (0, 2))
        logits = g.op("ScatterElements", [intercept, rows, contributions], reduction="add")
    probability = g.op("Sigmoid", [g.op("Neg", [logits])])
    g.nodes.append(helper.make_node("Cast", [probability], [OUTPUTS[0]], to=TensorProto.FLOAT))
    # n-gram coverage (the unknown-share drift signal): computed only when a caller asks for it.
    coverage = [block.coverage(g) for block in blocks]
    for position, name in enumerate(COVERAGE):
        g.nodes.append(
            helper.make_node("Identity", [_add_all(g, [pair[position] for pair in coverage])], [name])
        )
    then_branch, else_branch = _explanation_branches(explanation, parts, blocks)
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
            helper.make_tensor_value_info(OUTPUTS[0], TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("term_row", TensorProto.INT64, ["M"]),
            helper.make_tensor_value_info("term_text", TensorProto.STRING, ["M"]),
            helper.make_tensor_value_info("term_weight", TensorProto.FLOAT, ["M"]),
            *(helper.make_tensor_value_info(name, TensorProto.INT64, ["N"]) for name in COVERAGE),
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
