"""Multilingual sentence embeddings (intfloat/multilingual-e5-small, MIT) with onnxruntime and numpy only.

The ONNX file (``python -m training encoder-export``) carries the transformer and, in its metadata, the
SentencePiece-unigram tokenizer tables and the settings (token budget, "query: " prefix), so one file is
the whole encoder. Tokenization is pure Python so serving needs no tokenizer library: normalize each code
point with the model's map, collapse runs of spaces, turn spaces into the metaspace marker, then split
into metaspace-led words and segment each word with a Viterbi search over the vocabulary (no piece holds
an inner metaspace, so words are independent: they can be cached, and the search can stop as soon as the
token budget is certainly exceeded). Embeddings are the mask-weighted mean of the last hidden states,
L2-normalized, as e5 defines them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

METASPACE = "\u2581"
MAX_CHARS = 5_000  # longer texts are cut first: bounds the tokenizer's work (contract: tweets, <= 5,000)
CACHE_WORDS = 100_000  # segmented words kept; the cache is cleared when it is full
CACHE_WORD_CHARS = 40  # longer words are segmented each time: keeps the cache small whatever the input
REQUIRED_METADATA = ("tokenizer", "max_tokens", "prefix", "embedding_dim", "encoder_variant")  # JSON values
_SPACE_RUNS = re.compile(" {2,}")
_WORDS = re.compile(f"{METASPACE}[^{METASPACE}]*")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


class EncoderFileError(ValueError):
    """The encoder file is missing, is not ONNX, or lacks the tokenizer/settings metadata."""


class UnigramTokenizer:
    """XLM-R SentencePiece-unigram tokenizer (ids as the encoder's vocabulary numbers them)."""

    def __init__(
        self,
        pieces: list[str],
        scores: list[float],
        *,
        bos: int,
        eos: int,
        pad: int,
        unk: int,
        normalization: dict[int, str],
        unk_score: float | None = None,
    ) -> None:
        if len(pieces) != len(scores) or not pieces:
            raise ValueError("tokenizer: pieces and scores must be non-empty and of equal length")
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, unk
        self.size = len(pieces)  # ids are 0..size-1
        # Every piece but <unk> can match text (as in the reference tokenizer); an unmatched character
        # becomes <unk> with a score below every piece's.
        self._vocab: dict[str, tuple[int, float]] = {
            piece: (index, float(score))
            for index, (piece, score) in enumerate(zip(pieces, scores, strict=True))
            if piece and index != unk
        }
        self._reach: dict[str, int] = {}  # first character -> longest piece starting with it
        for piece in self._vocab:
            if len(piece) > self._reach.get(piece[0], 0):
                self._reach[piece[0]] = len(piece)
        self._unk_score = (
            float(np.float32(min(scores)) - np.float32(10.0)) if unk_score is None else unk_score
        )
        self._table: dict[int, str] = dict(normalization)
        self._split_words = not any(METASPACE in piece[1:] for piece in self._vocab)
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> UnigramTokenizer:
        """Build from the ``tokenizer`` object the export stores (JSON) in the ONNX metadata."""
        if spec.get("type") != "unigram":
            raise ValueError(f"unsupported tokenizer type {spec.get('type')!r}")
        return cls(
            [str(piece) for piece in spec["pieces"]],
            [float(score) for score in spec["scores"]],
            bos=int(spec["bos"]),
            eos=int(spec["eos"]),
            pad=int(spec["pad"]),
            unk=int(spec["unk"]),
            normalization={int(cp): str(out) for cp, out in spec["normalization"].items()},
        )

    def clear_cache(self) -> None:
        """Forget the segmented words (to time the tokenizer cold)."""
        self._cache.clear()

    def normalize(self, text: str) -> str:
        """Normalized text with spaces as metaspace markers and a leading marker (before segmentation)."""
        text = _SPACE_RUNS.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", METASPACE)

    def content_ids(self, text: str, budget: int | None = None) -> tuple[list[int], bool]:
        """Token ids of ``text`` without <s>/</s>, cut to ``budget``; True when the cut dropped tokens.

        Words are segmented left to right and the search stops once more than ``budget`` tokens are
        known, which gives the same ids as segmenting everything and then cutting."""
        normalized = self.normalize(text)
        words = _WORDS.findall(normalized) if self._split_words else [normalized]
        ids: list[int] = []
        cache = self._cache
        for word in words:
            segment = cache.get(word)
            if segment is None:
                segment = self._segment(word)
                if len(word) <= CACHE_WORD_CHARS:
                    if len(cache) >= CACHE_WORDS:
                        cache.clear()
                    cache[word] = segment
            ids.extend(segment)
            if budget is not None and len(ids) > budget:
                return ids[:budget], True
        return ids, False

    def _segment(self, word: str) -> tuple[int, ...]:
        """Best-scoring split of one word (Viterbi; ties keep the earliest split, like the reference)."""
        n = len(word)
        best = [0.0] + [-1e30] * n
        start = [0] * (n + 1)
        token = [0] * (n + 1)
        lookup = self._vocab.get
        reach = self._reach
        unk, unk_score = self.unk, self._unk_score
        for i in range(n):
            base = best[i]
            stop = min(n, i + reach.get(word[i], 0))
            for end in range(i + 1, stop + 1):
                hit = lookup(word[i:end])
                if hit is not None:
                    score = base + hit[1]
                    if score > best[end]:
                        best[end], start[end], token[end] = score, i, hit[0]
            score = base + unk_score
            if score > best[i + 1]:
                best[i + 1], start[i + 1], token[i + 1] = score, i, unk
        out: list[int] = []
        end = n
        while end > 0:
            out.append(token[end])
            end = start[end]
        out.reverse()
        return tuple(out)


class EncoderTokenizer:
    """The encoder's input side: prefix, unigram tokenizer, token budget (``max_tokens``, specials
    included) and batch padding. Built from the file's metadata alone, so any graph that embeds the
    encoder (e.g. with heads appended) can tokenize for it."""

    def __init__(self, unigram: UnigramTokenizer, *, max_tokens: int, prefix: str) -> None:
        if max_tokens < 3:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for text")
        self.unigram = unigram
        self.max_tokens = max_tokens
        self.prefix = prefix

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> EncoderTokenizer:
        """From the metadata with each value already JSON-decoded (the export JSON-encodes them all)."""
        missing = [key for key in ("tokenizer", "max_tokens", "prefix") if key not in metadata]
        if missing:
            raise KeyError(f"encoder metadata lacks {', '.join(missing)}")
        return cls(
            UnigramTokenizer.from_spec(metadata["tokenizer"]),
            max_tokens=int(metadata["max_tokens"]),
            prefix=str(metadata["prefix"]),
        )

    def token_ids(self, text: str) -> tuple[list[int], bool]:
        """<s> prefix+text </s> within the budget, and whether the budget (or MAX_CHARS) cut the text."""
        unigram = self.unigram
        content, truncated = unigram.content_ids(self.prefix + text[:MAX_CHARS], self.max_tokens - 2)
        return [unigram.bos, *content, unigram.eos], truncated or len(text) > MAX_CHARS

    def tokenize(self, texts: Sequence[str]) -> tuple[IntArray, IntArray, BoolArray]:
        """``input_ids``/``attention_mask`` int64 [N, T] padded to the batch's longest, and ``truncated``."""
        rows = [self.token_ids(text) for text in texts]
        input_ids, mask = self.pad([ids for ids, _ in rows])
        truncated = np.fromiter((cut for _, cut in rows), dtype=np.bool_, count=len(rows))
        return input_ids, mask, truncated

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray]:
        """Right-pad id lists with <pad> into int64 [N, T] ids and the matching 0/1 mask."""
        width = max((len(ids) for ids in rows), default=0)
        input_ids = np.full((len(rows), width), self.unigram.pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        return input_ids, mask


@dataclass(frozen=True)
class EncoderSettings:
    """What the export wrote next to the graph, besides the tokenizer."""

    variant: str
    dim: int
    quantization: str
    source: str


class SentenceEncoder:
    """One onnxruntime session plus the tokenizer: ``embed(texts)`` -> L2-normalized float32 [N, dim]."""

    def __init__(self, session: Any, tokenizer: EncoderTokenizer, settings: EncoderSettings) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.settings = settings

    @classmethod
    def load(cls, path: Path | str, *, threads: int = 1) -> SentenceEncoder:
        """Open the exported file: one session, ``threads`` intra-op threads, sequential execution."""
        path = Path(path)
        if not path.is_file():
            raise EncoderFileError(f"encoder file not found: {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise EncoderFileError(f"{path.name}: not a loadable ONNX encoder ({error})") from error
        raw: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        missing = [key for key in REQUIRED_METADATA if key not in raw]
        if missing:
            raise EncoderFileError(
                f"{path.name}: not an encoder export (metadata lacks {', '.join(missing)})"
            )
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if inputs != {"input_ids", "attention_mask"} or "embedding" not in outputs:
            raise EncoderFileError(f"{path.name}: expected inputs input_ids/attention_mask, output embedding")
        try:
            metadata = {key: json.loads(value) for key, value in raw.items()}
            tokenizer = EncoderTokenizer.from_metadata(metadata)
            settings = EncoderSettings(
                variant=str(metadata["encoder_variant"]),
                dim=int(metadata["embedding_dim"]),
                quantization=str(metadata.get("quantization", "")),
                source=str(metadata.get("encoder_source", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EncoderFileError(
                f"{path.name}: unreadable tokenizer or settings metadata ({error})"
            ) from error
        return cls(session, tokenizer, settings)

    @property
    def dim(self) -> int:
        return self.settings.dim

    @property
    def max_tokens(self) -> int:
        return self.tokenizer.max_tokens

    def tokenize(self, texts: Sequence[str]) -> tuple[IntArray, IntArray, BoolArray]:
        """``input_ids``/``attention_mask`` int64 [N, T] padded to the batch's longest, and ``truncated``."""
        return self.tokenizer.tokenize(texts)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> FloatArray:
        """L2-normalized embeddings float32 [N, dim], in the order of ``texts``.

        Texts are run ``batch_size`` at a time, grouped by token length so little time goes to padding
        (a row's embedding does not depend on the padding around it)."""
        rows = [self.tokenizer.token_ids(text)[0] for text in texts]
        order = sorted(range(len(rows)), key=lambda index: len(rows[index]))
        out = np.zeros((len(rows), self.settings.dim), dtype=np.float32)
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            input_ids, mask = self.tokenizer.pad([rows[index] for index in chunk])
            (embedding,) = self.session.run(["embedding"], {"input_ids": input_ids, "attention_mask": mask})
            out[chunk] = np.asarray(embedding, dtype=np.float32)
        return out
